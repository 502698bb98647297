"""The worker's forecast schedule: due while this month's forecast is missing, queued once
across workers, made by an RQ worker and then read by the reports, not made again."""

from __future__ import annotations

from datetime import UTC, datetime

from rq import Queue
from sqlalchemy import Engine, func, select

from ledger.reporting.forecast import build_forecast, unmade
from ledger.rules.months import Month
from ledger.settings import Settings
from ledger.storage.schema import mrr_forecasts
from tests.ledger.test_forecast import grow
from tests.support.pipeline import drain
from workers.forecast_schedule import claim_key, due, queue_if_due


def test_the_months_forecast_is_made_by_the_worker_and_read_by_reports(
    settings: Settings, engine: Engine, queue: Queue
) -> None:
    now = datetime.now(UTC)
    month = Month.of(now)
    assert not due(engine, now)  # an empty ledger: nothing to forecast
    grow(engine)
    queue.connection.delete(claim_key(queue.name, month))
    try:
        assert due(engine, now)  # entries, and the stored totals never built
        assert queue_if_due(engine, queue, now) is not None
        assert queue_if_due(engine, queue, now) is None  # another worker: already queued
        drain(queue)
        with engine.connect() as conn:
            assert unmade(conn, now) == []
            made = conn.execute(
                select(func.count(), func.min(mrr_forecasts.c.made_at)).where(
                    mrr_forecasts.c.made_month == str(month), mrr_forecasts.c.currency == "usd"
                )
            ).one()
        assert made[0] == 24
        queue.connection.delete(claim_key(queue.name, month))
        assert not due(engine, now) and queue_if_due(engine, queue, now) is None
        found = build_forecast(engine, now, 12, "usd")
        assert found.made_month == month and found.made_at == made[1]
        # A new month: due again.
        assert due(engine, Month(month.index + 1).start())
    finally:
        queue.connection.delete(claim_key(queue.name, month))

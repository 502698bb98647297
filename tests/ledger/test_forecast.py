"""The forecast's backtest sees only what was recorded by each cut-off, the forecast made at a
month's start is kept and later shown against what happened: on SQLite and PostgreSQL."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from sqlalchemy import Engine, func, select, update

from ledger.reporting import backtest_store, forecast_cells
from ledger.reporting.backtest import as_known, backtest, cutoffs_of, history_as_of, project_from
from ledger.reporting.forecast import build_backtest, build_forecast
from ledger.reporting.forecast_cells import from_ledger as cells
from ledger.reporting.forecast_models import MODELS
from ledger.reporting.reports import ReportQuery, build_report
from ledger.rules.months import Month
from ledger.storage.schema import forecast_backtests, ledger_entries, mrr_forecasts
from ledger.storage.schema import forecast_cells as cells_table

FIRST = Month.parse("2025-01")
LAST = Month.parse("2025-12")  # the last complete month
TODAY = datetime(2026, 1, 15, tzinfo=UTC)
LATE = Month.parse("2025-09")  # when the late entry was recorded
ONE_MICROSECOND = timedelta(microseconds=1)


def row(
    n: int, category: str, amount: int, effective: datetime, recorded: datetime
) -> dict[str, object]:
    return {
        "customer_id": f"cus_{n}",
        "subscription_id": f"sub_{n}",
        "category": category,
        "currency": "usd",
        "amount": amount,
        "effective_at": effective,
        "recorded_at": recorded,
        "source_event_id": f"evt_{n}_{category}_{effective:%Y%m}",
        "cause_event_id": f"evt_{n}_{category}_{effective:%Y%m}",
        "reversal_of": None,
        "explanation": "{}",
    }


def grow(engine: Engine) -> None:
    """A customer of 100.00 joins each month, recorded the next day; and an expansion of
    1,000.00 that took effect in March was recorded only in September (a late event)."""
    rows = []
    for index in range(FIRST.index, LAST.index + 1):
        at = Month(index).start() + timedelta(days=3)
        rows.append(row(index, "new", 10_000, at, at + timedelta(days=1)))
    march = Month.parse("2025-03").start() + timedelta(days=10)
    rows.append(row(FIRST.index, "expansion", 100_000, march, LATE.start() + timedelta(days=2)))
    with engine.begin() as conn:
        conn.execute(ledger_entries.insert(), rows)


def test_the_backtest_uses_no_entry_recorded_after_its_cutoff(engine: Engine) -> None:
    grow(engine)
    with engine.connect() as conn:
        found = as_known(cells(conn, "usd", LAST.next()))
    for cutoff in (Month.parse("2025-04"), Month.parse("2025-08"), LATE, LAST):
        seen = history_as_of(found, "usd", cutoff, FIRST, cutoff)
        as_of = cutoff.next().start() - ONE_MICROSECOND
        report = build_report(engine, ReportQuery(FIRST, cutoff, currency="usd", as_of=as_of))
        assert [b.closing_mrr for b in seen] == [b.closing_mrr for b in report.main.months]
    before = history_as_of(found, "usd", Month.parse("2025-08"), FIRST, Month.parse("2025-08"))
    assert before[-1].closing_mrr == 8 * 10_000  # the late expansion is not seen
    after = history_as_of(found, "usd", LATE, FIRST, LATE)
    assert after[-1].closing_mrr == 9 * 10_000 + 100_000


def test_the_backtest_scores_forecasts_against_what_is_known_now(engine: Engine) -> None:
    grow(engine)
    tested = build_backtest(engine, TODAY, "usd")
    assert tested.cutoffs[0] == Month.parse("2025-03") and tested.cutoffs[-1] == Month.parse(
        "2025-11"
    )
    # From August, "last value" says 8 x 100.00; September ends at 9 x 100.00 + 1,000.00.
    with engine.connect() as conn:
        found = as_known(cells(conn, "usd", LAST.next()))
    only_august = backtest(
        [c for c in found if c.effective <= Month.parse("2025-09").index],
        "usd",
        FIRST,
        Month.parse("2025-09"),
        ("last",),
    )
    assert only_august.errors["last"][1][-1] == (190_000 - 80_000) / 80_000
    # drift3 follows the steady 100.00 a month before the late entry: it beats the last value.
    assert tested.score("drift3", 1).mape < tested.score("last", 1).mape  # type: ignore[union-attr,operator]
    assert tested.chosen in {"drift3", "rates", "ets"}


def test_the_forecast_made_at_a_months_start_is_kept_then_shown_against_the_actual(
    engine: Engine,
) -> None:
    grow(engine)
    made = build_forecast(engine, TODAY, 6, "usd")
    assert made.made_month == Month.parse("2026-01") and len(made.months) == 6
    assert made.months[0].month == Month.parse("2026-01")
    again = build_forecast(engine, TODAY + timedelta(days=10), 3, "usd")
    assert again.made_at == made.made_at and again.months == made.months[:3]
    with engine.connect() as conn:
        kept = conn.execute(select(func.count()).select_from(mrr_forecasts)).scalar_one()
    assert kept == 24
    # February: January has closed (nothing new happened in it), its forecast is shown beside it.
    february = build_forecast(engine, datetime(2026, 2, 2, tzinfo=UTC), 3, "usd")
    (january,) = february.kept
    assert january.month == Month.parse("2026-01")
    assert january.forecast == made.months[0].closing_mrr
    assert january.actual == 12 * 10_000 + 100_000


def kept_rows(engine: Engine) -> list[tuple[str, str, str | None]]:
    b = forecast_backtests.c
    query = select(b.cutoff, b.model, b.forecast).order_by(b.cutoff, b.model)
    with engine.connect() as conn:
        return [(str(c), str(m), f) for c, m, f in conn.execute(query)]


def test_the_kept_cells_are_the_ledger_summed_as_it_grows(engine: Engine) -> None:
    grow(engine)
    with engine.begin() as conn:
        assert forecast_cells.catch_up(conn) == 13  # the first call sums the whole ledger
    more = row(99, "new", 5_000, LATE.start(), TODAY)
    with engine.begin() as conn:
        conn.execute(ledger_entries.insert(), [more, {**more, "source_event_id": "evt_again"}])
    with engine.begin() as conn:
        assert forecast_cells.catch_up(conn) == 2  # then only what was appended
        assert forecast_cells.catch_up(conn) == 0
    with engine.connect() as conn:
        kept = sorted(forecast_cells.cells(conn, "usd", Month.parse("2026-02")))
        direct = sorted(cells(conn, "usd", Month.parse("2026-02")))
        stored = conn.execute(select(func.count()).select_from(cells_table)).scalar_one()
    assert kept == direct and stored == 14
    assert (LATE.index, Month.of(TODAY).index, "new", 10_000) in kept
    # A row in a cell kept already is added to it.
    with engine.begin() as conn:
        conn.execute(ledger_entries.insert(), [{**more, "source_event_id": "evt_third"}])
    with engine.begin() as conn:
        assert forecast_cells.catch_up(conn) == 1
    with engine.connect() as conn:
        kept = sorted(forecast_cells.cells(conn, "usd", Month.parse("2026-02")))
        assert kept == sorted(cells(conn, "usd", Month.parse("2026-02")))
    assert (LATE.index, Month.of(TODAY).index, "new", 15_000) in kept


def test_a_kept_cutoff_is_read_back_not_made_again(engine: Engine) -> None:
    grow(engine)
    first = build_backtest(engine, TODAY, "usd")
    rows = kept_rows(engine)
    assert {c for c, _, _ in rows} == {str(c) for c in first.cutoffs}
    assert len(rows) == len(first.cutoffs) * len(MODELS)
    # Plant a different "last value" forecast from August: the next backtest scores it.
    planted = [123_456] * 24
    b = forecast_backtests.c
    with engine.begin() as conn:
        conn.execute(
            update(forecast_backtests)
            .where(b.cutoff == "2025-08", b.model == "last")
            .values(forecast=json.dumps(planted))
        )
    again = build_backtest(engine, TODAY, "usd")
    september_actual = 9 * 10_000 + 100_000
    planted_error = (september_actual - 123_456) / 123_456
    made_error = (september_actual - 80_000) / 80_000
    assert planted_error in again.errors["last"][1] and made_error not in again.errors["last"][1]
    assert made_error in first.errors["last"][1]
    assert again.errors["drift3"] == first.errors["drift3"]
    assert len(kept_rows(engine)) == len(rows)  # nothing made again, nothing added


def test_only_closed_cutoffs_are_kept_and_a_late_entry_cannot_change_one(engine: Engine) -> None:
    grow(engine)
    # The clock in mid-October 2025: March..September have closed, October has not.
    october = datetime(2025, 10, 15, tzinfo=UTC)
    build_backtest(engine, TODAY, "usd", now=october)
    kept = {c for c, _, _ in kept_rows(engine)}
    assert kept == {str(Month(i)) for i in range(Month.parse("2025-03").index, LATE.index + 1)}
    # On 20 October a late correction takes effect in May, recorded that day.
    may = Month.parse("2025-05").start() + timedelta(days=5)
    late = row(77, "new", 30_000, may, datetime(2025, 10, 20, tzinfo=UTC))
    with engine.begin() as conn:
        conn.execute(ledger_entries.insert(), [late])
    before = kept_rows(engine)
    build_backtest(engine, TODAY, "usd", now=datetime(2025, 11, 15, tzinfo=UTC))
    after = kept_rows(engine)
    assert [r for r in after if r[0] <= str(LATE)] == before  # the closed ones, untouched
    # Kept or made now, every cut-off's forecasts are what the cells as known then give.
    with engine.connect() as conn:
        found = as_known(cells(conn, "usd", LAST.next()))
    for cutoff in cutoffs_of(FIRST, LAST):
        made = project_from(found, "usd", FIRST, cutoff)
        with engine.connect() as conn:
            stored = backtest_store.kept(conn, "usd", FIRST).get(cutoff)
        if stored is not None:
            assert stored == made, cutoff
    # October was open at the first run: made again, it sees the late entry; September cannot.
    with engine.connect() as conn:
        by_cutoff = backtest_store.kept(conn, "usd", FIRST)
    october_last = by_cutoff[Month.parse("2025-10")]["last"]
    september_last = by_cutoff[LATE]["last"]
    assert october_last is not None and october_last[0] == 10 * 10_000 + 100_000 + 30_000
    assert september_last is not None and september_last[0] == 9 * 10_000 + 100_000

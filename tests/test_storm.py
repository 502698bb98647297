"""The storm, small: 2,000 events with 20% duplicates, shuffled, posted through gunicorn while a
worker is SIGKILLed mid-batch and Redis restarts with its data lost. The ledger must equal the
one in-order delivery gives. The workers leave a replay checkpoint every other event of a
customer, so most replays resume from one. The 20,000-event version is `python bench/storm.py`.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest

from tests.support.databases import Templates
from tests.support.storm import run_storm

# Under pytest-xdist both storms (each a web server, workers and posting threads) run on one
# worker, one after the other, rather than at once on two cores.
pytestmark = pytest.mark.xdist_group("storm")


@pytest.fixture
def reference_url(db_url: str, templates: Templates) -> Iterator[str]:
    with ExitStack() as stack:
        if db_url.startswith("sqlite"):
            yield templates.sqlite_copy()
        else:
            yield stack.enter_context(templates.pg_copy())


def test_a_storm_of_duplicates_kills_and_restarts_leaves_the_in_order_ledger(
    db_url: str, reference_url: str, tmp_path: Path
) -> None:
    report = run_storm(
        db_url, reference_url, tmp_path, events=2000, customers=200, checkpoint_every=2
    )
    assert report.problems == [], report.as_json()
    assert report.statuses == {"processed": 2000}
    assert report.deliveries == 2400 and report.posted_while_redis_down > 0
    assert report.worker_restarts == 0  # `mrr worker` rides out the Redis restart itself
    if report.backend == "postgresql":
        assert report.killed_in_transaction

"""The storm at full size: 20,000 events (20% delivered twice, shuffled) through gunicorn while
a worker is SIGKILLed mid-batch and Redis restarts with its data lost; prints a JSON report
per backend, whose `problems` must be empty. `tests/test_storm.py` is the small version.

    python bench/storm.py [--events 20000] [--customers 2000] [--backends postgresql,sqlite]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import database, fresh_databases
from tests.support.storm import run_storm


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--customers", type=int, default=2_000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--backends", default="postgresql,sqlite")
    parser.add_argument("--drain-timeout", type=float, default=600.0)
    args = parser.parse_args()
    out: dict[str, Any] = {}
    with fresh_databases() as templates:
        for backend in args.backends.split(","):
            with (
                database(templates, backend) as url,
                database(templates, backend) as reference,
                tempfile.TemporaryDirectory(prefix="mrr-storm-") as workdir,
            ):
                started = time.monotonic()
                report = run_storm(
                    url,
                    reference,
                    Path(workdir),
                    events=args.events,
                    customers=args.customers,
                    workers=args.workers,
                    drain_timeout=args.drain_timeout,
                )
                out[backend] = report.as_json() | {
                    "total_seconds": round(time.monotonic() - started, 1),
                    "ok": not report.problems,
                }
    print(json.dumps(out, indent=2))
    sys.exit(0 if all(r["ok"] for r in out.values()) else 1)


if __name__ == "__main__":
    main()

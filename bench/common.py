"""Shared by the benchmarks: fresh databases, medians, import path."""

from __future__ import annotations

import statistics
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.support.databases import Templates


@contextmanager
def fresh_databases() -> Iterator[Templates]:
    """Migrated template databases; `sqlite_copy()` / `pg_copy()` give fresh ones."""
    with tempfile.TemporaryDirectory(prefix="mrr-bench-") as workdir:
        templates = Templates(Path(workdir))
        try:
            yield templates
        finally:
            templates.close()


@contextmanager
def database(templates: Templates, backend: str) -> Iterator[str]:
    if backend == "sqlite":
        yield templates.sqlite_copy()
    else:
        with templates.pg_copy() as url:
            yield url


def median(values: list[float]) -> float:
    return float(statistics.median(values))


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"

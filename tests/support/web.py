"""Waiting for a web server started by a test or a benchmark."""

from __future__ import annotations

import contextlib
import http.client
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

from tests.support.redis_server import free_port

ROOT = Path(__file__).resolve().parents[2]


def answers_health(port: int, timeout: float = 30.0) -> bool:
    """Whether GET /healthz on 127.0.0.1:`port` answers 200 within `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
            conn.request("GET", "/healthz")
            if conn.getresponse().status == 200:
                return True
        except OSError:
            pass
        time.sleep(0.1)
    return False


@contextlib.contextmanager
def gunicorn(env: dict[str, str], log: Path, workers: int = 2) -> Iterator[int]:
    """`ingest.app:create_app()` under gunicorn (sync workers) on a free port; yields the port."""
    port = free_port()
    argv = [sys.executable, "-m", "gunicorn", "--workers", str(workers)]
    argv += ["--bind", f"127.0.0.1:{port}", "ingest.app:create_app()"]
    with log.open("ab") as out:
        server = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        if not answers_health(port):
            raise RuntimeError(f"gunicorn did not answer /healthz: {log.read_text()[-2000:]}")
        yield port
    finally:
        server.terminate()
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(timeout=5)

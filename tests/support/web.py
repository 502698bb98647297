"""Waiting for a web server started by a test or a benchmark."""

from __future__ import annotations

import http.client
import time


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

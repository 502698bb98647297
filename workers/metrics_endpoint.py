"""A worker's own `/metrics` (MRR_WORKER_METRICS_PORT): for workers on another host than the
web, whose counters the web's `GET /metrics` cannot read (docs/operations.md#metrics)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from wsgiref.simple_server import WSGIServer

from prometheus_client import REGISTRY, CollectorRegistry, start_http_server
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

from ledger.settings import ConfigError

PORT = "MRR_WORKER_METRICS_PORT"
ADDRESS = "MRR_WORKER_METRICS_ADDR"


@dataclass(frozen=True, slots=True)
class MetricsEndpoint:
    port: int
    address: str = "0.0.0.0"  # prometheus_client's default: a scraper on another host reaches it

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> MetricsEndpoint | None:
        """None unless MRR_WORKER_METRICS_PORT is set; a bad value is a ConfigError."""
        env = os.environ if env is None else env
        raw = env.get(PORT, "").strip()
        if not raw:
            return None
        if not raw.isdigit() or not 1 <= int(raw) <= 65535:
            raise ConfigError(f"{PORT} must be a TCP port (1-65535), got {raw!r}")
        address = env.get(ADDRESS, "").strip()
        return cls(int(raw), address) if address else cls(int(raw))


def registry() -> Collector:
    """This process's metrics; in multiprocess mode every process's files in the directory
    (the worker's share it with the web only on the same host)."""
    if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        return REGISTRY
    shared = CollectorRegistry(auto_describe=False)
    MultiProcessCollector(shared)  # type: ignore[no-untyped-call]
    return shared


def serve(endpoint: MetricsEndpoint) -> WSGIServer:
    """Answer `GET /metrics` on the endpoint from a daemon thread; raises OSError when the
    address cannot be bound (a port in use)."""
    server, _ = start_http_server(endpoint.port, endpoint.address, registry=registry())
    return server

"""Ingest throughput: verified webhooks through gunicorn vs. a bare Flask route, same settings.

Both apps run under gunicorn on free loopback ports, under each configuration in SETTINGS
(gunicorn's sync workers, one request per connection; and gthread workers with keep-alive),
measured in the same run. The real app verifies each signature, commits the event to the inbox
on PostgreSQL (a fresh database) and wakes the workers on RQ (a private Redis). A separate
process (bench/load.py) sends pre-signed unique events over 8 connections, reused where the
server keeps them alive. Medians of the runs; stops by itself.

The webhook runs twice: with its Prometheus metrics in multiprocess mode (PROMETHEUS_MULTIPROC_DIR
set, as in production: each count is written to a memory-mapped file) and without (counts kept
in each process's memory and never shared, the cheapest the code does); `metrics_ratio` is the
first's throughput over the second's, per run, then the median.

    python bench/ingest.py [--requests 3000] [--threads 8] [--runs 3]
                           [--gunicorn NAME=SETTINGS ...]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import database, fresh_databases, median
from tests.support.histories import histories, serialized
from tests.support.redis_server import PrivateRedis, free_port
from tests.support.stripe_sign import signature_header
from tests.support.web import answers_health

ROOT = Path(__file__).resolve().parents[1]
SECRET = "whsec_bench"
SETTINGS = {
    # gunicorn's default worker class, as many workers as its documentation advises
    # (2 x cores + 1): the Procfile's web process with WEB_CONCURRENCY set so. One request
    # per connection, as behind a proxy that does not keep connections to gunicorn open.
    "sync": f"--workers {2 * (os.cpu_count() or 1) + 1}",
    # Keep-alive connections; each process's thread pool overlaps the database round trips.
    "gthread": "--workers 2 --worker-class gthread --threads 4",
}
FIGURES = ("requests_per_s", "p50_ms", "p99_ms")
CPU_FIGURES = ("machine_cpu_ms_per_request", "web_cpu_ms_per_request")


TICK_MS = 1000 / os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 10.0


def machine_busy_ms() -> float | None:
    """CPU time the whole machine spent busy so far (Linux /proc/stat), or None."""
    try:
        fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
    except OSError:
        return None
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(f) for f in fields[:8])
    return (user + nice + system + irq + softirq + steal) * TICK_MS


def tree_cpu_ms(pid: int) -> float | None:
    """CPU time of a process and its children (gunicorn's master and workers), or None."""
    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    own = (int(fields[11]) + int(fields[12])) * TICK_MS
    below = [tree_cpu_ms(int(child)) for child in children]
    return own + sum(ms for ms in below if ms is not None)


@contextmanager
def gunicorn(
    app: str, env: dict[str, str], logdir: Path, settings: str
) -> Iterator[tuple[int, int]]:
    port = free_port()
    argv = [sys.executable, "-m", "gunicorn", *settings.split(), "--bind", f"127.0.0.1:{port}", app]
    with (logdir / f"gunicorn-{port}.log").open("ab") as log:
        process = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        if not answers_health(port):
            raise RuntimeError(f"{app} did not start")
        yield port, process.pid
    finally:
        process.terminate()
        process.wait(timeout=30)


def drive(
    server: tuple[int, int], bodies: list[str], threads: int, workdir: Path
) -> dict[str, Any]:
    """One run: the load generator's figures, plus the CPU milliseconds per request that the
    web server and the whole machine spent (a steadier gauge than requests/s on a busy box)."""
    port, pid = server
    path = workdir / f"requests-{uuid.uuid4().hex[:8]}.jsonl"
    with path.open("w") as out:
        for body in bodies:
            out.write(json.dumps([body, signature_header(body, SECRET)]) + "\n")
    machine, web = machine_busy_ms(), tree_cpu_ms(pid)
    done = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "load.py"), str(port), str(path), str(threads)],
        capture_output=True,
        text=True,
        check=True,
        timeout=600,
    )
    machine_after, web_after = machine_busy_ms(), tree_cpu_ms(pid)
    result: dict[str, Any] = json.loads(done.stdout)
    if machine is not None and machine_after is not None:
        result["machine_cpu_ms_per_request"] = (machine_after - machine) / len(bodies)
    if web is not None and web_after is not None:
        result["web_cpu_ms_per_request"] = (web_after - web) / len(bodies)
    if result["errors"]:
        raise RuntimeError(f"{result['errors']} requests failed: {result}")
    return result


def renamed(bodies: list[str], tag: str) -> list[str]:
    """The same events under other ids, so a second webhook server stores them anew."""
    out = []
    for body in bodies:
        event = json.loads(body)
        event["id"] = f"{event['id']}_{tag}"
        out.append(json.dumps(event, separators=(",", ":")))
    return out


def parse_settings(given: list[str] | None) -> dict[str, str]:
    if not given:
        return dict(SETTINGS)
    chosen: dict[str, str] = {}
    for item in given:
        name, sep, flags = item.partition("=")
        if not sep or not name or not flags.strip():
            raise SystemExit(
                f"--gunicorn takes NAME=SETTINGS, e.g. 'threads=--threads 8': {item!r}"
            )
        chosen[name] = flags
    return chosen


APPS = ("bare", "webhook", "webhook_metrics")


def summary(
    bare: list[dict[str, Any]], webhook: list[dict[str, Any]], metrics: list[dict[str, Any]]
) -> dict[str, Any]:
    """Medians of one configuration's runs, the webhook/bare ratios, and metrics on/off."""
    out: dict[str, Any] = {}
    for name, results in (("webhook", webhook), ("bare", bare), ("webhook_metrics", metrics)):
        out[name] = {
            key: round(median([float(r[key]) for r in results]), 3)
            for key in (*FIGURES, *CPU_FIGURES)
            if all(key in r for r in results)
        }
    out["ratio"] = round(out["webhook"]["requests_per_s"] / out["bare"]["requests_per_s"], 3)
    # Each run posts to the bare app, then to the webhook: a ratio per run cancels the drift of
    # a shared machine's speed between runs.
    pairs = [w["requests_per_s"] / b["requests_per_s"] for w, b in zip(webhook, bare, strict=True)]
    out["ratio_per_run"] = [round(r, 3) for r in pairs]
    out["ratio_median_of_runs"] = round(median(pairs), 3)
    on_off = [
        m["requests_per_s"] / w["requests_per_s"] for m, w in zip(metrics, webhook, strict=True)
    ]
    out["metrics_ratio_per_run"] = [round(r, 3) for r in on_off]
    out["metrics_ratio"] = round(median(on_off), 3)
    # CPU per request, bare over webhook: when the machine is saturated, the throughput ratio
    # it predicts, with less of the run-to-run noise of requests/s.
    for key in CPU_FIGURES:
        if key in out["webhook"] and key in out["bare"]:
            out[f"{key.removesuffix('_ms_per_request')}_ratio"] = round(
                out["bare"][key] / out["webhook"][key], 3
            )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument(
        "--gunicorn",
        action="append",
        metavar="NAME=SETTINGS",
        help="a configuration for both apps (repeatable; default: " + ", ".join(SETTINGS) + ")",
    )
    args = parser.parse_args()
    settings = parse_settings(args.gunicorn)
    runs: dict[str, dict[str, list[dict[str, Any]]]] = {
        name: {app: [] for app in APPS} for name in settings
    }
    with ExitStack() as stack:
        workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="mrr-ingest-")))
        templates = stack.enter_context(fresh_databases())
        url = stack.enter_context(database(templates, "postgresql"))
        redis_server = PrivateRedis(workdir)
        redis_server.start()
        stack.callback(redis_server.stop)
        env = {
            **os.environ,
            "DATABASE_URL": url,
            "REDIS_URL": redis_server.url,
            "MRR_QUEUE": f"bench-{uuid.uuid4().hex[:10]}",
            "STRIPE_WEBHOOK_SECRET": SECRET,
            "PYTHONPATH": str(ROOT),
        }
        servers: dict[str, dict[str, tuple[int, int]]] = {}
        warm = list(serialized(histories(200, 20, prefix="evt_warm")))
        for name, flags in settings.items():
            shared = workdir / f"metrics-{name}"
            shared.mkdir()
            with_metrics = {**env, "PROMETHEUS_MULTIPROC_DIR": str(shared)}
            servers[name] = {
                "webhook": stack.enter_context(
                    gunicorn("ingest.app:create_app()", env, workdir, flags)
                ),
                "bare": stack.enter_context(
                    gunicorn("bench.bare_app:create_app()", env, workdir, flags)
                ),
                "webhook_metrics": stack.enter_context(
                    gunicorn("ingest.app:create_app()", with_metrics, workdir, flags)
                ),
            }
            for server in servers[name].values():
                drive(server, warm, args.threads, workdir)
        for n in range(args.runs):
            for name, pair in servers.items():
                fresh = histories(
                    args.requests, max(1, args.requests // 10), prefix=f"evt_{name}{n}"
                )
                bodies = list(serialized(fresh))
                # Metrics on, then off, then on...: the machine's drift falls on both alike.
                order = APPS if n % 2 else ("bare", "webhook_metrics", "webhook")
                for app in order:
                    # The two webhook servers share one database: each posts its own events.
                    sent = bodies if app != "webhook_metrics" else renamed(bodies, "m")
                    runs[name][app].append(drive(pair[app], sent, args.threads, workdir))
    out: dict[str, Any] = {
        "requests_per_run": args.requests,
        "threads": args.threads,
        "runs": args.runs,
    }
    for name, flags in settings.items():
        out[name] = {"gunicorn": flags, **summary(*(runs[name][app] for app in APPS))}
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()

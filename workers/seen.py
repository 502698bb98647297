"""What Redis says about the queue: jobs waiting, and the RQ workers registered on it."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from rq import Queue, Worker


@dataclass(frozen=True, slots=True)
class WorkerSeen:
    name: str
    state: str
    last_heartbeat: datetime | None


def workers_on(queue: Queue) -> list[WorkerSeen]:
    """RQ's registered workers listening on `queue` (a worker whose heartbeat lapses past its
    TTL drops out of RQ's registry)."""
    return sorted(
        (
            WorkerSeen(str(found.name), str(found.get_state()), found.last_heartbeat)
            for found in Worker.all(queue=queue)
        ),
        key=lambda seen: seen.name,
    )


def queue_depth(queue: Queue) -> int:
    return int(queue.count)

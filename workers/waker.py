"""Waking the workers for rows a web process stored, off the requests' path.

A webhook commits its row, pokes its process's `Waker` and answers. The waker's thread then
sets the queue's wake flag (`workers.queue.enqueue`), once for every poke that came in while it
was busy or pausing. Every round starts after the pokes it serves, so after their commits: a
job already waiting claims their rows, and a job that started before then leaves the flag clear
for this round to queue a new one. One Redis round trip per request was a fifth of a webhook's
cost (bench/ingest.py); under load one round now serves many requests.

A wake lost with its process (killed between commit and round) or to a Redis outage costs
latency, never the row: the sweeper queues rows left pending (`workers.sweeper`).
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
import time
import weakref
from collections.abc import Callable
from typing import Protocol

import redis

log = logging.getLogger(__name__)

# A pause after each round lets the pokes of a burst share the next one, for at most this
# much more latency before a worker starts.
PAUSE_SECONDS = 0.01
# An idle thread ends; the next poke starts another (a process that forked gets its own).
IDLE_SECONDS = 30.0
EXIT_FLUSH_SECONDS = 2.0


class Wake(Protocol):
    """One round's work, for one thread at a time; `close` when that thread leaves."""

    def __call__(self) -> object: ...

    def close(self) -> None: ...


_alive: weakref.WeakSet[Waker] = weakref.WeakSet()


class Waker:
    """Runs a `Wake` on its own thread after every `poke`, coalescing pokes that overlap.

    `connect` makes the thread's `Wake` when the thread starts (after a fork, in the child)."""

    def __init__(
        self,
        connect: Callable[[], Wake],
        *,
        pause: float = PAUSE_SECONDS,
        idle: float = IDLE_SECONDS,
    ) -> None:
        self._connect = connect
        self._pause = pause
        self._idle = idle
        self._started = 0
        self._finished = 0
        self._failing = False
        self._reset()
        _alive.add(self)

    def _reset(self) -> None:
        self._poked = threading.Event()
        self._lock = threading.Lock()
        self._rounds = threading.Condition()
        self._thread: threading.Thread | None = None

    def poke(self) -> None:
        """Ask for a round that starts after this call. Cheap: no I/O, no waiting."""
        if not self._poked.is_set():
            self._poked.set()
        thread = self._thread
        if thread is None or not thread.is_alive():
            self._start()

    def flush(self, timeout: float = 5.0) -> bool:
        """Wait until every poke made before this call has had its round; False on timeout."""
        with self._rounds:
            # A round clears the pokes it serves under this lock: a poke still set now is
            # served by the next round, and otherwise only a round under way may be owed.
            target = self._started + 1 if self._poked.is_set() else self._started
            return self._rounds.wait_for(lambda: self._finished >= target, timeout)

    def _start(self) -> None:
        with self._lock:
            thread = self._thread
            if thread is not None and thread.is_alive():
                return
            self._thread = threading.Thread(target=self._run, name="mrr-waker", daemon=True)
            self._thread.start()

    def _run(self) -> None:
        wake = self._connect()
        try:
            while True:
                if not self._poked.wait(self._idle) and self._stop_if_idle():
                    return
                with self._rounds:
                    self._poked.clear()
                    self._started += 1
                    current = self._started
                self._round(wake)
                with self._rounds:
                    self._finished = current
                    self._rounds.notify_all()
                time.sleep(self._pause)
        finally:
            wake.close()

    def _stop_if_idle(self) -> bool:
        """Leave, unless a poke came in meanwhile; a poke after this sees no thread."""
        me = threading.current_thread()
        with self._lock:
            if self._thread is me:
                self._thread = None
        if not self._poked.is_set():
            return True
        with self._lock:
            if self._thread is None:
                self._thread = me
                return False
        return True

    def _round(self, wake: Wake) -> None:
        try:
            wake()
        except (redis.exceptions.RedisError, OSError) as problem:
            if not self._failing:
                log.warning(
                    "could not wake the workers (%s); the sweeper will queue the stored rows",
                    type(problem).__name__,
                )
            self._failing = True
            return
        except Exception:
            log.exception("waking the workers failed; the sweeper will queue the stored rows")
            return
        if self._failing:
            log.info("waking the workers again")
        self._failing = False


def _reset_after_fork() -> None:
    """The child has none of the parent's threads, and their locks may be held."""
    for waker in list(_alive):
        waker._reset()


os.register_at_fork(after_in_child=_reset_after_fork)


@atexit.register
def _flush_at_exit() -> None:
    """A process leaving (gunicorn restarting a worker) wakes for its last rows first."""
    for waker in list(_alive):
        waker.flush(EXIT_FLUSH_SECONDS)

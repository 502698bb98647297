"""The web process's waker: every poke gets a round that starts after it, rounds coalesce."""

from __future__ import annotations

import logging
import os
import threading
import time

import pytest
import redis
from rq import Queue

from workers.queue import WakeFlag, wake_key
from workers.waker import Waker


class Recorder:
    """A Wake that notes, at the start of each round, how many rows were committed."""

    def __init__(self, committed: list[int], seconds: float = 0.0) -> None:
        self.committed = committed
        self.seconds = seconds
        self.seen: list[int] = []
        self.closed = False

    def __call__(self) -> None:
        self.seen.append(self.committed[0])
        time.sleep(self.seconds)

    def close(self) -> None:
        self.closed = True


def recording(seconds: float = 0.0) -> tuple[list[int], list[Recorder], Waker, threading.Lock]:
    committed = [0]
    made: list[Recorder] = []

    def connect() -> Recorder:
        made.append(Recorder(committed, seconds))
        return made[-1]

    return committed, made, Waker(connect, pause=0.001, idle=5.0), threading.Lock()


def test_the_last_round_starts_after_the_last_commit_and_rounds_coalesce() -> None:
    committed, made, waker, lock = recording(seconds=0.005)

    def commit_and_poke() -> None:
        for _ in range(200):
            with lock:
                committed[0] += 1
            waker.poke()

    pokers = [threading.Thread(target=commit_and_poke) for _ in range(4)]
    for thread in pokers:
        thread.start()
    for thread in pokers:
        thread.join()
    assert waker.flush()
    seen = [n for recorder in made for n in recorder.seen]
    assert seen[-1] == committed[0] == 800
    assert seen == sorted(seen)
    assert 1 <= len(seen) < 200


def test_flush_waits_for_nothing_when_no_poke_is_owed() -> None:
    _, made, waker, _ = recording()
    assert waker.flush(timeout=0.1)
    assert made == []


def test_a_failing_wake_is_logged_once_and_recovers(caplog: pytest.LogCaptureFixture) -> None:
    failures = [2]

    class Flaky:
        def __call__(self) -> None:
            if failures[0]:
                failures[0] -= 1
                raise redis.exceptions.ConnectionError("Connection refused")

        def close(self) -> None:
            pass

    waker = Waker(Flaky, pause=0.001)
    with caplog.at_level(logging.INFO, logger="workers.waker"):
        for _ in range(3):
            waker.poke()
            assert waker.flush()
    assert caplog.text.count("could not wake the workers (ConnectionError)") == 1
    assert "waking the workers again" in caplog.text


def test_an_idle_thread_leaves_and_the_next_poke_starts_another() -> None:
    committed = [0]
    made: list[Recorder] = []

    def connect() -> Recorder:
        made.append(Recorder(committed))
        return made[-1]

    waker = Waker(connect, pause=0.001, idle=0.05)
    waker.poke()
    assert waker.flush()
    deadline = time.monotonic() + 5
    while not made[0].closed and time.monotonic() < deadline:
        time.sleep(0.01)
    assert made[0].closed
    committed[0] = 1
    waker.poke()
    assert waker.flush()
    assert [r.seen for r in made] == [[0], [1]]


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_a_forked_child_runs_its_own_rounds() -> None:
    committed, made, waker, _ = recording()
    waker.poke()
    assert waker.flush()
    child = os.fork()
    if child == 0:  # pragma: no cover - runs in the child
        committed[0] = 7
        waker.poke()
        ok = waker.flush(timeout=5) and made[-1].seen == [7] and len(made) == 2
        os._exit(0 if ok else 1)
    _, status = os.waitpid(child, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert [r.seen for r in made] == [[0]]


def test_the_wake_flag_queues_one_job_until_a_job_starts(queue: Queue) -> None:
    flag = WakeFlag(queue)
    try:
        assert flag() is not None
        assert flag() is None
        assert len(queue) == 1
        queue.connection.delete(wake_key(queue.name))
        assert flag() is not None
        assert len(queue) == 2
    finally:
        flag.close()
    assert flag.client is None

"""The drill clock moves only when the run's Activity is quiet, and stops at every deadline."""

from __future__ import annotations

import threading
from collections.abc import Callable

import pytest

from flows.drills.clock import DrillClock
from flows.engine.activity import Activity
from flows.engine.waits import Waiter

START = 1_000_000.0


class Deadline:
    """Decided at ``start + seconds`` on the waiter's clock; ``polled`` is set after three polls."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.due: float | None = None
        self.polls = 0
        self.polled = threading.Event()

    def start(self, now: float) -> None:
        self.due = now + self.seconds

    def poll(self, now: float) -> float | None:
        self.polls += 1
        if self.polls >= 3:
            self.polled.set()
        assert self.due is not None
        return now if now >= self.due else None

    def next_due(self) -> float | None:
        return self.due


class Prepared(Deadline):
    """A deadline whose start is prepared on another thread, held until ``gate`` is set."""

    def __init__(self, seconds: float, gate: threading.Event) -> None:
        super().__init__(seconds)
        self.gate = gate
        self.wake: Callable[[], None] | None = None
        self.prepared = threading.Event()

    def on_prepared(self, wake: Callable[[], None]) -> None:
        self.wake = wake

    def ready(self) -> bool:
        return self.prepared.is_set() and self.polls > 0

    def start(self, now: float) -> None:
        def work() -> None:
            self.gate.wait()
            self.prepared.set()
            assert self.wake is not None
            self.wake()

        threading.Thread(target=work, daemon=True).start()

    def poll(self, now: float) -> float | None:
        if not self.prepared.is_set():
            return None
        if self.due is None:
            self.due = now + self.seconds
        return super().poll(now)


def test_time_jumps_straight_to_each_deadline() -> None:
    clock = DrillClock(start=START)
    waiter = Waiter(clock, activity=clock.activity)
    try:
        short, long = waiter.submit("short", Deadline(60)), waiter.submit("long", Deadline(900))
        assert short.result(timeout=30) == START + 60
        clock.activity.leave()  # the owner has read it
        assert long.result(timeout=30) == START + 900
        clock.activity.leave()
    finally:
        waiter.shutdown()
    assert clock.activity.busy == 0


def test_time_waits_for_a_preparing_wait_and_for_the_owner_to_read_a_decision() -> None:
    clock = DrillClock(start=START)
    waiter = Waiter(clock, poll_interval=0.01, activity=clock.activity)
    gate = threading.Event()
    long_wait = Deadline(900)
    try:
        preparing = waiter.submit("approval", Prepared(60, gate))
        long = waiter.submit("page", long_wait)
        assert long_wait.polled.wait(timeout=30)  # the waiter keeps polling, the clock stays put
        assert clock.now() == START
        assert not long.done()
        gate.set()
        assert preparing.result(timeout=30) == START + 60  # its deadline counts from its real start
        assert not long.done()  # the decision's token holds the clock until its owner reads it
        assert clock.now() == START + 60
        clock.activity.leave()
        assert long.result(timeout=30) == START + 900
        clock.activity.leave()
    finally:
        waiter.shutdown()


def test_activity_counts_tokens_and_refuses_an_unmatched_leave() -> None:
    activity = Activity()
    interrupt = threading.Event()
    activity.enter()
    assert activity.busy == 1
    done = threading.Event()

    def quiet() -> None:
        if activity.wait_quiet(interrupt, timeout=30):
            done.set()

    watcher = threading.Thread(target=quiet)
    watcher.start()
    activity.leave()
    watcher.join(timeout=30)
    assert done.is_set()
    with pytest.raises(RuntimeError, match="without enter"):
        activity.leave()
    activity.enter()
    interrupt.set()
    activity.notify()
    assert not activity.wait_quiet(interrupt, timeout=30)

"""Waiting without a worker: waits hold no executor thread; the waiter and its clocks."""

from __future__ import annotations

import threading
from pathlib import Path

from flows.engine import run_playbook
from flows.engine.executor import ThreadExecutor
from flows.engine.waits import VirtualClock, Waiter
from tests.flows.engine.engine_helpers import events, write_playbook
from tests.flows.people.helpers import T0, WAIT, registry, settings, wait_until

WAITS = 100


def test_a_hundred_waiting_approvals_leave_two_threads_free_for_other_steps(tmp_path: Path) -> None:
    approvals = [{"id": f"a{i}", "needs": [], "action": "approval", "with": {"approvers": ["user:nobody"]}}
                 for i in range(WAITS)]  # fmt: skip
    chain = [{"id": "c0", "needs": [], "action": "log", "with": {"message": "go"}},
             {"id": "c1", "action": "log", "with": {"message": "on"}}]  # fmt: skip
    book = write_playbook(tmp_path, [*approvals, *chain])
    clock = VirtualClock(start=T0)
    run_dir = settings(tmp_path).runs_dir / "many"
    result: dict[str, object] = {}

    def go() -> None:
        result["summary"] = run_playbook(book, settings=settings(tmp_path), registry=registry(), run_id="many",
                                         clock=clock, executor=ThreadExecutor(max_workers=2))  # fmt: skip

    thread = threading.Thread(target=go, daemon=True)
    thread.start()
    log = run_dir / "events.jsonl"
    wait_until(lambda: log.exists() and bool(events(run_dir, "step.succeeded", "c1")), "the chain beside the waits")
    wait_until(lambda: len(events(run_dir, "approval.requested")) == WAITS, "every approval to be waiting")
    # The chain finished on a 2-thread executor while the approvals waited; all of them wait at once.
    assert not events(run_dir, "approval.rejected")
    assert not events(run_dir, "approval.granted")
    clock.advance(3601)  # the approvals' default timeout is 1 h
    thread.join(WAIT)
    assert len(events(run_dir, "approval.rejected")) == WAITS


def test_an_auto_clock_jumps_to_the_next_deadline() -> None:
    class Due:
        def __init__(self, at: float) -> None:
            self.at, self.polls = at, 0

        def start(self, now: float) -> None:
            pass

        def next_due(self) -> float:
            return self.at

        def poll(self, now: float) -> float | None:
            self.polls += 1
            return now if now >= self.at else None

    clock = VirtualClock(start=0.0, auto=True)
    waiter = Waiter(clock)
    try:
        hour = Due(3600.0)
        assert waiter.submit("hour", hour).result(WAIT) >= 3600.0
        assert hour.polls < 10  # jumped to the deadline instead of stepping 0.2 s at a time
    finally:
        waiter.shutdown()

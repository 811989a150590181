"""Heading runs go first: first come, first served turns, lapsing turns, and ends that wait."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from flows.engine import prefect_attach, turns
from tests.flows.engine.engine_helpers import wait_until


def _taker(t: turns.Turns, got: list[str], name: str) -> tuple[threading.Thread, threading.Event, list[object]]:
    done, ticket = threading.Event(), []

    def take() -> None:
        ticket.append(t.take())
        got.append(name)
        done.set()

    thread = threading.Thread(target=take, daemon=True)
    thread.start()
    return thread, done, ticket


def test_turns_go_first_come_first_served_width_at_a_time() -> None:
    t = turns.Turns(width=1, hold=600)
    got: list[str] = []
    first = t.take()
    _, b_done, b_ticket = _taker(t, got, "b")
    wait_until(lambda: t.waiting() == 1)
    _, c_done, _ = _taker(t, got, "c")
    wait_until(lambda: t.waiting() == 2)
    assert got == []
    t.give(first)
    assert b_done.wait(60)
    assert got == ["b"]  # c came later: it still waits
    assert t.waiting() == 1
    t.give(b_ticket[0])
    assert c_done.wait(60)
    assert got == ["b", "c"]


def test_two_turns_at_once_and_a_third_waits() -> None:
    t = turns.Turns(width=2, hold=600)
    first, second = t.take(), t.take()
    got: list[str] = []
    _, done, _ = _taker(t, got, "third")
    wait_until(lambda: t.waiting() == 1)
    t.give(second)
    assert done.wait(60)
    t.give(first)
    t.give(first)  # given back twice: nothing happens


def test_a_turn_held_too_long_lapses_and_the_next_run_goes() -> None:
    t = turns.Turns(width=1, hold=0.05)
    t.take()  # a run that waits on the network and never gives its turn back
    got: list[str] = []
    _, done, _ = _taker(t, got, "next")
    assert done.wait(60)


def test_a_finished_run_waits_while_another_run_is_heading() -> None:
    turns.HEADING.enter()  # another run on its way to its first unit
    returned = threading.Event()
    threading.Thread(target=lambda: (turns.finishing(120), returned.set()), daemon=True).start()
    try:
        assert not returned.wait(0.3)
    finally:
        turns.HEADING.leave()
    assert returned.wait(60)


def test_a_run_that_never_arrived_does_not_wait_for_itself() -> None:
    turns.HEADING.enter()  # this run: it has no step, so nothing marked it arrived
    with turns.heading(turns.HEADING.leave):
        returned = threading.Event()
        threading.Thread(
            target=lambda: (turns.finishing(120), returned.set()), daemon=True
        ).start()  # not in the context: waits
        assert not returned.wait(0.3)
        turns.finishing(120)  # in it: marks it arrived first, so the other one goes too
    assert returned.wait(60)
    assert turns.HEADING.count() == 0


def test_a_second_run_starts_its_engine_when_the_first_reaches_its_unit(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(prefect_attach, "TURNS", turns.Turns(width=1, hold=600))
    gate, order = threading.Event(), []

    def engine(name: str, wait: threading.Event | None) -> Any:
        def start(att: prefect_attach.Attachment) -> Any:
            def run() -> Any:
                order.append(f"{name} started")
                if wait is not None:
                    assert wait.wait(60)
                att.executor.submit("contain", lambda: order.append(f"{name} applied")).result()
                return object()

            return run

        return start

    first = prefect_attach.start_attached(engine("a", gate), {}, "run-a")
    wait_until(lambda: order == ["a started"])
    second = prefect_attach.start_attached(engine("b", None), {}, "run-b")
    wait_until(lambda: prefect_attach.TURNS.waiting() == 1)
    assert order == ["a started"]  # b waits for its turn
    gate.set()
    assert first.done.wait(60)
    assert second.done.wait(60)
    assert order == ["a started", "a applied", "b started", "b applied"]
    for att in (first, second):
        att.executor.shutdown()


def test_only_the_run_at_the_head_of_the_queue_is_woken(monkeypatch: pytest.MonkeyPatch) -> None:
    """Ten waiting runs go one by one, each woken at most twice; one wake-up for all at each give
    woke them ~55 times."""
    woken: list[int] = []

    class Counting(threading.Condition):
        def wait(self, timeout: float | None = None) -> bool:
            result = super().wait(timeout)
            woken.append(threading.get_ident())
            return result

    monkeypatch.setattr(turns.threading, "Condition", Counting)
    t = turns.Turns(width=1, hold=600)
    first = t.take()
    got: list[str] = []
    runs = []
    for i in range(10):
        thread, _, _ = _taker(t, got, f"r{i}")
        runs.append(thread)
        wait_until(lambda i=i: t.waiting() == i + 1)  # queued in order
    t.give(first)
    for i in range(10):
        wait_until(lambda i=i: len(got) == i + 1)
        t.give(next(iter(t._holding)))
    monkeypatch.undo()
    assert got == [f"r{i}" for i in range(10)]  # first come, first served
    takers = {thread.ident for thread in runs}
    assert 10 <= sum(1 for ident in woken if ident in takers) <= 20


class _Clocks:
    def __init__(self) -> None:
        self.wall = 100.0
        self.cpu = 5.0
        self.heading = True


def _share(clocks: _Clocks, share: float = 0.25, most: float = 0.05) -> turns.Share:
    return turns.Share(
        share, most=most, heading=lambda: clocks.heading, cpu=lambda: clocks.cpu, clock=lambda: clocks.wall
    )


def test_intake_waits_for_its_share_while_runs_head() -> None:
    clocks = _Clocks()
    share = _share(clocks)
    assert share.delay() == 0.0  # runs began heading: the count starts here
    clocks.wall += 0.010
    clocks.cpu += 0.002  # 20% of the time: under the 25% share
    assert share.delay() == 0.0
    clocks.wall += 0.010
    clocks.cpu += 0.006  # 8 ms of CPU in 20 ms: 40%
    assert share.delay() == pytest.approx(0.008 / 0.25 - 0.020)  # wait until 8 ms is 25% of the time
    clocks.cpu += 0.100  # far over: one request never waits more than `most`
    assert share.delay() == 0.05


def test_intake_never_waits_while_no_run_heads_and_the_count_starts_again() -> None:
    clocks = _Clocks()
    share = _share(clocks)
    clocks.heading = False
    clocks.cpu += 1.0
    assert share.delay() == 0.0
    clocks.heading = True
    assert share.delay() == 0.0  # CPU spent while no run headed is not owed
    clocks.wall += 0.01
    clocks.cpu += 0.01
    assert share.delay() > 0
    clocks.heading = False
    assert share.delay() == 0.0
    clocks.heading = True
    assert share.delay() == 0.0


@pytest.mark.parametrize("bad", [0.0, -0.1, 1.5])
def test_a_share_outside_0_to_1_is_refused(bad: float) -> None:
    with pytest.raises(ValueError, match="share"):
        turns.Share(bad)

"""Containment first, without a Prefect server: the engine starts at once, units run before any flow
run, and flow runs wait (bounded) while a run is on its way to its first unit of work."""

from __future__ import annotations

import threading
from typing import Any

from flows.engine import prefect_attach


def _start(gate: threading.Event, first: Any) -> prefect_attach.Attachment:
    """A run whose engine waits for ``gate``, then does ``first(attachment)`` and ends."""

    def engine(att: prefect_attach.Attachment) -> Any:
        def run() -> Any:
            assert gate.wait(60)
            first(att)
            return object()

        return run

    return prefect_attach.start_attached(engine, {}, "run-1")


def _head_start_returns(att: prefect_attach.Attachment) -> threading.Event:
    returned = threading.Event()

    def wait() -> None:
        att.head_start(120)
        returned.set()

    threading.Thread(target=wait, daemon=True).start()
    return returned


def test_a_unit_runs_before_any_flow_run_and_flow_runs_wait_for_it() -> None:
    gate, ran = threading.Event(), []
    att = _start(gate, lambda a: a.executor.submit("contain", lambda: ran.append("applied")).result())
    returned = _head_start_returns(att)
    assert not returned.wait(0.3)  # still on its way: the flow run is not created yet
    gate.set()
    assert att.done.wait(60)
    assert returned.wait(60)  # it went on once the unit had run
    assert ran == ["applied"]
    news = att.news.get_nowait()
    assert news.name == "contain"  # recorded for the flow run, as a task run after the fact
    assert news.error is None
    att.executor.shutdown()


def test_a_run_waiting_for_people_does_not_hold_other_flow_runs() -> None:
    gate, hold = threading.Event(), threading.Event()

    def first(att: prefect_attach.Attachment) -> None:
        att.progress("approve", "waiting", {"approvers": ["group:sec"]})
        assert hold.wait(60)

    att = _start(gate, first)
    returned = _head_start_returns(att)
    gate.set()
    assert returned.wait(60)  # while the run still waits for its approval
    assert not att.done.is_set()
    hold.set()
    assert att.done.wait(60)
    att.executor.shutdown()


def test_a_failed_unit_is_recorded_with_its_error() -> None:
    from flows.engine.units import ItemResult

    gate = threading.Event()
    gate.set()
    att = _start(gate, lambda a: a.executor.submit("stuck", lambda: ItemResult("failed", error="door stuck")).result())
    assert att.done.wait(60)
    news = att.news.get_nowait()
    assert (news.name, news.error) == ("stuck", "door stuck")
    att.executor.shutdown()


def test_flow_runs_wait_while_intake_is_busy_and_go_on_when_it_is_not_or_at_the_bound() -> None:
    busy = threading.Event()
    busy.set()  # an alert storm going on
    prefect_attach.defer_flow_runs_while(busy.is_set)
    try:
        gate = threading.Event()
        att = _start(gate, lambda a: a.executor.submit("contain", lambda: None).result())
        gate.set()
        assert att.done.wait(60)  # the run itself never waits for intake
        returned = _head_start_returns(att)
        assert not returned.wait(0.3)  # no run on its way, but intake busy: the flow run waits
        busy.clear()
        assert returned.wait(60)
        busy.set()
        bounded = threading.Event()
        threading.Thread(target=lambda: (att.head_start(0.2), bounded.set()), daemon=True).start()
        assert bounded.wait(60)  # a storm that goes on holds it no longer than its head start
        att.executor.shutdown()
    finally:
        prefect_attach.defer_flow_runs_while(None)

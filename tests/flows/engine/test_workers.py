"""Threads a warm server starts ahead: runs reuse them, one lease keeper renews every run's lease."""

from __future__ import annotations

import gc
import json
import threading
from pathlib import Path

import pytest

from flows.engine import runner
from flows.engine.state import RunState, _Leases
from flows.engine.workers import ATTEMPTS, Pool, Workers
from tests.flows.engine.engine_helpers import make_settings, wait_until, write_playbook


def test_warm_workers_take_jobs_without_starting_threads() -> None:
    workers = Workers("test-worker")
    workers.warm(3)
    assert workers.idle() == 3
    gate, ran = threading.Event(), []
    done = [workers.submit(lambda i=i: (gate.wait(60), ran.append(i))) for i in range(3)]
    assert (workers.started(), workers.idle()) == (3, 0)  # three idle workers took three jobs
    extra = workers.submit(ran.append, "extra")  # none idle: one more worker
    assert extra.wait(60)
    assert workers.started() == 4
    gate.set()
    assert all(d.wait(60) for d in done)
    assert sorted(map(str, ran)) == ["0", "1", "2", "extra"]
    wait_until(lambda: workers.idle() == 4)


def test_a_job_that_raises_leaves_its_worker_working() -> None:
    workers = Workers("test-worker")
    workers.warm(1)
    assert workers.submit(lambda: 1 / 0).wait(60)  # logged, and the done event is still set
    ran: list[str] = []
    assert workers.submit(ran.append, "after").wait(60)
    assert ran == ["after"]


def _lease(state: RunState) -> float:
    return float(json.loads(state.lock_path.read_text())["lease_until"])


def test_one_keeper_renews_every_lease_and_never_brings_back_a_released_lock(tmp_path: Path) -> None:
    keeper = _Leases(every=0.01)
    first, second = RunState(tmp_path / "a"), RunState(tmp_path / "b")
    for state in (first, second):
        assert state.claim()
        state._write_lock()
        keeper.add(state)
    leases = _lease(first), _lease(second)
    wait_until(lambda: _lease(first) > leases[0] and _lease(second) > leases[1])  # both renewed by the one thread
    keeper.remove(first)
    first.lock_path.unlink()  # what release() does after leaving the keeper
    renewed = _lease(second)
    wait_until(lambda: _lease(second) > renewed)
    renewed = _lease(second)
    wait_until(lambda: _lease(second) > renewed)  # two more rounds of the keeper
    assert not first.lock_path.exists()
    keeper.remove(second)
    for state in (first, second):
        state.unclaim()


def test_back_to_back_runs_sweep_for_crashed_runs_once_a_second(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from flows.engine import run_playbook

    swept: list[Path] = []
    monkeypatch.setattr(runner, "mark_crashed_runs", lambda settings: swept.append(settings.runs_dir) or [])
    settings = make_settings(tmp_path)
    book = write_playbook(tmp_path, [{"id": "say", "action": "log", "with": {"message": "hi"}}])
    run_playbook(book, mode="dry-run", settings=settings)
    run_playbook(book, mode="dry-run", settings=settings)
    assert swept == [settings.runs_dir]  # the second run, within SWEEP_EVERY, did not list the directory again
    monkeypatch.setattr(runner, "SWEEP_EVERY", 0.0)
    run_playbook(book, mode="dry-run", settings=settings)
    assert len(swept) == 2


def test_the_warm_heap_is_frozen_out_of_the_collectors_sight() -> None:
    from flows.engine.serve import _freeze_heap

    _freeze_heap()
    try:
        assert gc.get_freeze_count() > 0
    finally:
        gc.unfreeze()


def test_a_pool_runs_at_most_its_limit_at_once_and_queues_the_rest() -> None:
    workers = Workers("test-pool")
    pool = Pool(workers, limit=2)
    gates = [threading.Event() for _ in range(4)]
    running: list[int] = []
    futures = [pool.submit(lambda i=i: (running.append(i), gates[i].wait(60), i * 10)[2]) for i in range(4)]
    wait_until(lambda: running == [0, 1])
    assert workers.started() == 2  # the other two wait in the pool, not on workers
    gates[0].set()
    assert futures[0].result(60) == 0
    wait_until(lambda: running == [0, 1, 2])  # a freed place goes to the oldest queued job
    for gate in gates[1:]:
        gate.set()
    assert [f.result(60) for f in futures] == [0, 10, 20, 30]
    assert workers.started() == 2


def test_a_pool_carries_errors_cancels_queued_jobs_and_refuses_after_shutdown() -> None:
    pool = Pool(Workers("test-pool"), limit=1)
    gate = threading.Event()
    failing = pool.submit(lambda: (gate.wait(60), 1 / 0))
    queued = pool.submit(lambda: "never")
    closed = threading.Event()
    threading.Thread(target=lambda: (pool.shutdown(wait=True, cancel_futures=True), closed.set()), daemon=True).start()
    wait_until(queued.cancelled)
    assert not closed.wait(0.05)  # the running job is waited for
    gate.set()
    assert closed.wait(60)
    with pytest.raises(ZeroDivisionError):
        failing.result(60)
    with pytest.raises(RuntimeError, match="after shutdown"):
        pool.submit(lambda: None)


def test_jobs_start_in_an_empty_context_as_on_a_new_thread() -> None:
    import contextvars

    var: contextvars.ContextVar[str] = contextvars.ContextVar("test_pool_var", default="unset")
    pool = Pool(Workers("test-pool"), limit=1)
    var.set("caller")
    assert pool.submit(lambda: (var.set("first job"), var.get())[1]).result(60) == "first job"
    assert pool.submit(var.get).result(60) == "unset"  # same worker: neither the caller's nor the last job's


def test_action_attempts_run_on_started_workers() -> None:
    from flows.engine.fence import run_with_timeout

    ATTEMPTS.warm(2)
    started = ATTEMPTS.started()
    assert run_with_timeout(lambda: "applied", 60, threading.Event(), "test") == "applied"
    assert ATTEMPTS.started() == started

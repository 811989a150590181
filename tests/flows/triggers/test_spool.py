"""The spool: batches that wait together share one commit, none is answered before it, writes take turns."""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path

import pytest

from flows.triggers.spool import FairLock, Incident, Spool, connect


def test_waiting_batches_share_one_commit_and_none_is_acknowledged_before_it(tmp_path: Path) -> None:
    path = tmp_path / "spool.db"
    spool = Spool(path)
    try:
        blocker = connect(path)
        blocker.execute("BEGIN IMMEDIATE")  # another writer holds the database: the spool's writer must wait
        futures = [spool.submit("generic", {"alerts": [{"n": i}]}) for i in range(64)]
        # Nothing is committed, so nothing may be acknowledged (the receiver answers 202 on the future).
        assert not any(f.done() for f in futures)
        blocker.execute("ROLLBACK")
        blocker.close()
        ids = [f.result(30) for f in futures]
        assert len(set(ids)) == 64
        # The writer took the first batch alone before the lock was released; the 63 that waited
        # behind it went in together: two commits (one when the first had no company yet), not 64.
        assert spool.commits <= 2
        # Durable means visible to any other connection once acknowledged.
        with sqlite3.connect(path) as fresh:
            rows = fresh.execute(f"SELECT count(*) FROM batches WHERE id IN ({','.join('?' * 64)})", ids)
            assert rows.fetchone()[0] == 64
    finally:
        spool.close()


def test_a_batch_json_cannot_carry_is_refused_before_it_is_queued(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool.db")
    try:
        with pytest.raises(ValueError, match="JSON compliant"):
            spool.submit("generic", {"value": float("nan")})
        assert spool.append("generic", {"value": 1}) >= 1
        assert spool.commits == 1
    finally:
        spool.close()


def _until_waiting(gate: FairLock, count: int) -> None:
    """Poll (no fixed sleep) until ``count`` threads have asked for the gate."""
    while gate.waiting() < count:
        time.sleep(0.001)


def test_a_writer_that_commits_again_at_once_cannot_starve_the_dispatcher() -> None:
    # Under a storm the spool's writer released the gate and took it again at once, commit after
    # commit; with a plain lock the dispatcher waiting for it started no run until the storm ended.
    gate = FairLock()
    gate.acquire()  # the writer commits
    went = threading.Event()

    def dispatcher() -> None:
        gate.acquire()
        went.set()
        gate.release()

    thread = threading.Thread(target=dispatcher)
    thread.start()
    _until_waiting(gate, 1)
    gate.release()
    gate.acquire()  # the writer's next commit, asked for at once
    assert went.is_set(), "the writer took the gate again before the dispatcher that was waiting"
    gate.release()
    thread.join()


def test_an_incident_saved_outside_a_transaction_waits_at_the_gate_not_in_sqlite(tmp_path: Path) -> None:
    # Outside the gate, the write met the writer's lock in SQLite's busy handler, which sleeps up to
    # 100 ms at a time: each of a sweep's updates waited that long under a storm.
    spool = Spool(tmp_path / "spool.db")
    try:
        incident = Incident(key="k", playbook="p", run_id="r1", seq=1, state="running", started_at=1.0,
                            last_at=1.0, fingerprints={"fp": 1.0})  # fmt: skip
        spool._gate.acquire()  # the receiver's writer is committing
        saved = threading.Event()
        thread = threading.Thread(target=lambda: (spool.save_incident(incident), saved.set()))
        thread.start()
        _until_waiting(spool._gate, 1)
        assert not saved.is_set()
        spool._gate.release()
        thread.join()
        assert saved.is_set()
        found = spool.incident("k")
        assert found is not None
        assert found.run_id == "r1"
    finally:
        spool.close()


def test_the_spool_is_receiving_for_a_moment_after_each_commit(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool.db")
    try:
        assert not spool.receiving()
        spool.append("generic", {"alerts": []})
        assert spool.receiving(within=3600)
        assert not spool.receiving(within=0)
    finally:
        spool.close()

"""Group commit in the spool: batches that wait together share one commit, and none is answered before it."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from flows.triggers.spool import Spool, connect


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

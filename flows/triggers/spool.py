"""The durable spool: every accepted alert batch is in SQLite before the receiver answers 202.

SQLite in WAL mode with ``synchronous=FULL`` (SQLite docs, "PRAGMA synchronous": FULL makes a
committed transaction survive a power loss in WAL mode). Requests that arrive together are written
by one writer thread in one transaction (group commit), so the fsync per commit is shared and a
burst of alerts costs a few commits, not one each.

Tables: ``batches`` (one per accepted request: its alerts, state ``pending`` until the dispatcher
has handled it), ``incidents`` (one row per incident: its key, run and state; the key makes one
run per incident at a time) and ``notes`` (events for a run's record that wait until the run can
take them).
"""

from __future__ import annotations

import json
import queue
import sqlite3
import threading
import time
from collections.abc import Iterator
from concurrent.futures import Future
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SCHEMA = """
CREATE TABLE IF NOT EXISTS batches (
    id INTEGER PRIMARY KEY AUTOINCREMENT, received_at REAL NOT NULL, source TEXT NOT NULL,
    doc TEXT NOT NULL, state TEXT NOT NULL DEFAULT 'pending', done_at REAL);
CREATE INDEX IF NOT EXISTS batches_pending ON batches(state, id);
CREATE TABLE IF NOT EXISTS incidents (
    key TEXT PRIMARY KEY, playbook TEXT NOT NULL, run_id TEXT NOT NULL, seq INTEGER NOT NULL,
    state TEXT NOT NULL, started_at REAL NOT NULL, last_at REAL NOT NULL, fingerprints TEXT NOT NULL,
    flow_run_id TEXT, outcome TEXT, request TEXT);
CREATE TABLE IF NOT EXISTS notes (
    id INTEGER PRIMARY KEY AUTOINCREMENT, run_id TEXT NOT NULL, type TEXT NOT NULL, detail TEXT NOT NULL,
    at REAL NOT NULL, flushed INTEGER NOT NULL DEFAULT 0, uniq TEXT UNIQUE);
CREATE INDEX IF NOT EXISTS notes_pending ON notes(flushed, run_id, id);
CREATE INDEX IF NOT EXISTS incidents_open ON incidents(state);
"""


class FairLock:
    """A lock taken in the order it was asked for (a ticket lock).

    ``threading.Lock`` is not fair: under an alert storm the spool's writer released it and took it
    again at once, commit after commit, and the dispatcher waiting for it started no run until the
    storm was over (2.4 s at 2,000 alerts/s). With tickets, the dispatcher waits for one commit.
    """

    def __init__(self) -> None:
        self._cond = threading.Condition(threading.Lock())
        self._next = 0  # the next ticket handed out
        self._serving = 0  # the ticket that holds the lock

    def acquire(self) -> None:
        with self._cond:
            ticket = self._next
            self._next += 1
            while ticket != self._serving:
                self._cond.wait()

    def release(self) -> None:
        with self._cond:
            self._serving += 1
            self._cond.notify_all()

    def waiting(self) -> int:
        """How many threads wait for the lock (not counting its holder)."""
        with self._cond:
            return max(0, self._next - self._serving - 1)

    def __enter__(self) -> None:
        self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()


RECEIVING_WINDOW = 0.5  # seconds after a commit during which the spool counts as receiving


@dataclass
class Incident:
    key: str
    playbook: str
    run_id: str
    seq: int
    state: str  # starting | running | finished
    started_at: float
    last_at: float
    fingerprints: dict[str, float]
    flow_run_id: str | None = None
    outcome: str | None = None
    request: dict[str, Any] | None = None  # what starts its run again if a crash lost the start


def connect(path: Path) -> sqlite3.Connection:
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(path, timeout=30, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    conn.executescript(SCHEMA)
    return conn


class Spool:
    """Batches in, batches out; incidents and notes for the dispatcher. Thread-safe."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._conn = connect(path)
        self._lock = threading.RLock()  # the dispatcher's connection (a transaction spans many calls)
        self._peek = connect(path)  # the receiver's reads, never behind the dispatcher's transaction
        self._peek_lock = threading.Lock()
        # Held around every write transaction of this process, the writer's and the dispatcher's: one
        # waits for the other on a lock that wakes it at once, not in SQLite's busy handler, which
        # sleeps in steps of up to 100 ms and held each request of a storm that long.
        self._gate = FairLock()
        self._queue: queue.Queue[tuple[str, str, Future[int]] | None] = queue.Queue()
        self._writer = threading.Thread(target=self._write_loop, name="fireline-spool", daemon=True)
        self.new_batch = threading.Event()
        self.commits = 0  # transactions the writer committed: fewer than batches when requests share one
        self._last_commit = float("-inf")  # time.monotonic() of the writer's last commit
        self._writer.start()

    # -- the receiver side -------------------------------------------------------------------
    def append(self, source: str, doc: dict[str, Any], timeout: float = 30.0) -> int:
        """Write one batch durably; return its id once it is committed."""
        return self.submit(source, doc).result(timeout)

    def submit(self, source: str, doc: dict[str, Any]) -> Future[int]:
        """Queue one batch for the writer; the future has its id once the commit that holds it is done.

        Raises ``ValueError`` (before queueing) for a document JSON cannot carry (NaN, infinities).
        """
        done: Future[int] = Future()
        self._queue.put((source, json.dumps(doc, ensure_ascii=False, allow_nan=False), done))
        return done

    def _write_loop(self) -> None:
        conn = connect(self.path)
        while True:
            first = self._queue.get()
            if first is None:
                conn.close()
                return
            group = [first]
            while len(group) < 512:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is None:
                    self._queue.put(None)
                    break
                group.append(item)
            try:
                with self._gate:
                    conn.execute("BEGIN IMMEDIATE")
                    ids = [
                        conn.execute(
                            "INSERT INTO batches(received_at, source, doc) VALUES (?, ?, ?)", (time.time(), src, doc)
                        ).lastrowid
                        for src, doc, _ in group
                    ]
                    conn.execute("COMMIT")
                self.commits += 1
                self._last_commit = time.monotonic()
            except sqlite3.Error as e:
                conn.execute("ROLLBACK") if conn.in_transaction else None
                for _, _, fut in group:
                    fut.set_exception(e)
                continue
            for (_, _, fut), row_id in zip(group, ids, strict=True):
                fut.set_result(int(row_id or 0))
            self.new_batch.set()

    def receiving(self, within: float = RECEIVING_WINDOW) -> bool:
        """Whether a batch was committed in the last ``within`` seconds (an alert storm going on)."""
        return time.monotonic() - self._last_commit < within

    def close(self) -> None:
        self._queue.put(None)
        self._writer.join(timeout=10)
        with self._lock:
            self._conn.close()
        with self._peek_lock:
            self._peek.close()

    def known_incident(self, key: str) -> bool:
        """Whether an incident with this key exists (for the receiver; its own connection)."""
        with self._peek_lock:
            return self._peek.execute("SELECT 1 FROM incidents WHERE key = ?", (key,)).fetchone() is not None

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """One write transaction (one fsync) for many dispatcher statements; inside one, it joins it.

        ``BEGIN IMMEDIATE`` takes the write lock at once (waiting up to the busy timeout): a deferred
        transaction that reads first cannot upgrade after the receiver's writer committed
        (``SQLITE_BUSY_SNAPSHOT``, which no busy timeout retries).
        """
        with self._lock:
            if self._conn.in_transaction:  # this thread's own (the connection is used under the lock only)
                yield
                return
            self._gate.acquire()
            try:
                self._conn.execute("BEGIN IMMEDIATE")
                try:
                    yield
                except BaseException:
                    if self._conn.in_transaction:
                        self._conn.execute("ROLLBACK")
                    raise
                if self._conn.in_transaction:
                    self._conn.execute("COMMIT")
            finally:
                self._gate.release()

    def _write(self, sql: str, params: tuple[Any, ...]) -> sqlite3.Cursor:
        """One statement in the dispatcher's transaction, or in its own behind the gate.

        Never in autocommit: a write that skips the gate meets the writer's lock in SQLite's busy
        handler, which sleeps up to 100 ms at a time; under a storm the sweep's incident updates
        each waited that long, and the runs of the next drain with them.
        """
        with self.transaction():
            return self._conn.execute(sql, params)

    @contextmanager
    def committed(self) -> Iterator[None]:
        """Commit what the dispatcher did so far, run the body outside the transaction, then go on.

        Used around starting a run: the incident row is durable first, and the receiver's writer is
        not held up while the run starts.
        """
        with self._lock:
            if self._conn.in_transaction:
                self._conn.execute("COMMIT")
            self._gate.release()
            try:
                yield
            finally:
                self._gate.acquire()
                self._conn.execute("BEGIN IMMEDIATE")

    # -- the dispatcher side -----------------------------------------------------------------
    def pending(self, limit: int = 100) -> list[tuple[int, str, dict[str, Any]]]:
        with self._lock:
            rows = self._conn.execute(
                "SELECT id, source, doc FROM batches WHERE state = 'pending' ORDER BY id LIMIT ?", (limit,)
            ).fetchall()
        return [(int(r[0]), str(r[1]), json.loads(r[2])) for r in rows]

    def depth(self) -> int:
        with self._lock:
            return int(self._conn.execute("SELECT count(*) FROM batches WHERE state = 'pending'").fetchone()[0])

    def mark_done(self, batch_id: int) -> None:
        self._write("UPDATE batches SET state = 'done', done_at = ? WHERE id = ?", (time.time(), batch_id))

    def incident(self, key: str) -> Incident | None:
        with self._lock:
            row = self._conn.execute(
                "SELECT key, playbook, run_id, seq, state, started_at, last_at, fingerprints, flow_run_id, outcome, "
                "request FROM incidents WHERE key = ?",
                (key,),
            ).fetchone()
        if row is None:
            return None
        return Incident(
            key=row[0], playbook=row[1], run_id=row[2], seq=int(row[3]), state=row[4], started_at=float(row[5]),
            last_at=float(row[6]), fingerprints=json.loads(row[7]), flow_run_id=row[8], outcome=row[9],
            request=json.loads(row[10]) if row[10] else None,
        )  # fmt: skip

    def save_incident(self, inc: Incident) -> None:
        self._write(
            "INSERT OR REPLACE INTO incidents VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (inc.key, inc.playbook, inc.run_id, inc.seq, inc.state, inc.started_at, inc.last_at,
             json.dumps(inc.fingerprints), inc.flow_run_id, inc.outcome,
             json.dumps(inc.request, allow_nan=False) if inc.request is not None else None),
        )  # fmt: skip

    def open_incidents(self) -> list[Incident]:
        with self._lock:
            keys = [r[0] for r in self._conn.execute("SELECT key FROM incidents WHERE state != 'finished'")]
        return [i for k in keys if (i := self.incident(k)) is not None]

    def incident_for_run(self, run_id: str) -> Incident | None:
        with self._lock:
            row = self._conn.execute("SELECT key FROM incidents WHERE run_id = ?", (run_id,)).fetchone()
        return self.incident(row[0]) if row else None

    def add_note(self, run_id: str, type_: str, detail: dict[str, Any], uniq: str) -> bool:
        """Queue an event for a run's record; False when this one (``uniq``) was queued before."""
        cursor = self._write(
            "INSERT OR IGNORE INTO notes(run_id, type, detail, at, uniq) VALUES (?, ?, ?, ?, ?)",
            (run_id, type_, json.dumps(detail, ensure_ascii=False, allow_nan=False), time.time(), uniq),
        )
        return cursor.rowcount == 1

    def notes(self, run_id: str) -> list[tuple[int, str, dict[str, Any]]]:
        with self._lock:
            rows = self._conn.execute(
                "SELECT id, type, detail FROM notes WHERE run_id = ? AND flushed = 0 ORDER BY id", (run_id,)
            ).fetchall()
        return [(int(r[0]), str(r[1]), json.loads(r[2])) for r in rows]

    def runs_with_notes(self) -> list[str]:
        with self._lock:
            return [r[0] for r in self._conn.execute("SELECT DISTINCT run_id FROM notes WHERE flushed = 0")]

    def mark_flushed(self, note_ids: list[int]) -> None:
        """Mark notes written to their run's record, in one transaction (one fsync, not one per note)."""
        with self.transaction():
            self._conn.executemany("UPDATE notes SET flushed = 1 WHERE id = ?", [(i,) for i in note_ids])

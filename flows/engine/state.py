"""Durable run state under ``<run dir>/state/``: results, intents, the saga log and the owner lock.

- ``state/run.json`` — what a resume needs: playbook path and sha256, inputs (``secret:`` references,
  never values), alert, trigger, incident id and start.
- ``state/intents/<key>.json`` — written before ``apply`` of a step-item; ``state/results/<key>.json``
  — written after it completed, before the step counts as done. A step-item with a result is never
  applied again; one with an intent and no result was interrupted and is applied again under the
  same idempotency key (actions are idempotent under that key).
- ``state/saga.jsonl`` — append-only log of undoable effects and of their undoing.
- ``state/owner.lock`` — flocked by the process driving the run (the kernel drops it when that
  process dies); ``state/lock.json`` — that process's pid, start time, kernel boot id, host and a
  lease renewed every :data:`LEASE_SECONDS`/3 s. A run whose owner is gone is crashed: under the
  same kernel (boot id; a restarted container with a new host name keeps it) the flock, or pid and
  start time, decide; a lock written under another kernel is judged by its lease alone.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from flows.errors import RunError

try:
    import fcntl

    _HAVE_FLOCK = True
except ImportError:  # no flock on this platform: the pid check of lock.json decides
    _HAVE_FLOCK = False
from flows.engine.owner import boot_id, pid_alive, process_start_time, same_kernel
from flows.record.store import append_line, dump_json, iso, utcnow, write_atomic

LEASE_SECONDS = 90.0
"""How long a run owner's lease lasts without renewal."""


def item_file_key(step_id: str, item_key: str) -> str:
    """File-name-safe key of a step-item (stable, collision-free)."""
    digest = hashlib.sha256(f"{step_id}\0{item_key}".encode()).hexdigest()[:16]
    return f"{step_id}.{digest}"


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return None
    return data if isinstance(data, dict) else None


def _dump(data: Any) -> bytes:
    return dump_json(data, indent=1)


@dataclass
class StoredResult:
    """The durable outcome of one step-item."""

    step: str
    item_key: str
    idempotency_key: str
    status: str
    output: Any
    error: str | None
    finished_at: str


class RunState:
    """Read and write the durable state of one run."""

    def __init__(self, run_dir: Path) -> None:
        self.dir = run_dir / "state"
        self.results_dir = self.dir / "results"
        self.intents_dir = self.dir / "intents"
        self.saga_path = self.dir / "saga.jsonl"
        self.lock_path = self.dir / "lock.json"
        self.meta_path = self.dir / "run.json"
        self.owner_path = self.dir / "owner.lock"
        self._owner_fd: int | None = None
        self._saga_lock = threading.Lock()
        self._saga_checked = False

    def create(self, meta: dict[str, Any]) -> None:
        """Make the state directory, owned by this process from the start (see :func:`adopt_orphan`).

        ``meta`` is serialised before any directory exists, so data JSON cannot hold leaves nothing.
        """
        try:
            data = json.dumps(meta, indent=1, ensure_ascii=False, default=str, allow_nan=False).encode("utf-8")
        except (ValueError, UnicodeEncodeError) as e:
            raise RunError(f"run {self.dir.parent.name}: the request cannot be recorded: {e}") from e
        if not self.claim():
            raise RunError(f"run {self.dir.parent.name} is driven by another live process")
        # results/ and intents/ are made by their first write: each directory is an inode, and on a
        # file system without a journal a new inode cost 0.1-0.6 ms (ext4 passes over inodes freed in
        # the last 30 s), a third of a run's way to its first step under an alert storm.
        write_atomic(self.meta_path, data)

    def meta(self) -> dict[str, Any] | None:
        return _read_json(self.meta_path)

    # -- results and intents ------------------------------------------------------------------
    def result(self, step_id: str, item_key: str) -> StoredResult | None:
        data = _read_json(self.results_dir / f"{item_file_key(step_id, item_key)}.json")
        return StoredResult(**data) if data is not None else None

    def has_intent(self, step_id: str, item_key: str) -> bool:
        return (self.intents_dir / f"{item_file_key(step_id, item_key)}.json").exists()

    def write_intent(self, step_id: str, item_key: str, idempotency_key: str, params: Any) -> None:
        doc = {
            "step": step_id,
            "item_key": item_key,
            "idempotency_key": idempotency_key,
            "params": params,
            "at": iso(utcnow()),
        }
        write_atomic(self.intents_dir / f"{item_file_key(step_id, item_key)}.json", _dump(doc))

    def write_result(self, result: StoredResult) -> None:
        write_atomic(self.results_dir / f"{item_file_key(result.step, result.item_key)}.json", _dump(result.__dict__))

    # -- approval requests -------------------------------------------------------------------
    def write_request(self, step_id: str, params: dict[str, Any]) -> None:
        """Record what an approval step asks (rendered params), so ``fireline approve`` can check answers."""
        write_atomic(self.dir / "approvals" / f"{step_id}.json", _dump(params))

    def read_request(self, step_id: str) -> dict[str, Any] | None:
        return _read_json(self.dir / "approvals" / f"{step_id}.json")

    # -- saga log -------------------------------------------------------------------------------
    def _drop_torn_saga_tail(self) -> None:
        """Cut a last line left half-written by a crash, so the next entry starts on its own line."""
        data = self.saga_path.read_bytes() if self.saga_path.exists() else b""
        if data and not data.endswith(b"\n"):
            with self.saga_path.open("r+b") as fh:
                fh.truncate(data.rfind(b"\n") + 1)

    def append_saga(self, entry: dict[str, Any]) -> None:
        line = dump_json({**entry, "at": iso(utcnow())}, separators=(",", ":"))
        with self._saga_lock:
            self.dir.mkdir(parents=True, exist_ok=True)
            if not self._saga_checked:
                self._drop_torn_saga_tail()
                self._saga_checked = True
            append_line(self.saga_path, line)

    def saga(self) -> list[dict[str, Any]]:
        if not self.saga_path.exists():
            return []
        entries: list[dict[str, Any]] = []
        for raw in self.saga_path.read_bytes().splitlines():
            try:
                entries.append(json.loads(raw))
            except json.JSONDecodeError:
                continue  # a torn last line from a crash mid-append
        return entries

    # -- owner lock -----------------------------------------------------------------------------
    # The owner holds an exclusive flock on state/owner.lock for as long as it drives the run; the
    # kernel drops it when the process dies, however it dies, so "is the owner alive" is exact on
    # this host. lock.json (pid, start time, host) says who it is, and is the fallback elsewhere.
    def claim(self) -> bool:
        """Take the run's owner lock without waiting; False when a live process holds it."""
        if self._owner_fd is not None:
            return True
        self.dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.owner_path, os.O_RDWR | os.O_CREAT, 0o644)
        if _HAVE_FLOCK:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                return False
        self._owner_fd = fd
        return True

    def unclaim(self) -> None:
        if self._owner_fd is not None:
            os.close(self._owner_fd)  # closing drops the flock
            self._owner_fd = None

    def acquire(self) -> None:
        """Become the run's owner, or raise :class:`RunError` when a live process already is."""
        if not self.claim() or self._foreign_owner_alive(_read_json(self.lock_path)):
            raise RunError(f"run {self.dir.parent.name} is driven by another live process")
        self._write_lock()
        _LEASES.add(self)

    def _write_lock(self) -> None:
        pid = os.getpid()
        doc = {
            "pid": pid,
            "start_time": process_start_time(pid),
            "boot_id": boot_id(),
            "host": socket.gethostname(),
            "at": iso(utcnow()),
            "lease_until": time.time() + LEASE_SECONDS,
        }
        # No fsync: after a power cut the owner is dead whatever the file says, and a lost or older
        # lock.json judges it dead (no lease) or as the lease it last had on disk.
        write_atomic(self.lock_path, _dump(doc), durable=False)

    def release(self) -> None:
        _LEASES.remove(self)
        try:
            self.lock_path.unlink()
        except FileNotFoundError:
            pass
        self.unclaim()

    @staticmethod
    def _foreign_owner_alive(lock: dict[str, Any] | None) -> bool:
        """Whether a lock written under another kernel (another machine, a rebooted host) is still live.

        Its pid means nothing here, so its lease decides; a lock without a lease cannot be judged and
        counts as live (``fireline resume --force`` takes it over, with a recorded reason).
        """
        if lock is None or same_kernel(lock):
            return False
        lease = lock.get("lease_until")
        return not isinstance(lease, int | float) or lease > time.time()

    def owner_alive(self) -> bool:
        """Whether a live process holds the run: the flock on this kernel, else pid and start time, else the lease."""
        lock = _read_json(self.lock_path)
        if lock is None:
            return False
        if _HAVE_FLOCK and self.owner_path.exists() and self._owner_fd is not None:
            return True  # this process holds it
        if _HAVE_FLOCK and self.owner_path.exists():
            if not self.claim():
                return True
            self.unclaim()
        if self._foreign_owner_alive(lock):
            return True
        if not same_kernel(lock):
            return False  # written under another kernel, and its lease has lapsed
        if _HAVE_FLOCK and self.owner_path.exists():
            return False  # same kernel and nobody holds the flock
        start = lock.get("start_time")
        return pid_alive(int(lock.get("pid", 0)), str(start) if start is not None else None)

    def lock_owner(self) -> dict[str, Any] | None:
        """What lock.json says about the owner (pid, start time, boot id, host, lease)."""
        return _read_json(self.lock_path)

    def drop_lock(self) -> None:
        """Forget a previous owner's lock.json (``resume --force``, after recording why)."""
        try:
            self.lock_path.unlink()
        except FileNotFoundError:
            pass


class _Leases:
    """Renews the lease of every run this process drives, on one thread.

    A thread per run cost a thread start in each run's way to its first step (under an alert storm,
    a wait for the interpreter as well). The lock is held while a lease is written, so a run that
    has released its lock never gets its lock.json back.
    """

    def __init__(self, every: float | None = None) -> None:
        self.every = every  # seconds between renewals; None: a third of LEASE_SECONDS
        self._lock = threading.Lock()
        self._runs: set[RunState] = set()
        self._thread: threading.Thread | None = None

    def add(self, state: RunState) -> None:
        with self._lock:
            self._runs.add(state)
            if self._thread is None:
                self._thread = threading.Thread(target=self._renew, name="fireline-lease", daemon=True)
                self._thread.start()

    def remove(self, state: RunState) -> None:
        with self._lock:
            self._runs.discard(state)

    def _renew(self) -> None:
        rest = threading.Event()  # never set: the thread lives as long as the process
        while True:
            rest.wait(self.every or LEASE_SECONDS / 3)
            with self._lock:
                for state in list(self._runs):
                    try:
                        state._write_lock()
                    except OSError:
                        continue  # a full disk now and then must not end the run; the lease may lapse


_LEASES = _Leases()

"""The run record: ``run.json``, the hash-chained ``events.jsonl`` and ``evidence/manifest.json``.

Line format of ``events.jsonl`` (fixed, so that other tools can read it)::

    {"seq": 0, "at": "<ISO-8601 UTC>", "type": "<type>", "step": "<id or null>",
     "item": <json or null>, "detail": {...}, "prev_sha256": "<sha256 of the previous line's bytes>"}

The previous line's bytes are the line without its newline; the first line uses 64 zeros. Files
other than the append-only log are replaced atomically, so a crash never leaves half a file.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field

if TYPE_CHECKING:
    from flows.record.anchor import AnchorSink
    from flows.record.seal import Sealer

ZERO_HASH = "0" * 64
EVENT_KEYS = ("seq", "at", "type", "step", "item", "detail", "prev_sha256")


# A drill pins every record timestamp to its virtual clock (epoch seconds); None: the wall clock.
VIRTUAL_NOW: list[Any] = []


def utcnow() -> datetime:
    if VIRTUAL_NOW:
        return datetime.fromtimestamp(VIRTUAL_NOW[-1](), UTC)
    return datetime.now(UTC)


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def write_atomic(path: Path, data: bytes, *, durable: bool = True) -> None:
    """Replace ``path`` with ``data`` so that readers see the old or the new file, never half.

    ``durable=False`` skips the fsync, for files whose loss in a power cut loses nothing (a lock
    that only says who is alive). The folder is made when it is missing.
    """
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    try:
        fd = os.open(tmp, _CREATE, 0o666)
    except FileNotFoundError:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(tmp, _CREATE, 0o666)
    try:
        _write_all(fd, data, durable=durable)
    finally:
        os.close(fd)
    os.replace(tmp, path)


# Plain descriptors, not Python file objects: open() adds fstat, isatty and lseek calls, and under
# an alert storm each system call hands the GIL to another thread and waits to get it back.
_CREATE = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_CLOEXEC", 0)
_APPEND = os.O_WRONLY | os.O_CREAT | os.O_APPEND | getattr(os, "O_CLOEXEC", 0)


def append_line(path: Path, line: bytes, *, durable: bool = True) -> None:
    """Append ``line`` and a newline to ``path`` (made if missing) in one write; fsync it unless not ``durable``."""
    fd = os.open(path, _APPEND, 0o666)
    try:
        _write_all(fd, line + b"\n", durable=durable)
    finally:
        os.close(fd)


def _write_all(fd: int, data: bytes, *, durable: bool) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]
    if durable:
        os.fsync(fd)


def read_json_object(path: Path) -> dict[str, Any]:
    """The JSON object in ``path``; ``{}`` when the file is missing, unreadable, not JSON or not an object.

    For the small state files that :func:`write_atomic` writes and that may not exist yet.
    """
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return {}
    return data if isinstance(data, dict) else {}


def json_safe(value: Any) -> Any:
    """``value`` with what strict JSON cannot hold made text: NaN and infinities, lone surrogates."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, str):
        return value.encode("utf-8", "backslashreplace").decode("utf-8")
    if isinstance(value, dict):
        return {json_safe(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    return value


def dump_json(obj: Any, **options: Any) -> bytes:
    """Strict JSON as UTF-8 bytes; a value JSON cannot hold (NaN, a lone surrogate) is written as text."""
    try:
        return json.dumps(obj, ensure_ascii=False, default=str, allow_nan=False, **options).encode("utf-8")
    except (ValueError, UnicodeEncodeError):
        return json.dumps(json_safe(obj), ensure_ascii=False, default=str, allow_nan=False, **options).encode("utf-8")


def dumps_line(obj: dict[str, Any]) -> bytes:
    return dump_json(obj, separators=(",", ":"))


class EvidenceItem(BaseModel):
    """One preserved piece of evidence, as listed in ``evidence/manifest.json``."""

    model_config = ConfigDict(extra="forbid")

    id: str
    name: str
    location: str = Field(description="A path relative to the run directory, or s3://bucket/key[?versionId=...].")
    size: int
    sha256: str
    source_arn: str | None = None
    collected_at: str
    collected_by: str
    step: str | None = None
    item: Any = None
    description: str = ""
    content_type: str | None = None
    retention: dict[str, Any] | None = Field(default=None, description="Object Lock mode/until and legal hold, for S3.")


class EventLog:
    """Append-only, hash-chained event log. Thread-safe within one process."""

    def __init__(self, path: Path, *, fsync: bool = True) -> None:
        self.path = path
        self.fsync = fsync
        self._lock = threading.Lock()
        self._seq = 0
        self._prev = ZERO_HASH
        self._listeners: list[Callable[[dict[str, Any]], None]] = []
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.exists():
            self._recover()

    def add_listener(self, listener: Callable[[dict[str, Any]], None]) -> Callable[[], None]:
        """Call ``listener(event)`` after each appended event (the Slack timeline follows a run so).

        Listeners run on the appending thread, in ``seq`` order, after the line is durable, and must be
        quick (queue the event); one that raises is ignored, so it can never lose an event. Returns
        a function that removes the listener.
        """
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener) if listener in self._listeners else None

    def _recover(self) -> None:
        """Pick up the chain after a restart; drop a torn last line left by a crash mid-write."""
        data = self.path.read_bytes()
        if data and not data.endswith(b"\n"):
            cut = data.rfind(b"\n") + 1
            with self.path.open("r+b") as fh:
                fh.truncate(cut)
            data = data[:cut]
        lines = data.splitlines()
        if lines:
            last = json.loads(lines[-1])
            self._seq = int(last["seq"]) + 1
            self._prev = sha256_bytes(lines[-1])

    @property
    def head(self) -> tuple[int, str]:
        """(number of lines, sha256 of the last line) — stored in run.json to detect truncation."""
        return self._seq, self._prev

    def append(
        self, type_: str, *, step: str | None = None, item: Any = None, detail: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        with self._lock:
            event = {
                "seq": self._seq,
                "at": iso(utcnow()),
                "type": type_,
                "step": step,
                "item": item,
                "detail": detail or {},
                "prev_sha256": self._prev,
            }
            line = dumps_line(event)
            append_line(self.path, line, durable=self.fsync)
            self._seq += 1
            self._prev = sha256_bytes(line)
            for listener in list(self._listeners):  # under the lock: listeners see events in seq order
                with contextlib.suppress(Exception):  # a listener's failure must never touch the record
                    listener(event)
            return event


def read_events(path: Path) -> Iterator[dict[str, Any]]:
    with path.open("rb") as fh:
        for raw in fh:
            if raw.strip():
                yield json.loads(raw)


def verify_events(path: Path, expected_head: tuple[int, str] | None = None, *, longer: bool = False) -> list[str]:
    """Check the chain; return one line per problem (empty when intact).

    Detects edited, inserted, deleted and reordered lines; with ``expected_head`` (from run.json)
    also a truncated tail. With ``longer`` the log may go on past that head (events appended since
    run.json was last written: a crash in between, or a record about to be written again).
    """
    problems: list[str] = []
    if not path.exists():
        return [f"{path}: missing"]
    prev = ZERO_HASH
    count = 0
    at_head = (0, ZERO_HASH)
    for number, raw in enumerate(path.read_bytes().splitlines(), start=1):
        try:
            event = json.loads(raw)
        except json.JSONDecodeError:
            problems.append(f"{path.name}:{number}: not a JSON line")
            prev = sha256_bytes(raw)
            count += 1
            continue
        if not isinstance(event, dict) or tuple(event) != EVENT_KEYS:
            problems.append(f"{path.name}:{number}: keys are not {', '.join(EVENT_KEYS)}")
        elif event["seq"] != count:
            problems.append(
                f"{path.name}:{number}: seq {event['seq']} where {count} was expected (line deleted, inserted or moved)"
            )
        if isinstance(event, dict) and event.get("prev_sha256") != prev:
            problems.append(
                f"{path.name}:{number}: prev_sha256 does not match line {number - 1} "
                "(edited, deleted, inserted or moved)"
            )
        prev = sha256_bytes(raw)
        count += 1
        if expected_head is not None and count == int(expected_head[0]):
            at_head = (count, prev)
    if longer and expected_head is not None and count > int(expected_head[0]):
        count, prev = at_head
    if expected_head is not None and (count, prev) != tuple(expected_head):
        problems.append(
            f"{path.name}: ends at line {count} with sha256 {prev[:12]}…, run.json expects line {expected_head[0]} "
            f"with {str(expected_head[1])[:12]}… (lines removed or appended after the run)"
        )
    return problems


def rewrite_problems(run_dir: Path, run_id: str, sealer: Sealer) -> list[str]:
    """Why run.json at ``run_dir`` may not be sealed again (empty: it may).

    The seal must verify and the chain must reach the head run.json names. The log may go on past
    that head: events appended since run.json's last write (a crash in between) are the run's next
    lines, not an edit.
    """
    try:
        doc = json.loads((run_dir / "run.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        return [f"run.json is unreadable: {e}"]
    if not isinstance(doc, dict):
        return ["run.json is not an object"]
    problems = sealer.check(run_id, doc)
    head = doc.get("events")
    if not isinstance(head, dict) or "count" not in head or "head_sha256" not in head:
        return [*problems, "run.json has no event head"]
    expected = (int(head["count"]), str(head["head_sha256"]))
    return problems + verify_events(run_dir / "events.jsonl", expected, longer=True)


class EvidenceManifest:
    """``evidence/manifest.json``, rewritten atomically on each addition."""

    def __init__(self, run_dir: Path, run_id: str) -> None:
        self.path = run_dir / "evidence" / "manifest.json"
        self.run_id = run_id
        self._lock = threading.Lock()
        self.items: list[EvidenceItem] = []
        if self.path.exists():
            data = json.loads(self.path.read_text(encoding="utf-8"))
            self.items = [EvidenceItem.model_validate(i) for i in data.get("items", [])]

    def add(self, item: EvidenceItem) -> EvidenceItem:
        with self._lock:
            if any(existing.id == item.id for existing in self.items):
                return next(existing for existing in self.items if existing.id == item.id)
            self.items.append(item)
            self._write()
            return item

    def _write(self) -> None:
        doc = {"run_id": self.run_id, "items": [i.model_dump(mode="json") for i in self.items]}
        write_atomic(self.path, json.dumps(doc, indent=2, ensure_ascii=False).encode("utf-8"))


class RunRecord:
    """The files of one run under ``<runs_dir>/<run_id>/``.

    run.json is sealed on every write (:mod:`flows.record.seal`; ``sealer`` defaults to the
    process's installed one) and, with an ``anchor`` sink, its new heads are anchored outside.
    """

    def __init__(
        self,
        run_dir: Path,
        run_id: str | None = None,
        *,
        fsync: bool = True,
        sealer: Sealer | None = None,
        anchor: AnchorSink | None = None,
    ) -> None:
        self.dir = run_dir
        self.run_id = run_id or run_dir.name
        self.dir.mkdir(parents=True, exist_ok=True)
        self.events = EventLog(self.dir / "events.jsonl", fsync=fsync)
        self.evidence = EvidenceManifest(self.dir, self.run_id)
        self._run_lock = threading.RLock()
        self._checked = False  # run.json found on disk is checked before this record first writes it
        self.unverified: str | None = None  # why that run.json failed its checks: never sealed again
        self.sealer = sealer
        self.anchor = anchor
        self._anchored: tuple[int, str] | None = None
        self.anchor_error: str | None = None

    @property
    def run_json(self) -> Path:
        return self.dir / "run.json"

    @property
    def evidence_dir(self) -> Path:
        return self.dir / "evidence"

    def read_run(self) -> dict[str, Any]:
        if not self.run_json.exists():
            return {}
        data: dict[str, Any] = json.loads(self.run_json.read_text(encoding="utf-8"))
        return data

    def write_run(self, data: dict[str, Any]) -> None:
        """Replace run.json atomically, stamping the event log head into it and sealing it; anchor a new head."""
        from flows.record import seal

        with self._run_lock:
            self.check_rewrite()
            count, head = self.events.head
            doc = {**data, "events": {"count": count, "head_sha256": head}}
            if self.anchor_error is not None:
                doc["anchor_error"] = self.anchor_error
            sealer = self.sealer or seal.current()
            doc = sealer.seal(self.run_id, json_safe(doc), unverified=self.unverified)
            write_atomic(self.run_json, dump_json(doc, indent=2))
            if self.anchor is not None and self._anchored != (count, head):
                try:
                    self.anchor.put(self.run_id, {"count": count, "head_sha256": head, "seal": doc["seal"]})
                    self._anchored, self.anchor_error = (count, head), None
                except Exception as e:  # the run goes on; run.json says the anchor is behind, verify says so too
                    self.anchor_error = f"{type(e).__name__}: {e}"

    def check_rewrite(self) -> None:
        """Check run.json as found before this record first writes it, so an edit is never sealed again.

        A record that fails (:func:`rewrite_problems`) is still written, since an
        undo or a resume must not be blocked in an incident, but with a seal that says why it cannot
        be verified instead of a MAC, and once a ``record.unverified`` event.
        """
        if self._checked:
            return
        self._checked = True
        from flows.record import seal

        if self.run_json.exists():
            problems = rewrite_problems(self.dir, self.run_id, self.sealer or seal.current())
            if problems:
                earlier = seal.unverified_reason(self.run_json)
                self.unverified = earlier or problems[0]
                if earlier is None:  # said once, by the first write that found it
                    self.emit("record.unverified", detail={"problems": problems})

    def update_run(self, **changes: Any) -> dict[str, Any]:
        """Read run.json, apply ``changes`` and write it, as one step against other writers of this record."""
        with self._run_lock:
            data = self.read_run()
            data.update(changes)
            self.write_run(data)
            return data

    def emit(
        self, type_: str, *, step: str | None = None, item: Any = None, detail: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        return self.events.append(type_, step=step, item=item, detail=detail)

    def add_evidence(self, item: EvidenceItem) -> EvidenceItem:
        stored = self.evidence.add(item)
        if stored is item:
            self.emit(
                "evidence.stored",
                step=item.step,
                item=item.item,
                detail={
                    "id": item.id,
                    "name": item.name,
                    "location": item.location,
                    "sha256": item.sha256,
                    "size": item.size,
                },
            )
        return stored

    def verify(self) -> list[str]:
        head = self.read_run().get("events")
        expected = (int(head["count"]), str(head["head_sha256"])) if isinstance(head, dict) else None
        return verify_events(self.events.path, expected)

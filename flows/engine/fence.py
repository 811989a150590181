"""Fencing an attempt that ran past its step's timeout, so that no two attempts of one item overlap.

A sync call cannot be interrupted from outside: a timed-out attempt keeps running in its thread
(a ``CreateSnapshot`` waiting on the network, say). Two rules keep it from doing harm:

- the next attempt starts only once the abandoned one has ended (:meth:`Attempt.wait_end`, bounded
  by :data:`GRACE_SECONDS`); when it has not ended by then the item fails without another attempt,
  since a retry could repeat an effect the abandoned attempt is still making;
- from the moment of the timeout, whatever the abandoned attempt records is not the step's: its
  events are written as ``attempt.late`` (with the original type inside) and its evidence is not
  listed in the manifest (:class:`AttemptRecord`), and run.json is sealed again with the new head, so
  a late line written after the run ended still verifies. An undoable effect it completed anyway
  is logged to the saga as ``late``, so ``fireline undo`` can still reverse it.
"""

from __future__ import annotations

import contextvars
import threading
from collections.abc import Callable
from typing import Any, Generic, TypeVar

from flows.errors import StepTimeoutError
from flows.record.store import EvidenceItem, RunRecord

T = TypeVar("T")

GRACE_SECONDS = 30.0
"""How long the next attempt waits for an abandoned one to end (botocore read timeouts end most calls first)."""


class AttemptRecord(RunRecord):
    """The run record as one attempt sees it: once fenced, what it records is marked late.

    It shares the run's files (event log, manifest, run.json) with ``base``; it is a view, not a copy.
    """

    def __init__(self, base: RunRecord, attempt: int) -> None:  # no super().__init__: nothing new on disk
        self.base = base
        self.attempt = attempt
        self.dir = base.dir
        self.run_id = base.run_id
        self.events = base.events
        self.evidence = base.evidence
        self.fenced = threading.Event()

    def emit(
        self, type_: str, *, step: str | None = None, item: Any = None, detail: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        if self.fenced.is_set():
            late = {"event": type_, "attempt": self.attempt, "detail": detail or {}}
            event = self.base.emit("attempt.late", step=step, item=item, detail=late)
            # The run may have ended (run.json written for the last time): seal the new head, or the
            # late line would read as appended after the run. Atomic against the run's own writes.
            self.base.update_run()
            return event
        return self.base.emit(type_, step=step, item=item, detail=detail)

    def add_evidence(self, item: EvidenceItem) -> EvidenceItem:
        if self.fenced.is_set():
            self.emit("evidence.stored", step=item.step, item=item.item, detail=item.model_dump(mode="json"))
            return item
        return self.base.add_evidence(item)

    def write_run(self, data: dict[str, Any]) -> None:
        self.base.write_run(data)


class AbandonedAttempt(StepTimeoutError):
    """An attempt ran past its deadline; ``attempt`` may still be running."""

    def __init__(self, message: str, attempt: Attempt[Any]) -> None:
        super().__init__(message, retryable=True)
        self.attempt = attempt


class Attempt(Generic[T]):
    """One call of ``fn`` in its own thread, which the caller may abandon at a deadline."""

    def __init__(self, fn: Callable[[], T], what: str, record: AttemptRecord | None = None) -> None:
        self.fn = fn
        self.what = what
        self.record = record
        self.value: T | None = None
        self.error: BaseException | None = None
        self.done = threading.Event()
        self._callbacks: list[Callable[[], None]] = []
        self._lock = threading.Lock()

    def _target(self) -> None:
        try:
            self.value = self.fn()
        except BaseException as e:
            self.error = e
        finally:
            with self._lock:
                self.done.set()
                callbacks = list(self._callbacks)
            for callback in callbacks:
                callback()

    def run(self, timeout: float, cancel: threading.Event) -> T:
        """The call's result; on expiry fence the record, set ``cancel`` and raise :class:`AbandonedAttempt`."""
        from flows.engine.workers import ATTEMPTS

        # On a started daemon worker, in a new empty context: as on the new daemon thread it once was.
        ATTEMPTS.submit(contextvars.Context().run, self._target)
        if not self.done.wait(timeout):
            if self.record is not None:
                self.record.fenced.set()
            cancel.set()
            raise AbandonedAttempt(f"{self.what} timed out after {timeout:g}s", self)
        if self.error is not None:
            raise self.error
        return self.value  # type: ignore[return-value]  # set by the thread when it did not fail

    def when_done(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` once the call has ended (at once when it already has), in the ending thread."""
        with self._lock:
            if not self.done.is_set():
                self._callbacks.append(callback)
                return
        callback()

    def wait_end(self, grace: float) -> bool:
        """Wait up to ``grace`` seconds for an abandoned call to end; True when it has."""
        return self.done.wait(grace)


def run_with_timeout(fn: Callable[[], T], timeout: float | None, cancel: threading.Event, what: str) -> T:
    """Run ``fn`` with a deadline: on expiry set ``cancel`` and abandon its thread (see :class:`Attempt`).

    Actions notice ``cancel`` through ``ctx.check_cancelled()`` and ``ctx.sleep()`` and stop early.
    """
    if timeout is None:
        return fn()
    return Attempt(fn, what).run(timeout, cancel)

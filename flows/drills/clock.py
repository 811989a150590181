"""The drill's simulated clock, and the scripted responders that answer on it.

:class:`DrillClock` is the engine's :class:`~flows.engine.waits.VirtualClock` in ``auto`` mode
with alarms: a sleep jumps forward to the waiter's next deadline or to the next scripted answer,
whichever comes first, so a 15-minute ack timeout costs no wall time and a scripted ack at 4 min
lands at 4 min, not at the deadline. While a drill runs, :func:`pinned` makes every record
timestamp (events, run.json, approvals) come from the same clock, so they are virtual but
consistent with the waits.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import heapq
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from typing import Any, TypeVar

from flows.engine.approvals import Answer
from flows.engine.waits import VirtualClock

T = TypeVar("T")


SETTLE = 0.003  # real seconds without a record write or an AWS call before virtual time may move


@dataclass
class DrillClock(VirtualClock):
    """An auto-advancing virtual clock that stops at every alarm on its way.

    Time moves only when the run is quiet: no unit of work in flight on the drill's executor (or
    finished but not yet read by the scheduler), the scheduler thread blocked waiting, and no
    record written or AWS call made for :data:`SETTLE` real seconds. Otherwise a jump to the next
    deadline could overtake work that, on the run's own timeline, happens first.
    """

    auto: bool = True
    _alarms: list[float] = field(default_factory=list)
    _alarm_lock: threading.Lock = field(default_factory=threading.Lock)
    in_flight: int = 0
    last_write: float = 0.0
    scheduler: int | None = None  # the thread id of the run's scheduler (it submits the units)
    _seen: tuple[float, tuple[tuple[int, bool, int], ...]] = (0.0, ())
    _extra_passes: int = 0

    def record_now(self) -> float:
        """The record's clock (see :func:`pinned`): notes the write, for quiescence."""
        self.last_write = time.monotonic()
        return self.now()

    def touch(self, **_: Any) -> None:
        """Note activity (a botocore ``before-call``/``after-call`` hook: plans read between writes)."""
        self.last_write = time.monotonic()

    def hook(self, client: Any) -> None:
        """Register :meth:`touch` on an AWS client of the run (``aws.client_hooks``)."""
        for event in ("before-call", "after-call", "after-call-error"):
            client.meta.events.register(event, self.touch)

    def _scheduler_busy(self) -> bool:
        """Whether the run's scheduler thread is doing something rather than waiting for a unit.

        Read from its current stack: idle is blocked in ``concurrent.futures.wait``. This covers
        what the scheduler does itself between units (rendering, an approval's preview of the plan).
        """
        frame = sys._current_frames().get(self.scheduler) if self.scheduler is not None else None
        if frame is None:
            return False
        while frame is not None:
            code = frame.f_code
            if code.co_name == "wait" and code.co_filename.endswith(("concurrent/futures/_base.py", "threading.py")):
                return False
            frame = frame.f_back
        return True

    def _settle(self, stop: threading.Event, waiter: Any = None) -> bool:
        """Wait until the run is quiet; True when a helper thread or a pending wait was seen meanwhile."""
        helped = False
        while not stop.is_set():
            if _pending_wait(waiter):  # the waiter itself must poll (start it): give it the turn
                stop.wait(0.001)
                return True
            helping = _helpers_alive()
            helped = helped or helping
            if not (helping or self.in_flight > 0 or self._scheduler_busy()):
                if time.monotonic() - self.last_write >= SETTLE:
                    return helped
            stop.wait(0.001)
        return helped

    def alarm(self, at: float) -> None:
        """Stop the clock at ``at`` (epoch seconds) when a sleep would pass it."""
        with self._alarm_lock:
            heapq.heappush(self._alarms, at)

    def sleep(self, seconds: float, stop: threading.Event) -> bool:
        # The caller is the run's waiter loop; a wait handed to it while it sleeps sets its wake
        # event and writes nothing, so that event is read too (the waiter then starts the wait).
        waiter = sys._getframe(1).f_locals.get("self")
        wake = getattr(waiter, "_wake", None)
        helped = self._settle(stop, waiter)
        # Time moves only after a waiter pass that changed nothing: no write, no wait started or
        # swapped since the last sleep (a wait announces itself, and a scripted answer sets its
        # alarm, on the pass after it starts). A few passes at most, since some passes always write.
        seen = (self.last_write, _signature(waiter))
        changed = seen != self._seen and self._extra_passes < 10
        self._seen = seen
        if changed or helped or (isinstance(wake, threading.Event) and wake.is_set()):
            self._extra_passes += 1
            return stop.is_set()  # the run moved on: let the waiter poll before time moves
        self._extra_passes = 0
        now = self.now()
        with self._alarm_lock:
            while self._alarms and self._alarms[0] <= now:
                heapq.heappop(self._alarms)
            nearest = self._alarms[0] - now if self._alarms else None
        step = seconds if nearest is None else min(seconds, nearest)
        return super().sleep(step, stop)

    def jump(self, seconds: float) -> None:
        """Let virtual time pass (a simulated retry back-off)."""
        self.advance(seconds)


# Threads the engine starts for a wait's preparation (an approval's preview of the plan): while
# one runs the wait has no deadline yet, and when it ends the waiter must poll before time moves.
HELPER_THREADS = ("fireline-wait-prepare",)


def _helpers_alive() -> bool:
    return any(t.name.startswith(HELPER_THREADS) and t.is_alive() for t in threading.enumerate())


def _signature(waiter: Any) -> tuple[tuple[int, bool, int], ...]:
    """The waiter's waits and what each is waiting on now (a prepared approval swaps in its wait)."""
    return tuple(
        (id(e.condition), bool(getattr(e, "started", True)), id(getattr(e.condition, "_inner", None)))
        for e in list(getattr(waiter, "_entries", None) or [])
    )


def _pending_wait(waiter: Any) -> bool:
    """Whether the waiter holds a wait it has not started, or one still preparing its start."""
    for entry in list(getattr(waiter, "_entries", None) or []):
        if not getattr(entry, "started", True):
            return True
        condition = getattr(entry, "condition", None)
        if hasattr(condition, "_done") and getattr(condition, "_inner", True) is None:
            return True  # an approval preparing its request (or prepared, not yet asked)
    return False


@contextlib.contextmanager
def pinned(clock: VirtualClock) -> Iterator[None]:
    """Every record timestamp comes from ``clock`` inside the block."""
    from flows.record import store

    now = clock.record_now if isinstance(clock, DrillClock) else clock.now
    store.VIRTUAL_NOW.append(now)
    try:
        yield
    finally:
        store.VIRTUAL_NOW.remove(now)


class _AckScript(dict[str, list[tuple[str, float]]]):
    """Scripted acks per paging step; the first lookup of a step sets alarms at its ack times."""

    def __init__(self, clock: DrillClock, acks: dict[str, list[tuple[str, float]]]) -> None:
        super().__init__(acks)
        self.clock = clock
        self.armed: set[str] = set()

    def get(self, key: str, default: Any = None) -> Any:
        found = super().get(key, default)
        if key not in self.armed and found:
            self.armed.add(key)
            for _, after in found:
                self.clock.alarm(self.clock.now() + after)
        return found


class DrillResponders:
    """A responder script on the drill clock: approval answers and acks after virtual delays.

    An answer source (``poll(run_id, step_id)``) for approvals, and ``acks`` for the paging
    steps' ack pollers. The first poll of a step starts its script; the answers then come due at
    start + ``after`` on the drill clock, and the clock stops there.
    """

    def __init__(self, clock: DrillClock, approvals: dict[str, list[Answer]],
                 acks: dict[str, list[tuple[str, float]]]) -> None:  # fmt: skip
        self.clock = clock
        self.approvals = approvals
        self.acks = _AckScript(clock, acks)
        self._started: dict[str, float] = {}
        self._given: dict[str, int] = {}

    def poll(self, run_id: str, step_id: str) -> list[Answer]:
        from datetime import UTC, datetime

        from flows.record.store import iso

        now = self.clock.now()
        if step_id not in self._started:
            self._started[step_id] = now
            for answer in self.approvals.get(step_id, []):
                self.clock.alarm(now + answer.after)
        start = self._started[step_id]
        pending = self.approvals.get(step_id, [])[self._given.get(step_id, 0) :]
        due: list[Answer] = []
        for answer in pending:
            if now - start < answer.after:
                break
            at = iso(datetime.fromtimestamp(now, UTC))
            due.append(replace(answer, how="scripted", at=at, authenticated_as="script"))
        self._given[step_id] = self._given.get(step_id, 0) + len(due)
        return due


class _Consumed(concurrent.futures.Future[T]):
    """A unit's future that stays counted in flight until the scheduler has read its outcome."""

    def __init__(self, executor: DrillExecutor) -> None:
        super().__init__()
        self._executor = executor
        self._counted = True

    def _consume(self) -> None:
        with self._executor.lock:
            if self._counted:
                self._counted = False
                self._executor.clock.in_flight -= 1
                self._executor.clock.last_write = time.monotonic()

    def result(self, timeout: float | None = None) -> T:
        try:
            return super().result(timeout)
        finally:
            self._consume()

    def exception(self, timeout: float | None = None) -> BaseException | None:
        try:
            return super().exception(timeout)
        finally:
            self._consume()


class DrillExecutor:
    """The engine's thread executor, counting units in flight (until the scheduler has read them)."""

    def __init__(self, clock: DrillClock) -> None:
        from flows.engine.executor import ThreadExecutor

        self.clock = clock
        self.inner = ThreadExecutor()
        self.lock = threading.Lock()

    def submit(self, name: str, fn: Callable[[], T]) -> concurrent.futures.Future[T]:
        self.clock.scheduler = threading.get_ident()
        outer: _Consumed[T] = _Consumed(self)
        with self.lock:
            self.clock.in_flight += 1
        inner = self.inner.submit(name, fn)

        def copy(done: concurrent.futures.Future[T]) -> None:
            error = done.exception()
            if error is not None:
                outer.set_exception(error)
            else:
                outer.set_result(done.result())

        inner.add_done_callback(copy)
        return outer

    def shutdown(self) -> None:
        self.inner.shutdown()

"""The drill's simulated clock, and the scripted responders that answer on it.

:class:`DrillClock` is the engine's :class:`~flows.engine.waits.VirtualClock` in ``auto`` mode
with alarms: a sleep jumps forward to the waiter's next deadline or to the next scripted answer,
whichever comes first, so a 15-minute ack timeout costs no wall time and a scripted ack at 4 min
lands at 4 min, not at the deadline. While a drill runs, :func:`pinned` makes every record
timestamp (events, run.json, approvals) come from the same clock, so they are virtual but
consistent with the waits.
"""

from __future__ import annotations

import contextlib
import heapq
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from typing import Any

from flows.engine.activity import Activity
from flows.engine.approvals import Answer
from flows.engine.waits import VirtualClock


@dataclass
class DrillClock(VirtualClock):
    """An auto-advancing virtual clock that stops at every alarm on its way.

    Time moves only when the run is quiet: its :class:`~flows.engine.activity.Activity` holds no
    token (the scheduler is blocked, no unit is in flight or unread, every wait has started and
    is ready). Otherwise a jump to the next deadline could overtake work that, on the run's own
    timeline, happens first. The run is given :attr:`activity` through its services (``activity``).
    """

    auto: bool = True
    activity: Activity = field(default_factory=Activity)
    _alarms: list[float] = field(default_factory=list)
    _alarm_lock: threading.Lock = field(default_factory=threading.Lock)

    def alarm(self, at: float) -> None:
        """Stop the clock at ``at`` (epoch seconds) when a sleep would pass it."""
        with self._alarm_lock:
            heapq.heappush(self._alarms, at)

    def sleep(self, seconds: float, stop: threading.Event) -> bool:
        """The waiter's sleep: wait for a quiet run, then jump to ``now + seconds`` or the next alarm.

        ``stop`` is the waiter's wake event: a wait handed over meanwhile returns at once, time
        unmoved, so the waiter polls it first. The target is fixed on entry, so a simulated
        back-off that moves the clock meanwhile never carries it past the waiter's deadline.
        """
        target = self.now() + max(0.0, seconds)
        if not self.activity.wait_quiet(stop):
            return stop.is_set()
        now = self.now()
        with self._alarm_lock:
            while self._alarms and self._alarms[0] <= now:
                heapq.heappop(self._alarms)
            if self._alarms:
                target = min(target, self._alarms[0])
        if target > now:
            self.advance(target - now)
        return stop.is_set()

    def jump(self, seconds: float) -> None:
        """Let virtual time pass (a simulated retry back-off)."""
        self.advance(seconds)


@contextlib.contextmanager
def pinned(clock: VirtualClock) -> Iterator[None]:
    """Every record timestamp comes from ``clock`` inside the block."""
    from flows.record import store

    now = clock.now
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

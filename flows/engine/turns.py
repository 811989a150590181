"""Containment first inside one process: runs on their way to their first unit of work go first.

``fireline serve`` runs many playbooks in one interpreter. When an alert storm opens 50 incidents
at once, their 50 runs, each on its own threads, share one GIL, and every run then reaches its first
containment step at about the time the last one does (processor sharing). Each run also costs twice
the CPU that it costs alone (contention; 25 ms against 12 ms per run on a 2-core machine). Three
things keep the first containment step early:

- :data:`TURNS` admits heading runs first come, first served, :data:`WIDTH` at a time. A run gives its
  turn back when it arrives (its first unit ended, it waits for people, a step ended, or it ended)
  or after :data:`HOLD` seconds, so a run that waits on the network holds no one up for long.
- :data:`HEADING` counts runs on their way. Work that can wait (a run's flow run, the end of a run
  whose steps are done: its ``run.finished``, its reports) waits while it is not zero, up to a bound.
- ``busy`` (:meth:`Heading.wait_clear`) lets a flow run also wait while the alert spool receives.
"""

from __future__ import annotations

import contextvars
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager

WIDTH = 2  # heading runs that go at once
HOLD = 0.05  # seconds a heading run keeps its turn, at most; then the next one goes too
FINISH_WAIT = 5.0  # seconds a run whose steps are done waits, at most, for heading runs to arrive
BUSY_POLL = 0.1  # seconds between looks at the intake while a flow run waits for it


class Turns:
    """First come, first served turns, ``width`` at a time, each lapsing after ``hold`` seconds."""

    def __init__(self, width: int = WIDTH, hold: float = HOLD) -> None:
        self.width = width
        self.hold = hold
        self._cond = threading.Condition()
        self._queue: deque[object] = deque()  # tickets waiting, oldest first
        self._holding: dict[object, float] = {}  # ticket: when its turn lapses

    def take(self) -> object:
        """Wait for a turn; return the ticket to :meth:`give` back."""
        ticket = object()
        with self._cond:
            self._queue.append(ticket)
            while True:
                now = time.monotonic()
                for held, until in list(self._holding.items()):
                    if until <= now:
                        del self._holding[held]
                if self._queue[0] is ticket and len(self._holding) < self.width:
                    self._queue.popleft()
                    self._holding[ticket] = now + self.hold
                    self._cond.notify_all()  # the next in line may fit too
                    return ticket
                lapse = min(self._holding.values()) - now if len(self._holding) >= self.width else None
                self._cond.wait(lapse)

    def give(self, ticket: object) -> None:
        """Give a turn back (again, or after it lapsed: nothing happens)."""
        with self._cond:
            if self._holding.pop(ticket, None) is not None:
                self._cond.notify_all()

    def waiting(self) -> int:
        with self._cond:
            return len(self._queue)


class Heading:
    """How many runs of this process are on their way to their first unit of work."""

    def __init__(self) -> None:
        self._count = 0
        self._cond = threading.Condition()
        self.busy: Callable[[], bool] = lambda: False  # whether intake is busy (set by fireline serve)

    def enter(self) -> None:
        with self._cond:
            self._count += 1

    def leave(self) -> None:
        with self._cond:
            self._count -= 1
            if self._count <= 0:
                self._cond.notify_all()

    def count(self) -> int:
        with self._cond:
            return self._count

    def wait_clear(self, deadline: float, *, busy: bool = True) -> None:
        """Wait until no run is heading (and, with ``busy``, intake is not busy), or ``deadline``."""
        with self._cond:
            while (left := deadline - time.monotonic()) > 0:
                if self._count <= 0:
                    if not busy or not self.busy():
                        return
                    left = min(left, BUSY_POLL)  # busy has no event: look again
                self._cond.wait(left)


TURNS = Turns()
HEADING = Heading()
_ARRIVED: contextvars.ContextVar[Callable[[], None] | None] = contextvars.ContextVar("fireline_arrived", default=None)


@contextmanager
def heading(arrived: Callable[[], None]) -> Iterator[None]:
    """Mark this thread's run as heading: :func:`finishing` calls ``arrived`` before it waits."""
    token = _ARRIVED.set(arrived)
    try:
        yield
    finally:
        _ARRIVED.reset(token)


def finishing(most: float = FINISH_WAIT) -> None:
    """Let runs of this process that are on their way go first, for at most ``most`` seconds.

    Called by a run whose steps are done, before its end (``run.finished``, run.json, reports):
    under an alert storm the ends of the first runs otherwise took the interpreter from the runs
    still heading for containment. A process running one playbook never waits here.
    """
    arrived = _ARRIVED.get()
    if arrived is not None:  # a run with no step never arrived: it must not wait for itself
        arrived()
    HEADING.wait_clear(time.monotonic() + most, busy=False)

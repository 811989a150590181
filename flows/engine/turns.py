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
- :class:`Share` keeps alert intake (the receiver, on the event loop) under :data:`INTAKE_SHARE` of
  the interpreter's time while runs head: the spool holds what it accepted, so an answer a few
  milliseconds later costs nothing, and the runs get the rest of the interpreter.
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
INTAKE_SHARE = 0.3  # of the time while runs head, the CPU time alert intake may take (its thread's)
INTAKE_WAIT = 0.05  # seconds one request waits at most for its share


class Turns:
    """First come, first served turns, ``width`` at a time, each lapsing after ``hold`` seconds.

    Only the run at the head of the queue is ever woken, at most twice (when it becomes the head,
    and when its turn comes). With one condition for all, every give woke every waiting run: 1,286
    wake-ups for the 50 turns of a storm's runs, each a trip through the GIL and the kernel.
    """

    def __init__(self, width: int = WIDTH, hold: float = HOLD) -> None:
        self.width = width
        self.hold = hold
        self._lock = threading.Lock()
        self._queue: deque[threading.Condition] = deque()  # waiting runs, oldest first (their tickets)
        self._holding: dict[object, float] = {}  # ticket: when its turn lapses

    def take(self) -> object:
        """Wait for a turn; return the ticket to :meth:`give` back."""
        ticket = threading.Condition(self._lock)
        with self._lock:
            self._queue.append(ticket)
            while True:
                now = time.monotonic()
                for held, until in list(self._holding.items()):
                    if until <= now:
                        del self._holding[held]
                head = self._queue[0] is ticket
                if head and len(self._holding) < self.width:
                    self._queue.popleft()
                    self._holding[ticket] = now + self.hold
                    self._wake_head()  # the next in line: it may fit too, or it now watches for a lapse
                    return ticket
                # Only the head waits for a lapse; the others wait until they are the head.
                ticket.wait(min(self._holding.values()) - now if head else None)

    def give(self, ticket: object) -> None:
        """Give a turn back (again, or after it lapsed: nothing happens)."""
        with self._lock:
            if self._holding.pop(ticket, None) is not None:
                self._wake_head()

    def waiting(self) -> int:
        with self._lock:
            return len(self._queue)

    def _wake_head(self) -> None:
        if self._queue:
            self._queue[0].notify()


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


class Share:
    """Keeps one thread's CPU time under ``share`` of the wall time that passes while runs head.

    :meth:`delay` is asked before each unit of work (an alert request, on the event loop's thread)
    and answers how long to wait first: 0 while no run heads, else what brings the thread's CPU time
    since the runs began heading back under ``share`` of the time since, at most ``most`` seconds.
    ``cpu`` and ``clock`` are that thread's CPU clock and a monotonic clock (seconds; injectable); one
    thread asks (the event loop's), so it keeps no lock.
    """

    def __init__(
        self,
        share: float = INTAKE_SHARE,
        *,
        most: float = INTAKE_WAIT,
        heading: Callable[[], bool] = lambda: HEADING.count() > 0,
        cpu: Callable[[], float] = time.thread_time,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not 0 < share <= 1:
            raise ValueError(f"share must be in (0, 1], not {share}")
        self.share = share
        self.most = most
        self._heading = heading
        self._cpu = cpu
        self._clock = clock
        self._since: tuple[float, float] | None = None  # (clock, cpu) when runs began heading

    def delay(self) -> float:
        if not self._heading():
            self._since = None
            return 0.0
        now, used = self._clock(), self._cpu()
        if self._since is None:
            self._since = (now, used)
            return 0.0
        owed = (used - self._since[1]) / self.share - (now - self._since[0])
        return min(max(0.0, owed), self.most)


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

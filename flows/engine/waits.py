"""Waiting without a worker: one waiter thread polls every approval and ack wait of a run.

A step that waits for people (an ``approval``, a ``contacts.page`` escalation) does not hold an
executor thread for hours: the scheduler hands its :class:`WaitCondition` to the run's
:class:`Waiter`, a single thread that polls every condition in turn and completes each one's
future when it is decided. A thousand waiting steps cost one thread and a thousand small polls, so
the executor's threads stay free for the other steps.

Time comes from a :class:`Clock`: wall-clock epoch seconds, so deadlines written to the run's state
hold across a kill and a resume. :class:`VirtualClock` lets drills, tests and benchmarks run a
15-minute escalation in a fraction of a second (``advance`` by hand, or ``auto`` to jump to the
next deadline whenever nothing else is due).
"""

from __future__ import annotations

import concurrent.futures
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from flows.engine.activity import Activity

DUTY = 0.1  # the share of real time the waiter's passes may take (see Waiter._rest)
REAL_POLL = 0.2  # seconds of real time between polls at most, whatever the clock says, so answers are seen


class Clock(Protocol):
    """Epoch seconds and a sleep that a stop event interrupts."""

    def now(self) -> float: ...

    def sleep(self, seconds: float, stop: threading.Event) -> bool:
        """Sleep up to ``seconds`` of this clock's time; True when ``stop`` was set.

        The waiter passes its wake event as ``stop``: it is set when a wait is handed over, a
        wait's preparation ends, or the waiter shuts down.
        """
        ...


class SystemClock:
    """The wall clock (``time.time``)."""

    def now(self) -> float:
        return time.time()

    def sleep(self, seconds: float, stop: threading.Event) -> bool:
        return stop.wait(max(0.0, seconds))


@dataclass
class VirtualClock:
    """A clock that moves only when told to (``advance``), or by itself with ``auto``.

    With ``auto`` a sleep jumps the clock forward by the whole sleep at once: a waiter whose next
    deadline is 15 minutes away gets there in one step. Each sleep still yields a little real time
    (``REAL_POLL`` at most) so answers written by other threads are noticed.
    """

    start: float = field(default_factory=time.time)
    auto: bool = False
    _offset: float = 0.0
    _cond: threading.Condition = field(default_factory=threading.Condition)

    def now(self) -> float:
        with self._cond:
            return self.start + self._offset

    def advance(self, seconds: float) -> None:
        with self._cond:
            self._offset += seconds
            self._cond.notify_all()

    def sleep(self, seconds: float, stop: threading.Event) -> bool:
        if stop.is_set():
            return True
        if self.auto:
            self.advance(max(0.0, seconds))
            return stop.wait(0.0005)
        with self._cond:
            target = self.start + self._offset + max(0.0, seconds)
            self._cond.wait_for(lambda: self.start + self._offset >= target or stop.is_set(), timeout=REAL_POLL)
        return stop.is_set()


class WaitCondition(Protocol):
    """Something a step waits for, decided by polling."""

    def start(self, now: float) -> None:
        """Called once by the waiter before the first poll (record the request, load deadlines)."""
        ...

    def poll(self, now: float) -> Any | None:
        """The step's result when decided, else None. Exceptions fail the step."""
        ...

    def next_due(self) -> float | None:
        """Epoch seconds of the next deadline (None: none), so a virtual clock can jump to it."""
        ...


@runtime_checkable
class Prepared(Protocol):
    """A wait condition whose real start is prepared off the waiter thread (an approval's preview)."""

    def on_prepared(self, wake: Callable[[], None]) -> None:
        """Call ``wake`` (from any thread) when the preparation has ended; set before ``start``."""
        ...

    def ready(self) -> bool:
        """Whether the prepared wait has started and been polled once (its deadlines are known)."""
        ...


@dataclass
class _Entry:
    name: str
    condition: WaitCondition
    future: concurrent.futures.Future[Any]
    started: bool = False
    held: bool = True  # holds an Activity token: handed over, not yet started and ready


class Waiter:
    """One thread that polls every wait condition of a run.

    Each wait holds an :class:`~flows.engine.activity.Activity` token from :meth:`submit` until it
    has started and is ready, and again from its decision until its owner has read the future
    (the owner gives that token back), so a virtual clock never jumps over a wait still starting.
    """

    def __init__(
        self,
        clock: Clock | None = None,
        poll_interval: float = 0.2,
        after_pass: list[Callable[[], None]] | None = None,
        activity: Activity | None = None,
    ) -> None:
        self.clock: Clock = clock or SystemClock()
        self.poll_interval = poll_interval
        self.after_pass = after_pass or []  # run after each pass over the conditions (batched writes)
        self.activity = activity or Activity()
        self._entries: list[_Entry] = []
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def submit(self, name: str, condition: WaitCondition) -> concurrent.futures.Future[Any]:
        """Start waiting on ``condition``; the future completes with its result or error."""
        future: concurrent.futures.Future[Any] = concurrent.futures.Future()
        future.set_running_or_notify_cancel()
        self.activity.enter()
        with self._lock:
            self._entries.append(_Entry(name, condition, future))
            if self._thread is None:
                self._thread = threading.Thread(target=self._loop, name="fireline-waiter", daemon=True)
                self._thread.start()
        self._nudge()
        return future

    def _nudge(self) -> None:
        """Wake the waiter thread, also out of a clock's wait for a quiet run."""
        self._wake.set()
        self.activity.notify()

    @property
    def waiting(self) -> int:
        with self._lock:
            return len(self._entries)

    def shutdown(self) -> None:
        """Stop polling; conditions still waiting get a cancellation error."""
        self._stop.set()
        self._nudge()
        if self._thread is not None:
            self._thread.join()
        with self._lock:
            entries, self._entries = self._entries, []
        for entry in entries:
            if not entry.future.done():
                entry.future.set_exception(RuntimeError(f"wait {entry.name!r} was cancelled"))

    def _loop(self) -> None:
        while not self._stop.is_set():
            self._wake.clear()
            began = time.monotonic()
            with self._lock:
                entries = list(self._entries)
            for entry in entries:
                self._poll(entry)
            for hook in self.after_pass:
                hook()
            self._rest(time.monotonic() - began)
            with self._lock:
                self._entries = [e for e in self._entries if not e.future.done()]
                dues = [d for e in self._entries if (d := e.condition.next_due()) is not None]
                held = [e for e in self._entries if e.held]
                settled = [e for e in held if e.started and _ready(e.condition)]
                preparing = len(settled) < len(held)
            for entry in settled:  # started and ready after this pass's writes: time may move for them
                entry.held = False
                self.activity.leave()
            if self._wake.is_set():
                continue
            if preparing:  # a preparation ends with a nudge; the clock must not move meanwhile
                self._wake.wait(self.poll_interval)
            elif entries:
                self.clock.sleep(self._pause(dues), self._wake)
            else:
                self._wake.wait(self.poll_interval)

    def _rest(self, busy: float) -> None:
        """After a pass that took ``busy`` real seconds, leave the interpreter to the run for a while.

        The waiter shares the interpreter lock with the run's other steps: while a pass over a
        thousand waits runs, every hand-off between the scheduler and an executor thread waits
        for the lock. Passes are spaced so that they take at most :data:`DUTY` of the time; a
        new wait handed over ends the rest at once. An auto-advancing clock needs no rest: it
        moves only while the rest of the run is quiet.
        """
        if not (isinstance(self.clock, VirtualClock) and self.clock.auto):
            self._wake.wait(busy * (1 - DUTY) / DUTY)

    def _pause(self, dues: list[float]) -> float:
        """How long to sleep: the poll interval, cut short by the next deadline (an auto clock jumps to it)."""
        if not dues:
            return self.poll_interval
        ahead = max(0.0, min(dues) - self.clock.now())
        if isinstance(self.clock, VirtualClock) and self.clock.auto:
            return max(ahead, 0.001)
        return max(0.01, min(self.poll_interval, ahead))

    def _poll(self, entry: _Entry) -> None:
        try:
            now = self.clock.now()
            if not entry.started:
                entry.started = True
                if isinstance(entry.condition, Prepared):
                    entry.condition.on_prepared(self._nudge)
                entry.condition.start(now)
            result = entry.condition.poll(now)
        except BaseException as e:  # a failing condition fails its step, never the waiter
            self._decided(entry)
            entry.future.set_exception(e)
            return
        if result is not None:
            self._decided(entry)
            entry.future.set_result(result)

    def _decided(self, entry: _Entry) -> None:
        """The decision's token, for the owner to give back once it has read the future."""
        if not entry.held:
            self.activity.enter()
        entry.held = False


def _ready(condition: WaitCondition) -> bool:
    return condition.ready() if isinstance(condition, Prepared) else True

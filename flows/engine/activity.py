"""Work in progress in one run: the signal a virtual clock waits for before it lets time pass.

A drill's clock jumps to the next deadline, but only when nothing in the run could still change
what happens before that deadline. :class:`Activity` counts that work, one token each:

- the scheduler, while it is not blocked waiting for a unit or a wait to finish;
- a unit of work (a step's items, a plan, ``on_failure`` handlers), from its submission until the
  scheduler has read its outcome;
- a wait handed to the waiter, until the waiter has started it and polled it once ready (a wait
  whose start is prepared off the waiter thread, an approval's preview, is not ready until then);
  and again from its decision until the scheduler has read it.

:attr:`Activity.generation` moves on every change, so a clock can tell whether anything happened
since it last looked. The wall clock ignores all of this; the cost is one lock per change.
"""

from __future__ import annotations

import threading


class Activity:
    """A count of busy tokens, with a wait for the count to reach zero."""

    def __init__(self) -> None:
        self._count = 0
        self._generation = 0
        self._cond = threading.Condition()

    def enter(self) -> None:
        """Take a token (work started, or handed over)."""
        with self._cond:
            self._count += 1
            self._generation += 1

    def leave(self) -> None:
        """Give a token back; wakes :meth:`wait_quiet` when none is left.

        Raises:
            RuntimeError: more tokens given back than taken.
        """
        with self._cond:
            if self._count <= 0:
                raise RuntimeError("activity: leave() without enter()")
            self._count -= 1
            self._generation += 1
            if self._count == 0:
                self._cond.notify_all()

    @property
    def busy(self) -> int:
        """Tokens held now."""
        with self._cond:
            return self._count

    @property
    def generation(self) -> int:
        """A counter that moves on every :meth:`enter` and :meth:`leave`."""
        with self._cond:
            return self._generation

    def wait_quiet(self, interrupt: threading.Event, timeout: float = 0.2) -> bool:
        """Block until no token is held; False if ``interrupt`` was set or ``timeout`` real seconds passed."""
        with self._cond:
            self._cond.wait_for(lambda: self._count == 0 or interrupt.is_set(), timeout=timeout)
            return self._count == 0 and not interrupt.is_set()

    def notify(self) -> None:
        """Wake :meth:`wait_quiet` callers so that they re-read their interrupt event."""
        with self._cond:
            self._cond.notify_all()

"""Daemon worker threads that a warm ``fireline serve`` starts once and gives runs to.

Starting a thread waits until the new thread runs, and under an alert storm that wait is a turn at
the interpreter: the dispatcher spent ~4.6 ms per run on ``Thread.start`` alone, half of its time
per run. Workers are started ahead (:meth:`Workers.warm`) and reused. They are daemon threads, as
the run threads were: a run that outlives the shutdown grace must not keep the process alive (its
durable state lets ``fireline resume`` continue it), which ``concurrent.futures`` threads would.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable
from typing import Any


class Workers:
    """Runs callables on idle workers, starting a new worker only when none is idle."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._queue: queue.SimpleQueue[tuple[Callable[..., Any], tuple[Any, ...], threading.Event]] = (
            queue.SimpleQueue()
        )
        self._lock = threading.Lock()
        self._idle = 0
        self._count = 0

    def submit(self, fn: Callable[..., Any], *args: Any) -> threading.Event:
        """Run ``fn(*args)`` on a worker; the event is set when it has returned (or raised)."""
        done = threading.Event()
        with self._lock:
            if self._idle > 0:
                self._idle -= 1  # that worker takes this job
                start = False
            else:
                start = True
                self._count += 1
        self._queue.put((fn, args, done))
        if start:
            self._start()
        return done

    def warm(self, count: int) -> None:
        """Start workers until ``count`` are idle (``fireline serve`` does this before it accepts work)."""
        with self._lock:
            missing = max(0, count - self._idle)
            self._count += missing
            self._idle += missing
        for _ in range(missing):
            self._start()

    def idle(self) -> int:
        with self._lock:
            return self._idle

    def started(self) -> int:
        """How many workers were ever started."""
        with self._lock:
            return self._count

    def _start(self) -> None:
        threading.Thread(target=self._work, name=self.name, daemon=True).start()

    def _work(self) -> None:
        # The idle count is (workers not running a job) - (jobs queued): whichever worker takes a job.
        while True:
            fn, args, done = self._queue.get()
            try:
                fn(*args)
            except BaseException as e:  # a job's own error handling failed: the worker must go on
                logging.getLogger("fireline.engine").exception("%s: %s", self.name, e)
            finally:
                done.set()
            with self._lock:
                self._idle += 1

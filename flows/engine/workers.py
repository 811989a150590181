"""Daemon worker threads that a warm ``fireline serve`` starts once and gives runs to.

Starting a thread waits until the new thread runs, and under an alert storm that wait is a turn at
the interpreter: the dispatcher spent ~4.6 ms per run on ``Thread.start`` alone, half of its time
per run. Workers are started ahead (:meth:`Workers.warm`) and reused. They are daemon threads, as
the run threads were: a run that outlives the shutdown grace must not keep the process alive (its
durable state lets ``fireline resume`` continue it), which ``concurrent.futures`` threads would.

:data:`STEPS` and :data:`ATTEMPTS` are the process's workers for step units of runs started by
``fireline serve`` (through :class:`Pool`, one per run) and for action attempts (every run): each
run started two threads before its first ``apply()``, 0.3-0.6 ms each under a storm.
"""

from __future__ import annotations

import concurrent.futures
import contextvars
import logging
import queue
import threading
from collections import deque
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


class Pool:
    """A run's step executor on shared :class:`Workers`: at most ``limit`` jobs at once, the rest queued.

    ``submit`` and ``shutdown`` as ``concurrent.futures.ThreadPoolExecutor``'s. Each job runs in a new,
    empty ``contextvars`` context, as on a new thread: nothing one run set reaches the next job.
    """

    def __init__(self, workers: Workers, limit: int) -> None:
        self._workers = workers
        self._limit = limit
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)
        self._running = 0
        self._queued: deque[tuple[concurrent.futures.Future[Any], Callable[..., Any], tuple[Any, ...]]] = deque()
        self._closed = False

    def submit(self, fn: Callable[..., Any], *args: Any) -> concurrent.futures.Future[Any]:
        """Run ``fn(*args)``; raises ``RuntimeError`` after :meth:`shutdown`."""
        future: concurrent.futures.Future[Any] = concurrent.futures.Future()
        with self._lock:
            if self._closed:
                raise RuntimeError("cannot schedule new futures after shutdown")
            if self._running >= self._limit:
                self._queued.append((future, fn, args))
                return future
            self._running += 1
        self._workers.submit(self._job, future, fn, args)
        return future

    def _job(self, future: concurrent.futures.Future[Any], fn: Callable[..., Any], args: tuple[Any, ...]) -> None:
        while True:
            if future.set_running_or_notify_cancel():
                try:
                    result = contextvars.Context().run(fn, *args)
                except BaseException as e:  # as ThreadPoolExecutor: the future carries it
                    future.set_exception(e)
                else:
                    future.set_result(result)
            with self._lock:
                if not self._queued:
                    self._running -= 1
                    if not self._running:
                        self._idle.notify_all()  # shutdown(wait=True) waits for this
                    return
                future, fn, args = self._queued.popleft()

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """No new jobs; with ``cancel_futures`` drop the queued ones; with ``wait`` wait for the running ones."""
        with self._lock:
            self._closed = True
            if cancel_futures:
                for future, _, _ in self._queued:
                    future.cancel()
                self._queued.clear()
            while wait and self._running:
                self._idle.wait()


STEPS = Workers("fireline-step")
ATTEMPTS = Workers("fireline-attempt")

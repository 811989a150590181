"""Where step work runs: the :class:`StepExecutor` protocol, the default thread executor, timeouts, retry rules.

The scheduler hands every unit of step work to a :class:`StepExecutor` under a name (the step id,
``step[item-key]`` for one item of a ``for_each``, ``step:plan`` for planning a step);
:class:`ThreadExecutor` runs it on a bounded thread pool, and the Prefect layer provides one that
runs it as a Prefect task run.

Retry rule: an attempt is retried (per the step's ``retries``) only when its error is retryable:
an :class:`~flows.errors.ActionError` with ``retryable=True``, a step timeout, an error whose code
or class says throttling (``Throttling``, ``TooManyRequests``, ``RequestLimitExceeded``, ``SlowDown``,
HTTP 429/503), or a connection or read timeout. Everything else (a refused guard, a dry-run
refusal, a template or validation error, a rejected approval) fails at once.
"""

from __future__ import annotations

import concurrent.futures
import queue
from collections.abc import Callable
from typing import Protocol, TypeVar

from flows.errors import ActionError, DryRunRefusal, StepTimeoutError

T = TypeVar("T")

PLAN_SUFFIX = ":plan"
"""Ends the name of the unit that plans a step (renders items, calls plan(), checks guards).

It is bookkeeping of the engine, not work on a target: an executor may run it without the
ceremony it gives step items (the Prefect executor runs it outside a task run).
"""

_THROTTLING = ("throttl", "toomanyrequests", "requestlimitexceeded", "slowdown", "ratelimit", "rate exceeded")
_TRANSIENT_CLASSES = ("ReadTimeoutError", "ConnectTimeoutError", "EndpointConnectionError", "ConnectionClosedError")


class StepExecutor(Protocol):
    """Runs units of step work; must allow at least as many concurrent units as it is given."""

    def submit(self, name: str, fn: Callable[[], T]) -> concurrent.futures.Future[T]: ...

    def shutdown(self) -> None: ...


class ThreadExecutor:
    """The default executor: a bounded thread pool, no Prefect."""

    def __init__(self, max_workers: int = 16) -> None:
        self._pool = concurrent.futures.ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="fireline-step")

    def submit(self, name: str, fn: Callable[[], T]) -> concurrent.futures.Future[T]:
        return self._pool.submit(fn)

    def shutdown(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)


def take_batch(source: queue.Queue[T], timeout: float | None) -> list[T]:
    """The next item of ``source`` (waiting up to ``timeout`` seconds) and all queued behind it; [] if none came."""
    try:
        batch = [source.get(timeout=timeout)]
    except queue.Empty:
        return []
    while True:
        try:
            batch.append(source.get_nowait())
        except queue.Empty:
            return batch


def is_retryable(error: BaseException) -> bool:
    """Whether another attempt may succeed (see the module docstring for the rule)."""
    if isinstance(error, DryRunRefusal):
        return False
    if isinstance(error, StepTimeoutError | TimeoutError | ConnectionError):
        return True
    if isinstance(error, ActionError) and error.retryable:
        return True
    code = ""
    if isinstance(error, ActionError):
        code = str(error.details.get("code", "")) + " " + str(error.details.get("status", ""))
    response = getattr(error, "response", None)
    if isinstance(response, dict):
        code += " " + str(response.get("Error", {}).get("Code", ""))
        code += " " + str(response.get("ResponseMetadata", {}).get("HTTPStatusCode", ""))
    lowered = f"{code} {type(error).__name__}".lower()
    if any(mark in lowered for mark in _THROTTLING) or " 429" in lowered or " 503" in lowered:
        return True
    chain = error.__cause__
    if chain is not None and chain is not error and is_retryable(chain):
        return True
    return type(error).__name__ in _TRANSIENT_CLASSES

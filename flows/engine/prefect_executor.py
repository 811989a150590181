"""The Prefect executor: each unit of step work as a Prefect task run, on a bounded thread pool.

Each unit (a step, or one ``for_each`` item) becomes a task run named like the engine names it,
``isolate[i-0abc]``. fireline runs retries and timeouts *inside* that task (one mechanism for
back-off, events and idempotency on both backends): the task run stands for the whole step item,
all its attempts included, and carries the step's policy in its name (``isolate[i-0abc] (retries
3, timeout 2m)``). Prefect's own task retries stay at 0. Planning a step runs outside task runs;
a step that fails before it has any task run (a template, ``plan()`` or a guard) gets a failed
task run ``<step>:plan`` (:meth:`PrefectExecutor.fail_unit`), and a unit whose action failed or
timed out ends its task run Failed with the error, so the flow run never looks red with only green
tasks.

Task runs carry no tags on purpose: Prefect checks tag concurrency limits with one API call per
task run that has any tag, and under SQLite contention that call meets 503s and 2 s back-offs.
"""

from __future__ import annotations

import concurrent.futures
import contextvars
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar, cast

from prefect import task
from prefect.cache_policies import NO_CACHE
from prefect.context import TagsContext

from flows.engine.executor import PLAN_SUFFIX
from flows.language.durations import format_duration

if TYPE_CHECKING:
    from flows.language.spec import Playbook

T = TypeVar("T")

DEFAULT_MAX_WORKERS = 16


def step_policies(playbook: Playbook) -> dict[str, str]:
    """Per step, the retry/timeout policy fireline applies inside the task run, as a name suffix."""
    policies: dict[str, str] = {}
    for step in playbook.steps:
        parts = [f"retries {step.retries.attempts - 1}"] if step.retries and step.retries.attempts > 1 else []
        if step.timeout is not None:
            parts.append(f"timeout {format_duration(step.timeout)}")
        if parts:
            policies[step.id] = f" ({', '.join(parts)})"
    return policies


def step_line(step: str, status: str, detail: dict[str, Any]) -> tuple[int, str, bool]:
    """A step status change as a flow run log line: (logging level, text, whether the step failed)."""
    import logging

    extra = f": {detail['error']}" if detail.get("error") else ""
    failed = status in ("failed", "timed_out")
    return (logging.WARNING if failed or status == "rejected" else logging.INFO), f"{step} {status}{extra}", failed


def unit_step(unit: str) -> str:
    """The step id of a unit's name: ``isolate[i-0abc] (retries 3)`` and ``isolate.on_failure`` are ``isolate``."""
    return unit.split("[", 1)[0].split(".", 1)[0].split(" (", 1)[0]


class UnitFailed(Exception):
    """Raised inside the task run of a unit that failed (an action error, a timeout), so that the task
    run is Failed with the error; the executor hands the unit's result back to the engine."""

    def __init__(self, result: Any, message: str) -> None:
        super().__init__(message)
        self.result = result


def unit_failure(result: Any) -> str | None:
    """The error of a unit's result that failed or timed out, else None."""
    from flows.engine.outcomes import FAILED, TIMED_OUT
    from flows.engine.units import ItemResult

    if isinstance(result, ItemResult) and result.status in (FAILED, TIMED_OUT):
        return result.error or result.status
    return None


@task(name="step", task_run_name="{unit}", cache_policy=NO_CACHE, persist_result=False, retries=0)
def step_item(work: Callable[[], Any], unit: str) -> Any:
    """Run one step item (all its attempts) as a Prefect task run named ``unit``; Failed when it failed."""
    result = work()
    error = unit_failure(result)
    if error is not None:
        raise UnitFailed(result, error[:2000])
    return result


class PlanningFailed(Exception):
    """Raised inside the failed task run that stands for a step whose planning failed."""


@task(name="plan", task_run_name="{unit}", cache_policy=NO_CACHE, persist_result=False, retries=0)
def _plan_failure(message: str, unit: str) -> None:
    """A failed task run for a step that failed while it was planned (templates, plan(), guards)."""
    raise PlanningFailed(message) from None


class PrefectExecutor:
    """A :class:`~flows.engine.executor.StepExecutor` that runs each unit of work as a Prefect task run.

    Units run on a bounded thread pool. Each thread runs in a copy of the context the executor was
    created in (inside the flow body), so Prefect attaches the task runs to the flow run.
    """

    def __init__(self, *, max_workers: int = DEFAULT_MAX_WORKERS, policies: dict[str, str] | None = None) -> None:
        self._context = contextvars.copy_context()
        self._policies = policies or {}
        self.task_steps: set[str] = set()  # steps with at least one task run
        self._lock = threading.Lock()
        self._pool = concurrent.futures.ThreadPoolExecutor(
            max_workers=max_workers, thread_name_prefix="fireline-prefect"
        )

    def submit(self, name: str, fn: Callable[[], T]) -> concurrent.futures.Future[T]:
        if name.endswith(PLAN_SUFFIX):
            # Planning a step is the engine's bookkeeping: a task run for it would double the
            # per-step cost and show two task runs per step in the UI. A step that fails before any
            # task run (templates, plan(), guards) gets a failed one from fail_unit().
            return self._pool.submit(fn)
        # A Context can be entered by one thread at a time: every unit gets its own copy.
        return self._pool.submit(self._context.copy().run, self._run, name, fn)

    def fail_unit(self, step_id: str, message: str) -> None:
        """Record a failed task run ``<step>:plan`` for a step that failed before any task run of its own."""
        with self._lock:
            if step_id in self.task_steps:
                return
            self.task_steps.add(step_id)

        def record() -> None:
            with TagsContext(current_tags=set()):
                _plan_failure(message[:2000], f"{step_id}{PLAN_SUFFIX}")

        try:
            self._context.copy().run(record)
        except PlanningFailed:
            pass  # the task run is Failed, which is all it is for; the engine records the step

    def _run(self, name: str, fn: Callable[[], T]) -> T:
        step_id = unit_step(name)
        with self._lock:
            self.task_steps.add(step_id)
        # One task, named per run through its parameter: Task.with_options() per call costs ~25 ms.
        # No tags (not even the flow run's, which the context carries): see the module docstring.
        with TagsContext(current_tags=set()):
            try:
                # A sync task called in a flow run returns its value; Prefect's overloads cannot tell.
                return cast(T, step_item(fn, name + self._policies.get(step_id, "")))
            except UnitFailed as failed:  # the task run is Failed; the engine gets the unit's result
                return cast(T, failed.result)

    def shutdown(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)

"""The ``respond`` flow: one playbook run as one Prefect flow run, each step item as one task run.

``respond`` is static and deployable (``fireline deploy``); its body calls the engine with a
:class:`PrefectExecutor`, so the scheduler, guards, approvals and durability are the same code on
both backends. Each unit of step work (a step, or one ``for_each`` item) becomes a task run named
like the engine names it, ``isolate[i-0abc]``. fireline runs retries and timeouts *inside* that task
(one mechanism for back-off, events and idempotency on both backends): the task run stands for the
whole step item, all its attempts included, and carries the step's policy in its name
(``isolate[i-0abc] (retries 3, timeout 2m)``). Prefect's own task retries stay at 0.

Task runs carry no tags on purpose: Prefect checks tag concurrency limits with one API call per
task run that has any tag, and under SQLite contention that call meets 503s and 2 s back-offs.

The flow run is named ``<playbook>/<run id>``, tagged ``fireline``, ``playbook:<name>``,
``mode:<mode>`` and the owner tag (see :func:`flows.engine.prefect_env.owner_tag`); the run's
report is published as a markdown artifact, and its steps as a table artifact.
"""

from __future__ import annotations

import concurrent.futures
import contextvars
import re
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TypeVar, cast

from prefect import flow, task
from prefect.cache_policies import NO_CACHE
from prefect.context import TagsContext
from prefect.context import tags as prefect_tags

from flows.config import Settings
from flows.engine.executor import PLAN_SUFFIX
from flows.language.durations import format_duration

if TYPE_CHECKING:
    from flows.engine.outcomes import RunSummary
    from flows.language.spec import Playbook

T = TypeVar("T")

DEFAULT_MAX_WORKERS = 16
_ARTIFACT_KEY = re.compile(r"[^a-z0-9-]+")
# Settings handed from run_respond to the flow body (same thread); a worker's flow run loads its own.
_SETTINGS: contextvars.ContextVar[Settings | None] = contextvars.ContextVar("fireline_settings", default=None)
# Summaries of runs driven by this process, handed from the flow body back to the caller.
_SUMMARIES: dict[str, RunSummary] = {}
_SUMMARIES_LOCK = threading.Lock()


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


RunMode = Literal["live", "dry-run", "drill"]


@task(name="step", task_run_name="{unit}", cache_policy=NO_CACHE, persist_result=False, retries=0)
def _step_item(work: Callable[[], Any], unit: str) -> Any:
    """Run one step item (all its attempts) as a Prefect task run named ``unit``."""
    return work()


class PlanningFailed(Exception):
    """Raised inside the failed task run that stands for a step whose planning failed."""


@task(name="plan", task_run_name="{unit}", cache_policy=NO_CACHE, persist_result=False, retries=0)
def _plan_failure(message: str, unit: str) -> None:
    """A failed task run for a step that failed while it was planned (templates, plan(), guards)."""
    raise PlanningFailed(message)


def _planning_problem(result: Any) -> str | None:
    from flows.engine.guards import Refusal

    if isinstance(result, list) and result and all(isinstance(r, Refusal) for r in result):
        return "; ".join(f"guard {r.guard} refused {r.target or ''}: {r.message}" for r in result)
    return None


class PrefectExecutor:
    """A :class:`~flows.engine.executor.StepExecutor` that runs each unit of work as a Prefect task run.

    Units run on a bounded thread pool. Each thread runs in a copy of the context the executor was
    created in (inside the flow body), so Prefect attaches the task runs to the flow run.
    """

    def __init__(self, *, max_workers: int = DEFAULT_MAX_WORKERS, policies: dict[str, str] | None = None) -> None:
        self._context = contextvars.copy_context()
        self._policies = policies or {}
        self._pool = concurrent.futures.ThreadPoolExecutor(
            max_workers=max_workers, thread_name_prefix="fireline-prefect"
        )

    def submit(self, name: str, fn: Callable[[], T]) -> concurrent.futures.Future[T]:
        if name.endswith(PLAN_SUFFIX):
            # Planning a step is the engine's bookkeeping: a task run for it would double the
            # per-step cost and show two task runs per step in the UI. Only a planning failure
            # becomes a (failed) task run, so the UI never shows a red flow run with green tasks.
            return self._pool.submit(self._plan, name, fn)
        # A Context can be entered by one thread at a time: every unit gets its own copy.
        return self._pool.submit(self._context.copy().run, self._run, name, fn)

    def _plan(self, name: str, fn: Callable[[], T]) -> T:
        try:
            result = fn()
        except BaseException as e:
            self._fail_task(name, f"{type(e).__name__}: {e}")
            raise
        problem = _planning_problem(result)
        if problem is not None:
            self._fail_task(name, problem)
        return result

    def _fail_task(self, name: str, message: str) -> None:
        def record() -> None:
            with TagsContext(current_tags=set()):
                _plan_failure(message[:2000], name)

        try:
            self._context.copy().run(record)
        except PlanningFailed:
            pass  # the task run is Failed, which is all it is for; the engine records the step

    def _run(self, name: str, fn: Callable[[], T]) -> T:
        step_id = name.split("[", 1)[0].split(".", 1)[0]
        # One task, named per run through its parameter: Task.with_options() per call costs ~25 ms.
        # No tags (not even the flow run's, which the context carries): see the module docstring.
        with TagsContext(current_tags=set()):
            # A sync task called in a flow run returns its value; Prefect's overloads cannot tell.
            return cast(T, _step_item(fn, name + self._policies.get(step_id, "")))

    def shutdown(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)


def _flow_run_name() -> str:
    from prefect.runtime import flow_run

    params = flow_run.parameters
    return f"{Path(str(params.get('playbook', 'playbook'))).stem}/{params.get('run_id') or 'new'}"


def _publish_report(run_id: str, run_dir: Path) -> None:
    from flows.report.prefect_artifacts import publish_artifacts

    publish_artifacts(run_id, run_dir)  # the post-mortem as markdown, and the steps as a table


def _tag_flow_run(playbook_name: str, mode: str, run_id: str) -> None:
    from prefect.client.orchestration import get_client
    from prefect.runtime import flow_run

    from flows.engine.prefect_env import FIRELINE_TAG, owner_tag

    run_uuid = flow_run.id
    if run_uuid is None:
        return
    with get_client(sync_client=True) as client:
        current = client.read_flow_run(run_uuid).tags
        wanted = [FIRELINE_TAG, owner_tag(), f"playbook:{playbook_name}", f"mode:{mode}", f"run:{run_id}"]
        client.update_flow_run(run_uuid, tags=sorted({*current, *wanted}))


def _rename_flow_run(name: str) -> None:
    from prefect.client.orchestration import get_client
    from prefect.runtime import flow_run

    if flow_run.id is not None:
        with get_client(sync_client=True) as client:
            client.update_flow_run(flow_run.id, name=name)


def _missing_alert(book: Playbook, inputs: dict[str, Any] | None) -> str | None:
    """One line naming the first input whose default needs an alert that was not given."""
    for name, spec in book.inputs.items():
        if name in (inputs or {}):
            continue
        if isinstance(spec.default, str) and "alert" in spec.default and "{{" in spec.default:
            return (
                f"input {name!r} of {book.metadata.name} defaults to {spec.default.strip()} but no alert was "
                f"given: pass -p alert='{{\"labels\": {{...}}}}' or -p inputs='{{\"{name}\": ...}}'"
            )
    return None


def _progress_logger() -> Callable[[str, str, dict[str, Any]], None]:
    """Step status changes as log lines of the flow run (they reach the Prefect API from any thread)."""
    from prefect import get_run_logger

    logger = get_run_logger()

    def progress(step: str, status: str, detail: dict[str, Any]) -> None:
        extra = f": {detail['error']}" if detail.get("error") else ""
        (logger.warning if status in ("failed", "timed_out", "rejected") else logger.info)(f"{step} {status}{extra}")

    return progress


def respond_body(
    playbook: str,
    alert: dict[str, Any] | None,
    mode: str,
    run_id: str | None,
    inputs: dict[str, Any] | None,
    trigger: dict[str, Any] | None = None,
    alerts: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """What the ``respond`` flow does; also callable in a test's own flow."""
    from prefect import get_run_logger
    from prefect.runtime import flow_run
    from prefect.states import Failed

    from flows.config import load_settings
    from flows.engine import run_playbook
    from flows.engine.prefect_answers import PrefectAnswerSource
    from flows.engine.runner import new_run_id, resolve_playbook

    settings = _SETTINGS.get() or load_settings()
    logger = get_run_logger()
    resolved = resolve_playbook(playbook, settings)
    name = resolved.playbook.metadata.name
    missing = _missing_alert(resolved.playbook, inputs) if alert is None else None
    if missing is not None:
        logger.error(missing)
        return Failed(message=missing)  # type: ignore[return-value]  # a returned State sets the final state
    if run_id is None:
        run_id = new_run_id(name)
        _rename_flow_run(f"{name}/{run_id}")
    if f"run:{run_id}" not in (flow_run.tags or []):  # started by a worker or the API, not run_respond
        _tag_flow_run(name, mode, run_id)
    executor = PrefectExecutor(policies=step_policies(resolved.playbook))
    sources = [PrefectAnswerSource(str(flow_run.id))] if flow_run.id is not None else []
    try:
        summary = run_playbook(
            resolved.path,
            inputs=inputs,
            alert=alert,
            mode=mode,  # type: ignore[arg-type]  # validated by the engine like any other request
            settings=settings,
            run_id=run_id,
            executor=executor,
            trigger={**(trigger or {}), "via": (trigger or {}).get("via", "prefect"), "flow_run_id": str(flow_run.id)},
            answer_sources=sources,
            progress=_progress_logger(),
            alerts=alerts,
        )
    finally:
        executor.shutdown()
    with _SUMMARIES_LOCK:
        _SUMMARIES[summary.run_id] = summary
    _publish_report(summary.run_id, summary.run_dir)
    logger.info(f"run {summary.run_id} {summary.outcome} ({summary.mode}): {summary.run_dir}")
    doc = {"run_id": summary.run_id, "run_dir": str(summary.run_dir), "mode": summary.mode, "outcome": summary.outcome}
    if not summary.ok:
        return Failed(message=f"run {summary.run_id} {summary.outcome}", data=doc)  # type: ignore[return-value]  # a returned State sets the final state
    return doc


@flow(name="respond", flow_run_name=_flow_run_name, persist_result=False, log_prints=False, validate_parameters=True)
def respond(
    playbook: str,
    alert: dict[str, Any] | None = None,
    mode: RunMode = "live",
    run_id: str | None = None,
    inputs: dict[str, Any] | None = None,
    trigger: dict[str, Any] | None = None,
    alerts: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """Run a fireline playbook (a path or a library name) as this flow run.

    Args:
        playbook: a library name (resolved in the worker's library) or a path on the worker.
        alert: the normalised alert (or a raw payload of a supported source); needed by playbooks
            whose inputs default to alert labels.
        mode: live, dry-run or drill.
        run_id: the fireline run id (default: a new one).
        inputs: the playbook's inputs by name.
        trigger: who or what started the run (recorded).
        alerts: every alert of the incident (``alerts`` in templates).
    """
    return respond_body(playbook, alert, mode, run_id, inputs, trigger, alerts)


def take_summary(run_id: str) -> RunSummary | None:
    """The summary of a run this process drove through ``respond`` (once)."""
    with _SUMMARIES_LOCK:
        return _SUMMARIES.pop(run_id, None)


def run_respond(
    playbook: str,
    *,
    alert: dict[str, Any] | None = None,
    mode: str = "live",
    run_id: str | None = None,
    inputs: dict[str, Any] | None = None,
    trigger: dict[str, Any] | None = None,
    settings: Settings | None = None,
    alerts: list[dict[str, Any]] | None = None,
) -> tuple[Any, RunSummary | None]:
    """Run ``respond`` in this thread against the active runtime; return its final state and summary."""
    from flows.config import load_settings
    from flows.engine.prefect_env import FIRELINE_TAG, owner_tag
    from flows.engine.runner import new_run_id, resolve_playbook

    name = resolve_playbook(playbook, settings or load_settings()).playbook.metadata.name
    run_id = run_id or new_run_id(name)
    token = _SETTINGS.set(settings)
    try:
        # Tags given at creation save the flow body two API calls (read and update the flow run).
        with prefect_tags(FIRELINE_TAG, owner_tag(), f"playbook:{name}", f"mode:{mode}", f"run:{run_id}"):
            state = respond(
                playbook=playbook,
                alert=alert,
                mode=mode,
                run_id=run_id,
                inputs=inputs,
                trigger=trigger,
                alerts=alerts,
                return_state=True,
            )
    finally:
        _SETTINGS.reset(token)
    return state, take_summary(run_id)


def run_with_prefect(
    playbook: str,
    *,
    settings: Settings,
    alert: dict[str, Any] | None = None,
    mode: str = "live",
    run_id: str | None = None,
    inputs: dict[str, Any] | None = None,
) -> RunSummary:
    """Start (or connect to) the Prefect runtime, run the playbook as a ``respond`` flow run, stop it."""
    from flows.engine.prefect_env import prefect_runtime
    from flows.errors import RunError

    with prefect_runtime(settings):
        state, summary = run_respond(
            str(playbook), alert=alert, mode=mode, run_id=run_id, inputs=inputs, settings=settings
        )
    if summary is None:
        raise RunError(f"the respond flow run ended {state.type.value} before the run started: {state.message}")
    return summary

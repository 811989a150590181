"""The ``respond`` flow: one playbook run as one Prefect flow run, each step item as one task run.

``respond`` is static and deployable (``fireline deploy``); its body calls the engine with a
:class:`PrefectExecutor`, so the scheduler, guards, approvals and durability are the same code on
both backends. Each unit of step work (a step, or one ``for_each`` item) becomes a task run named
like the engine names it, ``isolate[i-0abc]``. fireline runs retries and timeouts *inside* that task
(one mechanism for back-off, events and idempotency on both backends): the task run stands for the
whole step item, all its attempts included, and carries the step's policy in its name
(``isolate[i-0abc] (retries 3, timeout 2m)``). Prefect's own task retries stay at 0.

The executor is :mod:`flows.engine.prefect_executor`. Step status changes are log lines of the flow
run; a run that needs an alert it was not given fails with one line naming the input.

The flow run is named ``<playbook>/<run id>``, tagged ``fireline``, ``playbook:<name>``,
``mode:<mode>`` and the owner tag (see :func:`flows.engine.prefect_env.owner_tag`); the run's
report is published as a markdown artifact, and its steps as a table artifact.
"""

from __future__ import annotations

import contextvars
import logging
import os
import re
import socket
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from prefect import flow
from prefect.context import tags as prefect_tags

from flows.config import Settings
from flows.engine.prefect_executor import DEFAULT_MAX_WORKERS, PrefectExecutor, step_line, step_policies

if TYPE_CHECKING:
    from flows.engine import prefect_attach
    from flows.engine.outcomes import RunSummary
    from flows.language.spec import Playbook

__all__ = ["DEFAULT_MAX_WORKERS", "PrefectExecutor", "respond", "run_respond", "run_with_prefect", "step_policies"]
_ARTIFACT_KEY = re.compile(r"[^a-z0-9-]+")
# Settings handed from run_respond to the flow body (same thread); a worker's flow run loads its own.
_SETTINGS: contextvars.ContextVar[Settings | None] = contextvars.ContextVar("fireline_settings", default=None)
# Summaries of runs driven by this process, handed from the flow body back to the caller.
_SUMMARIES: dict[str, RunSummary] = {}
_SUMMARIES_LOCK = threading.Lock()


RunMode = Literal["live", "dry-run", "drill"]


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


def _progress_logger(executor: PrefectExecutor) -> Callable[[str, str, dict[str, Any]], None]:
    """Step status changes as log lines of the flow run (they reach the Prefect API from any thread).

    A step that failed before it had a task run gets a failed one (:meth:`PrefectExecutor.fail_unit`).
    """
    from prefect import get_run_logger

    logger = get_run_logger()
    base = getattr(logger, "logger", None)
    if isinstance(base, logging.Logger) and base.getEffectiveLevel() > logging.INFO:
        base.setLevel(logging.INFO)  # a WARNING level set elsewhere would keep every step line from the API

    context = contextvars.copy_context()  # approval waits report from a thread without the flow's context

    def report(step: str, status: str, detail: dict[str, Any]) -> None:
        level, line, failed = step_line(step, status, detail)
        logger.log(level, line)
        if failed:
            executor.fail_unit(step, line)

    def progress(step: str, status: str, detail: dict[str, Any]) -> None:
        context.copy().run(report, step, status, detail)

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
    from flows.engine import prefect_attach, run_playbook
    from flows.engine.prefect_answers import PrefectAnswerSource
    from flows.engine.runner import new_run_id, resolve_playbook

    attachment = prefect_attach.current()
    if attachment is not None:  # the run started before this flow run (fireline serve): follow it
        return _follow(attachment)
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
            trigger={
                **(trigger or {}),
                "via": (trigger or {}).get("via", "prefect"),
                "flow_run_id": str(flow_run.id),
                # Which process ran it (a worker's flow run is a child of the worker process).
                "ran_on": {"host": socket.gethostname(), "pid": os.getpid(), "parent_pid": os.getppid()},
            },
            answer_sources=sources,
            progress=_progress_logger(executor),
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


def _follow(attachment: prefect_attach.Attachment) -> dict[str, Any]:
    """The flow body of a run that started before its flow run: attach, follow it, end in its state."""
    from prefect.runtime import flow_run
    from prefect.states import Failed

    attachment.follow(str(flow_run.id))
    summary = attachment.summary
    if summary is None:
        message = f"run {attachment.run_id} did not start: {attachment.error}".splitlines()[0]
        return Failed(message=message)  # type: ignore[return-value]  # a returned State sets the final state
    _publish_report(summary.run_id, summary.run_dir)
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

"""Commands that run playbooks and act on runs: run, resume, approve, reject, undo (``runs`` and ``audit``: runs_cmds).

``fireline run`` first offers the run to a warm ``fireline serve`` (when one is up) and otherwise
runs it in this process with the thread executor.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn, cast

import typer

from flows.cli import app
from flows.cli.output import JSON_OPTION_HELP, console, err_console, print_json
from flows.cli.progress import StepProgress
from flows.errors import ApprovalError, UsageError

if TYPE_CHECKING:
    from flows.config import Settings
    from flows.engine.approvals import Decision
    from flows.engine.outcomes import RunSummary
    from flows.language.spec import Mode

JsonOpt = Annotated[bool, typer.Option("--json", help=JSON_OPTION_HELP)]
RunArg = Annotated[str, typer.Argument(help="A run id (under the runs directory), a run directory, or latest.")]
StepArg = Annotated[str, typer.Argument(help="The approval step's id.")]


def _settings() -> Settings:
    from flows.config import load_settings

    return load_settings()


def _finish(summary: RunSummary, as_json: bool) -> None:
    doc = {"run_id": summary.run_id, "run_dir": str(summary.run_dir), "mode": summary.mode, "outcome": summary.outcome}
    if as_json:
        print_json(doc)
    else:
        colour = "green" if summary.ok else "red"
        console.print(f"run {summary.run_id} [{colour}]{summary.outcome}[/] ({summary.mode})")
        console.print(f"run directory: {summary.run_dir}", markup=False)
    if not summary.ok:
        raise typer.Exit(1)


def _handoff(request: dict[str, Any], settings: Settings, why: list[str]) -> Any:
    try:
        from flows.engine.handoff import try_handoff
    except ImportError:
        return None
    return try_handoff(request, settings, why)


@app.command("run")
def run_cmd(
    playbook: Annotated[str, typer.Argument(help="A playbook file, or a playbook name in the library.")],
    alert: Annotated[Path | None, typer.Option("--alert", help="An alert file (JSON, at most 1 MiB).")] = None,
    input_: Annotated[list[str] | None, typer.Option("--input", "-i", help="NAME=VALUE, repeatable.")] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Plan only: nothing is changed.")] = False,
    mode: Annotated[str | None, typer.Option("--mode", help="live, dry-run or drill.")] = None,
    as_user: Annotated[str | None, typer.Option("--as", help="Who triggers the run (cannot approve it).")] = None,
    source: Annotated[
        str | None, typer.Option("--source", help="The alert file's source (default: recognised).")
    ] = None,
    local: Annotated[
        bool, typer.Option("--local", help="Run in this process, never in a warm fireline serve.")
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Run a playbook; prints the run id and the run directory, exits 1 when the run failed.

    An alert file with the alerts of several incidents (a grouped Alertmanager notification of
    several hosts, say) starts one run per incident; resolved alerts never start a run.
    """
    from flows.cli.trigger_cmds import alert_groups
    from flows.engine.inputs import parse_pairs

    if dry_run and mode not in (None, "dry-run"):
        raise UsageError("--dry-run and --mode are exclusive")
    chosen = "dry-run" if dry_run else (mode or "live")
    if chosen not in ("live", "dry-run", "drill"):
        raise UsageError(f"--mode must be live, dry-run or drill, not {chosen!r}")
    inputs = parse_pairs(input_ or [])
    trigger: dict[str, Any] = {"how": "cli"}
    if as_user:
        trigger["by"] = f"user:{as_user.removeprefix('user:')}"
    settings = _settings()
    groups = alert_groups(playbook, alert, source, settings) if alert is not None else [(None, None)]
    if len(groups) > 1 and not as_json:
        err_console.print(f"the alert file holds {len(groups)} incidents: one run each", markup=False)
    failed = False
    for alert_doc, alerts in groups:
        request = {"playbook": playbook, "inputs": inputs, "alert": alert_doc, "alerts": alerts, "mode": chosen,
                   "trigger": trigger}  # fmt: skip
        try:
            _run_one(request, settings, local, as_json)
        except typer.Exit as e:
            if e.exit_code == 130:  # Ctrl-C: the other incidents are not started
                raise
            failed = failed or bool(e.exit_code)
    if failed:
        raise typer.Exit(1)


def _run_one(request: dict[str, Any], settings: Settings, local: bool, as_json: bool) -> None:
    playbook, inputs, alert_doc, chosen = request["playbook"], request["inputs"], request["alert"], request["mode"]
    # A warm server checks the request itself before it accepts it (bad input: one line, no run), so
    # the hand-off comes before the engine is even imported: that import is most of a cold start.
    why: list[str] = []
    handed = None if local else _handoff(request, settings, why)
    if handed is not None:
        _print_handed(handed, as_json)
        return
    if why and not as_json:
        err_console.print(f"{why[0]}; running in this process", markup=False)
    from flows.engine.runner import new_run_id, run_playbook, validate_request

    resolved = validate_request(playbook, inputs=inputs, alert=alert_doc, settings=settings)
    run_id = new_run_id(resolved.playbook.metadata.name)
    if not as_json:
        err_console.print(f"run {run_id} ({chosen}): {settings.runs_dir / run_id}", markup=False)
    try:
        summary = run_playbook(
            playbook,
            inputs=inputs,
            alert=alert_doc,
            mode=cast("Mode", chosen),
            settings=settings,
            trigger=request["trigger"],
            run_id=run_id,
            progress=None if as_json else StepProgress(run_id),
            alerts=request["alerts"],
        )
    except KeyboardInterrupt:
        _interrupted(run_id)
    _finish(summary, as_json)


def _interrupted(run_id: str) -> NoReturn:
    """Ctrl-C: the engine recorded run.interrupted and kept approvals waiting; say how to go on."""
    err_console.print(f"interrupted: run {run_id} stopped; continue it with: fireline resume {run_id}", markup=False)
    raise typer.Exit(130)


_FOLLOW_SECONDS = 12 * 3600.0  # a handed-over run may wait hours for an approval
_EVENT_STATUS = {"step.started": "running", "step.succeeded": "succeeded", "step.skipped": "skipped",
                 "approval.requested": "waiting"}  # fmt: skip


def _print_handed(handed: dict[str, Any], as_json: bool) -> None:
    """Follow a run that a warm ``fireline serve`` took: same progress, output and exit code as a local run."""
    from flows.engine.handoff import follow_run
    from flows.engine.outcomes import RunSummary
    from flows.engine.runs import read_run_json

    run_dir = Path(str(handed["run_dir"]))
    if not as_json:
        err_console.print(f"handed to the warm runtime: run {handed['run_id']}", markup=False)
    progress = None if as_json else StepProgress(str(handed["run_id"]))
    for event in follow_run(run_dir, timeout=_FOLLOW_SECONDS, server=handed.get("server")):
        if progress is None or event.get("item") is not None or not event.get("step"):
            continue
        detail = event.get("detail") or {}
        status = detail.get("status", "failed") if event["type"] == "step.failed" else _EVENT_STATUS.get(event["type"])
        if status is not None:
            progress(event["step"], status, detail)
    data = read_run_json(run_dir)
    mode = cast("Mode", data.get("mode") or handed.get("mode") or "live")
    _finish(RunSummary(str(handed["run_id"]), run_dir, mode, str(data.get("outcome"))), as_json)


@app.command("resume")
def resume_cmd(
    run: RunArg,
    force: Annotated[bool, typer.Option("--force", help="Take over a run whose lock another machine wrote.")] = False,
    reason: Annotated[str, typer.Option("--reason", help="Why the owner is known to be gone (with --force).")] = "",
    as_json: JsonOpt = False,
) -> None:
    """Finish a crashed run; completed step-items are not applied again."""
    from flows.engine.prefect_settle import settle_after_resume
    from flows.engine.runner import resume_run

    if force and not reason.strip():
        raise UsageError("--force needs --reason: say why the run's owner is known to be gone")
    settings = _settings()
    progress = None if as_json else StepProgress(str(run))
    try:
        summary = resume_run(run, settings=settings, progress=progress, force_reason=reason if force else None)
    except KeyboardInterrupt:
        _interrupted(str(run))
    settle_after_resume(summary.run_id, summary.outcome, settings)  # its flow run ends in the true state
    _finish(summary, as_json)


def _answer(run: str, step: str, user: str | None, decision: Decision, reason: str, as_json: bool) -> None:
    from flows.cli.run_lookup import check_step_name, waiting_note
    from flows.engine.runs import CRASHED, RUNNING, detect_crash, find_run, read_run_json
    from flows.engine.state import RunState

    settings = _settings()
    run_dir = find_run(run, settings)
    detect_crash(run_dir)
    data = read_run_json(run_dir)
    request = RunState(run_dir).read_request(step)
    check_step_name(data, step, run_dir.name)
    if data.get("status") not in (RUNNING, CRASHED) or step not in data.get("waiting", []) or request is None:
        raise ApprovalError(f"step {step!r} of run {run_dir.name} is not waiting for approval{waiting_note(data)}")
    from flows.cli.people_cmds import give_answer  # identity, the run's own checks, exit 1 when refused

    give_answer(run_dir, step, user, decision, reason, as_json, settings)


@app.command("approve")
def approve_cmd(
    run: RunArg,
    step: StepArg,
    as_user: Annotated[str | None, typer.Option("--as", help="Approve for this person (default: your login).")] = None,
    reason: Annotated[str, typer.Option("--reason", help="Why.")] = "",
    as_json: JsonOpt = False,
) -> None:
    """Approve a waiting approval step."""
    _answer(run, step, as_user, "approve", reason, as_json)


@app.command("reject")
def reject_cmd(
    run: RunArg,
    step: StepArg,
    reason: Annotated[str, typer.Option("--reason", help="Why (required).")],
    as_user: Annotated[str | None, typer.Option("--as", help="Reject for this person (default: your login's).")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Reject a waiting approval step: the run's dependent steps are skipped and the run is rejected."""
    if not reason.strip():
        raise UsageError("--reason must say why")
    _answer(run, step, as_user, "reject", reason, as_json)


@app.command("undo")
def undo_cmd(
    run: RunArg,
    step: Annotated[str | None, typer.Argument(help="Only this step's effects.")] = None,
    as_user: Annotated[str | None, typer.Option("--as", help="Who undoes (recorded; default: your login).")] = None,
    reason: Annotated[str, typer.Option("--reason", help="Why (recorded in the run and its report).")] = "",
    dry_run: Annotated[bool, typer.Option("--dry-run", help="List what would be undone; change nothing.")] = False,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation on a terminal.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Undo a run's undoable effects in reverse order (containment is only ever undone by this command)."""
    import sys

    from flows.engine.undo import undo_run

    by = f"user:{as_user.removeprefix('user:')}" if as_user else _login()
    settings = _settings()
    if step is not None:
        _check_undo_step(run, step, settings)
    if not dry_run and not yes and sys.stdin.isatty():
        planned = [o for o in undo_run(run, step, settings=settings, dry_run=True) if o.status == "would_undo"]
        if not planned:
            console.print("nothing to undo")
            return
        for o in planned:
            console.print(f"would undo {o.step}{'[' + o.item_key + ']' if o.item_key else ''} {o.action}", markup=False)
        if not typer.confirm(f"undo {len(planned)} effect(s) as {by}?", default=False):
            raise typer.Exit(1)
    outcomes = undo_run(run, step, settings=settings, by=by, reason=reason, dry_run=dry_run)
    if as_json:
        print_json([o.__dict__ for o in outcomes])
    else:
        if not outcomes:
            console.print("nothing to undo")
        for o in outcomes:
            console.print(
                f"{o.status:15} {o.step}{'[' + o.item_key + ']' if o.item_key else ''} {o.action}: {o.summary}",
                markup=False,
            )
    if any(o.status == "failed" for o in outcomes):
        raise typer.Exit(1)


def _check_undo_step(run: str, step: str, settings: Settings) -> None:
    from flows.cli.run_lookup import check_step_name
    from flows.engine.runs import find_run, read_run_json

    run_dir = find_run(run, settings)
    check_step_name(read_run_json(run_dir), step, run_dir.name)


def _login() -> str:
    import getpass

    try:
        return f"user:{getpass.getuser()}"
    except (KeyError, OSError):
        return "user:unknown"

"""What an approver is asked to approve: the plan of the steps behind an approval, and the ask itself.

:func:`preview` plans every step that needs the approval step (rendering its ``with`` and
``for_each`` with what the run knows so far, calling ``plan()``, never ``apply()``) and checks the
playbook's guards on their targets as a live run would. A step whose parameters depend on outputs
not known yet is listed as such. :func:`ask_approvers` sends the request with that plan to the
approvers through the chat notifier (``person`` kind) when one is loaded.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from flows.actions.control import ApprovalParams

if TYPE_CHECKING:
    from flows.engine.work import RunEnv

MAX_LINES = 40


def _items(step: Any, scope: dict[str, Any]) -> list[tuple[Any, str]]:
    from flows.engine.templates import render_value
    from flows.engine.units import item_key

    if step.for_each is None:
        return [(None, "")]
    items = render_value(step.for_each, scope, where=f"steps[{step.id}].for_each")
    if not isinstance(items, list):
        raise ValueError(f"steps[{step.id}].for_each is not a list")
    return [(item, item_key(item)) for item in items]


def preview(env: RunEnv, approval_step: str, scope: dict[str, Any]) -> tuple[str | None, list[dict[str, Any]]]:
    """The plan of the steps behind ``approval_step`` and the guard refusals it would meet.

    Returns the summary text (None when no step depends on the approval) and one detail per
    refusal (``step``, ``guard``, ``target``, ``message``).
    """
    from flows.engine.guards import check_plans
    from flows.engine.templates import render_value
    from flows.engine.units import build_params
    from flows.language.dag import dependencies

    deps = dependencies(env.playbook.steps)
    behind = [s for s in env.playbook.steps if approval_step in deps[s.id] and s.action != "approval"]
    if not behind:
        return None, []
    lines: list[str] = []
    refusals: list[dict[str, Any]] = []
    for step in behind:
        action = env.registry.get(step.action)
        try:
            plans = []
            for item, key in _items(step, scope):
                ctx = env.ctx.for_step(step.id, item, key)
                rendered = render_value(step.with_, {**scope, "item": item} if step.for_each else scope,
                                        where=f"steps[{step.id}].with")  # fmt: skip
                plans.append(action.plan(build_params(action, rendered, ctx), ctx))
        except Exception as e:  # outputs of steps that have not run yet: the plan is not known
            lines.append(f"{step.id} ({step.action}): plan not known before approval ({type(e).__name__}: {e})")
            continue
        for plan in plans:
            lines.append(f"{step.id}: {plan.summary}")
            lines.extend(f"  target {t.type}:{t.id}" for t in plan.targets)
            lines.extend(f"  change: {c}" for c in plan.changes)
        for refusal in check_plans(env.playbook.guards, plans, live=True):
            refusals.append({"step": step.id, **refusal.as_detail()})
            lines.append(f"  guard would refuse: {refusal.message}")
    if len(lines) > MAX_LINES:
        lines = [*lines[:MAX_LINES], f"... and {len(lines) - MAX_LINES} more lines"]
    return "\n".join(lines), refusals


def ask_approvers(env: RunEnv, step_id: str, params: ApprovalParams, summary: str | None) -> None:
    """Send the approval request, with the plan, to each approver through the chat notifier."""
    from flows.people.delivery import Sender, drill_channel
    from flows.people.notify import PageMessage, load_notifiers
    from flows.people.trees import expand

    ctx = env.ctx
    notifiers = ctx.services.get_or_create("people.notifiers", lambda: load_notifiers(ctx.settings))
    if "person" not in notifiers:
        return  # no chat: approvers answer with fireline approve; nothing to send
    directory = getattr(env.directory, "directory", None)
    if directory is None:
        return
    recipients = []
    for entry in params.approvers:
        kind, _, name = entry.partition(":")
        recipients.extend(expand(f"{'person' if kind == 'user' else 'group'}:{name}", directory))
    recipients = [r for r in recipients if r.slack_user_id or r.email]  # the chat notifier looks ids up by e-mail
    if not recipients:
        return
    message = PageMessage(
        run_id=ctx.run_id, incident_id=ctx.incident.id, step=step_id, level=0,
        text=f"Approval needed: {step_id}" + (f" ({params.reason})" if params.reason else ""),
        severity=ctx.incident.severity, mode=ctx.mode, ack_url_or_token=f"fireline approve {ctx.run_id} {step_id}",
        buttons=("approve", "reject"), plan_summary=summary,
    )  # fmt: skip
    emit = lambda t, d: env.emit(t, step_id, None, {**d, "approval": True})  # noqa: E731
    Sender(notifiers, ctx.mode, emit, ctx.secret, drill_channel(ctx.settings)).send_all(recipients, message)

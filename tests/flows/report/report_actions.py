"""Test-only actions for the report's fixed run records (registered by the record builder and tests).

They stand for the AWS actions without a cloud: ``reporttest.isolate`` (undoable containment of
an "instance" whose tags come from the params), ``reporttest.snapshot`` (evidence with real
bytes), ``reporttest.denied`` (fails the way an AWS AccessDenied does, through the same error
class), ``reporttest.leak`` (puts a secret value in its output and in its error, so the report's
redaction can be tested).
"""

from __future__ import annotations

import json

from flows.actions.context import ActionContext
from flows.actions.registry import Action, ActionKind, ActionParams, ActionResult, Plan, Target, UndoResult, action
from flows.errors import ActionError, IntegrationError


class InstanceParams(ActionParams):
    instance_id: str
    tags: dict[str, str] | None = None


class IsolateResult(ActionResult):
    instance_id: str
    quarantine_group_id: str
    previous_groups: list[str]


@action("reporttest.isolate", kind=ActionKind.CONTAINMENT, params=InstanceParams, result=IsolateResult)
class Isolate(Action[InstanceParams, IsolateResult]):
    """Isolate a pretend instance (undoable)."""

    def plan(self, params: InstanceParams, ctx: ActionContext) -> Plan:
        target = Target(type="aws:ec2:instance", id=params.instance_id, tags=params.tags)
        return Plan(action=self.name, summary=f"isolate {params.instance_id}", targets=[target],
                    changes=[f"{params.instance_id}: security groups -> sg-0quarantine"])  # fmt: skip

    def apply(self, params: InstanceParams, ctx: ActionContext) -> IsolateResult:
        return IsolateResult(summary=f"isolated {params.instance_id} on sg-0quarantine", instance_id=params.instance_id,
                             quarantine_group_id="sg-0quarantine", previous_groups=["sg-0web"])  # fmt: skip

    def undo(self, result: IsolateResult, ctx: ActionContext) -> UndoResult:
        return UndoResult(summary=f"restored {result.instance_id} to {', '.join(result.previous_groups)}")


class SnapshotResult(ActionResult):
    instance_id: str
    snapshots: dict[str, str]
    evidence_id: str


@action("reporttest.snapshot", kind=ActionKind.EVIDENCE, params=InstanceParams, result=SnapshotResult)
class Snapshot(Action[InstanceParams, SnapshotResult]):
    """Snapshot a pretend instance's volume and keep a description as evidence."""

    def plan(self, params: InstanceParams, ctx: ActionContext) -> Plan:
        target = Target(type="aws:ec2:instance", id=params.instance_id, tags=params.tags)
        return Plan(action=self.name, summary=f"snapshot {params.instance_id}", targets=[target], mutating=False)

    def apply(self, params: InstanceParams, ctx: ActionContext) -> SnapshotResult:
        suffix = params.instance_id.removeprefix("i-")
        snapshots = {f"vol-{suffix}": f"snap-{suffix}"}
        data = json.dumps({"instance": params.instance_id, "snapshots": snapshots}, sort_keys=True).encode()
        item = ctx.store_evidence_bytes(f"snapshots-{params.instance_id}.json", data)
        return SnapshotResult(summary=f"1 snapshot(s) of {params.instance_id}", instance_id=params.instance_id,
                              snapshots=snapshots, evidence_id=item.id)  # fmt: skip


@action("reporttest.denied", kind=ActionKind.CONTAINMENT, params=InstanceParams, result=IsolateResult)
class Denied(Action[InstanceParams, IsolateResult]):
    """Always refused by "AWS" for want of a permission."""

    def plan(self, params: InstanceParams, ctx: ActionContext) -> Plan:
        target = Target(type="aws:ec2:instance", id=params.instance_id, tags=params.tags)
        return Plan(action=self.name, summary=f"isolate {params.instance_id}", targets=[target])

    def apply(self, params: InstanceParams, ctx: ActionContext) -> IsolateResult:
        raise IntegrationError(
            f"modify instance {params.instance_id}: AccessDenied: User: arn:aws:iam::123456789012:user/fireline "
            f"is not authorized to perform: ec2:ModifyInstanceAttribute on resource: {params.instance_id}",
            details={"code": "AccessDenied"},
        )


class LeakParams(ActionParams):
    token: str
    fail: bool = False


class LeakResult(ActionResult):
    echoed: str
    api_token: str


@action("reporttest.leak", kind=ActionKind.CONTROL, params=LeakParams, result=LeakResult)
class Leak(Action[LeakParams, LeakResult]):
    """A careless action: its output and its error message carry the secret it was given."""

    def plan(self, params: LeakParams, ctx: ActionContext) -> Plan:
        return Plan(action=self.name, summary="use a token", mutating=False)

    def apply(self, params: LeakParams, ctx: ActionContext) -> LeakResult:
        if params.fail:
            raise ActionError(f"login refused for token {params.token}")
        return LeakResult(summary=f"used {params.token}", echoed=params.token, api_token=params.token)


class PageParams(ActionParams):
    message: str


class PageResult(ActionResult):
    acked_by: str


@action("reporttest.page", kind=ActionKind.NOTIFY, params=PageParams, result=PageResult)
class Page(Action[PageParams, PageResult]):
    """Emits the events the contact-tree escalation writes: a page, an SLO breach, an escalation, an ack."""

    def plan(self, params: PageParams, ctx: ActionContext) -> Plan:
        return Plan(action=self.name, summary="page the on-call", mutating=False)

    def apply(self, params: PageParams, ctx: ActionContext) -> PageResult:
        person = {"kind": "person", "id": "carol", "display": "Carol"}
        ctx.emit("page.sent", {"level": 0, "recipient": person, "channel": "slack", "ref": "C1/1.1"})
        ctx.emit("page.ack_slo_breached", {"seconds_unacknowledged": 300.0, "ack_slo": 300.0})
        ctx.emit("page.escalated", {"from": 0, "to": 1, "pass": 0, "because": "no ack within 300s"})
        dave = {**person, "id": "dave", "display": "Dave"}
        ctx.emit("page.sent", {"level": 1, "recipient": dave, "channel": "slack", "ref": "C1/1.2"})
        ctx.emit("page.acked", {"by": "dave", "via": "slack", "level": 1, "pass": 0, "seconds_to_ack": 420.0})
        return PageResult(summary="acknowledged by dave", acked_by="dave")

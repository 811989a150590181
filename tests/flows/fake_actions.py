"""Actions for linter and loader tests: one of each kind, independent of the shipped catalogue."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from flows.actions.context import ActionContext
from flows.actions.registry import Action, ActionKind, ActionParams, ActionResult, Plan, Registry, UndoResult, action
from flows.language.durations import Duration


class CollectParams(ActionParams):
    target: str
    depth: int = Field(default=1, ge=1, le=5)
    window: Duration = 300.0


class CollectResult(ActionResult):
    items: int = 0


@action("demo.evidence.collect", kind=ActionKind.EVIDENCE, params=CollectParams, result=CollectResult)
class Collect(Action[CollectParams, CollectResult]):
    """Collect evidence about a target."""

    def plan(self, params: CollectParams, ctx: ActionContext) -> Plan:
        return Plan(action=self.name, summary=f"collect {params.target}", mutating=False)

    def apply(self, params: CollectParams, ctx: ActionContext) -> CollectResult:
        return CollectResult(items=params.depth)


class IsolateParams(ActionParams):
    instance_id: str = Field(pattern=r"^i-[0-9a-f]+$")
    reason: str | None = None


class IsolateResult(ActionResult):
    instance_id: str


@action("demo.box.isolate", kind=ActionKind.CONTAINMENT, params=IsolateParams, result=IsolateResult)
class Isolate(Action[IsolateParams, IsolateResult]):
    """Isolate a box."""

    def plan(self, params: IsolateParams, ctx: ActionContext) -> Plan:
        return Plan(action=self.name, summary=f"isolate {params.instance_id}")

    def apply(self, params: IsolateParams, ctx: ActionContext) -> IsolateResult:
        return IsolateResult(instance_id=params.instance_id)

    def undo(self, result: IsolateResult, ctx: ActionContext) -> UndoResult:
        return UndoResult(summary=f"released {result.instance_id}")


class RestoreParams(ActionParams):
    model: str
    registry: Literal["sagemaker", "mlflow", "s3"] = "sagemaker"


class RestoreResult(ActionResult):
    version: str = ""


@action("demo.model.restore", kind=ActionKind.RECOVERY, params=RestoreParams, result=RestoreResult)
class Restore(Action[RestoreParams, RestoreResult]):
    """Restore a model."""

    def plan(self, params: RestoreParams, ctx: ActionContext) -> Plan:
        return Plan(action=self.name, summary=f"restore {params.model}")

    def apply(self, params: RestoreParams, ctx: ActionContext) -> RestoreResult:
        return RestoreResult(version="1")


def registry() -> Registry:
    """The control actions plus the three demo actions."""
    reg = Registry()
    reg.register_module("flows.actions.control")
    reg.register_module(__name__)
    return reg

"""Units of work: what the engine plans, guards and applies, whatever path asked for it.

A :class:`Unit` is anything that may change a target: a step (each item of a ``for_each`` is one
planned item of it) or one ``on_failure`` handler of a step. Every unit goes through the same two
functions, so no path can skip a rail:

- :func:`plan_items` renders nothing itself; it validates each item's parameters, calls ``plan()``
  with a time limit, and checks the guards on the targets of all items together;
- :func:`flows.engine.work.apply_item` writes the intent, runs the attempts (retries, timeout, the
  fence of an abandoned attempt), logs undoable effects to the saga and persists the result.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Collection
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError as PydanticValidationError

from flows.actions.context import ActionContext
from flows.actions.registry import Action, ActionParams, Plan
from flows.engine.fence import run_with_timeout
from flows.engine.guards import Refusal, check_plans, mutating_targets
from flows.errors import ActionError
from flows.language.spec import FailureHandler, RetryPolicy, Step

if TYPE_CHECKING:
    from flows.engine.work import RunEnv

_PLAIN_KEY = re.compile(r"^[A-Za-z0-9._:@-]{1,64}$")


def item_key(item: Any) -> str:
    """A short stable key per item: the item itself when it is a short plain string, else a hash."""
    if isinstance(item, str) and _PLAIN_KEY.match(item):
        return item
    canonical = json.dumps(item, sort_keys=True, separators=(",", ":"), default=str)
    return "h-" + hashlib.sha256(canonical.encode()).hexdigest()[:12]


_SECRET_REF = re.compile(r"^secret:[A-Za-z_][A-Za-z0-9_]*$")
PLAN_SECONDS = 60.0
"""Time limit of one ``plan()`` call when the step sets no ``timeout`` (plans read their targets)."""


@dataclass(frozen=True)
class Unit:
    """One unit of work of a step: the step itself, or its ``on_failure`` handler number ``handler``."""

    step_id: str
    action: str
    with_: dict[str, Any]
    retries: RetryPolicy | None = None
    timeout: float | None = None
    fan_out: bool = False
    concurrency: int = 1
    handler: int | None = None

    @classmethod
    def of_step(cls, step: Step) -> Unit:
        return cls(
            step.id,
            step.action,
            step.with_,
            step.retries,
            step.timeout,
            fan_out=step.for_each is not None,
            concurrency=step.concurrency or 1,
        )

    @classmethod
    def of_handler(cls, step: Step, index: int, handler: FailureHandler) -> Unit:
        """A handler runs once (no retries) under its step's ``timeout``."""
        return cls(step.id, handler.action, handler.with_, None, step.timeout, handler=index)

    @property
    def where(self) -> str:
        """Where the unit's ``with`` sits in the playbook, for error messages."""
        base = f"steps[{self.step_id}]"
        return f"{base}.on_failure[{self.handler}].with" if self.handler is not None else f"{base}.with"

    def key(self, item_key: str) -> str:
        """The durable key of one item of this unit (handlers have their own, apart from the step's items)."""
        return f"on_failure-{self.handler}" if self.handler is not None else item_key


@dataclass
class ItemResult:
    """The outcome of one step-item (or of a whole step without ``for_each``, or of a handler)."""

    status: str
    output: Any = None
    error: str | None = None
    error_type: str | None = None
    reused: bool = False


@dataclass
class PlannedItem:
    """One item of a unit, rendered and planned, ready to apply."""

    item: Any
    key: str
    params: ActionParams
    plan: Plan


def error_text(error: BaseException) -> str:
    return str(error) or type(error).__name__


def build_params(action: Action[Any, Any], rendered: dict[str, Any], ctx: ActionContext) -> ActionParams:
    """Validate rendered ``with`` values against the action's Params; resolve ``secret:NAME`` values.

    Secrets are resolved in live mode only: ``plan()`` never needs a secret's value, so dry-runs and
    drills neither require the secrets to exist nor ever hold them.
    """
    resolved = {
        k: ctx.secret(v) if ctx.live and isinstance(v, str) and _SECRET_REF.match(v) else v for k, v in rendered.items()
    }
    try:
        return action.Params.model_validate(resolved)
    except PydanticValidationError as e:
        first = e.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "with"
        raise ActionError(f"{action.name}: with.{where}: {first['msg']}") from e


def plan_items(
    env: RunEnv, unit: Unit, pending: list[tuple[Any, str, dict[str, Any]]], *, touched: Collection[str] = ()
) -> list[PlannedItem] | list[Refusal]:
    """Plan every pending item of a unit and check the guards on all of their targets together.

    Items are planned with the unit's concurrency: a plan usually reads its target (tags for the
    guards), and one read after another would dominate a large fan-out. Each ``plan()`` runs under
    the step's timeout (or :data:`PLAN_SECONDS`): a read that hangs fails the step instead of the
    run. ``touched`` names targets the step already touched (see :func:`check_plans`).
    """
    action = env.registry.get(unit.action)
    limit = unit.timeout if unit.timeout is not None else PLAN_SECONDS

    def plan_one(entry: tuple[Any, str, dict[str, Any]]) -> PlannedItem:
        item, key, rendered = entry
        ictx = env.ctx.for_step(unit.step_id, item, key)
        params = build_params(action, rendered, ictx)
        plan = run_with_timeout(lambda: action.plan(params, ictx), limit, ictx.cancel_event, f"plan of {unit.where}")
        return PlannedItem(item, key, params, plan)

    workers = min(unit.concurrency, len(pending))
    if workers > 1:
        import concurrent.futures

        with concurrent.futures.ThreadPoolExecutor(workers, thread_name_prefix=f"plan-{unit.step_id}") as pool:
            planned = list(pool.map(plan_one, pending))  # in item order; the first error propagates
    else:
        planned = [plan_one(entry) for entry in pending]
    refusals = check_plans(env.playbook.guards, [p.plan for p in planned], live=env.live, touched=touched)
    if refusals:
        for refusal in refusals:
            detail: dict[str, Any] = {**refusal.as_detail(), "mode": env.ctx.mode}
            if unit.handler is not None:
                detail.update(handler=unit.handler, action=unit.action)
            if not env.live:
                detail["would_refuse"] = True
            env.emit("guard.refused", unit.step_id, None, detail)
        if env.live:
            return refusals
    return planned


def planned_targets(planned: list[PlannedItem]) -> set[str]:
    """Labels of the targets that planned items would change (for ``max_targets`` across units)."""
    return set(mutating_targets([p.plan for p in planned]))

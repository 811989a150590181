"""A containment action for ``bench/storm.py``: its ``apply()`` writes the wall-clock time it ran.

Registered by the storm's server process only (``default_registry().register_module``), never built in.
"""

from __future__ import annotations

import time
from pathlib import Path

from pydantic import Field

from flows.actions.context import ActionContext
from flows.actions.registry import Action, ActionKind, ActionParams, ActionResult, Plan, Target, action


class MarkParams(ActionParams):
    folder: str = Field(description="Where the apply times go, one file per run.")
    host: str


class MarkResult(ActionResult):
    at: float


@action("bench.storm.contain", kind=ActionKind.CONTAINMENT, params=MarkParams, result=MarkResult)
class Mark(Action[MarkParams, MarkResult]):
    """Record when apply() ran (stands for isolating a host)."""

    def plan(self, params: MarkParams, ctx: ActionContext) -> Plan:
        return Plan(
            action=self.name,
            summary=f"contain {params.host}",
            targets=[Target(type="bench:host", id=params.host, tags={})],
        )

    def apply(self, params: MarkParams, ctx: ActionContext) -> MarkResult:
        at = time.time()
        path = Path(params.folder) / f"{ctx.run_id}.json"
        path.write_text(f'{{"host": "{params.host}", "at": {at}}}', encoding="utf-8")
        return MarkResult(changed=True, summary=f"contained {params.host}", at=at)

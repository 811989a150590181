"""CloudTrail evidence: the management events of a time window, filtered by user, resource or key."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any, Literal

from pydantic import Field, model_validator

from flows.actions.context import ActionContext
from flows.actions.registry import Action, ActionKind, ActionParams, ActionResult, Plan, action
from flows.language.durations import Duration
from integrations.aws.common import live_read, time_window
from integrations.aws.logs import span
from integrations.aws.session import client

LookupKey = Literal[
    "Username", "ResourceName", "AccessKeyId", "EventName", "EventSource", "ResourceType", "ReadOnly", "EventId"
]


class CollectEventsParams(ActionParams):
    start: datetime | None = Field(default=None, description="Default: end minus lookback.")
    end: datetime | None = Field(default=None, description="Default: now.")
    lookback: Duration = Field(default=3600.0, description="Window length when start is not given.")
    lookup: dict[LookupKey, str] = Field(default_factory=dict, description="At most one attribute (an API limit).")
    max_events: int = Field(default=5000, ge=1, le=100_000)
    region: str | None = None

    def window(self) -> tuple[datetime, datetime]:
        """(start, end) with the defaults applied, both timezone-aware."""
        return time_window(self.start, self.end, self.lookback)

    @model_validator(mode="after")
    def _window(self) -> CollectEventsParams:
        start, end = self.window()
        if end <= start:
            raise ValueError("end must be after start")
        if len(self.lookup) > 1:
            raise ValueError("CloudTrail LookupEvents takes at most one lookup attribute")
        return self


class CollectEventsResult(ActionResult):
    events: int
    truncated: bool = False
    evidence_id: str
    sha256: str


@action(
    "aws.cloudtrail.collect_events",
    kind=ActionKind.EVIDENCE,
    params=CollectEventsParams,
    result=CollectEventsResult,
    permissions=("cloudtrail:LookupEvents",),
)
class CollectEvents(Action[CollectEventsParams, CollectEventsResult]):
    """Preserve CloudTrail management events of a window as JSON Lines (one event a line, as CloudTrail wrote it)."""

    def plan(self, params: CollectEventsParams, ctx: ActionContext) -> Plan:
        where = ", ".join(f"{k}={v}" for k, v in params.lookup.items()) or "all events"
        return Plan(
            action=self.name,
            summary=f"collect CloudTrail events of {span(params.start, params.end, params.lookback)} ({where})",
            mutating=False,
            reads=[f"cloudtrail:LookupEvents {where}"],
        )

    def apply(self, params: CollectEventsParams, ctx: ActionContext) -> CollectEventsResult:
        trail = client(ctx, "cloudtrail", params.region)
        start, end = params.window()
        kwargs: dict[str, Any] = {"StartTime": start, "EndTime": end}
        if params.lookup:
            kwargs["LookupAttributes"] = [{"AttributeKey": k, "AttributeValue": v} for k, v in params.lookup.items()]
        lines: list[bytes] = []
        truncated = False

        def read() -> None:
            nonlocal truncated
            for page in trail.get_paginator("lookup_events").paginate(**kwargs):
                ctx.check_cancelled()
                for event in page.get("Events", []):
                    # CloudTrailEvent is the original record; keep it verbatim next to the summary fields.
                    lines.append(json.dumps(event, sort_keys=True, default=str).encode())
                    if len(lines) >= params.max_events:
                        truncated = True
                        return

        live_read("look up CloudTrail events", read)
        item = ctx.store_evidence_bytes(
            "cloudtrail-events.jsonl",
            b"\n".join(lines) + (b"\n" if lines else b""),
            description=f"CloudTrail events {kwargs.get('LookupAttributes', 'all')}",
            content_type="application/x-ndjson",
        )
        note = " (truncated at max_events)" if truncated else ""
        return CollectEventsResult(
            events=len(lines),
            truncated=truncated,
            evidence_id=item.id,
            sha256=item.sha256,
            summary=f"collected {len(lines)} CloudTrail event(s){note}",
        )

"""CloudTrail evidence: the management events of a time window, filtered by user, resource or key.

LookupEvents returns events newest first, two requests a second at most. A page that fails (a
throttle that outlasts botocore's retries), a repeated token or an endless run of empty pages ends
the reading: the events read are kept as evidence and the gap is recorded precisely (the part of the
window not covered: from the window's start to the oldest event read), then the step fails or warns
as ``on_gap`` says (:mod:`integrations.aws.pages`).
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any, Literal

from pydantic import Field, model_validator

from flows.actions.context import ActionContext
from flows.actions.registry import Action, ActionKind, ActionParams, ActionResult, Plan, action
from flows.language.durations import Duration
from flows.record.store import iso
from integrations.aws.common import time_window
from integrations.aws.logs import span
from integrations.aws.pages import Gap, OnGap, partial_name, read_pages, settle_gap
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
    on_gap: OnGap = Field(default="fail", description="When a page cannot be read: fail the step, or warn.")
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
    gap: Gap | None = Field(default=None, description="Where the reading stopped short (the events read are kept).")
    warnings: list[str] = Field(default_factory=list)


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
        read = read_pages(
            ctx,
            trail.lookup_events,
            kwargs,
            what="look up CloudTrail events",
            items_key="Events",
            token_in="NextToken",
            max_items=params.max_events,
        )
        # CloudTrailEvent is the original record; keep it verbatim next to the summary fields.
        lines = [json.dumps(event, sort_keys=True, default=str).encode() for event in read.items]
        truncated = read.truncated
        if read.gap is not None:
            # Newest first: what is missing is the start of the window, up to the oldest event read.
            oldest = min((e["EventTime"] for e in read.items if "EventTime" in e), default=end)
            read.gap.missing = {"from": iso(start), "to": iso(oldest)}
        item = ctx.store_evidence_bytes(
            partial_name("cloudtrail-events.jsonl", read.gap, ctx),
            b"\n".join(lines) + (b"\n" if lines else b""),
            description=f"CloudTrail events {kwargs.get('LookupAttributes', 'all')}",
            content_type="application/x-ndjson",
        )
        warnings = settle_gap(ctx, read.gap, params.on_gap, what="CloudTrail events", evidence_id=item.id)
        note = " (truncated at max_events)" if truncated else ""
        note += f" (INCOMPLETE: {read.gap.describe()})" if read.gap else ""
        return CollectEventsResult(
            events=len(lines),
            truncated=truncated,
            evidence_id=item.id,
            sha256=item.sha256,
            gap=read.gap,
            warnings=warnings,
            summary=f"collected {len(lines)} CloudTrail event(s){note}",
        )

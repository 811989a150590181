"""CloudWatch Logs evidence: the events of a log group in a window, optionally filtered.

FilterLogEvents may return empty pages with a token (it searches the window in chunks). A page that
fails, a repeated token or an endless run of empty pages ends the reading: the events read are kept
and the gap recorded (the part of the window after the newest event read), then the step fails or
warns as ``on_gap`` says (:mod:`integrations.aws.pages`).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from pydantic import Field, model_validator

from flows.actions.context import ActionContext
from flows.actions.registry import Action, ActionKind, ActionParams, ActionResult, Plan, action
from flows.language.durations import Duration
from flows.record.store import iso
from integrations.aws.common import arn, plan_read, time_window
from integrations.aws.pages import Gap, OnGap, partial_name, read_pages, settle_gap
from integrations.aws.session import client, known

LOG_GROUP = r"^[\.\-_/#A-Za-z0-9]{1,512}$"


class CollectLogsParams(ActionParams):
    log_group: str = Field(pattern=LOG_GROUP)
    start: datetime | None = Field(default=None, description="Default: end minus lookback.")
    end: datetime | None = Field(default=None, description="Default: now.")
    lookback: Duration = Field(default=3600.0, description="Window length when start is not given.")
    filter_pattern: str = ""
    log_stream_prefix: str | None = None
    max_events: int = Field(default=100_000, ge=1, le=10_000_000)
    on_gap: OnGap = Field(default="fail", description="When a page cannot be read: fail the step, or warn.")
    region: str | None = None

    def window(self) -> tuple[datetime, datetime]:
        """(start, end) with the defaults applied, both timezone-aware."""
        return time_window(self.start, self.end, self.lookback)

    @model_validator(mode="after")
    def _window(self) -> CollectLogsParams:
        start, end = self.window()
        if end <= start:
            raise ValueError("end must be after start")
        return self


class CollectLogsResult(ActionResult):
    log_group: str
    events: int
    truncated: bool = False
    evidence_id: str
    sha256: str
    gap: Gap | None = Field(default=None, description="Where the reading stopped short (the events read are kept).")
    warnings: list[str] = Field(default_factory=list)


def span(start: datetime | None, end: datetime | None, lookback: float) -> str:
    if start is None and end is None:
        return f"the last {lookback:g}s before the step runs"
    first, last = time_window(start, end, lookback)
    return f"{first.isoformat()} .. {last.isoformat()}"


def _ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


@action(
    "aws.logs.collect",
    kind=ActionKind.EVIDENCE,
    params=CollectLogsParams,
    result=CollectLogsResult,
    permissions=("logs:DescribeLogGroups", "logs:FilterLogEvents"),
)
class CollectLogs(Action[CollectLogsParams, CollectLogsResult]):
    """Preserve the events of a log group in a window as JSON Lines (timestamp, stream, message)."""

    def plan(self, params: CollectLogsParams, ctx: ActionContext) -> Plan:
        warnings: list[str] = []
        logs = client(ctx, "logs", params.region)
        groups = plan_read(
            ctx,
            f"read log group {params.log_group}",
            lambda: logs.describe_log_groups(logGroupNamePrefix=params.log_group)["logGroups"],
            warnings,
        )
        if groups is not None and not any(g["logGroupName"] == params.log_group for g in groups):
            warnings.append(f"log group {params.log_group} does not exist")
        where = f" matching {params.filter_pattern!r}" if params.filter_pattern else ""
        return Plan(
            action=self.name,
            summary=f"collect {params.log_group}{where}",
            mutating=False,
            warnings=warnings,
            reads=[f"{params.log_group} {span(params.start, params.end, params.lookback)}{where}"],
        )

    def apply(self, params: CollectLogsParams, ctx: ActionContext) -> CollectLogsResult:
        logs = client(ctx, "logs", params.region)
        start, end = params.window()
        kwargs: dict[str, Any] = {
            "logGroupName": params.log_group,
            "startTime": _ms(start),
            "endTime": _ms(end),
        }
        if params.filter_pattern:
            kwargs["filterPattern"] = params.filter_pattern
        if params.log_stream_prefix:
            kwargs["logStreamNamePrefix"] = params.log_stream_prefix
        read = read_pages(
            ctx,
            logs.filter_log_events,
            kwargs,
            what=f"read log group {params.log_group}",
            items_key="events",
            token_in="nextToken",
            max_items=params.max_events,
        )
        lines = [
            json.dumps(
                {
                    "timestamp": event["timestamp"],
                    "stream": event.get("logStreamName"),
                    "id": event.get("eventId"),
                    "message": event["message"],
                }
            ).encode()
            for event in read.items
        ]
        if read.gap is not None:
            newest = max((int(e["timestamp"]) for e in read.items), default=None)
            after = iso(datetime.fromtimestamp(newest / 1000, tz=UTC)) if newest is not None else iso(start)
            read.gap.missing = {"from": after, "to": iso(end)}
        name = params.log_group.strip("/").replace("/", "_") or "log-group"
        item = ctx.store_evidence_bytes(
            partial_name(f"{name}.jsonl", read.gap, ctx),
            b"\n".join(lines) + (b"\n" if lines else b""),
            source_arn=arn("logs", f"log-group:{params.log_group}", region=params.region or ""),
            description=f"CloudWatch Logs {params.log_group}",
            content_type="application/x-ndjson",
        )
        warnings = settle_gap(ctx, read.gap, params.on_gap, what=f"log group {params.log_group}", evidence_id=item.id)
        note = f" (INCOMPLETE: {read.gap.describe()})" if read.gap else ""
        return CollectLogsResult(
            log_group=params.log_group,
            events=len(lines),
            truncated=read.truncated,
            evidence_id=item.id,
            sha256=item.sha256,
            gap=read.gap,
            warnings=warnings,
            summary=f"collected {len(lines)} event(s) of {params.log_group}{note}",
        )

    def policy_statements(self, params: CollectLogsParams | None) -> list[dict[str, Any]]:
        group = known(params, "log_group")
        resource = arn("logs", f"log-group:{group}:*", region="*") if group else "*"
        return [
            {"Effect": "Allow", "Action": ["logs:DescribeLogGroups"], "Resource": "*"},
            {"Effect": "Allow", "Action": ["logs:FilterLogEvents"], "Resource": resource},
        ]

"""Helpers shared by the AWS action modules: reads during plan(), ARNs, evidence documents."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from flows.actions.context import ActionContext
from flows.errors import ActionError, IntegrationError
from flows.record.store import EvidenceItem, utcnow
from integrations.aws.session import NOT_FOUND_MARKERS, aws_errors, has_credentials

T = TypeVar("T")

NO_CREDENTIALS = "no AWS credentials: resources were not read, their tags are unknown"


def not_found(error: IntegrationError) -> bool:
    code = str(error.details.get("code", ""))
    return any(marker in code for marker in NOT_FOUND_MARKERS)


def plan_read(ctx: ActionContext, what: str, read: Callable[[], T], warnings: list[str]) -> T | None:
    """Run a read-only call for a plan; None (and a warning) when it cannot be made.

    A resource that does not exist is bad input and raises :class:`ActionError` at plan time, so
    a dry-run names it; any other failure (no credentials, no network) only makes the plan vaguer.
    """
    if not has_credentials(ctx):
        warnings.append(NO_CREDENTIALS)
        return None
    try:
        with aws_errors(what):
            return read()
    except IntegrationError as e:
        if not_found(e):
            raise ActionError(str(e), details=e.details) from e
        warnings.append(f"could not read ({e}); the plan is based on the parameters only")
        return None


def live_read(what: str, read: Callable[[], T]) -> T:
    """Run a call during apply(); a missing resource becomes a clear, non-retryable step error."""
    try:
        with aws_errors(what):
            return read()
    except IntegrationError as e:
        if not_found(e):
            raise ActionError(str(e), details=e.details) from e
        raise


def arn(service: str, resource: str, *, region: str = "", account: str = "*", partition: str = "aws") -> str:
    return f"arn:{partition}:{service}:{region}:{account}:{resource}"


def store_json(ctx: ActionContext, name: str, doc: Any, *, source_arn: str | None, description: str) -> EvidenceItem:
    """Preserve a JSON document as evidence (sorted keys, so a re-capture of the same state hashes the same)."""
    data = json.dumps(doc, indent=2, sort_keys=True, default=str).encode("utf-8")
    return ctx.store_evidence_bytes(name, data, source_arn=source_arn, description=description)


def time_window(start: datetime | None, end: datetime | None, lookback: float) -> tuple[datetime, datetime]:
    """A window from optional bounds: end defaults to now, start to end minus ``lookback`` seconds."""
    end = end or utcnow()
    start = start or end - timedelta(seconds=lookback)
    # Naive datetimes in a playbook mean UTC.
    return (start if start.tzinfo else start.replace(tzinfo=UTC)), (end if end.tzinfo else end.replace(tzinfo=UTC))


def strip_metadata(response: dict[str, Any]) -> dict[str, Any]:
    """A boto3 response without ResponseMetadata (request ids differ between calls)."""
    return {k: v for k, v in response.items() if k != "ResponseMetadata"}

"""Reading a paginated AWS listing for evidence without ever throwing away what was read.

botocore's paginators raise on an odd page (``PaginationError`` for a repeated token) or a call that
still fails after its retries (a throttle on page 7), and the events already read go with the
exception. Evidence collectors page here instead: an empty page with a token is followed (AWS
documents that CloudTrail and CloudWatch Logs may return those), a repeated token or a failed page
ends the reading, and the result keeps every item read plus a :class:`Gap` saying precisely where the
reading stopped. The collector stores the partial evidence, records the gap (result, run record
event ``evidence.gap``), and then fails or warns as the step's ``on_gap`` says.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from flows.actions.context import ActionContext
from flows.errors import ActionError, IntegrationError, StepTimeoutError
from integrations.aws.session import aws_errors

OnGap = Literal["fail", "warn"]
MAX_EMPTY_PAGES = 1000
"""Consecutive empty pages followed before the listing counts as stuck."""


class Gap(BaseModel):
    """Where a paginated reading stopped short, and why."""

    model_config = ConfigDict(extra="forbid")

    reason: Literal["page_failed", "repeated_token", "empty_pages", "timeout"]
    pages_read: int = Field(description="Pages read in full before the gap.")
    items_read: int
    next_token: str | None = Field(default=None, description="The token of the page that was not read.")
    error: str = ""
    code: str = Field(default="", description="The AWS error code of the page that failed.")
    missing: dict[str, Any] = Field(default_factory=dict, description="What was not read, collector-specific.")

    def describe(self) -> str:
        missing = ", ".join(f"{k} {v}" for k, v in self.missing.items())
        return (
            f"{self.reason} after {self.pages_read} page(s) and {self.items_read} item(s)"
            + (f"; missing {missing}" if missing else "")
            + (f" ({self.error})" if self.error else "")
        )


@dataclass
class PageRead:
    """The items of the pages read, and the gap when the reading stopped short."""

    items: list[Any] = field(default_factory=list)
    pages: int = 0
    gap: Gap | None = None
    truncated: bool = False  # stopped at max_items (asked for, so not a gap)


def read_pages(
    ctx: ActionContext,
    call: Callable[..., dict[str, Any]],
    kwargs: dict[str, Any],
    *,
    what: str,
    items_key: str,
    token_in: str,
    token_out: str | None = None,
    max_items: int | None = None,
) -> PageRead:
    """Call ``call(**kwargs, token_in=token)`` page after page; keep every item whatever happens."""
    out = PageRead()
    token: str | None = None
    seen: set[str] = set()
    empty = 0
    while True:
        try:
            ctx.check_cancelled()
            with aws_errors(f"{what} (page {out.pages + 1})"):
                page = call(**kwargs, **({token_in: token} if token else {}))
        except StepTimeoutError as e:
            out.gap = Gap(
                reason="timeout", pages_read=out.pages, items_read=len(out.items), next_token=token, error=str(e)
            )
            return out
        except IntegrationError as e:
            out.gap = Gap(
                reason="page_failed",
                pages_read=out.pages,
                items_read=len(out.items),
                next_token=token,
                error=str(e),
                code=str(e.details.get("code", "")),
            )
            return out
        out.pages += 1
        items = page.get(items_key, []) or []
        for item in items:
            out.items.append(item)
            if max_items is not None and len(out.items) >= max_items:
                out.truncated = True
                return out
        following = page.get(token_out or token_in)
        if not following:
            return out
        empty = 0 if items else empty + 1
        if following in seen or following == token:
            out.gap = Gap(
                reason="repeated_token", pages_read=out.pages, items_read=len(out.items), next_token=following
            )
            return out
        if empty >= MAX_EMPTY_PAGES:
            out.gap = Gap(reason="empty_pages", pages_read=out.pages, items_read=len(out.items), next_token=following)
            return out
        seen.add(following)
        token = following


def _transient(gap: Gap) -> bool:
    """A page that failed for a reason another attempt can outlast (a throttle, a network fault)."""
    from integrations.aws.session import CONFLICT_CODES, RETRYABLE_CODES

    return not gap.code or gap.code in RETRYABLE_CODES or gap.code in CONFLICT_CODES or "Timeout" in gap.code


def settle_gap(ctx: ActionContext, gap: Gap | None, on_gap: OnGap, *, what: str, evidence_id: str) -> list[str]:
    """Record a gap (event ``evidence.gap``) once the partial evidence is stored; fail or warn per ``on_gap``.

    Returns the warnings to put in the result (empty when there was no gap).
    """
    if gap is None:
        return []
    detail = {"what": what, "evidence_id": evidence_id, "on_gap": on_gap, **gap.model_dump(mode="json")}
    ctx.emit("evidence.gap", detail)
    message = f"{what}: evidence is incomplete: {gap.describe()}; the {gap.items_read} item(s) read are kept"
    if on_gap == "fail":
        # A retry reads the whole listing again into a new evidence item; the partial one stays.
        retryable = gap.reason == "timeout" or (gap.reason == "page_failed" and _transient(gap))
        raise ActionError(message, retryable=retryable, details={"gap": detail, "code": gap.code})
    ctx.log(message, gap=detail)
    return [message]


def partial_name(name: str, gap: Gap | None, ctx: ActionContext) -> str:
    """The evidence name: a partial reading gets its own item, so a retry's complete one never overwrites it."""
    if gap is None:
        return name
    stem, dot, ext = name.rpartition(".")
    return f"{stem}.partial-attempt-{ctx.attempt}{dot}{ext}" if dot else f"{name}.partial-attempt-{ctx.attempt}"

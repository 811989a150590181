"""Anchors: copies of a run record's sealed head kept where the run directory's editor cannot reach.

The seal (see :mod:`flows.record.seal`) stops an editor without the key. An anchor also stops one
with it, for as long as the anchor store keeps what it was given: with ``aws.evidence_bucket`` set,
every sealed head of run.json (line count and last hash of the event log, and the seal) is written
as the run progresses to ``fireline-anchors/<run id>/<count>-<hash>.json`` in that bucket, under
Object Lock retention in COMPLIANCE mode when the bucket has Object Lock enabled, so nobody can
delete or overwrite it before the retention ends. ``fireline audit verify`` then checks the local
chain against every anchored head.

The engine never imports the AWS integration: the sink is named by a module-name string in
:data:`SINKS` and loaded only when an evidence bucket is configured.
"""

from __future__ import annotations

import importlib
from typing import Any, Protocol

ANCHOR_PREFIX = "fireline-anchors"
SINKS = {"s3": "integrations.aws.record_anchor:S3AnchorSink"}


class AnchorSink(Protocol):
    """Where sealed heads are kept (append-only, ideally immutable)."""

    def put(self, run_id: str, head: dict[str, Any]) -> None:
        """Keep one head: ``{"count", "head_sha256", "seal"}``."""

    def heads(self, run_id: str) -> list[dict[str, Any]]:
        """Every head kept for the run, in any order."""


def anchor_sink(settings: Any) -> AnchorSink | None:
    """The sink the settings configure, or None (no evidence bucket)."""
    bucket = getattr(getattr(settings, "aws", None), "evidence_bucket", None)
    if not bucket:
        return None
    module, _, name = SINKS["s3"].partition(":")
    factory = getattr(importlib.import_module(module), name)
    sink: AnchorSink = factory(settings, bucket)
    return sink


def check_anchors(heads: list[dict[str, Any]], line_hashes: list[str], finished: bool) -> list[str]:
    """Problems between anchored heads and the local chain (``line_hashes[i]`` = sha256 of line i+1)."""
    problems: list[str] = []
    for head in sorted(heads, key=lambda h: int(h.get("count", 0))):
        count, digest = int(head.get("count", 0)), str(head.get("head_sha256", ""))
        if count > len(line_hashes):
            problems.append(f"an anchored head names line {count}, but events.jsonl has {len(line_hashes)} lines")
        elif count and line_hashes[count - 1] != digest:
            problems.append(f"line {count} of events.jsonl is not the line anchored with sha256 {digest[:12]}…")
    if finished and heads:
        last = max(int(h.get("count", 0)) for h in heads)
        if last != len(line_hashes):
            problems.append(f"the last anchored head is line {last}, the local log ends at line {len(line_hashes)}")
    return problems

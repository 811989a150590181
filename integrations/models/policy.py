"""The known-good policy: which registry version a rollback may deploy.

:func:`select_known_good` filters versions by their metadata first, newest first, and recomputes
the artifact digest of a candidate only once everything else about it qualifies, stopping at the
first that verifies. So among hundreds of versions only the few that matter are ever read. A digest
that differs from the attested one is kept as evidence of tampering.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, WithJsonSchema, field_validator, model_validator

from flows.actions.context import ActionContext
from flows.errors import ActionError
from flows.record.store import iso
from integrations.data.lineage import TAINTED_SCHEMA, LineageError, TaintedDataset, taint_of, tainted_list
from integrations.data.lineage_registries import date_taints, lineage
from integrations.models.base import (
    KEY_ATTESTED_AT,
    KEY_ATTESTED_BY,
    KEY_EVAL,
    KEY_KNOWN_GOOD,
    KEY_QUARANTINED,
    KEY_SHA256,
    ModelVersion,
    RegistryAdapter,
)


class KnownGoodPolicy(BaseModel):
    """Which versions qualify as known-good; every field has a safe default."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    approved: bool = Field(default=True, description="Only versions approved in the registry.")
    before: datetime | None = Field(
        default=None, description="Only versions created before this; default: incident start."
    )
    require_attestation: bool = Field(
        default=True, description="Only versions with fireline.known_good=true and a digest."
    )
    verify_digest: bool = Field(
        default=True, description="Recompute the artifact sha256 and compare it to the attested one."
    )
    attesters: list[str] | None = Field(default=None, description="Only attestations by these (e.g. the training CI).")
    min_eval: dict[str, float] = Field(default_factory=dict, description="Minimum values of attested eval metrics.")
    exclude: list[str] = Field(default_factory=list, description="Version ids never to pick.")
    max_digest_checks: int = Field(default=10, ge=1, le=1000, description="Stop after hashing this many candidates.")
    exclude_training_data: Annotated[list[TaintedDataset], WithJsonSchema(TAINTED_SCHEMA)] = Field(
        default_factory=list,
        description="Tainted datasets: URIs (uri[@sha256]), objects, or a data.blast_radius output.",
    )
    require_training_data: bool = Field(
        default=False, description="Only versions whose training data is recorded (attested or by the registry)."
    )

    @field_validator("exclude_training_data", mode="before")
    @classmethod
    def _tainted(cls, value: Any) -> list[TaintedDataset]:
        return tainted_list(value)

    @model_validator(mode="after")
    def _digest_needs_attestation(self) -> KnownGoodPolicy:
        if self.verify_digest and not self.require_attestation:
            raise ValueError("verify_digest needs require_attestation (the digest comes from the attestation)")
        return self


def training_data_reads(known_good: Any) -> dict[str, tuple[str, ...]]:
    """Per registry, the reads a known-good policy's training-data rules add (all of them while unknown).

    SageMaker lineage reads the training job a model package names; tainted version ids are dated
    by listing the data's object versions, whatever the registry.
    """
    if isinstance(known_good, KnownGoodPolicy):
        wanted = bool(known_good.exclude_training_data) or known_good.require_training_data
        dating = any(d.version_ids for d in known_good.exclude_training_data)
    elif isinstance(known_good, Mapping):  # iam-policy's unvalidated params: templates stay strings
        from integrations.data.radius import may_date

        raw = known_good.get("exclude_training_data")
        wanted = bool(raw) or bool(known_good.get("require_training_data"))
        entries = raw.get("datasets", raw) if isinstance(raw, Mapping) else raw
        entries = entries if isinstance(entries, list) else [entries]
        dating = any(may_date(e) for e in entries if e)
    else:  # None (every permission) or a template
        wanted = dating = True
    lineage_reads = ("sagemaker:DescribeTrainingJob",) if wanted else ()
    dating_reads = ("s3:ListBucketVersions",) if dating else ()
    return {"sagemaker": lineage_reads + dating_reads, "s3": dating_reads, "mlflow": dating_reads}


class Rejection(BaseModel):
    """Why one candidate version did not qualify."""

    model_config = ConfigDict(extra="forbid")

    version: str
    label: str
    reason: Literal[
        "created_after_cutoff",
        "not_approved",
        "quarantined",
        "not_attested",
        "attester_not_allowed",
        "eval_below_minimum",
        "excluded",
        "digest_mismatch",
        "artifact_unreadable",
        "digest_budget_spent",
        "tainted_training_data",
        "training_data_unreadable",
        "training_data_unknown",
    ]
    message: str


class Selection(BaseModel):
    """The outcome of the known-good policy over one registry."""

    model_config = ConfigDict(extra="forbid")

    chosen: dict[str, Any] | None = None
    sha256: str | None = None
    rejections: list[Rejection] = Field(default_factory=list)
    examined: int = 0
    hashed_bytes: int = 0
    digests_computed: int = 0
    cutoff: str | None = None
    warnings: list[str] = Field(default_factory=list, description="Tainted datasets whose version ids were not dated.")

    def refusal(self, target: str) -> str:
        """One paragraph naming every rejected candidate and why."""
        if not self.rejections:
            return f"no version of {target} qualifies as known-good: the registry has no versions"
        shown = "; ".join(f"{r.label}: {r.message}" for r in self.rejections[:20])
        more = f"; and {len(self.rejections) - 20} more" if len(self.rejections) > 20 else ""
        return (
            f"no version of {target} qualifies as known-good ({self.examined} examined, none qualifies): {shown}{more}"
        )


def _eval_metrics(meta: Mapping[str, str]) -> dict[str, Any]:
    raw = meta.get(KEY_EVAL)
    if not raw:
        return {}
    try:
        value = json.loads(raw)
    except json.JSONDecodeError:
        return {}
    return value if isinstance(value, dict) else {}


def metadata_rejection(version: ModelVersion, policy: KnownGoodPolicy, cutoff: datetime) -> tuple[str, str] | None:
    """The first policy rule a loaded version breaks, as (reason, message), or None."""
    meta = version.metadata or {}
    if version.id in policy.exclude:
        return "excluded", "excluded by the playbook"
    if not version.created_before(cutoff):
        return "created_after_cutoff", f"created {iso(version.created_at)}, not before the cut-off {iso(cutoff)}"
    if meta.get(KEY_QUARANTINED):
        return "quarantined", f"quarantined ({meta[KEY_QUARANTINED]})"
    if policy.approved and not version.approved:
        return "not_approved", "not approved in the registry"
    if policy.require_attestation:
        if meta.get(KEY_KNOWN_GOOD) != "true" or not meta.get(KEY_SHA256):
            return "not_attested", "carries no known-good attestation"
        if policy.attesters is not None and meta.get(KEY_ATTESTED_BY) not in policy.attesters:
            return "attester_not_allowed", f"attested by {meta.get(KEY_ATTESTED_BY)!r}, not one of {policy.attesters}"
        metrics = _eval_metrics(meta)
        for name, minimum in policy.min_eval.items():
            got = metrics.get(name)
            if not isinstance(got, int | float) or got < minimum:
                return "eval_below_minimum", f"eval {name}={got!r} is below the minimum {minimum}"
    return None


def _quick_rejection(version: ModelVersion, policy: KnownGoodPolicy, cutoff: datetime) -> tuple[str, str] | None:
    """Rules checkable from a listing alone (no metadata call)."""
    if version.id in policy.exclude:
        return "excluded", "excluded by the playbook"
    if not version.created_before(cutoff):
        return "created_after_cutoff", f"created {iso(version.created_at)}, not before the cut-off {iso(cutoff)}"
    if policy.approved and version.approved is False:
        return "not_approved", "not approved in the registry"
    return None


def training_data_rejection(
    adapter: RegistryAdapter, version: ModelVersion, policy: KnownGoodPolicy
) -> tuple[str, str] | None:
    """Why ``version``'s training data disqualifies it, naming the dataset, or None.

    A version whose lineage cannot be read is rejected on its own; the walk goes on to older ones.
    """
    try:
        refs = lineage(adapter, version)
    except LineageError as e:
        return "training_data_unreadable", f"training data cannot be proven clean: {e}"
    hit = taint_of(refs, version.created_at, policy.exclude_training_data)
    if hit is not None:
        ref, bad = hit
        via = ref.source.split(":", 1)[0]
        return "tainted_training_data", f"trained on {ref.uri} ({via}), inside the tainted dataset {bad}"
    if policy.require_training_data and not refs:
        return "training_data_unknown", "its training data is recorded nowhere (attestation or registry lineage)"
    return None


def record_tampering(
    ctx: ActionContext, adapter: RegistryAdapter, version: ModelVersion, attested: str, actual: str
) -> None:
    """Keep a digest mismatch as evidence and as an event: someone changed an attested artifact."""
    finding = {
        "finding": "attested artifact digest mismatch",
        "target": adapter.target.label,
        "version": version.as_json(),
        "attested_sha256": attested,
        "recomputed_sha256": actual,
        "attested_by": (version.metadata or {}).get(KEY_ATTESTED_BY),
        "attested_at": (version.metadata or {}).get(KEY_ATTESTED_AT),
        "checked_at": iso(datetime.now(UTC)),
    }
    item = ctx.store_evidence_bytes(
        f"tampering-{version.id}.json",
        json.dumps(finding, indent=2, sort_keys=True).encode(),
        description=f"{version.label}: artifact digest differs from its known-good attestation",
    )
    ctx.emit(
        "model.tampering_detected",
        {
            "target": adapter.target.label,
            "version": version.id,
            "label": version.label,
            "artifact": version.artifact,
            "attested_sha256": attested,
            "recomputed_sha256": actual,
            "evidence": item.id,
        },
    )


def _dated(policy: KnownGoodPolicy, ctx: ActionContext, selection: Selection) -> KnownGoodPolicy:
    """``policy`` with its tainted version ids dated, as the blast radius dates them."""
    if not any(d.version_ids for d in policy.exclude_training_data):
        return policy
    dated, selection.warnings = date_taints(ctx, policy.exclude_training_data)
    return policy.model_copy(update={"exclude_training_data": dated})


def select_known_good(
    adapter: RegistryAdapter, policy: KnownGoodPolicy, ctx: ActionContext
) -> tuple[Selection, ModelVersion | None]:
    """Apply the policy newest first; stop at the first version whose artifact digest verifies."""
    cutoff = policy.before or ctx.incident.started_at
    if cutoff.tzinfo is None:
        cutoff = cutoff.replace(tzinfo=UTC)
    selection = Selection(cutoff=iso(cutoff))
    policy = _dated(policy, ctx, selection)
    start_bytes = adapter.bytes_read

    def reject(version: ModelVersion, reason: str, message: str) -> None:
        selection.rejections.append(Rejection(version=version.id, label=version.label, reason=reason, message=message))  # type: ignore[arg-type]  # reason comes from the Literal set above

    for listed in adapter.versions():  # a lazy listing: pages past the winner are never fetched
        ctx.check_cancelled()
        selection.examined += 1
        quick = _quick_rejection(listed, policy, cutoff)
        if quick is not None:
            reject(listed, *quick)
            continue
        version = adapter.load(listed)
        found = metadata_rejection(version, policy, cutoff)
        if found is None and (policy.exclude_training_data or policy.require_training_data):
            found = training_data_rejection(adapter, version, policy)
        if found is not None:
            reject(version, *found)
            continue
        attested = (version.metadata or {}).get(KEY_SHA256, "")
        if policy.verify_digest:
            if selection.digests_computed >= policy.max_digest_checks:
                reject(
                    version, "digest_budget_spent", f"not hashed: {policy.max_digest_checks} digests already computed"
                )
                continue
            try:
                actual = adapter.compute_digest(version)
            except ActionError as e:
                if e.code == "E401":  # the step's timeout: stop, do not mask it as a rejection
                    raise
                reject(version, "artifact_unreadable", f"artifact {version.artifact} cannot be read: {e}")
                continue
            selection.digests_computed += 1
            selection.hashed_bytes = adapter.bytes_read - start_bytes
            if actual != attested:
                record_tampering(ctx, adapter, version, attested, actual)
                reject(
                    version,
                    "digest_mismatch",
                    f"artifact digest mismatch: sha256 {actual[:12]}… is not the attested {attested[:12]}… (tampering)",
                )
                continue
        selection.chosen = version.as_json()
        selection.sha256 = attested or None
        return selection, version
    return selection, None

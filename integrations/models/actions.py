"""Model registry actions: ``model.rollback``, ``model.quarantine`` and ``model.verify``.

``model.rollback`` never deploys a version the known-good policy did not verify. It snapshots what
the target serves, chooses the newest qualifying version, deploys it (unless it already serves),
and quarantines the versions it replaced and any whose artifact no longer matches its attestation,
so no later automation promotes them again. When nothing qualifies it drains the target
(``on_refusal: drain``, the default) and fails, naming why each candidate was rejected. ``undo``
rolls forward to the snapshot and lifts the quarantine it wrote.
"""

from __future__ import annotations

import json
from typing import Any, Literal

from pydantic import Field, model_validator

from flows.actions.context import ActionContext
from flows.actions.registry import Action, ActionKind, ActionParams, ActionResult, Plan, UndoResult, action
from flows.errors import ActionError
from flows.language.durations import Duration
from integrations.aws.common import plan_read
from integrations.models.base import KEY_QUARANTINED, ServingState, TargetParams, load_adapter
from integrations.models.permissions import (
    S3_PERMISSIONS,
    S3_READ,
    S3_TAG_WRITE,
    SAGEMAKER_READ,
    SAGEMAKER_WRITE,
    SAGEMAKER_WRITE_READS,
    statements,
    target_of,
)
from integrations.models.policy import KnownGoodPolicy, Rejection, select_known_good
from integrations.models.verify import VerifyParams, VerifyResult, plan_verify, run_verify

__all__ = ["ModelCaptureRegistry", "ModelQuarantine", "ModelRollback", "ModelVerify", "VerifyParams", "VerifyResult"]


class RollbackParams(TargetParams):
    known_good: KnownGoodPolicy = Field(default_factory=KnownGoodPolicy)
    quarantine_replaced: bool = Field(default=True, description="Quarantine the versions the rollback replaced.")
    reason: str = Field(default="replaced by a known-good rollback", max_length=200)
    on_refusal: Literal["drain", "leave"] = Field(default="drain", description="What to do when nothing qualifies.")
    wait_timeout: Duration = Field(default=1800.0, description="sagemaker: how long to wait for InService.")

    @model_validator(mode="after")
    def _serving_target(self) -> RollbackParams:
        self.require_endpoint()
        return self


class RollbackResult(ActionResult):
    target: str
    registry: str
    chosen: dict[str, Any]
    sha256: str | None
    previous: ServingState
    changes: list[str] = Field(default_factory=list)
    quarantine_mark: str = Field(default="", description="The fireline.quarantined value this step wrote.")
    quarantined: list[str] = Field(
        default_factory=list, description="Versions this step quarantined (undo lifts them)."
    )
    rejections: list[Rejection] = Field(default_factory=list)
    target_params: dict[str, Any] = Field(default_factory=dict, description="The target, for undo.")


def target_fields(params: ActionParams) -> dict[str, Any]:
    """The target fields of a params model, as JSON, for results that undo needs."""
    data: dict[str, Any] = json.loads(params.model_dump_json(include=set(TargetParams.model_fields)))
    return data


def _preview(params: RollbackParams, ctx: ActionContext, warnings: list[str]) -> str | None:
    """Which version the policy would choose by its metadata alone (read-only; digests wait for apply).

    Not for MLflow: its client retries an unreachable server for minutes, which a plan must not do.
    """
    if params.registry == "mlflow":
        return None
    policy = params.known_good.model_copy(update={"verify_digest": False})

    def read() -> str:
        selection, chosen = select_known_good(load_adapter(params, ctx), policy, ctx)
        if chosen is None:
            return "by its metadata no version qualifies now: " + selection.refusal(params.label)
        return f"by its metadata {chosen.label} would be chosen now (its digest is verified at apply time)"

    return plan_read(ctx, f"list the versions of {params.label}", read, warnings)


def _snapshot(ctx: ActionContext, state: ServingState) -> ServingState:
    """Keep the pre-rollback state in the run record before changing anything; a re-run reuses it."""
    name = "pre-rollback-serving.json"
    existing = next((i for i in ctx.record.evidence.items if i.id == ctx.evidence_id(name)), None)
    if existing is not None:
        return ServingState.model_validate_json((ctx.record.dir / existing.location).read_bytes())
    ctx.store_evidence_bytes(
        name, state.model_dump_json(indent=2).encode(), description="what the target served before the rollback"
    )
    return state


@action(
    "model.rollback",
    kind=ActionKind.RECOVERY,
    params=RollbackParams,
    result=RollbackResult,
    permissions=(*SAGEMAKER_READ, *SAGEMAKER_WRITE, *SAGEMAKER_WRITE_READS, *S3_PERMISSIONS),
)
class ModelRollback(Action[RollbackParams, RollbackResult]):
    """Put a model back to the newest version proven known-good; quarantine what it replaces."""

    def policy_statements(self, params: RollbackParams | None) -> list[dict[str, Any]]:
        sagemaker = (*SAGEMAKER_READ, *SAGEMAKER_WRITE, *SAGEMAKER_WRITE_READS)
        return statements({"sagemaker": sagemaker, "s3": S3_PERMISSIONS}, params)

    def plan(self, params: RollbackParams, ctx: ActionContext) -> Plan:
        policy = params.known_good
        cutoff = (
            policy.before.isoformat()
            if policy.before
            else f"the incident start ({ctx.incident.started_at.isoformat()})"
        )
        rules = [f"created before {cutoff}"]
        if policy.approved:
            rules.append("approved")
        if policy.require_attestation:
            rules.append("attested known-good" + (f" by {', '.join(policy.attesters)}" if policy.attesters else ""))
        if policy.verify_digest:
            rules.append("artifact sha256 recomputed and equal to the attested one")
        changes = [
            f"choose the newest version of {params.label} that is " + ", ".join(rules) + ", not quarantined",
            f"deploy it to {params.label}",
        ]
        if params.quarantine_replaced:
            changes.append(
                f"quarantine the versions it replaces ({KEY_QUARANTINED} = '{ctx.incident.id}: {params.reason}')"
            )
        if params.on_refusal == "drain":
            changes.append(
                f"if no version qualifies: drain {params.label} and fail, naming why each candidate was rejected"
            )
        warnings: list[str] = []
        preview = _preview(params, ctx, warnings)
        return Plan(
            action=self.name,
            summary=f"roll {params.label} back to a verified known-good version",
            targets=[target_of(params)],
            changes=changes,
            reads=[preview] if preview else [],
            warnings=warnings,
        )

    def apply(self, params: RollbackParams, ctx: ActionContext) -> RollbackResult:
        ctx.require_live("model.rollback")
        adapter = load_adapter(params, ctx)
        previous = _snapshot(ctx, adapter.serving())
        selection, chosen = select_known_good(adapter, params.known_good, ctx)
        ctx.store_evidence_bytes(
            "known-good-selection.json",
            selection.model_dump_json(indent=2).encode(),
            description=f"known-good policy over {params.label}",
        )
        if chosen is None:
            drained = adapter.drain() if params.on_refusal == "drain" else []
            message = selection.refusal(params.label)
            ctx.emit(
                "model.rollback_refused",
                {"target": params.label, "drained": drained, "rejections": len(selection.rejections)},
            )
            raise ActionError(
                message + (" — the target was drained" if drained else ""),
                details={"rejections": [r.model_dump() for r in selection.rejections], "drained": drained},
            )
        now = adapter.serving()
        changes: list[str] = []
        if not adapter.is_serving(chosen, now):
            changes = adapter.deploy(chosen)
        mark = f"{ctx.incident.id}: {params.reason}"
        quarantined: list[str] = []
        # Nothing was replaced when the target already served the chosen version (an S3 key may
        # serve a restored copy of it under another version id).
        replaced = previous.versions if params.quarantine_replaced and not adapter.is_serving(chosen, previous) else []
        # A version whose artifact no longer matches its attestation was tampered with: whatever
        # serves, it must never be promoted again.
        tampered = [r.version for r in selection.rejections if r.reason == "digest_mismatch"]
        for vid in dict.fromkeys([*replaced, *tampered]):
            if vid != chosen.id:
                bad = adapter.version(vid)
                existing = (bad.metadata or {}).get(KEY_QUARANTINED)
                if existing is None:
                    adapter.write_metadata(bad, {KEY_QUARANTINED: mark})
                    changes.append(f"quarantined {bad.label}")
                if existing in (None, mark):  # ours, now or on an earlier attempt: undo lifts it
                    quarantined.append(vid)
        ctx.emit(
            "model.rolled_back",
            {"target": params.label, "version": chosen.id, "sha256": selection.sha256, "changed": bool(changes)},
        )
        summary = f"{params.label} serves {chosen.label} (sha256 {str(selection.sha256)[:12]}…)"
        return RollbackResult(
            changed=bool(changes),
            summary=summary if changes else f"{summary}; it already did",
            target=params.label,
            registry=params.registry,
            chosen=selection.chosen or {},
            sha256=selection.sha256,
            previous=previous,
            changes=changes,
            quarantined=quarantined,
            rejections=selection.rejections,
            target_params=target_fields(params),
            quarantine_mark=mark,
        )

    def undo(self, result: RollbackResult, ctx: ActionContext) -> UndoResult:
        adapter = load_adapter(TargetParams.model_validate(result.target_params), ctx)
        changes = adapter.restore(result.previous)
        for vid in result.quarantined:
            version = adapter.version(vid)
            if (version.metadata or {}).get(KEY_QUARANTINED) == result.quarantine_mark:
                adapter.write_metadata(version, {}, remove=[KEY_QUARANTINED])
                changes.append(f"lifted the quarantine of {version.label}")
        return UndoResult(changed=bool(changes), summary="; ".join(changes) or "nothing to roll forward")


class QuarantineParams(TargetParams):
    versions: list[str] = Field(default_factory=list, description="Version ids; empty: the versions serving now.")
    reason: str = Field(min_length=1, max_length=200)
    blast_radius: dict[str, Any] | None = Field(
        default=None, description="A data.blast_radius output: quarantine this target's versions in it."
    )


class QuarantineResult(ActionResult):
    target: str
    quarantined: list[str] = Field(default_factory=list)
    quarantine_mark: str = ""
    target_params: dict[str, Any] = Field(default_factory=dict)


@action(
    "model.quarantine",
    kind=ActionKind.CONTAINMENT,
    params=QuarantineParams,
    result=QuarantineResult,
    permissions=(*SAGEMAKER_READ, "sagemaker:UpdateModelPackage", *S3_READ, *S3_TAG_WRITE),
)
class ModelQuarantine(Action[QuarantineParams, QuarantineResult]):
    """Mark model versions quarantined so that no rollback or promotion picks them again."""

    def policy_statements(self, params: QuarantineParams | None) -> list[dict[str, Any]]:
        sagemaker = (*SAGEMAKER_READ, "sagemaker:UpdateModelPackage")
        return statements({"sagemaker": sagemaker, "s3": (*S3_READ, *S3_TAG_WRITE)}, params)

    def plan(self, params: QuarantineParams, ctx: ActionContext) -> Plan:
        which = ", ".join(params.versions) if params.versions else "the versions serving now"
        if params.blast_radius is not None:
            from integrations.data.radius import versions_for_target

            which = ", ".join([*params.versions, *versions_for_target(params.blast_radius, params)]) or "no version"
        return Plan(
            action=self.name,
            summary=f"quarantine {which} of {params.label}",
            targets=[target_of(params)],
            changes=[f"set {KEY_QUARANTINED} = '{ctx.incident.id}: {params.reason}' on {which}"],
        )

    def apply(self, params: QuarantineParams, ctx: ActionContext) -> QuarantineResult:
        ctx.require_live("model.quarantine")
        adapter = load_adapter(params, ctx)
        if params.blast_radius is not None:
            from integrations.data.radius import versions_for_target

            ids = [*params.versions, *versions_for_target(params.blast_radius, params)]
        else:
            ids = params.versions or adapter.serving().versions
        mark = f"{ctx.incident.id}: {params.reason}"
        done: list[str] = []
        written = 0
        for vid in ids:
            version = adapter.version(vid)
            existing = (version.metadata or {}).get(KEY_QUARANTINED)
            if existing is None:
                adapter.write_metadata(version, {KEY_QUARANTINED: mark})
                written += 1
            if existing in (None, mark):  # ours, now or on an earlier attempt: undo lifts it
                done.append(vid)
        ctx.emit("model.quarantined", {"target": params.label, "versions": done})
        return QuarantineResult(
            changed=bool(written),
            quarantine_mark=mark,
            summary=f"quarantined {len(done)} version(s) of {params.label}",
            target=params.label,
            quarantined=done,
            target_params=target_fields(params),
        )

    def undo(self, result: QuarantineResult, ctx: ActionContext) -> UndoResult:
        adapter = load_adapter(TargetParams.model_validate(result.target_params), ctx)
        lifted = []
        for vid in result.quarantined:
            version = adapter.version(vid)
            if (version.metadata or {}).get(KEY_QUARANTINED) == result.quarantine_mark:
                adapter.write_metadata(version, {}, remove=[KEY_QUARANTINED])
                lifted.append(vid)
        return UndoResult(changed=bool(lifted), summary=f"lifted the quarantine of {len(lifted)} version(s)")


@action(
    "model.verify",
    kind=ActionKind.RECOVERY,
    params=VerifyParams,
    result=VerifyResult,
    permissions=(*SAGEMAKER_READ, "sagemaker:InvokeEndpoint", *S3_READ),
)
class ModelVerify(Action[VerifyParams, VerifyResult]):
    """Check that a target serves the known-good digest, answers smoke inputs and shows no drift."""

    def policy_statements(self, params: VerifyParams | None) -> list[dict[str, Any]]:
        # Drift samples may come from S3 whatever the registry.
        sagemaker = (*SAGEMAKER_READ, "sagemaker:InvokeEndpoint", "s3:GetObjectVersion")
        return statements(
            {"sagemaker": sagemaker, "s3": S3_READ, "mlflow": ("s3:GetObject", "s3:GetObjectVersion")}, params
        )

    def plan(self, params: VerifyParams, ctx: ActionContext) -> Plan:
        return plan_verify(self.name, params, ctx, target_of(params))

    def apply(self, params: VerifyParams, ctx: ActionContext) -> VerifyResult:
        return run_verify(params, ctx)


class CaptureParams(TargetParams):
    max_versions: int = Field(
        default=50, ge=1, le=1000, description="The newest versions to record with their metadata."
    )


class CaptureResult(ActionResult):
    target: str
    evidence_id: str
    versions: int
    serving: list[str] = Field(default_factory=list)


@action(
    "model.capture_registry",
    kind=ActionKind.EVIDENCE,
    params=CaptureParams,
    result=CaptureResult,
    permissions=(*SAGEMAKER_READ, *S3_READ),
)
class ModelCaptureRegistry(Action[CaptureParams, CaptureResult]):
    """Preserve what a target serves and its registry's newest versions with their attestations."""

    def policy_statements(self, params: CaptureParams | None) -> list[dict[str, Any]]:
        return statements({"sagemaker": SAGEMAKER_READ, "s3": S3_READ}, params)

    def plan(self, params: CaptureParams, ctx: ActionContext) -> Plan:
        return Plan(
            action=self.name,
            summary=f"preserve {params.label} and its newest {params.max_versions} registry versions",
            targets=[target_of(params)],
            reads=[f"serving state of {params.label}", f"metadata of up to {params.max_versions} versions"],
            mutating=False,
        )

    def apply(self, params: CaptureParams, ctx: ActionContext) -> CaptureResult:
        adapter = load_adapter(params, ctx)
        doc = adapter.capture(params.max_versions)
        item = ctx.store_evidence_bytes(
            f"registry-{params.registry}.json",
            json.dumps(doc, indent=2, sort_keys=True, default=str).encode(),
            description=f"{params.label}: serving state and registry versions",
        )
        serving = list(doc.get("serving", {}).get("versions", []))
        return CaptureResult(
            changed=False,
            summary=f"preserved {params.label} and {len(doc['newest_versions'])} version(s)",
            target=params.label,
            evidence_id=item.id,
            versions=len(doc["newest_versions"]),
            serving=serving,
        )

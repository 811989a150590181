"""Model recovery actions: ``model.rollback`` and ``model.verify`` (``model.quarantine`` and
``model.capture_registry`` are in :mod:`integrations.models.registry_actions`).

``model.rollback`` never deploys a version the known-good policy did not verify. It snapshots what
the target serves, chooses the newest qualifying version, deploys it (unless it already serves),
and quarantines the versions it replaced and any whose artifact no longer matches its attestation,
so no later automation promotes them again. When nothing qualifies it drains the target
(``on_refusal: drain``, the default) and fails, naming why each candidate was rejected. ``undo``
rolls forward to the snapshot and lifts the quarantine it wrote.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, model_validator

from flows.actions.context import ActionContext
from flows.actions.registry import Action, ActionKind, ActionResult, Plan, UndoResult, action
from flows.errors import ActionError
from flows.language.durations import Duration
from integrations.models.base import KEY_QUARANTINED, ModelVersion, ServingState, TargetParams, load_adapter
from integrations.models.permissions import (
    S3_PERMISSIONS,
    S3_READ,
    SAGEMAKER_READ,
    SAGEMAKER_WRITE,
    SAGEMAKER_WRITE_READS,
    statements,
)
from integrations.models.plan_reads import mlflow_uri, registry_read, require_reachable, serving_read
from integrations.models.policy import KnownGoodPolicy, Rejection, Selection, select_known_good, training_data_reads
from integrations.models.registry_actions import ModelCaptureRegistry, ModelQuarantine, QuarantineParams, target_fields
from integrations.models.targets import read_target
from integrations.models.verify import VerifyParams, VerifyResult, plan_verify, run_verify

__all__ = [
    "ModelCaptureRegistry",
    "ModelQuarantine",
    "ModelRollback",
    "ModelVerify",
    "QuarantineParams",
    "VerifyParams",
    "VerifyResult",
]


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


def _preview(params: RollbackParams, ctx: ActionContext, warnings: list[str]) -> str | None:
    """Which version the policy would choose by its metadata alone (read-only; digests wait for apply).

    When by metadata alone no version qualifies, ``apply()`` will refuse too (the digest check and
    any quarantine written before it only reject more), so a dry-run or drill plan fails with the
    refusal apply would raise. A live plan only warns: its apply keeps the evidence and drains.
    Without credentials or a tracking URI nothing is read and nothing is guessed.
    """
    policy = params.known_good.model_copy(update={"verify_digest": False})

    def read() -> tuple[Selection, ModelVersion | None]:
        return select_known_good(load_adapter(params, ctx), policy, ctx)

    what = f"list the versions of {params.label}"
    if params.registry == "mlflow" and (uri := mlflow_uri(params, ctx, [])):
        require_reachable(uri, what)  # every read apply makes would fail the same way
    try:
        found = registry_read(params, ctx, what, read, warnings)
    except ActionError as e:  # a preview that cannot be made only makes the plan vaguer
        warnings.append(f"no preview of the choice: {e}")
        return None
    if found is None:
        return None
    selection, chosen = found
    if chosen is None and ctx.mode == "live":
        # apply() follows at once: it keeps the selection and the pre-rollback state as evidence,
        # drains when told to, and raises this refusal itself.
        warnings.append("by its metadata no version qualifies now: " + selection.refusal(params.label))
        return None
    if chosen is None:
        drained = " — a live run would drain the target" if params.on_refusal == "drain" else ""
        raise ActionError(
            f"{selection.refusal(params.label)} (by their metadata){drained}",
            details={"rejections": [r.model_dump() for r in selection.rejections]},
        )
    return f"by its metadata {chosen.label} would be chosen now (its digest is verified at apply time)"


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

    guidance = (
        "MLflow Model Registry: aliases (models:/NAME@ALIAS) and the deprecated stages (models:/NAME/STAGE); "
        "both are moved when both serve",
        "Amazon SageMaker API Reference, UpdateEndpoint and UpdateEndpointWeightsAndCapacities (waits for InService)",
    )
    caveats = (
        "Consumers that load a pinned version (models:/NAME/3, an S3 version id) are not redirected.",
        "Copies of the model already loaded in memory keep serving until their process reloads.",
    )

    def policy_statements(self, params: RollbackParams | None) -> list[dict[str, Any]]:
        sagemaker = (*SAGEMAKER_READ, *SAGEMAKER_WRITE, *SAGEMAKER_WRITE_READS)
        lineage = training_data_reads(getattr(params, "known_good", None))
        by_registry = {"sagemaker": sagemaker, "s3": S3_PERMISSIONS, "mlflow": ()}
        return statements({k: (*v, *lineage[k]) for k, v in by_registry.items()}, params)

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
            targets=[read_target(params, ctx, warnings)],
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
        warnings: list[str] = []
        serving = serving_read(params, ctx, warnings)  # an unreachable registry fails here, as apply would
        plan = plan_verify(self.name, params, ctx, read_target(params, ctx, warnings))
        reads = [serving, *plan.reads] if serving else plan.reads
        return plan.model_copy(update={"warnings": [*plan.warnings, *warnings], "reads": reads})

    def apply(self, params: VerifyParams, ctx: ActionContext) -> VerifyResult:
        return run_verify(params, ctx)

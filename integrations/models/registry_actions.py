"""Registry actions: ``model.quarantine`` marks versions never to serve again; ``model.capture_registry``
preserves what a target serves and its newest versions as evidence.
"""

from __future__ import annotations

import json
from typing import Any

from pydantic import Field

from flows.actions.context import ActionContext
from flows.actions.registry import Action, ActionKind, ActionResult, Plan, UndoResult, action
from integrations.aws.pages import Gap, OnGap, partial_name, settle_gap
from integrations.models.base import KEY_QUARANTINED, TargetParams, load_adapter
from integrations.models.permissions import S3_READ, S3_TAG_WRITE, SAGEMAKER_READ, statements
from integrations.models.plan_reads import serving_read
from integrations.models.targets import read_target


def target_fields(params: TargetParams) -> dict[str, Any]:
    """The target fields of a params model, as JSON, for results that undo needs."""
    data: dict[str, Any] = json.loads(params.model_dump_json(include=set(TargetParams.model_fields)))
    return data


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

    guidance = ("fireline's known-good contract: fireline.quarantined on the registry version (never qualifies)",)
    caveats = (
        "It marks versions; it does not stop them serving: drain the endpoint (aws.sagemaker.isolate_endpoint) "
        "or roll back (model.rollback) for that.",
        "Automation outside fireline that ignores fireline.quarantined can still promote the version.",
    )

    def policy_statements(self, params: QuarantineParams | None) -> list[dict[str, Any]]:
        sagemaker = (*SAGEMAKER_READ, "sagemaker:UpdateModelPackage")
        return statements({"sagemaker": sagemaker, "s3": (*S3_READ, *S3_TAG_WRITE)}, params)

    def plan(self, params: QuarantineParams, ctx: ActionContext) -> Plan:
        which = ", ".join(params.versions) if params.versions else "the versions serving now"
        warnings: list[str] = []
        if params.blast_radius is not None:
            from integrations.data.radius import versions_for_target

            which = ", ".join([*params.versions, *versions_for_target(params.blast_radius, params)]) or "no version"
        return Plan(
            action=self.name,
            summary=f"quarantine {which} of {params.label}",
            targets=[read_target(params, ctx, warnings)],
            warnings=warnings,
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


class CaptureParams(TargetParams):
    max_versions: int = Field(
        default=50, ge=1, le=1000, description="The newest versions to record with their metadata."
    )
    on_gap: OnGap = Field(default="fail", description="When a listing page cannot be read: fail the step, or warn.")


class CaptureResult(ActionResult):
    target: str
    evidence_id: str
    versions: int
    serving: list[str] = Field(default_factory=list)
    gap: Gap | None = Field(
        default=None, description="Where the version listing stopped short (what was read is kept)."
    )
    warnings: list[str] = Field(default_factory=list)


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
        warnings: list[str] = []
        serving = serving_read(params, ctx, warnings)  # an unreachable registry fails here, as apply would
        return Plan(
            action=self.name,
            summary=f"preserve {params.label} and its newest {params.max_versions} registry versions",
            targets=[read_target(params, ctx, warnings)],
            warnings=warnings,
            reads=[serving or f"serving state of {params.label}", f"metadata of up to {params.max_versions} versions"],
            mutating=False,
        )

    def apply(self, params: CaptureParams, ctx: ActionContext) -> CaptureResult:
        adapter = load_adapter(params, ctx)
        doc = adapter.capture(params.max_versions)
        gap = (
            Gap(
                pages_read=0,
                missing={"after_version": doc["gap"]["after_version"]},
                **{k: v for k, v in doc["gap"].items() if k in ("reason", "items_read", "error", "code")},
            )
            if "gap" in doc
            else None
        )
        item = ctx.store_evidence_bytes(
            partial_name(f"registry-{params.registry}.json", gap, ctx),
            json.dumps(doc, indent=2, sort_keys=True, default=str).encode(),
            description=f"{params.label}: serving state and registry versions",
        )
        serving = list(doc.get("serving", {}).get("versions", []))
        warnings = settle_gap(ctx, gap, params.on_gap, what=f"versions of {params.label}", evidence_id=item.id)
        return CaptureResult(
            gap=gap,
            warnings=warnings,
            changed=False,
            summary=f"preserved {params.label} and {len(doc['newest_versions'])} version(s)",
            target=params.label,
            evidence_id=item.id,
            versions=len(doc["newest_versions"]),
            serving=serving,
        )

"""``data.blast_radius``: every model version trained on tainted data, and whether it serves now.

For each configured registry target it lists the versions (newest first, at most ``max_versions``),
reads each one's training data (:func:`integrations.data.lineage_registries.lineage`: the attestation and the
registry's own lineage; no artifact is ever read or hashed) and keeps the versions whose datasets
overlap a tainted one. The result is stored as evidence (``blast-radius.json``) and is the step's
output, so later steps use it: ``steps.radius.output.models`` (every reached version),
``.targets`` (per target, its reached versions, for ``model.quarantine``) and ``.serving_targets``
(the targets that serve a reached version, for ``model.rollback``). A version whose lineage cannot
be read is listed under ``unknown`` with the reason; it never stops the walk.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Annotated, Any

from pydantic import Field, WithJsonSchema, field_validator

from flows.actions.context import ActionContext
from flows.actions.registry import Action, ActionKind, ActionParams, ActionResult, Plan, Target, action
from flows.errors import ActionError, IntegrationError
from flows.record.store import iso
from integrations.aws.session import is_template
from integrations.data.lineage import TAINTED_SCHEMA, LineageError, TaintedDataset, taint_of, tainted_list
from integrations.data.lineage_registries import lineage, mlflow_serving, resolve_since
from integrations.models.base import ModelVersion, RegistryAdapter, ServingState, TargetParams, load_adapter
from integrations.models.permissions import target_of

# What the walk reads, per registry (MLflow needs no AWS permission); no artifact is ever read.
REGISTRY_READS: dict[str, tuple[str, ...]] = {
    "sagemaker": (
        "sagemaker:ListModelPackages",
        "sagemaker:DescribeModelPackage",
        "sagemaker:DescribeTrainingJob",
        "sagemaker:DescribeEndpoint",
        "sagemaker:DescribeEndpointConfig",
        "sagemaker:DescribeModel",
    ),
    "s3": ("s3:ListBucketVersions", "s3:GetObject", "s3:GetObjectVersionTagging"),
    "mlflow": (),
}
DATASET_READS = ("s3:ListBucketVersions",)  # resolving tainted version ids to their write time
READ_PERMISSIONS = tuple(sorted({p for perms in REGISTRY_READS.values() for p in perms} | set(DATASET_READS)))


class BlastRadiusParams(ActionParams):
    datasets: Annotated[list[TaintedDataset], WithJsonSchema(TAINTED_SCHEMA)] = Field(
        min_length=1, description="Tainted datasets: uri[@sha256] or objects."
    )
    registries: list[TargetParams] = Field(min_length=1, description="The registry targets to search.")
    max_versions: int = Field(default=1000, ge=1, le=100_000, description="Newest versions read per target.")

    @field_validator("datasets", mode="before")
    @classmethod
    def _datasets(cls, value: Any) -> list[TaintedDataset]:
        return tainted_list(value)


class BlastRadiusResult(ActionResult):
    datasets: list[dict[str, Any]] = Field(default_factory=list)
    models: list[dict[str, Any]] = Field(default_factory=list, description="Every version trained on tainted data.")
    targets: list[dict[str, Any]] = Field(default_factory=list, description="Per target: its reached versions.")
    serving_targets: list[dict[str, Any]] = Field(default_factory=list, description="Targets serving a reached one.")
    unknown: list[dict[str, Any]] = Field(default_factory=list, description="Versions whose lineage is unreadable.")
    examined: int = 0
    evidence_id: str = ""


def _target_doc(target: TargetParams) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(target.model_dump_json())
    return {**doc, "label": target.label}


def _serving_via(
    adapter: RegistryAdapter, state: ServingState | None, extra: dict[str, list[str]]
) -> dict[str, list[str]]:
    """Version id -> how it serves (endpoint variant, alias, stage, latest S3 version)."""
    via = {k: list(v) for k, v in extra.items()}
    if state is None:
        return via
    target = adapter.target
    if adapter.registry == "sagemaker":
        weights = state.detail.get("weights", {})
        for variant, info in state.detail.get("variants", {}).items():
            if weights.get(variant, 0) > 0:
                via.setdefault(str(info["version"]), []).append(
                    f"endpoint {target.endpoint} variant {variant} (weight {weights[variant]:g})"
                )
    elif adapter.registry == "s3":
        for vid in [*state.versions, state.detail.get("restored_from")]:
            if vid:
                via.setdefault(str(vid), []).append(f"latest version of s3://{target.bucket}/{target.key}")
    return via


def _serving(adapter: RegistryAdapter) -> tuple[dict[str, list[str]], str | None]:
    """How each version serves, and a warning when that cannot be known."""
    try:
        extra: dict[str, list[str]] = {}
        if adapter.registry == "mlflow":
            return mlflow_serving(adapter), None
        if adapter.registry == "sagemaker" and not adapter.target.endpoint:
            return extra, f"{adapter.target.label}: no endpoint named, serving status unknown"
        return _serving_via(adapter, adapter.serving(), extra), None
    except (ActionError, IntegrationError) as e:
        if denied(e):
            raise
        return {}, f"{adapter.target.label}: serving status unknown: {e}"


def _entry(
    adapter: RegistryAdapter, version: ModelVersion, via: list[str], refs: list[Any], bad: str
) -> dict[str, Any]:
    return {
        "registry": adapter.registry,
        "target": _target_doc(adapter.target),
        "version": version.id,
        "label": version.label,
        "created_at": iso(version.created_at),
        "serving": bool(via),
        "serving_via": via,
        "trained_on": [r.as_json() for r in refs],
        "tainted_by": bad,
    }


def search(
    params: BlastRadiusParams,
    ctx: ActionContext,
    datasets: list[TaintedDataset],
    adapters: Callable[[TargetParams, ActionContext], RegistryAdapter] = load_adapter,
) -> tuple[BlastRadiusResult, list[str]]:
    """Walk every target's versions; return the result (without evidence) and warnings."""
    result = BlastRadiusResult(changed=False, datasets=[d.model_dump(mode="json") for d in datasets])
    warnings: list[str] = []
    for target in params.registries:
        adapter = adapters(target, ctx)
        via, warning = _serving(adapter)
        if warning:
            warnings.append(warning)
        reached: list[str] = []
        for count, listed in enumerate(adapter.versions()):
            if count >= params.max_versions:
                warnings.append(f"{target.label}: stopped after {params.max_versions} versions (max_versions)")
                break
            ctx.check_cancelled()
            result.examined += 1
            version = adapter.load(listed)
            try:
                refs = lineage(adapter, version)
            except LineageError as e:
                if denied(e):  # the run lacks a permission: every version would be unknown
                    raise ActionError(f"{target.label}: {e}", details=e.details) from e
                result.unknown.append(
                    {"target": target.label, "version": version.id, "label": version.label, "message": str(e)}
                )
                continue
            hit = taint_of(refs, version.created_at, datasets)
            if hit is not None:
                result.models.append(_entry(adapter, version, via.get(version.id, []), refs, hit[1]))
                reached.append(version.id)
        serving = [v for v in reached if via.get(v)]
        if reached:
            result.targets.append({**_target_doc(target), "versions": reached, "serving_versions": serving})
        if serving:
            result.serving_targets.append({**_target_doc(target), "versions": serving})
    return result, warnings


@action(
    "data.blast_radius",
    kind=ActionKind.EVIDENCE,
    params=BlastRadiusParams,
    result=BlastRadiusResult,
    permissions=READ_PERMISSIONS,
)
class DataBlastRadius(Action[BlastRadiusParams, BlastRadiusResult]):
    """Find every model version trained on tainted data and whether it serves now."""

    def plan(self, params: BlastRadiusParams, ctx: ActionContext) -> Plan:
        targets: list[Target] = [target_of(t) for t in params.registries]
        return Plan(
            action=self.name,
            summary=f"find the model versions trained on {', '.join(d.uri for d in params.datasets)}",
            targets=targets,
            reads=[
                f"the training data of the newest {params.max_versions} versions of {t.label}"
                for t in params.registries
            ],
            mutating=False,
        )

    def apply(self, params: BlastRadiusParams, ctx: ActionContext) -> BlastRadiusResult:
        datasets = [resolve_since(ctx, d) for d in params.datasets]
        result, warnings = search(params, ctx, datasets)
        doc = {**result.model_dump(mode="json"), "warnings": warnings, "searched": [t.label for t in params.registries]}
        item = ctx.store_evidence_bytes(
            "blast-radius.json",
            json.dumps(doc, indent=2, sort_keys=True).encode(),
            description="model versions trained on tainted data",
        )
        result.evidence_id = item.id
        serving = sum(1 for m in result.models if m["serving"])
        ctx.emit(
            "data.blast_radius", {"models": len(result.models), "serving": serving, "unknown": len(result.unknown)}
        )
        result.summary = (
            f"{len(result.models)} model version(s) trained on tainted data, {serving} serving now "
            f"({result.examined} examined"
            + (f", {len(result.unknown)} with unreadable lineage" if result.unknown else "")
            + ")"
        )
        return result

    def policy_statements(self, params: BlastRadiusParams | None) -> list[dict[str, Any]]:
        registries = getattr(params, "registries", None) if params is not None else None
        names = [r.get("registry") if isinstance(r, dict) else getattr(r, "registry", None) for r in registries or []]
        if not isinstance(registries, list) or not all(isinstance(n, str) and n in REGISTRY_READS for n in names):
            return [{"Effect": "Allow", "Action": list(READ_PERMISSIONS), "Resource": "*"}]  # a template: all
        wanted = {p for n in names for p in REGISTRY_READS[str(n)]}
        datasets = getattr(params, "datasets", None)
        if not isinstance(datasets, list) or any(may_date(d) for d in datasets):
            wanted |= set(DATASET_READS)
        return [{"Effect": "Allow", "Action": sorted(wanted), "Resource": "*"}] if wanted else []


def denied(error: ActionError | IntegrationError) -> bool:
    """Whether AWS refused the call for lack of a permission (moto answers SageMaker with a bare 403)."""
    code = str(error.details.get("code", ""))
    return code in ("AccessDenied", "AccessDeniedException", "UnauthorizedOperation") or (
        code == "403" and "not authorized" in str(error)
    )


def may_date(dataset: Any) -> bool:
    """Whether a tainted dataset entry may name version ids (read from S3 to date the taint)."""
    if isinstance(dataset, str):
        return is_template(dataset)
    if isinstance(dataset, dict):
        return bool(dataset.get("version_ids")) or any(is_template(v) for v in dataset.values())
    return bool(getattr(dataset, "version_ids", None))


def versions_for_target(radius: Any, target: TargetParams) -> list[str]:
    """The reached version ids of ``target`` in a blast radius output (``steps.radius.output``)."""
    models = radius.get("models", []) if isinstance(radius, dict) else list(radius or [])
    wanted = json.loads(target.model_dump_json())
    return [str(m["version"]) for m in models if isinstance(m, dict) and same_target(m.get("target") or {}, wanted)]


def same_target(a: dict[str, Any], b: dict[str, Any]) -> bool:
    """Whether two target documents name the same registry target (fields unset on one side are not compared)."""
    if a.get("registry") != b.get("registry"):
        return False
    keys = {"sagemaker": ("model_package_group", "endpoint"), "mlflow": ("model_name",), "s3": ("bucket", "key")}
    fields = keys.get(str(a.get("registry")), ())
    compared = [(a.get(f), b.get(f)) for f in fields if a.get(f) and b.get(f)]
    if a.get("registry") == "sagemaker":
        return bool(compared) and all(x == y for x, y in compared[:1])
    return bool(compared) and len(compared) == len(fields) and all(x == y for x, y in compared)

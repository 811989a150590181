"""The registry adapter interface, the attestation keys and the known-good policy.

Every registry (SageMaker model packages, MLflow model versions, S3 object versions) is reached
through one :class:`RegistryAdapter`. The policy (:func:`select_known_good`) only sees that
interface: it filters versions by their metadata first, newest first, and recomputes the artifact
digest of a candidate only once everything else about it qualifies, stopping at the first that
verifies. So among hundreds of versions only the few that matter are ever read.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from flows.actions import ActionParams
from flows.context import ActionContext
from flows.errors import ActionError
from flows.record import iso, sha256_bytes

# The attestation contract (DESIGN.md section 3).
KEY_KNOWN_GOOD = "fireline.known_good"
KEY_SHA256 = "fireline.sha256"
KEY_ATTESTED_BY = "fireline.attested_by"
KEY_ATTESTED_AT = "fireline.attested_at"
KEY_EVAL = "fireline.eval"
KEY_QUARANTINED = "fireline.quarantined"
# Registries without a native approval status (MLflow, S3) keep approval in this key.
KEY_APPROVED = "fireline.approved"
# Written on an S3 object version that a rollback copied back, naming the version it restored.
KEY_RESTORED_FROM = "fireline.restored_from"
ATTESTATION_KEYS = (KEY_KNOWN_GOOD, KEY_SHA256, KEY_ATTESTED_BY, KEY_ATTESTED_AT, KEY_EVAL)

RegistryName = Literal["sagemaker", "mlflow", "s3"]
CHUNK = 1 << 20


class TargetParams(ActionParams):
    """Where a model is served and registered; which fields apply depends on ``registry``."""

    registry: RegistryName
    endpoint: str | None = Field(default=None, description="sagemaker: the real-time endpoint.")
    model_package_group: str | None = Field(
        default=None, description="sagemaker: the group; default: the group of the model the endpoint serves."
    )
    execution_role_arn: str | None = Field(
        default=None, description="sagemaker: role of a new model; default: the current model's."
    )
    model_name: str | None = Field(default=None, description="mlflow: the registered model.")
    alias: str = Field(default="champion", description="mlflow: the serving alias.")
    tracking_uri: str | None = Field(default=None, description="mlflow: default: settings.models.mlflow_tracking_uri.")
    bucket: str | None = Field(default=None, description="s3: the bucket of the versioned artifact.")
    key: str | None = Field(default=None, description="s3: the artifact's key.")

    @model_validator(mode="after")
    def _target_present(self) -> TargetParams:
        if self.registry == "sagemaker" and not (self.endpoint or self.model_package_group):
            raise ValueError("registry 'sagemaker' needs endpoint (or model_package_group to attest only)")
        needed = {"sagemaker": (), "mlflow": ("model_name",), "s3": ("bucket", "key")}[self.registry]
        missing = [name for name in needed if not getattr(self, name)]
        if missing:
            raise ValueError(f"registry {self.registry!r} needs {', '.join(missing)}")
        return self

    @property
    def label(self) -> str:
        if self.registry == "sagemaker":
            return (
                f"sagemaker endpoint {self.endpoint}"
                if self.endpoint
                else f"sagemaker model package group {self.model_package_group}"
            )
        if self.registry == "mlflow":
            return f"mlflow model {self.model_name}@{self.alias}"
        return f"s3://{self.bucket}/{self.key}"


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

    @model_validator(mode="after")
    def _digest_needs_attestation(self) -> KnownGoodPolicy:
        if self.verify_digest and not self.require_attestation:
            raise ValueError("verify_digest needs require_attestation (the digest comes from the attestation)")
        return self


@dataclass(frozen=True)
class ModelVersion:
    """One registry version. ``metadata`` is None until the adapter loaded it (it can cost a call)."""

    id: str
    label: str
    created_at: datetime
    artifact: str
    approved: bool | None = None  # None: known only with the metadata
    metadata: Mapping[str, str] | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)
    # How coarse the registry's timestamp is (S3 lists whole seconds): the version was created
    # somewhere in [created_at, created_at + precision), and only the end of it is trusted.
    precision: timedelta = timedelta(0)

    def created_before(self, cutoff: datetime) -> bool:
        return self.created_at + self.precision <= cutoff

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "label": self.label,
            "created_at": iso(self.created_at),
            "artifact": self.artifact,
            "approved": self.approved,
            "metadata": dict(self.metadata or {}),
        }


class ServingState(BaseModel):
    """What a target serves at one moment; enough to put it back (undo rolls forward to it)."""

    model_config = ConfigDict(extra="forbid")

    versions: list[str] = Field(default_factory=list, description="Version ids that receive traffic.")
    detail: dict[str, Any] = Field(default_factory=dict, description="Registry-specific state for restore().")


class RegistryAdapter(ABC):
    """One model registry and serving target behind one interface."""

    registry: ClassVar[RegistryName]

    def __init__(self, target: TargetParams, ctx: ActionContext) -> None:
        self.target = target
        self.ctx = ctx
        self.bytes_read = 0  # artifact bytes streamed so far, for the benchmark and the selection report

    @abstractmethod
    def versions(self) -> list[ModelVersion]:
        """Every version, newest first, with whatever metadata is cheap to list."""

    @abstractmethod
    def load(self, version: ModelVersion) -> ModelVersion:
        """The version with its metadata and approval loaded."""

    @abstractmethod
    def version(self, version_id: str) -> ModelVersion:
        """One version by id, metadata loaded."""

    @abstractmethod
    def compute_digest(self, version: ModelVersion) -> str:
        """Stream the version's artifact and return its sha256 (the attestation definition)."""

    @abstractmethod
    def serving(self) -> ServingState:
        """What the target serves now."""

    @abstractmethod
    def deploy(self, version: ModelVersion) -> list[str]:
        """Make ``version`` the one served; return one line per change made."""

    @abstractmethod
    def restore(self, state: ServingState) -> list[str]:
        """Put back a state returned by :meth:`serving` earlier."""

    @abstractmethod
    def drain(self) -> list[str]:
        """Stop the target serving anything; return one line per change (empty when already drained)."""

    @abstractmethod
    def write_metadata(self, version: ModelVersion, updates: Mapping[str, str], remove: Iterable[str] = ()) -> None:
        """Merge ``updates`` into the version's metadata and drop the keys in ``remove``."""

    def set_approved(self, version: ModelVersion) -> None:
        """Mark the version approved (registries without an approval status use a metadata key)."""
        self.write_metadata(version, {KEY_APPROVED: "true"})

    def is_serving(self, version: ModelVersion, state: ServingState) -> bool:
        """Whether ``state`` already serves exactly ``version`` (a re-run then changes nothing)."""
        return state.versions == [version.id]

    def status(self) -> tuple[bool, str]:
        """Whether the target is up and serving, with a one-line reason."""
        state = self.serving()
        return (bool(state.versions), f"serving {', '.join(state.versions)}" if state.versions else "serving nothing")

    def invoke(self, payload: str, content_type: str) -> str:
        """Send one request to the serving model and return its answer (smoke tests)."""
        raise ActionError(f"smoke inputs need a serving runtime; the {self.registry} registry has none here")

    def describe(self) -> dict[str, Any]:
        """The target's configuration as evidence (registry-specific)."""
        return {"target": self.target.label, "serving": self.serving().model_dump(mode="json")}


def stream_sha256(chunks: Iterable[bytes], ctx: ActionContext | None = None) -> tuple[str, int]:
    """Hash a stream of chunks; the step's timeout is checked between chunks."""
    import hashlib

    digest = hashlib.sha256()
    size = 0
    for chunk in chunks:
        if ctx is not None:
            ctx.check_cancelled()
        digest.update(chunk)
        size += len(chunk)
    return digest.hexdigest(), size


def tree_digest(files: Mapping[str, str]) -> str:
    """The digest of a tree of files: sha256 of ``<relative path>\\0<file sha256>\\n`` sorted by path."""
    lines = "".join(f"{path}\0{files[path]}\n" for path in sorted(files))
    return sha256_bytes(lines.encode("utf-8"))


def attestation(
    sha256: str, by: str, eval_metrics: Mapping[str, Any] | None = None, at: datetime | None = None
) -> dict[str, str]:
    """The metadata keys ``fireline attest`` writes."""
    keys = {
        KEY_KNOWN_GOOD: "true",
        KEY_SHA256: sha256,
        KEY_ATTESTED_BY: by,
        KEY_ATTESTED_AT: iso(at or datetime.now(UTC)),
    }
    if eval_metrics:
        keys[KEY_EVAL] = json.dumps(dict(eval_metrics), separators=(",", ":"), sort_keys=True)
    return keys


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
    ]
    message: str


class Selection(BaseModel):
    """The outcome of the known-good policy over one registry."""

    model_config = ConfigDict(extra="forbid")

    chosen: dict[str, Any] | None = None
    sha256: str | None = None
    rejections: list[Rejection] = Field(default_factory=list)
    examined: int = 0
    total: int = 0
    hashed_bytes: int = 0
    digests_computed: int = 0
    cutoff: str | None = None

    def refusal(self, target: str) -> str:
        """One paragraph naming every rejected candidate and why."""
        if not self.rejections:
            return f"no version of {target} qualifies as known-good: the registry has no versions"
        shown = "; ".join(f"{r.label}: {r.message}" for r in self.rejections[:20])
        more = f"; and {len(self.rejections) - 20} more" if len(self.rejections) > 20 else ""
        return f"no version of {target} qualifies as known-good ({self.total} examined, none qualifies): {shown}{more}"


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


def select_known_good(
    adapter: RegistryAdapter, policy: KnownGoodPolicy, ctx: ActionContext
) -> tuple[Selection, ModelVersion | None]:
    """Apply the policy newest first; stop at the first version whose artifact digest verifies."""
    cutoff = policy.before or ctx.incident.started_at
    if cutoff.tzinfo is None:
        cutoff = cutoff.replace(tzinfo=UTC)
    listing = adapter.versions()
    selection = Selection(total=len(listing), cutoff=iso(cutoff))
    start_bytes = adapter.bytes_read

    def reject(version: ModelVersion, reason: str, message: str) -> None:
        selection.rejections.append(Rejection(version=version.id, label=version.label, reason=reason, message=message))  # type: ignore[arg-type]  # reason comes from the Literal set above

    for listed in listing:
        ctx.check_cancelled()
        selection.examined += 1
        quick = _quick_rejection(listed, policy, cutoff)
        if quick is not None:
            reject(listed, *quick)
            continue
        version = adapter.load(listed)
        found = metadata_rejection(version, policy, cutoff)
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


def load_adapter(target: TargetParams, ctx: ActionContext) -> RegistryAdapter:
    """The adapter for ``target.registry``; the module is imported only when needed."""
    if target.registry == "sagemaker":
        from integrations.models.sagemaker import SageMakerAdapter

        return SageMakerAdapter(target, ctx)
    if target.registry == "mlflow":
        from integrations.models.mlflow import MlflowAdapter

        return MlflowAdapter(target, ctx)
    from integrations.models.s3 import S3Adapter

    return S3Adapter(target, ctx)


def with_metadata(version: ModelVersion, metadata: Mapping[str, str], approved: bool | None = None) -> ModelVersion:
    """A copy of ``version`` with its metadata (and approval when given) filled in."""
    return replace(version, metadata=dict(metadata), approved=version.approved if approved is None else approved)

"""The registry adapter interface and the attestation keys.

Every registry (SageMaker model packages, MLflow model versions, S3 object versions) is reached
through one :class:`RegistryAdapter`; the known-good policy (:mod:`integrations.models.policy`)
only sees that interface.
"""

from __future__ import annotations

import base64
import json
import re
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from flows.actions.context import ActionContext
from flows.actions.registry import ActionParams
from flows.errors import ActionError
from flows.record.store import iso, sha256_bytes

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
# The datasets a version was trained on (integrations.data.lineage): JSON, split over numbered keys.
KEY_TRAINING_DATA = "fireline.training_data"
ATTESTATION_KEYS = (KEY_KNOWN_GOOD, KEY_SHA256, KEY_ATTESTED_BY, KEY_ATTESTED_AT, KEY_EVAL)

# S3 tag values and SageMaker CustomerMetadataProperties values allow only letters, digits, spaces and
# ``+ - = . _ : / @`` (1 to 256 characters): the compact JSON of fireline.eval is stored base64-encoded
# with the prefix ``base64:`` there, and other values lose the characters those services refuse.
_TAG_VALUE_BAD = re.compile(r"[^A-Za-z0-9 +\-=._:/@]")
_B64 = "base64:"


def encode_tag_value(key: str, value: str) -> str:
    """A value S3 tags and SageMaker metadata accept (eval metrics must stay under ~180 bytes of JSON)."""
    if key == KEY_EVAL or key.startswith(KEY_TRAINING_DATA):
        return _B64 + base64.b64encode(value.encode()).decode()
    return _TAG_VALUE_BAD.sub("_", value)[:256] or "_"


def decode_tag_value(value: str) -> str:
    """The value :func:`encode_tag_value` stored (decoded when base64)."""
    if value.startswith(_B64):
        try:
            return base64.b64decode(value[len(_B64) :], validate=True).decode()
        except ValueError:
            return value
    return value


RegistryName = Literal["sagemaker", "mlflow", "s3"]
CHUNK = 1 << 20


def hash_chunks(chunks: Iterable[bytes], ctx: ActionContext) -> tuple[str, int]:
    """The sha256 and size of an artifact read chunk by chunk, never whole.

    A step timeout stops it between chunks: artifacts can be gigabytes.
    """
    import hashlib

    digest = hashlib.sha256()
    size = 0
    for chunk in chunks:
        ctx.check_cancelled()
        digest.update(chunk)
        size += len(chunk)
    return digest.hexdigest(), size


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
    alias: str = Field(default="champion", description="mlflow: the serving alias (models:/NAME@ALIAS).")
    stage: str = Field(
        default="Production",
        description="mlflow: the serving stage (models:/NAME/STAGE, deprecated since MLflow 2.9 but still "
        "loaded); '' when consumers load by alias only.",
    )
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

    def require_endpoint(self) -> None:
        """For actions that serve: a SageMaker target must name its endpoint."""
        if self.registry == "sagemaker" and not self.endpoint:
            raise ValueError("registry 'sagemaker' needs endpoint")

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
    def versions(self) -> Iterator[ModelVersion]:
        """Every version, newest first, with whatever metadata is cheap to list; fetched lazily, page by page."""

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

    def other_pointers(self) -> dict[str, str]:
        """Pointers a consumer may load besides the target's own (label -> version id); none by default."""
        return {}

    def status(self) -> tuple[bool, str]:
        """Whether the target is up and serving, with a one-line reason."""
        state = self.serving()
        return (bool(state.versions), f"serving {', '.join(state.versions)}" if state.versions else "serving nothing")

    def invoke(self, payload: str, content_type: str) -> str:
        """Send one request to the serving model and return its answer (smoke tests)."""
        raise ActionError(f"smoke inputs need a serving runtime; the {self.registry} registry has none here")

    def capture(self, limit: int) -> dict[str, Any]:
        """Evidence of the target and the newest ``limit`` versions with their metadata.

        The listing is read page by page; a page that fails ends it, and the versions read so far
        are kept with a ``gap`` entry saying after which version the listing stopped and why.
        """
        from flows.errors import IntegrationError

        versions: list[dict[str, Any]] = []
        gap: dict[str, Any] | None = None
        try:
            for listed in self.versions():
                if len(versions) >= limit:
                    break
                self.ctx.check_cancelled()
                versions.append(self.load(listed).as_json())
        except IntegrationError as e:
            after = versions[-1]["id"] if versions else None
            gap = {"reason": "page_failed", "items_read": len(versions), "after_version": after, "error": str(e)}
            gap["code"] = str(e.details.get("code", ""))
        doc = {"registry": self.registry, **self.describe(), "newest_versions": versions}
        if gap is not None:
            doc["gap"] = gap
        return doc

    def describe(self) -> dict[str, Any]:
        """The target's configuration as evidence (registry-specific)."""
        return {"target": self.target.label, "serving": self.serving().model_dump(mode="json")}


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


# The adapters by module-name string: they import this module, so it must not import them.
_ADAPTERS: dict[str, tuple[str, str]] = {
    "sagemaker": ("integrations.models.sagemaker", "SageMakerAdapter"),
    "mlflow": ("integrations.models.mlflow", "MlflowAdapter"),
    "s3": ("integrations.models.s3", "S3Adapter"),
}


def load_adapter(target: TargetParams, ctx: ActionContext) -> RegistryAdapter:
    """The adapter for ``target.registry``; the module is imported only when needed."""
    import importlib

    module, name = _ADAPTERS[target.registry]
    adapter: RegistryAdapter = getattr(importlib.import_module(module), name)(target, ctx)
    return adapter


def with_metadata(version: ModelVersion, metadata: Mapping[str, str], approved: bool | None = None) -> ModelVersion:
    """A copy of ``version`` with its metadata (and approval when given) filled in."""
    return replace(version, metadata=dict(metadata), approved=version.approved if approved is None else approved)

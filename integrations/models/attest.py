"""Known-good attestation: stream a version's artifact, hash it, write the attestation keys.

Used by ``fireline attest`` (normally from the training pipeline's CI, after evaluation) and by the
sandbox seeding. The keys and the digest definitions are the contract in DESIGN.md section 3.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from flows.actions.context import ActionContext
from flows.errors import UsageError
from integrations.models.base import (
    KEY_QUARANTINED,
    ModelVersion,
    RegistryName,
    TargetParams,
    attestation,
    load_adapter,
)


class AttestOutcome(BaseModel):
    """What ``fireline attest`` wrote."""

    model_config = ConfigDict(extra="forbid")

    registry: str
    version: str
    label: str
    artifact: str
    sha256: str
    size_read: int
    keys: dict[str, str] = Field(default_factory=dict)
    approved: bool = False
    training_data: dict[str, str | None] = Field(default_factory=dict, description="Attested datasets: URI -> sha256.")


def parse_target(registry: RegistryName, target: str) -> tuple[TargetParams, str | None]:
    """The adapter target and version id named by a command-line target.

    sagemaker: a model package ARN (``arn:aws:sagemaker:…:model-package/<group>/<n>``);
    mlflow: ``<model name>/<version>`` or ``models:/<model name>/<version>``;
    s3: ``s3://bucket/key`` (the latest version) or ``s3://bucket/key?versionId=<id>``.
    """
    if registry == "sagemaker":
        if ":model-package/" not in target:
            raise UsageError(
                f"{target!r}: expected a model package ARN (arn:aws:sagemaker:...:model-package/<group>/<version>)"
            )
        group = target.split(":model-package/", 1)[1].split("/")[0]
        return TargetParams(registry="sagemaker", model_package_group=group), target
    if registry == "mlflow":
        name, _, version = target.removeprefix("models:/").rpartition("/")
        if not name or not version.isdigit():
            raise UsageError(f"{target!r}: expected <model name>/<version> or models:/<model name>/<version>")
        return TargetParams(registry="mlflow", model_name=name), version
    if not target.startswith("s3://") or "/" not in target[5:]:
        raise UsageError(f"{target!r}: expected s3://bucket/key[?versionId=...]")
    bucket, _, rest = target[5:].partition("/")
    key, _, version_id = rest.partition("?versionId=")
    return TargetParams(registry="s3", bucket=bucket, key=key), version_id or None


def attest(
    ctx: ActionContext,
    target: TargetParams,
    version_id: str | None,
    by: str,
    eval_metrics: Mapping[str, Any] | None = None,
    approve: bool = False,
    training_data: Sequence[str] = (),
) -> AttestOutcome:
    """Hash the version's artifact now and write the attestation keys (and approval when asked).

    ``training_data`` holds ``URI[@sha256]`` entries: an S3 prefix without a digest is digested now
    (:func:`integrations.data.lineage_registries.s3_prefix_digest`); another URI needs its digest.
    """
    from flows.errors import ActionError

    adapter = load_adapter(target, ctx)
    if version_id is None:
        serving = adapter.serving().versions
        if len(serving) != 1:
            raise ActionError(f"{target.label}: name one version (it serves {len(serving)})")
        version_id = serving[0]
    version: ModelVersion = adapter.version(version_id)
    if (version.metadata or {}).get(KEY_QUARANTINED):
        raise ActionError(
            f"{version.label} is quarantined ({(version.metadata or {})[KEY_QUARANTINED]}); it cannot be attested"
        )
    datasets = training_datasets(ctx, training_data)
    digest = adapter.compute_digest(version)
    keys = attestation(digest, by, eval_metrics)
    stale: list[str] = []
    if datasets:
        from integrations.data.lineage import encode_training_data, training_data_keys

        stale = training_data_keys(version.metadata or {})
        keys.update(encode_training_data(datasets))
    adapter.write_metadata(version, keys, remove=[k for k in stale if k not in keys])
    if approve:
        adapter.set_approved(adapter.version(version_id))
    return AttestOutcome(
        registry=target.registry,
        version=version.id,
        label=version.label,
        artifact=version.artifact,
        sha256=digest,
        size_read=adapter.bytes_read,
        keys=keys,
        approved=approve,
        training_data=datasets,
    )


def training_datasets(ctx: ActionContext, entries: Sequence[str]) -> dict[str, str | None]:
    """``URI[@sha256]`` entries as {uri: sha256}, digesting S3 prefixes given without one."""
    if not entries:
        return {}
    from integrations.data.lineage import split_dataset_arg
    from integrations.data.lineage_registries import s3_prefix_digest

    datasets: dict[str, str | None] = {}
    for entry in entries:
        uri, digest = split_dataset_arg(entry.strip())
        if digest is None:
            if not uri.startswith("s3://"):
                raise UsageError(f"--training-data {entry!r}: give the digest (URI@sha256) of a dataset outside S3")
            digest, _ = s3_prefix_digest(ctx, uri)
        datasets[uri] = digest
    return datasets

"""Lineage the registries record themselves, and the digest of an S3 dataset.

- MLflow: a run's dataset inputs (``mlflow.log_input`` / ``MlflowClient.log_inputs``). A dataset's
  ``source`` is JSON with a ``uri`` (S3, HTTP, file sources) or, for other source types, a string.
- SageMaker: ``MetadataProperties.GeneratedBy`` of a model package, when it names a training job
  (``arn:aws:sagemaker:<region>:<account>:training-job/<name>``), and the S3 URIs of that job's
  input channels (``DescribeTrainingJob`` ``InputDataConfig[].DataSource.S3DataSource.S3Uri``).
- S3 datasets: the digest of a prefix is the sha256 of the lines ``<key>\\0<version id>\\0<etag>\\n``
  of the latest version of every object under it, sorted by key (no object is read).
"""

from __future__ import annotations

import json
from datetime import UTC
from typing import Any

from flows.actions.context import ActionContext
from flows.errors import ActionError, IntegrationError
from flows.record.store import sha256_bytes
from integrations.aws.session import aws_errors, client
from integrations.data.lineage import DatasetRef, LineageError, TaintedDataset, decode_training_data
from integrations.models.base import ModelVersion, RegistryAdapter

TRAINING_JOB = ":training-job/"


def split_s3_uri(uri: str) -> tuple[str, str]:
    """``s3://bucket/prefix`` as (bucket, prefix); ActionError for anything else."""
    if not uri.startswith("s3://") or not uri[5:].split("/", 1)[0]:
        raise ActionError(f"{uri!r} is not an s3://bucket/prefix URI")
    bucket, _, prefix = uri[5:].partition("/")
    return bucket, prefix


def object_versions(ctx: ActionContext, uri: str, region: str | None = None) -> list[dict[str, Any]]:
    """Every object version and delete marker under an S3 URI (raises a one-line error when unreadable)."""
    bucket, prefix = split_s3_uri(uri)
    s3 = client(ctx, "s3", region)
    found: list[dict[str, Any]] = []
    try:
        with aws_errors(f"list the object versions of {uri}"):
            for page in s3.get_paginator("list_object_versions").paginate(Bucket=bucket, Prefix=prefix):
                ctx.check_cancelled()
                found += [{**v, "IsDeleteMarker": False} for v in page.get("Versions", [])]
                found += [{**m, "IsDeleteMarker": True} for m in page.get("DeleteMarkers", [])]
    except IntegrationError as e:
        raise ActionError(f"cannot read {uri}: {e}", details=e.details) from e
    return found


def s3_prefix_digest(ctx: ActionContext, uri: str, region: str | None = None) -> tuple[str, int]:
    """The dataset digest of an S3 prefix and how many objects it covers (their bytes are never read)."""
    digest, count = listing_digest(object_versions(ctx, uri, region))
    if not count:
        raise ActionError(f"{uri} holds no objects: nothing to attest")
    return digest, count


def listing_digest(listing: list[dict[str, Any]]) -> tuple[str, int]:
    """The digest of a ``ListObjectVersions`` listing: its latest live versions' lines, sorted by key."""
    latest = [v for v in listing if v.get("IsLatest") and not v.get("IsDeleteMarker")]
    lines = "".join(
        f"{v['Key']}\0{v.get('VersionId') or 'null'}\0{str(v.get('ETag', '')).strip(chr(34))}\n"
        for v in sorted(latest, key=lambda v: str(v["Key"]))
    )
    return sha256_bytes(lines.encode("utf-8")), len(latest)


def resolve_since(ctx: ActionContext, dataset: TaintedDataset, region: str | None = None) -> TaintedDataset:
    """``dataset`` with ``since`` set from its tainted version ids (their earliest write)."""
    if not dataset.version_ids:
        return dataset
    wanted = set(dataset.version_ids)
    stamps = {str(v.get("VersionId")): v["LastModified"] for v in object_versions(ctx, dataset.uri, region)}
    missing = sorted(wanted - set(stamps))
    if missing:
        raise ActionError(f"{dataset.uri}: no object version {', '.join(missing)} under that prefix")
    earliest = min(stamps[v] for v in wanted)
    earliest = earliest if earliest.tzinfo else earliest.replace(tzinfo=UTC)
    since = earliest if dataset.since is None else min(earliest, dataset.since)
    return dataset.model_copy(update={"since": since})


def date_taints(ctx: ActionContext, datasets: list[TaintedDataset]) -> tuple[list[TaintedDataset], list[str]]:
    """``datasets`` with ``since`` set from their version ids, for a known-good policy.

    A dataset whose version ids cannot be dated (an unreadable URI, ids not under it) stays undated,
    so it reaches every version trained on it: the policy then excludes more, never less. Each such
    dataset gives a warning.
    """
    dated: list[TaintedDataset] = []
    warnings: list[str] = []
    for dataset in datasets:
        try:
            dated.append(resolve_since(ctx, dataset))
        except ActionError as e:
            dated.append(dataset)
            warnings.append(f"{dataset.uri}: version ids not dated ({e}); every version trained on it is excluded")
    return dated, warnings


def lineage(adapter: RegistryAdapter, version: ModelVersion) -> list[DatasetRef]:
    """Every dataset ``version`` (metadata loaded) was trained on, from all sources the registry has."""
    refs = decode_training_data(version.metadata or {})
    if adapter.registry == "mlflow":
        refs += mlflow_dataset_inputs(adapter, version)
    elif adapter.registry == "sagemaker" and version.id.startswith("arn:"):
        refs += sagemaker_training_inputs(adapter, version)
    return refs


def mlflow_dataset_inputs(adapter: RegistryAdapter, version: ModelVersion) -> list[DatasetRef]:
    """The dataset inputs of the MLflow run that produced ``version`` (none when it has no run)."""
    from mlflow.exceptions import MlflowException

    run_id = version.extra.get("run_id")
    mlflow_client: Any = getattr(adapter, "client")  # noqa: B009 - the adapter's client property
    try:
        if not run_id:
            raw = mlflow_client.get_model_version(adapter.target.model_name, version.id)
            run_id = raw.run_id
        if not run_id:
            return []
        run = mlflow_client.get_run(run_id)
    except MlflowException as e:
        raise LineageError(f"the run of {version.label} cannot be read: {e.message}") from e
    refs: list[DatasetRef] = []
    for item in getattr(run.inputs, "dataset_inputs", None) or []:
        dataset = item.dataset
        uri = _mlflow_source_uri(str(dataset.source or ""))
        if uri:
            refs.append(
                DatasetRef(uri=uri, sha256=None, source=f"mlflow_dataset_input:{dataset.name}@{dataset.digest}")
            )
    return refs


def _mlflow_source_uri(source: str) -> str:
    try:
        parsed = json.loads(source)
    except json.JSONDecodeError:
        return source.strip()
    if isinstance(parsed, dict):
        for key in ("uri", "url", "path"):
            if isinstance(parsed.get(key), str):
                return str(parsed[key])
        return ""
    return parsed if isinstance(parsed, str) else ""


def sagemaker_training_inputs(adapter: RegistryAdapter, version: ModelVersion) -> list[DatasetRef]:
    """The S3 input channels of the training job a model package names in ``MetadataProperties``."""
    sm = client(adapter.ctx, "sagemaker")
    try:
        with aws_errors(f"describe model package {version.id}"):
            package = sm.describe_model_package(ModelPackageName=version.id)
        generated_by = str((package.get("MetadataProperties") or {}).get("GeneratedBy") or "")
        if TRAINING_JOB not in generated_by:
            return []
        job = generated_by.split(TRAINING_JOB, 1)[1]
        with aws_errors(f"describe training job {job}"):
            described = sm.describe_training_job(TrainingJobName=job)
    except IntegrationError as e:
        raise LineageError(f"the lineage of {version.label} cannot be read: {e}", details=e.details) from e
    refs = []
    for channel in described.get("InputDataConfig") or []:
        uri = ((channel.get("DataSource") or {}).get("S3DataSource") or {}).get("S3Uri")
        if uri:
            refs.append(DatasetRef(uri=str(uri), source=f"sagemaker_training_job:{job}/{channel.get('ChannelName')}"))
    return refs


def mlflow_serving(adapter: RegistryAdapter) -> dict[str, list[str]]:
    """For each version of an MLflow model, the aliases and the stage (other than None) it serves through."""
    from mlflow.exceptions import MlflowException

    mlflow_client: Any = getattr(adapter, "client")  # noqa: B009 - the adapter's client property
    name = str(adapter.target.model_name)
    via: dict[str, list[str]] = {}
    try:
        model = mlflow_client.get_registered_model(name)
        for alias, version in dict(model.aliases or {}).items():
            via.setdefault(str(version), []).append(f"alias {alias}")
        token = None
        while True:
            page = mlflow_client.search_model_versions(f"name='{name}'", max_results=200, page_token=token)
            for raw in page:
                stage = str(getattr(raw, "current_stage", None) or "None")
                if stage not in ("None", "Archived"):
                    via.setdefault(str(raw.version), []).append(f"stage {stage}")
            token = page.token
            if not token:
                break
    except MlflowException as e:
        raise IntegrationError(f"mlflow: read the aliases and stages of {name}: {e.message}") from e
    return via

"""The ``sagemaker`` registry: a model package group's versions, served by a real-time endpoint.

A model package version is a model version; its ``ModelDataUrl`` object is the artifact that is
hashed; ``CustomerMetadataProperties`` holds the attestation. The endpoint serves the package
versions of the production variants that carry weight. A rollback either shifts the weights to a
variant that already serves the known-good package (``UpdateEndpointWeightsAndCapacities``) or
creates a model from the package and an endpoint configuration and updates the endpoint to it
(``UpdateEndpoint``), then waits for ``InService``. Old configurations and models are kept, so undo
rolls forward to exactly what served before.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from flows.errors import ActionError
from integrations.aws.session import aws_errors, client, paginate
from integrations.models import sagemaker_deploy
from integrations.models.base import (
    CHUNK,
    ModelVersion,
    RegistryAdapter,
    ServingState,
    decode_tag_value,
    encode_tag_value,
    hash_chunks,
    with_metadata,
)


def split_s3_url(url: str) -> tuple[str, str]:
    if not url.startswith("s3://"):
        raise ActionError(f"model data {url!r} is not an s3:// URL")
    bucket, _, key = url[5:].partition("/")
    return bucket, key


class SageMakerAdapter(RegistryAdapter):
    """Model package versions behind a SageMaker real-time endpoint."""

    registry = "sagemaker"

    @property
    def sm(self) -> Any:
        return client(self.ctx, "sagemaker")

    @property
    def endpoint(self) -> str:
        if not self.target.endpoint:
            raise ActionError("this operation needs the endpoint name")
        return self.target.endpoint

    # -- reading ---------------------------------------------------------------------------
    def _describe_endpoint(self) -> dict[str, Any]:
        with aws_errors(f"describe endpoint {self.endpoint}"):
            found: dict[str, Any] = self.sm.describe_endpoint(EndpointName=self.endpoint)
        return found

    def _describe_config(self, name: str) -> dict[str, Any]:
        with aws_errors(f"describe endpoint config {name}"):
            found: dict[str, Any] = self.sm.describe_endpoint_config(EndpointConfigName=name)
        return found

    def _describe_model(self, name: str) -> dict[str, Any]:
        with aws_errors(f"describe model {name}"):
            found: dict[str, Any] = self.sm.describe_model(ModelName=name)
        return found

    def _describe_package(self, arn: str) -> dict[str, Any]:
        with aws_errors(f"describe model package {arn}"):
            found: dict[str, Any] = self.sm.describe_model_package(ModelPackageName=arn)
        return found

    @staticmethod
    def _container(model: Mapping[str, Any]) -> dict[str, Any]:
        container = model.get("PrimaryContainer") or (model.get("Containers") or [{}])[0]
        return dict(container)

    def _version_of_model(self, model_name: str) -> str:
        package = self._container(self._describe_model(model_name)).get("ModelPackageName")
        return str(package) if package else f"model:{model_name}"

    def _group(self) -> str:
        if self.target.model_package_group:
            return self.target.model_package_group
        for vid in self.serving().detail.get("variants", {}).values():
            if str(vid["version"]).startswith("arn:"):
                return str(self._describe_package(vid["version"])["ModelPackageGroupName"])
        raise ActionError(f"{self.target.label} serves no model package: name model_package_group in the playbook")

    def versions(self) -> Iterator[ModelVersion]:
        # The API sorts newest first; pages are fetched only as far as the policy reads.
        group = self._group()
        with aws_errors(f"list model packages of {group}"):
            summaries = paginate(
                self.sm,
                "list_model_packages",
                "ModelPackageSummaryList",
                ModelPackageGroupName=group,
                SortBy="CreationTime",
                SortOrder="Descending",
            )
            for summary in summaries:
                yield self._summary_version(summary)

    def _summary_version(self, raw: Mapping[str, Any]) -> ModelVersion:
        created = raw["CreationTime"]
        if created.tzinfo is None:
            created = created.replace(tzinfo=UTC)
        group = raw.get("ModelPackageGroupName") or self.target.model_package_group or "?"
        return ModelVersion(
            id=str(raw["ModelPackageArn"]),
            label=f"{group} v{raw.get('ModelPackageVersion', '?')}",
            created_at=created,
            artifact="",
            approved=raw.get("ModelApprovalStatus") == "Approved",
            precision=timedelta(milliseconds=1),
        )

    def load(self, version: ModelVersion) -> ModelVersion:
        return self.version(version.id)

    def version(self, version_id: str) -> ModelVersion:
        if version_id.startswith("model:"):
            # A model created without a package: no registry metadata, but its artifact can be hashed.
            model = self._describe_model(version_id[len("model:") :])
            created = model.get("CreationTime") or datetime.now(UTC)
            url = str(self._container(model).get("ModelDataUrl", ""))
            return ModelVersion(
                id=version_id, label=version_id, created_at=created, artifact=url, approved=False, metadata={}
            )
        raw = self._describe_package(version_id)
        containers = raw.get("InferenceSpecification", {}).get("Containers", [])
        url = str(containers[0].get("ModelDataUrl", "")) if containers else ""
        meta = {k: decode_tag_value(v) for k, v in (raw.get("CustomerMetadataProperties") or {}).items()}
        base = self._summary_version(raw)
        return with_metadata(
            ModelVersion(
                id=base.id,
                label=base.label,
                created_at=base.created_at,
                artifact=url,
                precision=base.precision,
                extra={"status": raw.get("ModelApprovalStatus")},
            ),
            meta,
            approved=raw.get("ModelApprovalStatus") == "Approved",
        )

    def compute_digest(self, version: ModelVersion) -> str:
        bucket, key = split_s3_url(version.artifact or self.version(version.id).artifact)
        with aws_errors(f"read {version.artifact}"):
            body = client(self.ctx, "s3").get_object(Bucket=bucket, Key=key)["Body"]
        with body:
            digest, size = hash_chunks(body.iter_chunks(CHUNK), self.ctx)
        self.bytes_read += size
        return digest

    def serving(self) -> ServingState:
        endpoint = self._describe_endpoint()
        config_name = str(endpoint["EndpointConfigName"])
        config = self._describe_config(config_name)
        live = {v["VariantName"]: v for v in endpoint.get("ProductionVariants", [])}
        weights: dict[str, float] = {}
        variants: dict[str, dict[str, Any]] = {}
        for variant in config.get("ProductionVariants", []):
            name = variant["VariantName"]
            weight = live.get(name, {}).get("CurrentWeight", variant.get("InitialVariantWeight", 1.0))
            weights[name] = float(weight)
            variants[name] = {"model": variant["ModelName"], "version": self._version_of_model(variant["ModelName"])}
        serving = sorted({variants[n]["version"] for n, w in weights.items() if w > 0})
        return ServingState(
            versions=serving,
            detail={
                "endpoint_config": config_name,
                "weights": weights,
                "variants": variants,
                "status": endpoint.get("EndpointStatus"),
            },
        )

    def status(self) -> tuple[bool, str]:
        status = str(self._describe_endpoint().get("EndpointStatus"))
        if status != "InService":
            return False, f"endpoint {self.endpoint} is {status}"
        return super().status()

    # -- changing (integrations.models.sagemaker_deploy does the work) ----------------------------
    def settle(self) -> None:
        """Wait until the endpoint accepts changes (``InService``): one mid-update refuses them."""
        sagemaker_deploy.settle(self)

    def update_endpoint(self, config_name: str) -> None:
        """Point the endpoint at another configuration (moto does not implement UpdateEndpoint)."""
        with aws_errors(f"update endpoint {self.endpoint} to {config_name}"):
            self.sm.update_endpoint(EndpointName=self.endpoint, EndpointConfigName=config_name)

    def wait_in_service(self) -> None:
        """Wait for ``InService`` after a change; fail on ``Failed`` or when the wait timeout passes."""
        sagemaker_deploy.wait_in_service(self)

    def deploy(self, version: ModelVersion) -> list[str]:
        return sagemaker_deploy.deploy(self, version)

    def restore(self, state: ServingState) -> list[str]:
        return sagemaker_deploy.restore(self, state)

    def drain(self) -> list[str]:
        return sagemaker_deploy.drain(self)

    def write_metadata(self, version: ModelVersion, updates: Mapping[str, str], remove: Iterable[str] = ()) -> None:
        self._update(version, updates, remove)

    def _update(
        self, version: ModelVersion, updates: Mapping[str, str], remove: Iterable[str] = (), status: str | None = None
    ) -> None:
        # Every update sends the whole metadata map and the approval status: moto replaces both with
        # what the request carries (AWS merges), so this is correct against either.
        raw = self._describe_package(version.id)
        current = {k: decode_tag_value(v) for k, v in (raw.get("CustomerMetadataProperties") or {}).items()}
        dropped = [k for k in remove if k in current]
        for name in dropped:
            current.pop(name)
        current.update(updates)
        args: dict[str, Any] = {
            "ModelPackageArn": version.id,
            "CustomerMetadataProperties": {k: encode_tag_value(k, v) for k, v in current.items()},
        }
        if dropped:
            args["CustomerMetadataPropertiesToRemove"] = dropped
        if status or raw.get("ModelApprovalStatus"):
            args["ModelApprovalStatus"] = status or raw["ModelApprovalStatus"]
        if not args["CustomerMetadataProperties"]:
            del args["CustomerMetadataProperties"]  # the API refuses an empty map
        with aws_errors(f"update model package {version.id}"):
            self.sm.update_model_package(**args)

    def set_approved(self, version: ModelVersion) -> None:
        self._update(version, {}, status="Approved")

    def invoke(self, payload: str, content_type: str) -> str:
        runtime = client(self.ctx, "sagemaker-runtime")
        with aws_errors(f"invoke endpoint {self.endpoint}"):
            answer = runtime.invoke_endpoint(
                EndpointName=self.endpoint, Body=payload.encode(), ContentType=content_type
            )
        body: bytes = answer["Body"].read()
        return body.decode("utf-8", errors="replace")

    def describe(self) -> dict[str, Any]:
        endpoint = {k: v for k, v in self._describe_endpoint().items() if k != "ResponseMetadata"}
        config = {
            k: v
            for k, v in self._describe_config(str(endpoint["EndpointConfigName"])).items()
            if k != "ResponseMetadata"
        }
        return {
            "target": self.target.label,
            "endpoint": endpoint,
            "endpoint_config": config,
            "serving": self.serving().model_dump(mode="json"),
        }

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

from flows.errors import ActionError, IntegrationError
from flows.record.store import sha256_bytes
from integrations.aws.session import aws_errors, client, paginate
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

KNOWN_GOOD_VARIANT = "known-good"
POLL_SECONDS = 15.0


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

    # -- changing ------------------------------------------------------------------------------
    def _set_weights(self, weights: Mapping[str, float]) -> None:
        desired = [{"VariantName": name, "DesiredWeight": weight} for name, weight in weights.items()]
        with aws_errors(f"update the variant weights of {self.endpoint}"):
            self.sm.update_endpoint_weights_and_capacities(
                EndpointName=self.endpoint, DesiredWeightsAndCapacities=desired
            )
        self.wait_in_service()

    def update_endpoint(self, config_name: str) -> None:
        """Point the endpoint at another configuration (moto does not implement UpdateEndpoint)."""
        with aws_errors(f"update endpoint {self.endpoint} to {config_name}"):
            self.sm.update_endpoint(EndpointName=self.endpoint, EndpointConfigName=config_name)

    def wait_in_service(self) -> None:
        """Poll until the endpoint is InService; fail on Failed or when the wait timeout passes."""
        import time

        timeout = float(getattr(self.target, "wait_timeout", 1800.0))
        give_up = time.monotonic() + timeout
        while True:
            self.ctx.check_cancelled()
            endpoint = self._describe_endpoint()
            status = endpoint.get("EndpointStatus")
            if status == "InService":
                return
            if status in ("Failed", "RollingBack", "OutOfService"):
                raise IntegrationError(
                    f"endpoint {self.endpoint} is {status}: {endpoint.get('FailureReason', 'no reason given')}"
                )
            if time.monotonic() > give_up:
                raise IntegrationError(f"endpoint {self.endpoint} still {status} after {timeout:g}s", retryable=True)
            self.ctx.sleep(POLL_SECONDS)

    def _names(self, version: ModelVersion) -> tuple[str, str]:
        token = sha256_bytes(f"{self.ctx.idempotency_key}/{version.id}".encode())[:8]
        number = version.id.rsplit("/", 1)[-1]
        group = version.id.rsplit("/", 2)[-2] if "/" in version.id else "model"
        model = f"fl-{group[:40]}-v{number}-{token}"
        config = f"fl-{self.endpoint[:40]}-v{number}-{token}"
        return model[:63].rstrip("-"), config[:63].rstrip("-")

    def _ensure_model(self, name: str, version: ModelVersion, template_model: str) -> None:
        with aws_errors(f"look up model {name}"):
            existing = [m for m in self.sm.list_models(NameContains=name).get("Models", []) if m["ModelName"] == name]
        if existing:
            return
        role = self.target.execution_role_arn or self._describe_model(template_model).get("ExecutionRoleArn")
        with aws_errors(f"create model {name} from {version.id}"):
            self.sm.create_model(
                ModelName=name,
                ExecutionRoleArn=role,
                PrimaryContainer={"ModelPackageName": version.id},
                Tags=[{"Key": "fireline:incident", "Value": self.ctx.incident.id}],
            )

    def _ensure_config(self, name: str, model: str, template: Mapping[str, Any]) -> None:
        with aws_errors(f"look up endpoint config {name}"):
            found = [
                c
                for c in self.sm.list_endpoint_configs(NameContains=name).get("EndpointConfigs", [])
                if c["EndpointConfigName"] == name
            ]
        if found:
            return
        variant = {
            k: v for k, v in template.items() if k in ("InstanceType", "InitialInstanceCount", "ServerlessConfig")
        }
        variant.update({"VariantName": KNOWN_GOOD_VARIANT, "ModelName": model, "InitialVariantWeight": 1.0})
        with aws_errors(f"create endpoint config {name}"):
            self.sm.create_endpoint_config(
                EndpointConfigName=name,
                ProductionVariants=[variant],
                Tags=[{"Key": "fireline:incident", "Value": self.ctx.incident.id}],
            )

    def deploy(self, version: ModelVersion) -> list[str]:
        state = self.serving()
        variants: dict[str, dict[str, Any]] = state.detail["variants"]
        holder = next((n for n, v in variants.items() if v["version"] == version.id), None)
        if holder is not None:
            weights = {n: (1.0 if n == holder else 0.0) for n in variants}
            self._set_weights(weights)
            return [f"shifted all traffic of {self.endpoint} to variant {holder} ({version.label}); others at weight 0"]
        config = self._describe_config(str(state.detail["endpoint_config"]))
        template = config["ProductionVariants"][0]
        model_name, config_name = self._names(version)
        self._ensure_model(model_name, version, str(template["ModelName"]))
        self._ensure_config(config_name, model_name, template)
        self.update_endpoint(config_name)
        self.wait_in_service()
        return [
            f"created model {model_name} from {version.label}",
            f"created endpoint config {config_name}",
            f"updated endpoint {self.endpoint} to {config_name} (was {state.detail['endpoint_config']})",
        ]

    def restore(self, state: ServingState) -> list[str]:
        now = self.serving()
        changes: list[str] = []
        wanted = str(state.detail["endpoint_config"])
        if now.detail["endpoint_config"] != wanted:
            self.update_endpoint(wanted)
            self.wait_in_service()
            changes.append(f"updated endpoint {self.endpoint} back to {wanted}")
            now = self.serving()
        weights: dict[str, float] = state.detail["weights"]
        if now.detail["weights"] != weights:
            self._set_weights(weights)
            changes.append(f"put the variant weights of {self.endpoint} back to {weights}")
        return changes

    def drain(self) -> list[str]:
        weights: dict[str, float] = self.serving().detail["weights"]
        if not any(w > 0 for w in weights.values()):
            return []
        self._set_weights(dict.fromkeys(weights, 0.0))
        return [f"drained endpoint {self.endpoint}: every variant at weight 0 (was {weights})"]

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

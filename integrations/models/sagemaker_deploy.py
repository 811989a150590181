"""Changing what a SageMaker endpoint serves: shift weights, or deploy a package through a new configuration.

Every change waits first for the endpoint to accept it: an endpoint that is ``Updating``,
``Creating``, ``SystemUpdating`` or ``RollingBack`` answers ``ValidationException: Cannot update
in-progress endpoint`` (SageMaker API Reference, UpdateEndpoint, UpdateEndpointWeightsAndCapacities).
After a change it waits for ``InService`` again. Both waits are bounded by the step's timeout and the
target's ``wait_timeout``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from flows.errors import ActionError, IntegrationError
from flows.record.store import sha256_bytes
from integrations.aws.session import aws_errors
from integrations.aws.stable import SAGEMAKER_ENDPOINT, wait_stable
from integrations.models.base import ModelVersion, ServingState

if TYPE_CHECKING:
    from integrations.models.sagemaker import SageMakerAdapter

KNOWN_GOOD_VARIANT = "known-good"


def _wait(adapter: SageMakerAdapter) -> None:
    seen: dict[str, Any] = {}

    def read() -> str:
        seen.clear()
        seen.update(adapter._describe_endpoint())
        return str(seen.get("EndpointStatus"))

    limit = float(getattr(adapter.target, "wait_timeout", 1800.0))
    try:
        wait_stable(adapter.ctx, SAGEMAKER_ENDPOINT, adapter.endpoint, read, limit=limit)
    except IntegrationError:
        raise
    except ActionError as e:
        reason = seen.get("FailureReason", "no reason given")
        raise IntegrationError(f"endpoint {adapter.endpoint} is {seen.get('EndpointStatus')}: {reason}") from e


def settle(adapter: SageMakerAdapter) -> None:
    """Before a change: wait until the endpoint is ``InService``."""
    _wait(adapter)


def wait_in_service(adapter: SageMakerAdapter) -> None:
    """After a change: wait until the endpoint is ``InService`` again."""
    _wait(adapter)


def set_weights(adapter: SageMakerAdapter, weights: Mapping[str, float]) -> None:
    settle(adapter)
    desired = [{"VariantName": name, "DesiredWeight": weight} for name, weight in weights.items()]
    with aws_errors(f"update the variant weights of {adapter.endpoint}"):
        adapter.sm.update_endpoint_weights_and_capacities(
            EndpointName=adapter.endpoint, DesiredWeightsAndCapacities=desired
        )
    wait_in_service(adapter)


def _names(adapter: SageMakerAdapter, version: ModelVersion) -> tuple[str, str]:
    token = sha256_bytes(f"{adapter.ctx.idempotency_key}/{version.id}".encode())[:8]
    number = version.id.rsplit("/", 1)[-1]
    group = version.id.rsplit("/", 2)[-2] if "/" in version.id else "model"
    model = f"fl-{group[:40]}-v{number}-{token}"
    config = f"fl-{adapter.endpoint[:40]}-v{number}-{token}"
    return model[:63].rstrip("-"), config[:63].rstrip("-")


def _ensure_model(adapter: SageMakerAdapter, name: str, version: ModelVersion, template_model: str) -> None:
    sm = adapter.sm
    with aws_errors(f"look up model {name}"):
        existing = [m for m in sm.list_models(NameContains=name).get("Models", []) if m["ModelName"] == name]
    if existing:
        return
    role = adapter.target.execution_role_arn or adapter._describe_model(template_model).get("ExecutionRoleArn")
    with aws_errors(f"create model {name} from {version.id}"):
        sm.create_model(
            ModelName=name,
            ExecutionRoleArn=role,
            PrimaryContainer={"ModelPackageName": version.id},
            Tags=[{"Key": "fireline:incident", "Value": adapter.ctx.incident.id}],
        )


def _ensure_config(adapter: SageMakerAdapter, name: str, model: str, template: Mapping[str, Any]) -> None:
    sm = adapter.sm
    with aws_errors(f"look up endpoint config {name}"):
        found = [
            c
            for c in sm.list_endpoint_configs(NameContains=name).get("EndpointConfigs", [])
            if c["EndpointConfigName"] == name
        ]
    if found:
        return
    variant = {k: v for k, v in template.items() if k in ("InstanceType", "InitialInstanceCount", "ServerlessConfig")}
    variant.update({"VariantName": KNOWN_GOOD_VARIANT, "ModelName": model, "InitialVariantWeight": 1.0})
    with aws_errors(f"create endpoint config {name}"):
        sm.create_endpoint_config(
            EndpointConfigName=name,
            ProductionVariants=[variant],
            Tags=[{"Key": "fireline:incident", "Value": adapter.ctx.incident.id}],
        )


def deploy(adapter: SageMakerAdapter, version: ModelVersion) -> list[str]:
    """Serve ``version``: shift all weight to a variant that serves it, or update to a new configuration."""
    state = adapter.serving()
    variants: dict[str, dict[str, Any]] = state.detail["variants"]
    holder = next((n for n, v in variants.items() if v["version"] == version.id), None)
    endpoint = adapter.endpoint
    if holder is not None:
        set_weights(adapter, {n: (1.0 if n == holder else 0.0) for n in variants})
        return [f"shifted all traffic of {endpoint} to variant {holder} ({version.label}); others at weight 0"]
    config = adapter._describe_config(str(state.detail["endpoint_config"]))
    template = config["ProductionVariants"][0]
    model_name, config_name = _names(adapter, version)
    _ensure_model(adapter, model_name, version, str(template["ModelName"]))
    _ensure_config(adapter, config_name, model_name, template)
    settle(adapter)
    adapter.update_endpoint(config_name)
    wait_in_service(adapter)
    return [
        f"created model {model_name} from {version.label}",
        f"created endpoint config {config_name}",
        f"updated endpoint {endpoint} to {config_name} (was {state.detail['endpoint_config']})",
    ]


def restore(adapter: SageMakerAdapter, state: ServingState) -> list[str]:
    """Put back the configuration and weights of an earlier :meth:`serving` state."""
    now = adapter.serving()
    changes: list[str] = []
    wanted = str(state.detail["endpoint_config"])
    if now.detail["endpoint_config"] != wanted:
        settle(adapter)
        adapter.update_endpoint(wanted)
        wait_in_service(adapter)
        changes.append(f"updated endpoint {adapter.endpoint} back to {wanted}")
        now = adapter.serving()
    weights: dict[str, float] = state.detail["weights"]
    if now.detail["weights"] != weights:
        set_weights(adapter, weights)
        changes.append(f"put the variant weights of {adapter.endpoint} back to {weights}")
    return changes


def drain(adapter: SageMakerAdapter) -> list[str]:
    """Every variant to weight 0 (empty when already drained)."""
    weights: dict[str, float] = adapter.serving().detail["weights"]
    if not any(w > 0 for w in weights.values()):
        return []
    set_weights(adapter, dict.fromkeys(weights, 0.0))
    return [f"drained endpoint {adapter.endpoint}: every variant at weight 0 (was {weights})"]

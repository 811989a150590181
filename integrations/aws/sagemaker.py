"""SageMaker actions: capture an endpoint as evidence; isolate it by draining traffic or deleting it.

Draining sets the weight of the chosen production variants to 0 so no request reaches them; the
endpoint, its configuration and its model stay in place for investigation, and ``undo`` puts the
weights back. Deleting removes the endpoint (the configuration and model are kept) after capturing
it as evidence, for when serving a tampered model for even one more request is unacceptable.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from flows.actions.context import ActionContext
from flows.actions.registry import Action, ActionKind, ActionParams, ActionResult, Plan, Target, UndoResult, action
from flows.errors import ActionError, IntegrationError
from integrations.aws.common import arn, live_read, plan_read, store_json
from integrations.aws.sagemaker_capture import CAPTURE_PERMISSIONS, capture_endpoint
from integrations.aws.session import aws_errors, client, known, tag_dict
from integrations.aws.stable import SAGEMAKER_ENDPOINT, wait_stable

ENDPOINT = r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}$"


def describe(ctx: ActionContext, name: str, region: str | None) -> dict[str, Any]:
    sm = client(ctx, "sagemaker", region)
    found: dict[str, Any] = live_read(f"describe endpoint {name}", lambda: sm.describe_endpoint(EndpointName=name))
    return found


def settled(
    ctx: ActionContext, name: str, region: str | None, *, accept: frozenset[str] = frozenset()
) -> dict[str, Any]:
    """The endpoint once it is ``InService`` (or in ``accept``): an endpoint mid-update refuses changes."""
    seen: dict[str, Any] = {}

    def read() -> str:
        seen.clear()
        seen.update(describe(ctx, name, region))
        return str(seen.get("EndpointStatus", "InService"))

    wait_stable(ctx, SAGEMAKER_ENDPOINT, name, read, accept=accept)
    return seen


def endpoint_target(ctx: ActionContext, name: str, region: str | None, warnings: list[str]) -> Target:
    sm = client(ctx, "sagemaker", region)

    def read() -> tuple[str, dict[str, str]]:
        endpoint_arn = str(describe(ctx, name, region)["EndpointArn"])
        return endpoint_arn, tag_dict(sm.list_tags(ResourceArn=endpoint_arn).get("Tags"))

    found = plan_read(ctx, f"describe endpoint {name}", read, warnings)
    return Target(
        type="aws:sagemaker:endpoint",
        id=name,
        region=region,
        arn=found[0] if found else None,
        tags=found[1] if found else None,
    )


def _resource(params: Any) -> str:
    name = known(params, "endpoint_name")
    return arn("sagemaker", f"endpoint/{name.lower()}", region="*") if name else "*"


class CaptureParams(ActionParams):
    endpoint_name: str = Field(pattern=ENDPOINT)
    region: str | None = None


class CaptureResult(ActionResult):
    endpoint_name: str
    evidence_id: str
    sha256: str
    models: list[str] = Field(default_factory=list)


@action(
    "aws.sagemaker.capture_endpoint",
    kind=ActionKind.EVIDENCE,
    params=CaptureParams,
    result=CaptureResult,
    permissions=CAPTURE_PERMISSIONS,
)
class CaptureEndpoint(Action[CaptureParams, CaptureResult]):
    """Preserve an endpoint, its configuration, its models and their model packages as one JSON document."""

    def plan(self, params: CaptureParams, ctx: ActionContext) -> Plan:
        warnings: list[str] = []
        target = endpoint_target(ctx, params.endpoint_name, params.region, warnings)
        return Plan(
            action=self.name,
            summary=f"capture endpoint {params.endpoint_name}",
            targets=[target],
            mutating=False,
            warnings=warnings,
            reads=[f"{params.endpoint_name}: endpoint, config, models, packages"],
        )

    def apply(self, params: CaptureParams, ctx: ActionContext) -> CaptureResult:
        doc = capture_endpoint(ctx, params.endpoint_name, params.region)
        item = store_json(
            ctx,
            f"sagemaker-{params.endpoint_name}.json",
            doc,
            source_arn=doc["endpoint"]["EndpointArn"],
            description="SageMaker endpoint, config, models and packages",
        )
        return CaptureResult(
            endpoint_name=params.endpoint_name,
            evidence_id=item.id,
            sha256=item.sha256,
            models=sorted(doc["models"]),
            summary=f"captured {params.endpoint_name} ({item.size} bytes)",
        )

    def policy_statements(self, params: CaptureParams | None) -> list[dict[str, Any]]:
        # Configurations, models and packages are named by the endpoint at run time.
        return [
            {
                "Effect": "Allow",
                "Action": ["sagemaker:DescribeEndpoint", "sagemaker:ListTags"],
                "Resource": _resource(params),
            },
            {
                "Effect": "Allow",
                "Action": sorted(set(CAPTURE_PERMISSIONS) - {"sagemaker:DescribeEndpoint"}),
                "Resource": "*",
            },
        ]


class IsolateEndpointParams(ActionParams):
    endpoint_name: str = Field(pattern=ENDPOINT)
    mode: Literal["drain", "delete"] = "drain"
    variants: list[str] | None = Field(default=None, description="Variants to drain; default: every variant.")
    region: str | None = None


class IsolateEndpointResult(ActionResult):
    endpoint_name: str
    mode: Literal["drain", "delete"]
    region: str | None = None
    previous_weights: dict[str, float] = Field(default_factory=dict)
    endpoint_config_name: str = ""
    evidence_id: str | None = None


ISOLATE_PERMISSIONS = (
    "sagemaker:DescribeEndpoint",
    "sagemaker:ListTags",
    "sagemaker:UpdateEndpointWeightsAndCapacities",
)


@action(
    "aws.sagemaker.isolate_endpoint",
    kind=ActionKind.CONTAINMENT,
    params=IsolateEndpointParams,
    result=IsolateEndpointResult,
    permissions=(*ISOLATE_PERMISSIONS, "sagemaker:DeleteEndpoint", *CAPTURE_PERMISSIONS),
    undo_permissions=("sagemaker:UpdateEndpointWeightsAndCapacities", "sagemaker:CreateEndpoint"),
)
class IsolateEndpoint(Action[IsolateEndpointParams, IsolateEndpointResult]):
    """Stop an endpoint serving: drain its variants' traffic to weight 0, or capture it and delete it.

    An endpoint that is mid-update (``Updating``, ``Creating``, ``SystemUpdating``, ``RollingBack``)
    refuses both; the action waits for ``InService`` within the step's timeout, then acts.
    """

    guidance = (
        "Amazon SageMaker API Reference, UpdateEndpointWeightsAndCapacities, DescribeEndpoint (EndpointStatus)",
        "AWS Security Incident Response Guide, containment by isolating the affected resource",
    )
    caveats = (
        "drain keeps the endpoint's instances running and its model in place: whoever can call "
        "UpdateEndpointWeightsAndCapacities or UpdateEndpoint can send traffic to it again "
        "(quarantine the principals that could).",
        "A deployment that finishes after the drain can restore weights: pair it with model.quarantine "
        "so the poisoned version is never promoted again.",
        "Not covered: batch transform jobs, asynchronous inference queues already accepted, "
        "copies of the model artifact in S3.",
    )

    def plan(self, params: IsolateEndpointParams, ctx: ActionContext) -> Plan:
        warnings: list[str] = []
        target = endpoint_target(ctx, params.endpoint_name, params.region, warnings)
        which = ", ".join(params.variants) if params.variants else "every variant"
        change = (
            f"{params.endpoint_name}: weight of {which} -> 0"
            if params.mode == "drain"
            else f"capture {params.endpoint_name} as evidence, then delete the endpoint (config and model kept)"
        )
        return Plan(
            action=self.name,
            summary=f"isolate endpoint {params.endpoint_name} ({params.mode})",
            targets=[target],
            changes=[change],
            warnings=warnings,
        )

    def apply(self, params: IsolateEndpointParams, ctx: ActionContext) -> IsolateEndpointResult:
        # Deleting a Failed or OutOfService endpoint is allowed; draining one is not.
        accept = frozenset({"Failed", "OutOfService"}) if params.mode == "delete" else frozenset()
        found = settled(ctx, params.endpoint_name, params.region, accept=accept)
        sm = client(ctx, "sagemaker", params.region)
        weights = {
            v["VariantName"]: float(v.get("CurrentWeight", v.get("DesiredWeight", 1.0)))
            for v in found.get("ProductionVariants", [])
        }
        result = IsolateEndpointResult(
            changed=False,
            endpoint_name=params.endpoint_name,
            mode=params.mode,
            region=params.region,
            previous_weights=weights,
            endpoint_config_name=found["EndpointConfigName"],
        )
        if params.mode == "delete":
            doc = capture_endpoint(ctx, params.endpoint_name, params.region)
            item = store_json(
                ctx,
                f"sagemaker-{params.endpoint_name}-before-delete.json",
                doc,
                source_arn=found["EndpointArn"],
                description="endpoint captured before deletion",
            )
            with aws_errors(f"delete endpoint {params.endpoint_name}"):
                sm.delete_endpoint(EndpointName=params.endpoint_name)
            result.changed, result.evidence_id = True, item.id
            result.summary = f"captured and deleted endpoint {params.endpoint_name}"
            return result
        drain = params.variants or sorted(weights)
        unknown = [v for v in drain if v not in weights]
        if unknown:
            raise ActionError(f"endpoint {params.endpoint_name} has no variant {', '.join(unknown)}")
        todo = [v for v in drain if weights[v] != 0]
        if todo:
            with aws_errors(f"drain {params.endpoint_name}"):
                sm.update_endpoint_weights_and_capacities(
                    EndpointName=params.endpoint_name,
                    DesiredWeightsAndCapacities=[{"VariantName": v, "DesiredWeight": 0.0} for v in todo],
                )
            # The update puts the endpoint in Updating: success is the settled endpoint at weight 0.
            after = settled(ctx, params.endpoint_name, params.region)
            serving = [
                v["VariantName"]
                for v in after.get("ProductionVariants", [])
                if v["VariantName"] in todo and float(v.get("CurrentWeight", 0.0)) != 0
            ]
            if serving:
                raise IntegrationError(
                    f"endpoint {params.endpoint_name} still sends traffic to {', '.join(serving)} after the drain",
                    retryable=True,
                )
        result.changed = bool(todo)
        result.summary = (
            f"drained {', '.join(todo)} of {params.endpoint_name}"
            if todo
            else f"{params.endpoint_name} was already drained (no change)"
        )
        return result

    def undo(self, result: IsolateEndpointResult, ctx: ActionContext) -> UndoResult:
        sm = client(ctx, "sagemaker", result.region)
        if result.mode == "drain":
            settled(ctx, result.endpoint_name, result.region)
        with aws_errors(f"restore endpoint {result.endpoint_name}"):
            if result.mode == "delete":
                sm.create_endpoint(EndpointName=result.endpoint_name, EndpointConfigName=result.endpoint_config_name)
                return UndoResult(summary=f"recreated {result.endpoint_name} from {result.endpoint_config_name}")
            sm.update_endpoint_weights_and_capacities(
                EndpointName=result.endpoint_name,
                DesiredWeightsAndCapacities=[
                    {"VariantName": v, "DesiredWeight": w} for v, w in result.previous_weights.items()
                ],
            )
        return UndoResult(summary=f"restored the variant weights of {result.endpoint_name}")

    def policy_statements(self, params: IsolateEndpointParams | None) -> list[dict[str, Any]]:
        mode = None if params is None else getattr(params, "mode", "drain")
        actions = [*ISOLATE_PERMISSIONS]
        undo = ["sagemaker:UpdateEndpointWeightsAndCapacities"]
        if mode in (None, "delete") or known(params, "mode") is None:
            actions.append("sagemaker:DeleteEndpoint")
            undo.append("sagemaker:CreateEndpoint")
        out = [{"Effect": "Allow", "Action": sorted({*actions, *undo}), "Resource": _resource(params)}]
        if "sagemaker:DeleteEndpoint" in actions:
            out.append({"Effect": "Allow", "Action": sorted(set(CAPTURE_PERMISSIONS) - set(actions)), "Resource": "*"})
        return out

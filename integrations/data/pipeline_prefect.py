"""The Prefect engine of ``pipeline.trigger``: a deployment's flow run, once per idempotency key.

Prefect is imported here only, when a step uses it. The flow run is created with Prefect's
idempotency key set to the step's (``create_flow_run_from_deployment``: a key Prefect has seen
returns the existing run); fireline looks the key up first so that a retry reports ``reused``.
"""

from __future__ import annotations

from typing import Any

from flows.actions.context import ActionContext
from flows.errors import ActionError, IntegrationError
from integrations.data.pipeline_params import TriggerParams, TriggerResult, wait_terminal

PREFECT_OK = {"COMPLETED"}
PREFECT_FAILED = {"FAILED", "CRASHED", "CANCELLED"}


def _prefect_client(params: TriggerParams, ctx: ActionContext) -> Any:
    try:
        from prefect.client.orchestration import SyncPrefectClient, get_client
    except ImportError as e:  # prefect is a core dependency, but say so plainly if it is missing
        raise ActionError("pipeline.trigger with engine prefect needs Prefect installed") from e
    url = params.api_url or ctx.settings.prefect.api_url
    return SyncPrefectClient(url.rstrip("/")) if url else get_client(sync_client=True)


def prefect_run(params: TriggerParams, ctx: ActionContext) -> TriggerResult:
    from prefect.exceptions import ObjectNotFound

    with _prefect_client(params, ctx) as prefect:
        try:
            deployment = prefect.read_deployment_by_name(str(params.deployment))
        except ObjectNotFound as e:
            raise ActionError(f"prefect deployment {params.deployment} does not exist") from e
        except Exception as e:  # httpx and Prefect errors: the server cannot be reached
            raise IntegrationError(f"prefect: read deployment {params.deployment}: {e}", retryable=True) from e
        reused = _prefect_existing(prefect, deployment.id, ctx.idempotency_key)
        # Prefect also answers a known idempotency key with the existing run (a race between two attempts).
        run = reused or prefect.create_flow_run_from_deployment(
            deployment.id, parameters=params.parameters, idempotency_key=ctx.idempotency_key
        )

        def read() -> tuple[str, str]:
            flow_run = prefect.read_flow_run(run.id)
            state = flow_run.state
            return (str(state.type.value) if state else "UNKNOWN"), (str(state.message or "") if state else "")

        state = read()[0]
        if params.wait:
            state = wait_terminal(
                ctx,
                read,
                lambda s: True if s in PREFECT_OK else (False if s in PREFECT_FAILED else None),
                params.poll_interval,
            )
    return TriggerResult(
        engine="prefect",
        target=params.label,
        run_id=str(run.id),
        state=state,
        reused=reused is not None,
        changed=reused is None,
        parameters=params.parameters,
        summary=f"flow run {run.name} ({run.id}) of {params.deployment}: {state}",
    )


def prefect_tags(params: TriggerParams, ctx: ActionContext, warnings: list[str]) -> dict[str, str] | None:
    """A deployment's tags as guard tags (``key=value`` tags; a bare tag maps to ``"true"``); None if unreadable."""
    try:
        with _prefect_client(params, ctx) as prefect:
            deployment = prefect.read_deployment_by_name(str(params.deployment))
    except Exception as e:  # a plan works without the server; the guard then treats the tags as unknown
        warnings.append(f"could not read prefect deployment {params.deployment} ({type(e).__name__}: {e})")
        return None
    pairs = [str(t).partition("=") for t in deployment.tags or []]
    return {k: (v if sep else "true") for k, sep, v in pairs}


def _prefect_existing(prefect: Any, deployment_id: Any, key: str) -> Any:
    from prefect.client.schemas.filters import (
        FlowRunFilter,
        FlowRunFilterDeploymentId,
        FlowRunFilterIdempotencyKey,
    )

    found = prefect.read_flow_runs(
        flow_run_filter=FlowRunFilter(
            idempotency_key=FlowRunFilterIdempotencyKey(any_=[key]),
            deployment_id=FlowRunFilterDeploymentId(any_=[deployment_id]),
        ),
        limit=1,
    )
    return found[0] if found else None

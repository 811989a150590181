"""Deployments of the ``respond`` flow: register one on a work pool, start runs on it through the API.

Workers need fireline installed: the entrypoint is the module path of ``respond``, so no code storage
or pull step is involved. A worker's flow run reads fireline's settings from its own environment and
resolves the playbook (a library name, or a path that exists on the worker) there.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

from flows.config import Settings
from flows.engine.prefect_env import FIRELINE_TAG, owner_tag, prefect_runtime
from flows.errors import ConfigError, RunError

DEFAULT_DEPLOYMENT = "respond/fireline-respond"


ENTRYPOINT = "flows.engine.prefect_flow.respond"


def register_deployment(
    settings: Settings, *, name: str = "fireline-respond", work_pool: str | None = None
) -> dict[str, Any]:
    """Register (or update) the deployment of ``respond`` on a work pool of ``settings.prefect.api_url``.

    A missing work pool is created as a ``process`` pool.
    """
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import WorkPoolCreate
    from prefect.exceptions import ObjectNotFound
    from prefect.utilities.callables import parameter_schema

    from flows.engine.prefect_flow import respond

    if not settings.prefect.api_url:
        raise ConfigError(
            "fireline deploy needs a Prefect server: set prefect.api_url in fireline.toml or FIRELINE_PREFECT_API_URL"
        )
    pool = work_pool or settings.prefect.work_pool
    with prefect_runtime(settings) as runtime, get_client(sync_client=True) as client:
        try:
            client.read_work_pool(pool)
            created_pool = False
        except ObjectNotFound:
            client.create_work_pool(WorkPoolCreate(name=pool, type="process"))
            created_pool = True
        flow_id = client.create_flow_from_name("respond")
        deployment_id = client.create_deployment(
            flow_id=flow_id,
            name=name,
            work_pool_name=pool,
            entrypoint=ENTRYPOINT,
            parameter_openapi_schema=parameter_schema(respond).model_dump(exclude_unset=True),
            enforce_parameter_schema=True,
            tags=[FIRELINE_TAG],
            description="Run a fireline playbook: playbook (a name or a path on the worker), alert, mode, inputs.",
        )
    return {
        "deployment": f"respond/{name}",
        "deployment_id": str(deployment_id),
        "work_pool": pool,
        "work_pool_created": created_pool,
        "entrypoint": ENTRYPOINT,
        "api_url": runtime.api_url,
    }


def submit_to_deployment(
    deployment: str,
    *,
    playbook: str,
    playbook_name: str,
    run_id: str,
    alert: dict[str, Any] | None = None,
    mode: str = "live",
    inputs: dict[str, Any] | None = None,
    trigger: dict[str, Any] | None = None,
    alerts: list[dict[str, Any]] | None = None,
    idempotency_key: str | None = None,
) -> str:
    """Create a flow run of ``deployment`` (``respond/<name>``) for a worker to pick up; return its id.

    Runs inside an active runtime (:func:`~flows.engine.prefect_env.prefect_runtime`). With
    ``idempotency_key`` (the incident key of an alert-started run), Prefect returns the flow run
    already created under that key instead of a second one, so several receivers, or one that
    restarted, start one run per incident.
    """
    from prefect.client.orchestration import get_client
    from prefect.exceptions import ObjectNotFound

    parameters = {
        "playbook": playbook,
        "alert": alert,
        "mode": mode,
        "run_id": run_id,
        "inputs": inputs,
        "trigger": trigger,
        "alerts": alerts,
    }
    tags = [FIRELINE_TAG, f"playbook:{playbook_name}", f"mode:{mode}", f"run:{run_id}", f"submitted-by:{owner_tag()}"]
    with get_client(sync_client=True) as client:
        try:
            found = client.read_deployment_by_name(deployment)
        except ObjectNotFound as e:
            raise RunError(f"no deployment {deployment!r} on the Prefect server (run fireline deploy)") from e
        flow_run = client.create_flow_run_from_deployment(
            found.id, parameters=parameters, tags=tags, name=f"{playbook_name}/{run_id}",
            idempotency_key=idempotency_key,
        )  # fmt: skip
    return str(flow_run.id)


def flow_run_status(flow_run_id: str) -> tuple[str, str | None]:
    """The state type and message of a flow run, for ``GET /runs/<id>`` of a deployed serve."""
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        state = client.read_flow_run(UUID(flow_run_id)).state
    return (state.type.value, state.message) if state is not None else ("UNKNOWN", None)

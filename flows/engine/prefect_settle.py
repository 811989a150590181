"""After ``fireline resume``: the run's flow runs end in the run's true state, not Crashed forever.

A process that dies leaves its flow run RUNNING; start-up marks it Crashed. When the run is later
finished by ``fireline resume`` (in-process, without a flow run of its own), the flow runs tagged
``run:<id>`` that are Crashed (or still not final) are set to Completed or Failed with the outcome,
so the Prefect UI tells the truth. Needs a reachable Prefect API (``prefect.api_url`` or a live
``fireline serve``); without one there is nothing to correct.
"""

from __future__ import annotations

from typing import Any

from flows.config import Settings


def settle_flow_runs(run_id: str, outcome: str, api_url: str, why: str = "after fireline resume") -> list[str]:
    """Set the final state of the run's unfinished or crashed flow runs; return their ids."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterTags
    from prefect.settings import PREFECT_API_URL, temporary_settings
    from prefect.states import Completed, Failed

    settled: list[str] = []
    with temporary_settings({PREFECT_API_URL: api_url}), get_client(sync_client=True) as client:
        flt = FlowRunFilter(tags=FlowRunFilterTags(all_=[f"run:{run_id}"]))
        for flow_run in client.read_flow_runs(flow_run_filter=flt, limit=20):
            state = flow_run.state
            if state is not None and state.is_final() and not state.is_crashed():
                continue
            message = f"run {run_id} {outcome} {why}"
            final: Any = Completed(message=message) if outcome.startswith("succeeded") else Failed(message=message)
            client.set_flow_run_state(flow_run.id, final, force=True)
            settled.append(str(flow_run.id))
    return settled


def settle_after_resume(run_id: str, outcome: str, settings: Settings) -> list[str]:
    """:func:`settle_flow_runs` against the configured or warm Prefect API; [] when none is reachable."""
    from flows.engine.handoff import serve_status

    api_url = settings.prefect.api_url or (serve_status(settings) or {}).get("prefect_api_url")
    if not api_url:
        return []
    try:
        return settle_flow_runs(run_id, outcome, str(api_url))
    except Exception:  # the resumed run is done; a Prefect API that is gone must not fail the command
        return []

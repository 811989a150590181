"""The parameters and result of ``pipeline.trigger``, and the wait for a terminal state, shared by its engines."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

from pydantic import Field, model_validator

from flows.actions.context import ActionContext
from flows.actions.registry import ActionParams, ActionResult
from flows.errors import ActionError
from flows.language.durations import Duration


class TriggerParams(ActionParams):
    engine: Literal["prefect", "sagemaker"]
    deployment: str | None = Field(default=None, description="prefect: flow-name/deployment-name.")
    pipeline: str | None = Field(default=None, description="sagemaker: the pipeline name.")
    parameters: dict[str, Any] = Field(default_factory=dict, description="Flow or pipeline parameters.")
    wait: bool = Field(default=False, description="Wait for a terminal state (within the step's timeout).")
    poll_interval: Duration = Field(default=15.0, description="Seconds between status reads while waiting.")
    api_url: str | None = Field(default=None, description="prefect: the API; default: settings.prefect.api_url.")
    region: str | None = None

    @model_validator(mode="after")
    def _named(self) -> TriggerParams:
        if self.engine == "prefect" and not (self.deployment and "/" in self.deployment):
            raise ValueError("engine 'prefect' needs deployment: flow-name/deployment-name")
        if self.engine == "sagemaker" and not self.pipeline:
            raise ValueError("engine 'sagemaker' needs pipeline")
        return self

    @property
    def label(self) -> str:
        return (
            f"prefect deployment {self.deployment}"
            if self.engine == "prefect"
            else f"sagemaker pipeline {self.pipeline}"
        )


class TriggerResult(ActionResult):
    engine: str
    target: str
    run_id: str = Field(description="Prefect flow run id, or SageMaker pipeline execution ARN.")
    state: str
    reused: bool = Field(default=False, description="The run existed already under this idempotency key.")
    parameters: dict[str, Any] = Field(default_factory=dict)


def wait_terminal(
    ctx: ActionContext, read: Callable[[], tuple[str, str]], done: Callable[[str], bool | None], poll: float
) -> str:
    """Poll ``read`` (state, reason) until ``done(state)`` is True or False; fail on False.

    The step's timeout ends the wait (``ctx.sleep`` wakes on cancellation).
    """
    while True:
        ctx.check_cancelled()
        state, reason = read()
        verdict = done(state)
        if verdict is True:
            return state
        if verdict is False:
            raise ActionError(f"the run ended {state}: {reason or 'no reason given'}", details={"state": state})
        ctx.sleep(poll)

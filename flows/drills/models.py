"""The scenario document (``kind: Scenario``): what a tabletop drill runs and what it expects.

A scenario names the playbook it drills and the alert, the world (sandbox seeders applied to an
in-process moto), a responder script (acks, approval answers, unreachable people), injected faults
and the expectations the drill is scored against. Durations are text like ``5m`` (see
:func:`flows.language.durations.parse_duration`); every key is known (``extra="forbid"``).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)  # built on first use: a cold start


class ScenarioMeta(_Strict):
    name: str = Field(pattern=r"^[a-z0-9][a-z0-9-]*$", description="Unique in the scenario folder.")
    title: str = ""
    objectives: list[str] = Field(default_factory=list, description="What the exercise is meant to show.")


class World(_Strict):
    seed: list[str] = Field(default_factory=list, description="Sandbox seeders: network, inference_hosts, iam, ...")


class Ack(_Strict):
    step: str = Field(description="The contacts.page step acknowledged.")
    by: str = Field(description="A person of the directory.")
    after: str = Field(default="0s", description="How long after the page starts (virtual time).")


class ApprovalAnswer(_Strict):
    step: str = Field(description="The approval step answered.")
    by: str
    decision: Literal["approve", "reject"] = "approve"
    reason: str = "drill"
    after: str = Field(default="0s", description="How long after the request (virtual time).")


class Responders(_Strict):
    acks: list[Ack] = Field(default_factory=list)
    approvals: list[ApprovalAnswer] = Field(default_factory=list)
    unreachable: list[str] = Field(default_factory=list, description="People who never answer (a gap when paged).")


class Fault(_Strict):
    kind: Literal["aws_error", "approval_timeout", "target_missing", "slack_429"]
    step: str | None = Field(default=None, description="The step the fault hits (aws_error, approval_timeout).")
    code: str = Field(default="Throttling", description="aws_error: the AWS error code, e.g. AccessDenied.")
    times: int = Field(default=1, ge=1, le=100, description="aws_error, slack_429: how many calls fail.")
    target: str | None = Field(default=None, description="target_missing: a world key (e.g. inference_instances[0]).")


class StepsExpected(_Strict):
    run: list[str] = Field(default_factory=list, description="Steps that must succeed.")
    skipped: list[str] = Field(default_factory=list)
    failed: list[str] = Field(default_factory=list)


class Expectations(_Strict):
    outcome: Literal["succeeded", "failed", "rejected", "succeeded_with_errors"] | None = None
    steps: StepsExpected = Field(default_factory=StepsExpected)
    escalation: dict[str, int] = Field(default_factory=dict, description="Paging step -> highest level reached.")
    approvals: dict[str, Literal["granted", "rejected", "timed_out"]] = Field(default_factory=dict)
    milestones: dict[Literal["acknowledged", "contained", "finished"], str] = Field(
        default_factory=dict, description="Milestone -> the most virtual time it may take from the run's start."
    )


class Scenario(_Strict):
    api_version: Literal["fireline/v1"] = Field(alias="apiVersion")
    kind: Literal["Scenario"]
    metadata: ScenarioMeta
    playbook: str = Field(description="A playbook name in the library, or a path relative to this file.")
    alert: dict[str, Any] | str = Field(description="The alert, inline or a JSON file relative to this file.")
    inputs: dict[str, Any] = Field(default_factory=dict)
    world: World = Field(default_factory=World)
    responders: Responders = Field(default_factory=Responders)
    faults: list[Fault] = Field(default_factory=list)
    expect: Expectations

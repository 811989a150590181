"""The playbook language, apiVersion fireline/v1, as pydantic models.

Every model forbids unknown keys: a typo must never vanish. Templates stay strings here; they are
rendered once, at run time, by the engine.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from flows.language.durations import Duration

Severity = Literal["info", "low", "medium", "high", "critical"]
AlertSource = Literal["alertmanager", "grafana", "cloudwatch", "datadog", "pagerduty", "generic"]
InputType = Literal["string", "int", "float", "bool", "duration", "list[string]", "list[int]", "dict"]
Mode = Literal["live", "dry-run", "drill"]
ReportFormat = Literal["markdown", "md", "html", "json"]  # md and markdown are the same report

NAME_PATTERN = r"^[a-z0-9]([a-z0-9-]*[a-z0-9])?$"
STEP_ID_PATTERN = r"^[a-z0-9]([a-z0-9_-]*[a-z0-9])?$"
ACTION_NAME_PATTERN = r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)*$"
INPUT_NAME_PATTERN = r"^[a-z_][a-z0-9_]*$"

DEFAULT_PROTECTED_TAGS: dict[str, str] = {"fireline/protected": "true"}


class SpecModel(BaseModel):
    """Base of every language model: strict about keys, immutable once loaded."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class Metadata(SpecModel):
    name: str = Field(pattern=NAME_PATTERN, max_length=63, description="Unique name in the library.")
    version: int = Field(ge=1, description="Recorded with every run as name@version.")
    title: str = Field(min_length=1, max_length=200)
    owner: str | None = None
    severity: Severity = "medium"
    tags: list[str] = Field(default_factory=list)
    description: str | None = None


class Trigger(SpecModel):
    source: AlertSource
    match: dict[str, str] = Field(default_factory=dict, description="Labels that must all be equal.")
    matchers: list[str] = Field(
        default_factory=list, description="Label matchers: name=value, name!=value, name=~regex, name!~regex."
    )
    severity: list[Severity] = Field(default_factory=list, description="Accepted values of the severity label.")
    group_by: list[str] = Field(
        default_factory=list, description="Labels whose values make the incident key (default: the fingerprint)."
    )
    dedup_window: Duration = Field(default=1800.0, description="Alerts with one fingerprint start one run per window.")

    @field_validator("matchers")
    @classmethod
    def _matchers(cls, value: list[str]) -> list[str]:
        from flows.triggers.matchers import parse_matcher

        for text in value:
            parse_matcher(text)  # a ValueError names the bad matcher
        return value


class InputSpec(SpecModel):
    type: InputType = "string"
    required: bool = False
    default: Any = None
    description: str | None = None
    choices: list[Any] | None = None


class Guards(SpecModel):
    max_targets: int | None = Field(default=None, ge=1, description="Refuse a step that would touch more resources.")
    require_tags: dict[str, str] = Field(default_factory=dict, description="Only act on resources carrying these tags.")
    protected_tags: dict[str, str] = Field(
        default_factory=lambda: dict(DEFAULT_PROTECTED_TAGS),
        description="Never act on resources carrying any of these tags (fireline/protected=true always applies).",
    )

    def effective_protected_tags(self) -> dict[str, str]:
        """The protected tags including the one no playbook can switch off."""
        return {**DEFAULT_PROTECTED_TAGS, **self.protected_tags}


class RetryPolicy(SpecModel):
    attempts: int = Field(default=1, ge=1, le=20, description="Total attempts, the first included.")
    backoff: Literal["fixed", "exponential"] = "exponential"
    initial: Duration = 1.0
    max: Duration = 30.0

    def delay(self, retry_number: int) -> float:
        """Seconds to wait before retry ``retry_number`` (1 for the first retry)."""
        if self.backoff == "fixed":
            return min(self.initial, self.max)
        return float(min(self.initial * (2 ** (retry_number - 1)), self.max))


class FailureHandler(SpecModel):
    action: str = Field(pattern=ACTION_NAME_PATTERN)
    with_: dict[str, Any] = Field(default_factory=dict, alias="with")


class Step(SpecModel):
    id: str = Field(pattern=STEP_ID_PATTERN, max_length=63)
    action: str = Field(pattern=ACTION_NAME_PATTERN)
    name: str | None = None
    with_: dict[str, Any] = Field(default_factory=dict, alias="with")
    needs: list[str] | None = Field(
        default=None, description="Steps this one waits for; absent means the step before it, [] means none."
    )
    when: str | None = Field(
        default=None, description="One expression; the step is skipped when it renders false (not a boolean: fails)."
    )
    for_each: str | list[Any] | None = Field(default=None, description="A template or a list to fan out over.")
    concurrency: int | None = Field(default=None, ge=1, le=256)
    retries: RetryPolicy | None = None
    timeout: Duration | None = None
    on_failure: list[FailureHandler] = Field(default_factory=list)
    continue_on_error: bool = False
    needs_outcome: Literal["success", "any"] = "success"

    @field_validator("needs")
    @classmethod
    def _unique_needs(cls, value: list[str] | None) -> list[str] | None:
        if value is not None and len(set(value)) != len(value):
            raise ValueError("needs lists a step more than once")
        return value


class ReportSpec(SpecModel):
    formats: list[ReportFormat] = Field(default_factory=lambda: list[ReportFormat](["markdown"]))


class Playbook(SpecModel):
    api_version: Literal["fireline/v1"] = Field(alias="apiVersion")
    kind: Literal["Playbook"]
    metadata: Metadata
    triggers: list[Trigger] = Field(default_factory=list)
    inputs: dict[str, InputSpec] = Field(default_factory=dict)
    guards: Guards = Field(default_factory=Guards)
    contacts: str | None = Field(default=None, description="A contact tree id from playbooks/contact-trees/.")
    steps: list[Step] = Field(min_length=1)
    report: ReportSpec = Field(default_factory=ReportSpec)

    @field_validator("inputs")
    @classmethod
    def _input_names(cls, value: dict[str, InputSpec]) -> dict[str, InputSpec]:
        import re

        for name in value:
            if not re.match(INPUT_NAME_PATTERN, name):
                raise ValueError(f"input name {name!r} must match {INPUT_NAME_PATTERN}")
        return value

    def step(self, step_id: str) -> Step:
        for step in self.steps:
            if step.id == step_id:
                return step
        raise KeyError(step_id)

    @property
    def ref(self) -> str:
        return f"{self.metadata.name}@{self.metadata.version}"

"""The people documents as pydantic models: ``kind: Directory`` and ``kind: ContactTree``.

Both are fireline/v1 documents read by the playbook loader's YAML machinery, so their errors name
``file:line:col`` with did-you-mean hints (:mod:`flows.people.load`).
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import Field, field_validator

from flows.language.durations import Duration
from flows.language.spec import NAME_PATTERN, Severity, SpecModel

PERSON_ID_PATTERN = r"^[a-z0-9][a-z0-9._-]{0,62}$"
GROUP_PATTERN = r"^[a-z0-9][a-z0-9._-]{0,62}$"
SLACK_USER_PATTERN = r"^[UW][A-Z0-9]{2,20}$"
TARGET_KINDS = ("person", "group", "slack_channel", "slack_usergroup", "email", "webhook")
TARGET_PATTERN = (
    r"^(person:[a-z0-9][a-z0-9._-]*|group:[a-z0-9][a-z0-9._-]*|slack_channel:[A-Z0-9]{2,30}"
    r"|slack_usergroup:[A-Z0-9]{2,30}|email:[^@\s]+@[^@\s]+|webhook:secret:[A-Za-z_][A-Za-z0-9_]*)$"
)
Day = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
DAYS: tuple[Day, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_CLOCK = re.compile(r"^([01][0-9]|2[0-3]):[0-5][0-9]$")


class DocMetadata(SpecModel):
    name: str = Field(pattern=NAME_PATTERN, max_length=63)
    version: int = Field(ge=1, description="Recorded with every run that uses the document.")
    title: str | None = None
    owner: str | None = None


class Person(SpecModel):
    """One person of the directory; ``id`` is the canonical identity."""

    id: str = Field(pattern=PERSON_ID_PATTERN, description="Canonical id, lower-case.")
    name: str = Field(min_length=1, max_length=200, description="Display name.")
    email: str | None = Field(default=None, pattern=r"^[^@\s]+@[^@\s]+$")
    slack_user_id: str | None = Field(
        default=None, pattern=SLACK_USER_PATTERN, description="Optional: looked up by e-mail and cached."
    )
    timezone: str = "UTC"
    groups: list[str] = Field(default_factory=list)
    drill_ok: bool = Field(default=False, description="May receive drill pages.")
    unix_logins: list[str] = Field(
        default_factory=list, description="OS logins that authenticate as this person at the terminal."
    )

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        return check_zone(value)

    @field_validator("groups")
    @classmethod
    def _group_names(cls, value: list[str]) -> list[str]:
        for name in value:
            if not re.match(GROUP_PATTERN, name):
                raise ValueError(f"group name {name!r} must match {GROUP_PATTERN}")
        return value


class DirectoryDoc(SpecModel):
    api_version: Literal["fireline/v1"] = Field(alias="apiVersion")
    kind: Literal["Directory"]
    metadata: DocMetadata
    people: list[Person] = Field(min_length=1)
    groups: dict[str, list[str]] = Field(
        default_factory=dict, description="Extra group members: person ids or group:NAME (nested groups)."
    )


def check_zone(value: str) -> str:
    """A valid IANA time zone name, or ValueError."""
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError) as e:
        raise ValueError(f"unknown time zone {value!r} (an IANA name such as Europe/Berlin)") from e
    return value


class ActiveHours(SpecModel):
    """When a level may be paged: days and a daily window in a time zone (end after start)."""

    timezone: str = "UTC"
    days: list[Day] = Field(default_factory=lambda: list[Day](DAYS))
    start: str = "00:00"
    end: str = "24:00"

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        return check_zone(value)

    @field_validator("start", "end")
    @classmethod
    def _clock(cls, value: str) -> str:
        if value != "24:00" and not _CLOCK.match(value):
            raise ValueError(f"expected HH:MM, got {value!r}")
        return value


class When(SpecModel):
    """Engage only for these severities and (all of) these alert labels."""

    severity: list[Severity] | None = None
    labels: dict[str, str] = Field(default_factory=dict)


class Level(SpecModel):
    name: str | None = None
    targets: list[str] = Field(default_factory=list, description="person:, group:, slack_channel:, ...")
    ack_timeout: Duration = Field(description="How long this level has to acknowledge before the next is paged.")
    strategy: Literal["all", "round_robin"] = "all"
    when: When | None = None
    active_hours: ActiveHours | None = None

    @field_validator("targets")
    @classmethod
    def _targets(cls, value: list[str]) -> list[str]:
        return check_targets(value)


class Repeat(SpecModel):
    times: int = Field(default=0, ge=0, le=10, description="Extra passes over the levels.")
    wait: Duration = Field(default=0.0, description="Pause between passes.")


def check_targets(value: list[str]) -> list[str]:
    for target in value:
        if not re.match(TARGET_PATTERN, target):
            kind = target.partition(":")[0]
            if kind not in TARGET_KINDS:
                raise ValueError(f"target {target!r}: unknown kind {kind!r} (one of {', '.join(TARGET_KINDS)})")
            raise ValueError(f"target {target!r} is malformed (webhook targets are webhook:secret:NAME)")
    return value


class ContactTreeDoc(SpecModel):
    api_version: Literal["fireline/v1"] = Field(alias="apiVersion")
    kind: Literal["ContactTree"]
    metadata: DocMetadata
    drill: bool = Field(default=False, description="A drill-only tree: short ack timeouts are allowed.")
    when: When | None = None
    levels: list[Level] = Field(min_length=1)
    repeat: Repeat = Field(default_factory=Repeat)
    fallback: list[str] = Field(default_factory=list, description="Paged when every level is exhausted.")
    reminder_interval: Duration = Field(default=600.0, description="Reminders after exhaustion, until an ack.")
    reminders: int = Field(default=3, ge=0, le=50, description="How many reminders before the page gives up.")
    ack_slo: Duration | None = Field(default=None, description="Time to acknowledge; a breach is recorded.")

    @field_validator("fallback")
    @classmethod
    def _fallback(cls, value: list[str]) -> list[str]:
        return check_targets(value)

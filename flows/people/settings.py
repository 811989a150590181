"""The ``[people]`` settings section: where the directory and contact trees are, SMTP, the drill channel.

``fireline.toml``::

    [people]
    directory = "playbooks/people.yaml"      # default: <playbooks_dir>/people.yaml
    trees_dir = "playbooks/contact-trees"    # default: <playbooks_dir>/contact-trees
    smtp_host = "127.0.0.1"                  # e-mail pages; unset means e-mail targets fail loudly
    smtp_port = 25
    smtp_from = "fireline@example.com"
    drill_channel = "C0DRILL"                # drill pages go here, marked [DRILL], drill_ok people only

or ``FIRELINE_PEOPLE_SMTP_HOST`` and so on.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class PeopleSettings(BaseModel):
    """Settings of the people layer (``settings.people``)."""

    model_config = ConfigDict(extra="forbid")

    directory: Path | None = Field(
        default=None, description="The people directory (default <playbooks_dir>/people.yaml)."
    )
    trees_dir: Path | None = Field(default=None, description="Contact trees (default <playbooks_dir>/contact-trees).")
    smtp_host: str | None = Field(default=None, description="SMTP relay for e-mail pages; None: e-mail pages fail.")
    smtp_port: int = 25
    smtp_from: str = "fireline@localhost"
    webhook_timeout: float = Field(default=10.0, description="Seconds for one webhook POST.")
    drill_channel: str | None = Field(default=None, description="Slack channel id for [DRILL] pages.")


def people_settings(settings: Any) -> PeopleSettings:
    """``settings.people``, or the defaults when the settings object has no such section."""
    section = getattr(settings, "people", None)
    if isinstance(section, PeopleSettings):
        return section
    if isinstance(section, dict):
        return PeopleSettings.model_validate(section)
    if isinstance(section, BaseModel):
        return PeopleSettings.model_validate(section.model_dump())
    return PeopleSettings()


def directory_path(settings: Any, library: Path | None = None) -> Path:
    """The directory file: ``[people] directory``, else the playbook library's ``people.yaml``.

    ``library`` is the folder of the playbook being run or checked: a library carries its own
    people and trees, so a playbook finds them wherever the library sits.
    """
    configured = people_settings(settings).directory
    if configured is not None:
        return configured
    if library is not None and (library / "people.yaml").is_file():
        return library / "people.yaml"
    return Path(settings.playbooks_dir) / "people.yaml"


def trees_dir(settings: Any, library: Path | None = None) -> Path:
    """The contact tree folder: ``[people] trees_dir``, else the library's ``contact-trees/``."""
    configured = people_settings(settings).trees_dir
    if configured is not None:
        return configured
    if library is not None and (library / "contact-trees").is_dir():
        return library / "contact-trees"
    return Path(settings.playbooks_dir) / "contact-trees"

"""fireline's settings, on pydantic-settings: ``FIRELINE_*`` variables over ``fireline.toml``, over defaults.

Sources, highest first:

1. values passed to :func:`load_settings` by code;
2. environment variables: ``FIRELINE_<FIELD>`` for a top-level field (``FIRELINE_RUNS_DIR``),
   ``FIRELINE_<SECTION>_<FIELD>`` for a field of a section (``FIRELINE_AWS_ENDPOINT_URL``);
   ``FIRELINE_<SECTION>__<FIELD>`` is accepted too;
3. the TOML file named by ``$FIRELINE_CONFIG``, else ``./fireline.toml`` when it exists
   (a section is a table: ``[aws]``, ``region = "eu-west-1"``);
4. the defaults below.

A string value ``secret:NAME`` (in the file or a variable) is replaced by the environment variable
``NAME`` when the settings load, so a token never sits in ``fireline.toml``. A section is one
``BaseModel`` field of :class:`Settings`; a new section needs nothing else.

``Settings(...)`` built by code reads neither the file nor the environment: only
:func:`load_settings` does, so tests and the sandbox get exactly what they pass.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from flows.config_names import CONFIG_VARIABLE, DEFAULT_FILE, ENV_PREFIX
from flows.errors import ConfigError
from flows.people.settings import PeopleSettings
from flows.triggers.config import TriggersSettings


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class AwsSettings(_Section):
    region: str = "us-east-1"
    endpoint_url: str | None = Field(default=None, description="moto server or LocalStack; None for AWS itself.")
    role_arn: str | None = Field(default=None, description="Role to assume for every action.")
    profile: str | None = None
    evidence_bucket: str | None = Field(default=None, description="Object Lock bucket that run records mirror to.")
    connect_timeout: float = 5.0
    read_timeout: float = 30.0
    max_attempts: int = 5


class ModelSettings(_Section):
    mlflow_tracking_uri: str | None = None


class PrefectSettings(_Section):
    api_url: str | None = Field(default=None, description="A Prefect server; None runs embedded.")
    serve_port: int = 4300
    work_pool: str = "fireline"


class SlackSettings(_Section):
    """``[slack]``: the Slack workspace pages, incident channels and run timelines go to."""

    base_url: str = Field(default="https://slack.com/api/", description="Web API base URL (ends in /).")
    token: str | None = Field(default=None, description="Bot token (xoxb-...); a secret: reference is best.")
    signing_secret: str | None = Field(default=None, description="Verifies POST /slack/interactions.")
    channel: str | None = Field(default=None, description="Root messages of runs that open no incident channel.")
    drill_channel: str | None = Field(default=None, description="Drill and dry-run messages go here only.")
    min_interval: float = Field(default=1.0, ge=0, description="Seconds between messages to one channel.")
    timeout: float = Field(default=10.0, gt=0, description="Seconds for one Web API call.")


def _default_playbooks_dir() -> Path:
    """``./playbooks`` when it exists, else the library shipped beside the source tree."""
    local = Path("playbooks")
    if local.is_dir():
        return local
    shipped = Path(__file__).resolve().parent.parent / "playbooks"
    return shipped if shipped.is_dir() else local


class RecordSettings(_Section):
    key: str | None = Field(
        default=None,
        description="HMAC key that seals run records (write secret:NAME); default: <home>/record.key, mode 0600.",
    )


class Settings(_Section):
    """Every setting of fireline; sections are nested models (``settings.aws.region``)."""

    home: Path = Field(default_factory=lambda: Path.home() / ".fireline", description="State directory.")
    runs_dir: Path = Field(default=Path("runs"), description="Where run records are written.")
    playbooks_dir: Path = Field(default_factory=_default_playbooks_dir, description="The playbook library.")
    approvers_file: Path | None = Field(default=None, description="Who may approve what (YAML).")
    aws: AwsSettings = Field(default_factory=AwsSettings)
    models: ModelSettings = Field(default_factory=ModelSettings)
    prefect: PrefectSettings = Field(default_factory=PrefectSettings)
    slack: SlackSettings = Field(default_factory=SlackSettings)
    triggers: TriggersSettings = Field(default_factory=TriggersSettings, description="The alert receiver.")
    record: RecordSettings = Field(default_factory=RecordSettings, description="Sealing of run records.")
    people: PeopleSettings = Field(default_factory=PeopleSettings, description="Directory, contact trees, SMTP.")


def config_file(environ: Mapping[str, str]) -> Path | None:
    """The TOML file to read: ``$FIRELINE_CONFIG`` (which must exist), else ``./fireline.toml`` if present."""
    named = environ.get(CONFIG_VARIABLE)
    if named:
        path = Path(named)
        if not path.is_file():
            raise ConfigError(f"{CONFIG_VARIABLE}={named}: no such settings file")
        return path
    return DEFAULT_FILE if DEFAULT_FILE.is_file() else None


def load_settings(path: Path | None = None, environ: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
    """Read the settings: ``overrides`` over ``FIRELINE_*`` variables over the TOML file over defaults.

    pydantic-settings does the reading (:mod:`flows.config_sources`); it is imported here, not at
    module level, so commands that never read settings (``fireline validate``) start faster.

    Raises:
        ConfigError: the file cannot be read, a value is invalid, a key is unknown, or a
            ``secret:NAME`` reference names an unset variable. The message names the variable or
            ``file: key``.
    """
    import os

    env = os.environ if environ is None else environ
    if path is not None and not path.is_file():
        raise ConfigError(f"{path}: no such settings file")
    file = path if path is not None else config_file(env)
    if file is None and not any(k.upper().startswith(ENV_PREFIX) for k in env):
        return Settings(**overrides)  # nothing to read: the defaults, without importing pydantic-settings
    from flows.config_sources import read_settings

    return Settings.model_validate(read_settings(Settings, file, env, overrides))

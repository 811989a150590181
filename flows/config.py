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

import os
import tomllib
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator
from pydantic import ValidationError as PydanticValidationError
from pydantic_settings import (
    BaseSettings,
    EnvSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from flows.errors import ConfigError
from flows.triggers.config import TriggersSettings

ENV_PREFIX = "FIRELINE_"
CONFIG_VARIABLE = "FIRELINE_CONFIG"
DEFAULT_FILE = Path("fireline.toml")
SECRET_PREFIX = "secret:"


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


@dataclass(frozen=True)
class _Loading:
    """What :func:`load_settings` is reading: the TOML file (if any) and the environment."""

    file: Path | None
    environ: Mapping[str, str]


# Set only while load_settings() builds a Settings: plain Settings(...) stays free of ambient state.
_LOADING: ContextVar[_Loading | None] = ContextVar("fireline_settings_loading", default=None)


def _resolve_secrets(value: Any, environ: Mapping[str, str], path: str) -> Any:
    if isinstance(value, dict):
        return {k: _resolve_secrets(v, environ, f"{path}.{k}" if path else str(k)) for k, v in value.items()}
    if isinstance(value, str) and value.startswith(SECRET_PREFIX):
        name = value[len(SECRET_PREFIX) :]
        if name not in environ:
            raise ConfigError(f"setting {path}: {value} names the environment variable {name}, which is not set")
        return environ[name]
    return value


class RecordSettings(_Section):
    key: str | None = Field(
        default=None,
        description="HMAC key that seals run records (write secret:NAME); default: <home>/record.key, mode 0600.",
    )


class _FirelineEnv(EnvSettingsSource):
    """``FIRELINE_*`` from a given environment; ``FIRELINE_AWS__REGION`` means ``FIRELINE_AWS_REGION``."""

    def __init__(self, settings_cls: type[BaseSettings], environ: Mapping[str, str]) -> None:
        self._given = environ
        super().__init__(settings_cls)

    def _load_env_vars(self) -> Mapping[str, str | None]:
        return {
            k.lower().replace("__", "_"): v
            for k, v in self._given.items()
            if k.upper().startswith(ENV_PREFIX) and k.upper() != CONFIG_VARIABLE
        }


class Settings(BaseSettings):
    """Every setting of fireline; sections are nested models (``settings.aws.region``)."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        # One "_" between section and field, split once: FIRELINE_AWS_ENDPOINT_URL is aws.endpoint_url.
        env_nested_delimiter="_",
        env_nested_max_split=1,
        extra="forbid",
        validate_default=True,
    )

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

    @model_validator(mode="before")
    @classmethod
    def _secret_references(cls, data: Any) -> Any:
        loading = _LOADING.get()
        environ = loading.environ if loading is not None else os.environ
        return _resolve_secrets(data, environ, "") if isinstance(data, dict) else data

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        loading = _LOADING.get()
        if loading is None:
            return (init_settings,)
        return (init_settings, *sources(settings_cls, loading.file, loading.environ).values())


def config_file(environ: Mapping[str, str]) -> Path | None:
    """The TOML file to read: ``$FIRELINE_CONFIG`` (which must exist), else ``./fireline.toml`` if present."""
    named = environ.get(CONFIG_VARIABLE)
    if named:
        path = Path(named)
        if not path.is_file():
            raise ConfigError(f"{CONFIG_VARIABLE}={named}: no such settings file")
        return path
    return DEFAULT_FILE if DEFAULT_FILE.is_file() else None


def sources(
    settings_cls: type[BaseSettings], file: Path | None, environ: Mapping[str, str]
) -> dict[str, PydanticBaseSettingsSource]:
    """The file and environment sources by label, highest priority first."""
    found: dict[str, PydanticBaseSettingsSource] = {"env": _FirelineEnv(settings_cls, environ)}
    if file is not None:
        try:
            found[str(file)] = TomlConfigSettingsSource(settings_cls, toml_file=file)
        except (OSError, tomllib.TOMLDecodeError) as e:
            raise ConfigError(f"{file}: cannot read settings: {e}") from e
    return found


@contextmanager
def _loading(file: Path | None, environ: Mapping[str, str]) -> Iterator[None]:
    token = _LOADING.set(_Loading(file, environ))
    try:
        yield
    finally:
        _LOADING.reset(token)


def _where(loc: tuple[int | str, ...], file: Path | None, environ: Mapping[str, str]) -> str:
    """Name the source of a bad value: the variable that set it, else the file, else the key."""
    key = ".".join(str(p) for p in loc)
    for name in (ENV_PREFIX + "_".join(map(str, loc)), ENV_PREFIX + "__".join(map(str, loc))):
        if name.upper() in {k.upper() for k in environ}:
            return name.upper()
    return f"{file}: {key}" if file is not None else key


def load_settings(path: Path | None = None, environ: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
    """Read the settings: ``overrides`` over ``FIRELINE_*`` variables over the TOML file over defaults.

    Raises:
        ConfigError: the file cannot be read, a value is invalid, a key is unknown, or a
            ``secret:NAME`` reference names an unset variable. The message names the variable or
            ``file: key``.
    """
    env = os.environ if environ is None else environ
    file = path if path is not None else config_file(env)
    if path is not None and not path.is_file():
        raise ConfigError(f"{path}: no such settings file")
    try:
        with _loading(file, env):
            return Settings(**overrides)
    except PydanticValidationError as e:
        first = e.errors()[0]
        raise ConfigError(f"{_where(first['loc'], file, env)}: {first['msg']}") from e

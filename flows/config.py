"""fireline's settings: ``fireline.toml`` (or ``$FIRELINE_CONFIG``), then ``FIRELINE_*`` variables.

Environment variables override the file: ``FIRELINE_RUNS_DIR``, ``FIRELINE_HOME``,
``FIRELINE_AWS_REGION``, ``FIRELINE_AWS_ENDPOINT_URL``, ``FIRELINE_AWS_EVIDENCE_BUCKET`` and so on:
``FIRELINE_<SECTION>_<FIELD>`` for a field of a section, ``FIRELINE_<FIELD>`` for a top-level one.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from pydantic import ValidationError as PydanticValidationError

from flows.errors import ConfigError


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


def _default_playbooks_dir() -> Path:
    """``./playbooks`` when it exists, else the library shipped beside the source tree."""
    local = Path("playbooks")
    if local.is_dir():
        return local
    shipped = Path(__file__).resolve().parent.parent / "playbooks"
    return shipped if shipped.is_dir() else local


class Settings(_Section):
    home: Path = Field(default_factory=lambda: Path.home() / ".fireline", description="State directory.")
    runs_dir: Path = Field(default=Path("runs"), description="Where run records are written.")
    playbooks_dir: Path = Field(default_factory=_default_playbooks_dir, description="The playbook library.")
    approvers_file: Path | None = Field(default=None, description="Who may approve what (YAML).")
    aws: AwsSettings = Field(default_factory=AwsSettings)
    models: ModelSettings = Field(default_factory=ModelSettings)
    prefect: PrefectSettings = Field(default_factory=PrefectSettings)


def _env_overrides(environ: dict[str, str] | os._Environ[str]) -> dict[str, Any]:
    data: dict[str, Any] = {}
    sections = {
        name
        for name, f in Settings.model_fields.items()
        if f.annotation in (AwsSettings, ModelSettings, PrefectSettings)
    }
    for key, value in environ.items():
        if not key.startswith("FIRELINE_") or key == "FIRELINE_CONFIG":
            continue
        rest = key[len("FIRELINE_") :].lower()
        section, _, field = rest.partition("_")
        if section in sections and field:
            data.setdefault(section, {})[field] = value
        elif rest in Settings.model_fields:
            data[rest] = value
    return data


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def load_settings(path: Path | None = None, environ: dict[str, str] | None = None) -> Settings:
    """Read settings from the file (if any) and the environment."""
    env = os.environ if environ is None else environ
    file = path or (Path(env["FIRELINE_CONFIG"]) if env.get("FIRELINE_CONFIG") else Path("fireline.toml"))
    data: dict[str, Any] = {}
    if file.is_file():
        try:
            data = tomllib.loads(file.read_text(encoding="utf-8"))
        except (OSError, tomllib.TOMLDecodeError) as e:
            raise ConfigError(f"{file}: cannot read settings: {e}") from e
    data = _merge(data, _env_overrides(env))
    try:
        return Settings.model_validate(data)
    except PydanticValidationError as e:
        first = e.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise ConfigError(f"{file}: {where}: {first['msg']}") from e

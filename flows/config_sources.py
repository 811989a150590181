"""Reading :class:`~flows.config.Settings` with pydantic-settings: the environment and the TOML file.

A loader class inherits every field of the settings model it is given and adds pydantic-settings' sources, so a new
section of ``Settings`` is read from ``FIRELINE_<SECTION>_<FIELD>`` and from its ``[section]``
table with no change here. ``secret:NAME`` values are resolved from the environment as they load.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from pydantic import BaseModel, model_validator
from pydantic import ValidationError as PydanticValidationError
from pydantic_settings import (
    BaseSettings,
    EnvSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from flows.config_names import CONFIG_VARIABLE, ENV_PREFIX, SECRET_PREFIX
from flows.errors import ConfigError


@dataclass(frozen=True)
class _Reading:
    settings_cls: type[BaseModel]
    file: Path | None
    environ: Mapping[str, str]


# What the loader reads during one read_settings() call (sources are chosen per call).
_READING: ContextVar[_Reading | None] = ContextVar("fireline_settings_reading", default=None)


def _resolve_secrets(value: Any, environ: Mapping[str, str], path: str) -> Any:
    if isinstance(value, dict):
        return {k: _resolve_secrets(v, environ, f"{path}.{k}" if path else str(k)) for k, v in value.items()}
    if isinstance(value, str) and value.startswith(SECRET_PREFIX):
        name = value[len(SECRET_PREFIX) :]
        if name not in environ:
            raise ConfigError(f"setting {path}: {value} names the environment variable {name}, which is not set")
        return environ[name]
    return value


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


@cache
def loader(settings_cls: type[BaseModel]) -> type[BaseSettings]:
    """A pydantic-settings class with every field of ``settings_cls`` (built once, when first needed)."""

    class Loader(BaseSettings, settings_cls):  # type: ignore[valid-type,misc]  # a class given at run time
        model_config = SettingsConfigDict(
            env_prefix=ENV_PREFIX,
            # One "_" between section and field, split once: FIRELINE_AWS_ENDPOINT_URL is aws.endpoint_url.
            env_nested_delimiter="_",
            env_nested_max_split=1,
            extra="forbid",
            validate_default=True,
        )

        @model_validator(mode="before")
        @classmethod
        def _secret_references(cls, data: Any) -> Any:
            reading = _READING.get()
            environ = reading.environ if reading is not None else {}
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
            reading = _READING.get()
            if reading is None:
                return (init_settings,)
            return (init_settings, *sources(reading.settings_cls, reading.file, reading.environ).values())

    return Loader


def sources(
    settings_cls: type[BaseModel], file: Path | None, environ: Mapping[str, str]
) -> dict[str, PydanticBaseSettingsSource]:
    """The environment and file sources by label (``env``, the file's path), highest priority first."""
    found: dict[str, PydanticBaseSettingsSource] = {"env": _FirelineEnv(loader(settings_cls), environ)}
    if file is not None:
        import tomllib

        try:
            found[str(file)] = TomlConfigSettingsSource(loader(settings_cls), toml_file=file)
        except (OSError, tomllib.TOMLDecodeError) as e:
            raise ConfigError(f"{file}: cannot read settings: {e}") from e
    return found


@contextmanager
def _reading(settings_cls: type[BaseModel], file: Path | None, environ: Mapping[str, str]) -> Iterator[None]:
    token = _READING.set(_Reading(settings_cls, file, environ))
    try:
        yield
    finally:
        _READING.reset(token)


def _where(loc: tuple[int | str, ...], file: Path | None, environ: Mapping[str, str]) -> str:
    """Name the source of a bad value: the variable that set it, else the file, else the key."""
    key = ".".join(str(p) for p in loc)
    given = {k.upper() for k in environ}
    for name in (ENV_PREFIX + "_".join(map(str, loc)), ENV_PREFIX + "__".join(map(str, loc))):
        if name.upper() in given:
            return name.upper()
    return f"{file}: {key}" if file is not None else key


def read_settings(
    settings_cls: type[BaseModel], file: Path | None, environ: Mapping[str, str], overrides: Mapping[str, Any]
) -> dict[str, Any]:
    """The values of ``settings_cls``'s fields from ``overrides``, the environment and ``file``, validated.

    Raises:
        ConfigError: naming the variable or ``file: key`` of the first bad value.
    """
    try:
        with _reading(settings_cls, file, environ):
            loaded = loader(settings_cls)(**overrides)
    except PydanticValidationError as e:
        first = e.errors()[0]
        raise ConfigError(f"{_where(first['loc'], file, environ)}: {first['msg']}") from e
    return {name: getattr(loaded, name) for name in settings_cls.model_fields}

"""``fireline config show``: the effective settings, where each value came from, secrets masked."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from typing import Annotated, Any

import typer

from flows.cli import app
from flows.cli.output import JSON_OPTION_HELP, console, print_json

config_app = typer.Typer(
    help="Inspect fireline's settings (fireline.toml and FIRELINE_* variables).", no_args_is_help=True
)
app.add_typer(config_app, name="config")

MASK = "********"
# Field names whose values are credentials even when typed as plain strings.
_SENSITIVE = re.compile(r"token|secret|password|signing|credential|(^|_)key$", re.IGNORECASE)


def _leaves(data: Mapping[str, Any], prefix: tuple[str, ...] = ()) -> dict[tuple[str, ...], Any]:
    out: dict[tuple[str, ...], Any] = {}
    for key, value in data.items():
        if isinstance(value, Mapping):
            out.update(_leaves(value, (*prefix, key)))
        else:
            out[(*prefix, key)] = value
    return out


def _env_name(path: tuple[str, ...], environ: Mapping[str, str]) -> str:
    from flows.config_names import ENV_PREFIX

    upper = {k.upper(): k for k in environ}
    for name in ("_".join(path), "__".join(path)):
        if (ENV_PREFIX + name).upper() in upper:
            return upper[(ENV_PREFIX + name).upper()]
    return ENV_PREFIX + "_".join(path).upper()


def effective_settings(environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Every setting as ``{key, value, source}`` rows, plus the file read and ignored variables.

    ``source`` is ``default``, the TOML file's path or ``env FIRELINE_...``; a value given as
    ``secret:NAME`` shows its reference, and any secret value is masked.
    """
    from pydantic import SecretStr

    from flows.config import Settings, config_file, load_settings
    from flows.config_names import CONFIG_VARIABLE, ENV_PREFIX, SECRET_PREFIX
    from flows.config_sources import sources

    env = os.environ if environ is None else environ
    settings = load_settings(environ=env)
    file = config_file(env)
    raw = {label: _leaves(src()) for label, src in sources(Settings, file, env).items()}
    rows = []
    for path, value in _leaves(settings.model_dump()).items():
        label, given = next(((lb, vals[path]) for lb, vals in raw.items() if path in vals), ("default", None))
        source = f"env {_env_name(path, env)}" if label == "env" else label
        secret = isinstance(value, SecretStr) or bool(_SENSITIVE.search(path[-1]))
        if isinstance(given, str) and given.startswith(SECRET_PREFIX):
            source, secret = f"{given} via {source}", True
        shown = MASK if secret and value not in (None, "") else value
        rows.append({"key": ".".join(path), "value": None if shown is None else str(shown), "source": source})
    used = {_env_name(path, env).upper() for path in _leaves(settings.model_dump())}
    ignored = sorted(k for k in env if k.upper().startswith(ENV_PREFIX) and k.upper() not in used | {CONFIG_VARIABLE})
    return {"file": str(file) if file else None, "settings": rows, "ignored_variables": ignored}


@config_app.command("show")
def config_show(as_json: Annotated[bool, typer.Option("--json", help=JSON_OPTION_HELP)] = False) -> None:
    """Print the effective settings, each with its source (default, the TOML file, a variable); secrets masked."""
    doc = effective_settings()
    if as_json:
        print_json(doc)
        return
    from rich.table import Table

    console.print(f"settings file: {doc['file'] or 'none (fireline.toml absent, FIRELINE_CONFIG unset)'}", markup=False)
    table = Table("setting", "value", "source", box=None, pad_edge=False)
    for row in doc["settings"]:
        table.add_row(row["key"], "" if row["value"] is None else row["value"], row["source"])
    console.print(table)
    for name in doc["ignored_variables"]:
        console.print(f"ignored: {name} is not a fireline setting", markup=False)

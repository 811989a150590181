"""Checking a run request before anything is written: the playbook, its actions, the alert, the inputs.

Everything that can be wrong with a request is found here, so a refused request leaves no run
directory behind. :func:`validate_request` is what ``fireline run`` and a warm ``fireline serve``
call before they accept a run.
"""

from __future__ import annotations

import getpass
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from flows.actions.context import Incident
from flows.actions.registry import Registry, default_registry
from flows.config import Settings, load_settings
from flows.engine.alerts import Alert, normalise
from flows.engine.inputs import resolve_inputs
from flows.errors import ConfigError, RunError
from flows.language.dag import check_graph
from flows.language.spec import Playbook
from flows.record.store import utcnow


@dataclass(frozen=True)
class ResolvedPlaybook:
    """A playbook ready to run: the model, its file and the file's sha256."""

    playbook: Playbook
    path: Path
    sha256: str


def resolve_playbook(ref: str | Path, settings: Settings) -> ResolvedPlaybook:
    """Load a playbook from a path, or by name from ``settings.playbooks_dir``."""
    path = Path(ref)
    if not path.is_file():
        folder = settings.playbooks_dir
        named = [folder / f"{ref}.yaml", folder / f"{ref}.yml"]
        found = next((p for p in named if p.is_file()), None)
        if found is None:
            raise RunError(f"unknown playbook {str(ref)!r}: not a file, and not a playbook name in {folder}/")
        path = found
    return _load(path)


_LOADED: dict[tuple[str, str], Playbook] = {}  # (file, sha256 of its bytes): the playbook they parse to
_LOADED_MAX = 256


def _load(path: Path) -> ResolvedPlaybook:
    """Load a playbook, parsing each content of a file once per process.

    A warm ``fireline serve`` resolves the same playbook several times per run (the request check,
    the flow run's policies, the run): parsing and validating it cost ~1.4 ms each, a quarter of a
    run's way to its first step under an alert storm. The cache is keyed by the sha256 of the bytes
    read, so an edited playbook is parsed again; playbook models are frozen.
    """
    import hashlib

    from flows.language.loader import load_playbook, read_source

    raw, _ = read_source(path)
    key = (str(path), hashlib.sha256(raw).hexdigest())
    book = _LOADED.get(key)
    if book is not None:
        return ResolvedPlaybook(book, path, key[1])
    loaded = load_playbook(path)
    if len(_LOADED) >= _LOADED_MAX:
        _LOADED.clear()
    _LOADED[(str(path), loaded.sha256)] = loaded.playbook
    return ResolvedPlaybook(loaded.playbook, loaded.path, loaded.sha256)


def validate_request(
    playbook: str | Path,
    *,
    inputs: dict[str, Any] | None = None,
    alert: dict[str, Any] | None = None,
    settings: Settings | None = None,
    registry: Registry | None = None,
) -> ResolvedPlaybook:
    """Check a run request the way :func:`run_playbook` does, without starting anything."""
    settings = settings or load_settings()
    resolved = resolve_playbook(playbook, settings)
    check_runnable(resolved.playbook, registry or default_registry())
    alert_model = normalise(alert) if alert is not None else Alert()
    incident = Incident(id="check", started_at=utcnow(), severity=resolved.playbook.metadata.severity)
    resolve_inputs(resolved.playbook, inputs, {"alert": alert_model.as_template(), "incident": incident.as_template()})
    check_configuration(settings)
    return resolved


def check_runnable(playbook: Playbook, registry: Registry) -> None:
    """Refuse a playbook whose graph or actions cannot run (a validated one always can)."""
    problems = check_graph(playbook.steps)
    if problems:
        raise RunError(f"playbook {playbook.ref}: {problems[0].detail}")
    for step in playbook.steps:
        registry.get(step.action)
        for handler in step.on_failure:
            registry.get(handler.action)


def new_run_id(name: str) -> str:
    return f"{utcnow().strftime('%Y%m%dT%H%M%SZ')}-{name[:40]}-{secrets.token_hex(3)}"


def default_trigger() -> dict[str, Any]:
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "unknown"
    return {"by": f"user:{user}", "how": "api"}


def check_configuration(settings: Settings) -> None:
    """Refuse a run whose configuration is broken before anything is written (one line, naming the file).

    The record key must be usable (:func:`flows.record.seal.sealer_for`) and a configured approvers
    file must exist and hold ``groups: {name: [user, ...]}``.
    """
    from flows.record.seal import sealer_for

    sealer_for(settings)
    path = settings.approvers_file
    if path is None:
        return
    if not Path(path).is_file():
        raise ConfigError(f"approvers_file {path}: no such file")
    import yaml

    from flows.engine.approvals import ApproverDirectory

    try:
        yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark is not None else str(path)
        raise ConfigError(f"{where}: the approvers file is not valid YAML: {e.problem}") from e
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as e:
        raise ConfigError(f"{path}: cannot read the approvers file: {type(e).__name__}") from e
    ApproverDirectory.load(Path(path))

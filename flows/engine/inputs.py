"""Typed playbook inputs: parsing ``--input k=v``, coercion, defaults, validation before a run starts.

Lists accept a JSON list or comma-separated text; ``dict`` accepts a JSON object; ``duration``
stays the text (``5m``) once it parses, so it can flow into ``with`` values that expect durations.
Defaults may be templates; they render with ``alert`` and ``incident`` (not other inputs).
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping
from typing import Any

from flows.engine.templates import render_value
from flows.errors import RunError, TemplateError
from flows.language.durations import parse_duration
from flows.language.spec import InputSpec, Playbook

SECRET_PREFIX = "secret:"


class InputError(RunError):
    """An input is missing, unknown or of the wrong type."""

    code = "E811"


def parse_pairs(pairs: Iterable[str]) -> dict[str, str]:
    """Split ``k=v`` arguments; a repeated key is an error."""
    out: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        key = key.strip()
        if not sep or not key:
            raise InputError(f"--input {pair!r}: expected NAME=VALUE")
        if key in out:
            raise InputError(f"--input {key!r} is given twice")
        out[key] = value
    return out


def _as_list(name: str, value: Any) -> list[Any]:
    if isinstance(value, list):
        return value
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("["):
            try:
                loaded = json.loads(text)
            except json.JSONDecodeError as e:
                raise InputError(f"input {name!r}: not a JSON list: {e}") from e
            if not isinstance(loaded, list):
                raise InputError(f"input {name!r}: expected a list")
            return loaded
        return [part.strip() for part in text.split(",") if part.strip()] if text else []
    raise InputError(f"input {name!r}: expected a list, got {type(value).__name__}")


def _as_int(name: str, value: Any) -> int:
    if isinstance(value, bool):
        raise InputError(f"input {name!r}: expected an integer, got a boolean")
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        try:
            return int(value.strip())
        except ValueError:
            pass
    raise InputError(f"input {name!r}: expected an integer, got {value!r}")


def _as_float(name: str, value: Any) -> float:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value.strip())
        except ValueError:
            pass
    raise InputError(f"input {name!r}: expected a number, got {value!r}")


def _as_bool(name: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("true", "yes", "1", "on"):
        return True
    if text in ("false", "no", "0", "off"):
        return False
    raise InputError(f"input {name!r}: expected true or false, got {value!r}")


def _as_dict(name: str, value: Any) -> dict[str, Any]:
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError as e:
            raise InputError(f"input {name!r}: not a JSON object: {e}") from e
    if not isinstance(value, dict):
        raise InputError(f"input {name!r}: expected an object")
    return value


def check_data(name: str, value: Any, depth: int = 0) -> None:
    """Refuse what JSON cannot hold faithfully: NaN and infinities, lone surrogates, absurd nesting.

    A shell passes bytes that are not UTF-8 as lone surrogates (``\\udcff``); such text cannot be
    written to run.json, so it is refused here, before anything is written.
    """
    if depth > 32:
        raise InputError(f"input {name!r}: nested more than 32 levels deep")
    if isinstance(value, float) and not math.isfinite(value):
        raise InputError(f"input {name!r}: {value!r} is not a finite number")
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError as e:
            raise InputError(f"input {name!r}: not valid Unicode (byte {e.object[e.start]!r} at {e.start})") from e
    elif isinstance(value, list):
        for item in value:
            check_data(name, item, depth + 1)
    elif isinstance(value, dict):
        for key, item in value.items():
            check_data(name, key, depth + 1)
            check_data(name, item, depth + 1)


def coerce(name: str, spec: InputSpec, value: Any) -> Any:
    """Convert ``value`` to the input's declared type, or raise :class:`InputError`."""
    check_data(name, value)
    kind = spec.type
    result: Any
    if kind == "string":
        if not isinstance(value, str):
            raise InputError(f"input {name!r}: expected a string, got {type(value).__name__}")
        result = value
    elif kind == "int":
        result = _as_int(name, value)
    elif kind == "float":
        result = _as_float(name, value)
    elif kind == "bool":
        result = _as_bool(name, value)
    elif kind == "duration":
        try:
            parse_duration(value)
        except ValueError as e:
            raise InputError(f"input {name!r}: {e}") from e
        result = value
    elif kind == "list[string]":
        items = _as_list(name, value)
        if not all(isinstance(i, str) for i in items):
            raise InputError(f"input {name!r}: expected a list of strings")
        result = items
    elif kind == "list[int]":
        result = [_as_int(f"{name}[{i}]", v) for i, v in enumerate(_as_list(name, value))]
    else:
        result = _as_dict(name, value)
    check_data(name, result)
    if spec.choices is not None and result not in spec.choices:
        raise InputError(f"input {name!r}: {result!r} is not one of {spec.choices!r}")
    return result


def _unrendered_default(name: str, default: Any, scope: Mapping[str, Any]) -> InputError:
    """Say which input has no value, what its default reads, and how to give one."""
    from flows.language.template_refs import parse_template

    refs = [".".join([r.root, *map(str, r.parts)]) for r in parse_template(str(default)).refs]
    reads = f"its default reads {', '.join(dict.fromkeys(refs))}" if refs else f"its default {default!r} fails"
    alert = scope.get("alert") or {}
    given = "no alert was given" if not (isinstance(alert, Mapping) and alert.get("labels")) else "the alert lacks it"
    return InputError(f"input {name!r} has no value: {reads}, and {given}; pass --alert FILE or --input {name}=...")


def resolve_inputs(playbook: Playbook, given: Mapping[str, Any] | None, scope: Mapping[str, Any]) -> dict[str, Any]:
    """Validate ``given`` against the playbook's inputs; fill defaults rendered with ``scope``."""
    given = dict(given or {})
    unknown = sorted(set(given) - set(playbook.inputs))
    if unknown:
        known = ", ".join(sorted(playbook.inputs)) or "none"
        raise InputError(f"unknown input {unknown[0]!r} (this playbook takes: {known})")
    resolved: dict[str, Any] = {}
    for name, spec in playbook.inputs.items():
        if name in given:
            resolved[name] = coerce(name, spec, given[name])
        elif spec.required:
            raise InputError(f"missing required input {name!r} ({spec.type}); pass --input {name}=...")
        elif spec.default is not None:
            try:
                default = render_value(spec.default, scope, where=f"inputs.{name}.default")
            except TemplateError as e:
                raise _unrendered_default(name, spec.default, scope) from e
            resolved[name] = coerce(name, spec, default)
        else:
            resolved[name] = None
    return resolved


def redact_inputs(inputs: Mapping[str, Any], secret_values: Iterable[str] = ()) -> dict[str, Any]:
    """Inputs as run.json shows them: ``secret:`` references and secret values hidden."""
    from flows.engine.redact import Redactor

    return dict(Redactor(secret_values, hide_refs=True).scrub(dict(inputs)))

"""Literal input defaults against their input's type: what ``fireline validate`` reports as E208.

Mirrors the engine's coercion of inputs (``flows.engine.inputs.coerce``) for values written in YAML,
without importing the engine, which ``fireline validate`` must stay light of.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from flows.language.spec import InputSpec


def _is_int(value: Any) -> bool:
    if isinstance(value, bool):
        return False
    if isinstance(value, int):
        return True
    return isinstance(value, str) and re.fullmatch(r"\s*[-+]?\d+\s*", value) is not None


def default_problem(spec: InputSpec) -> str | None:
    """Why a literal default would fail the engine's coercion of its input type (None: it fits)."""
    value, kind = spec.default, spec.type
    checks: dict[str, Callable[[Any], bool]] = {
        "string": lambda v: isinstance(v, str),
        "int": _is_int,
        "float": lambda v: (isinstance(v, int | float) and not isinstance(v, bool)) or _is_float_text(v),
        "bool": lambda v: isinstance(v, bool) or str(v).strip().lower() in _BOOL_WORDS,
        "duration": _is_duration,
        "list[string]": lambda v: isinstance(v, str) or (isinstance(v, list) and all(isinstance(i, str) for i in v)),
        "list[int]": lambda v: isinstance(v, list) and all(_is_int(i) for i in v),
        "dict": lambda v: isinstance(v, dict),
    }
    if not checks[kind](value):
        return f"expected a value of type {kind}, got {value!r}"
    if spec.choices is not None and value not in spec.choices:
        return f"{value!r} is not one of {spec.choices!r}"
    return None


_BOOL_WORDS = frozenset({"true", "yes", "1", "on", "false", "no", "0", "off"})


def _is_float_text(value: Any) -> bool:
    if not isinstance(value, str):
        return False
    try:
        float(value)
    except ValueError:
        return False
    return True


def _is_duration(value: Any) -> bool:
    from flows.language.durations import parse_duration

    try:
        parse_duration(value)
    except ValueError:
        return False
    return True

"""Durations as playbooks write them: ``500ms``, ``30s``, ``15m``, ``2h``, ``1d``."""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import BeforeValidator, PlainSerializer, WithJsonSchema

_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
DURATION_PATTERN = r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)\s*$"
_RE = re.compile(DURATION_PATTERN)


def parse_duration(value: Any) -> float:
    """Return the number of seconds a duration string stands for.

    Bare numbers are refused on purpose: ``timeout: 5`` is ambiguous to a reader.
    """
    if isinstance(value, bool) or not isinstance(value, str):
        raise ValueError(f"expected a duration such as '30s', '15m' or '2h', got {value!r}")
    match = _RE.match(value)
    if match is None:
        raise ValueError(f"expected a duration such as '30s', '15m' or '2h', got {value!r}")
    return float(match.group(1)) * _UNITS[match.group(2)]


def format_duration(seconds: float) -> str:
    """Render seconds back in the shortest exact unit."""
    for unit in ("d", "h", "m", "s"):
        size = _UNITS[unit]
        if seconds >= size and float(seconds / size).is_integer():
            return f"{int(seconds / size)}{unit}"
    return f"{round(seconds * 1000)}ms"


Duration = Annotated[
    float,
    BeforeValidator(parse_duration),
    PlainSerializer(format_duration, return_type=str),
    WithJsonSchema({"type": "string", "pattern": DURATION_PATTERN, "examples": ["30s", "15m", "2h"]}),
]
"""Seconds in Python, a duration string in YAML, JSON and the JSON Schema."""

"""Turn pydantic validation errors into located diagnostics with "did you mean" hints.

pydantic reports ``loc`` paths by alias (``with``, ``apiVersion``); they are the document paths of
the YAML, so :class:`~flows.language.yaml_safe.PositionMap` places them. Union members add their own names
to ``loc`` (``for_each.str``, ``for_each.list[any]``): those tails are folded into one message.
"""

from __future__ import annotations

import difflib
import re
import types
import typing
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from pydantic import BaseModel

from flows.errors import Diagnostic
from flows.language.yaml_safe import DocPath, PositionMap
from flows.language.yaml_safe import format_path as format_path  # re-exported: callers import it from here

SCHEMA_CODES = {
    "missing": "E201",
    "extra": "E202",
    "type": "E203",
    "choice": "E204",
    "pattern": "E205",
    "value": "E206",
    "range": "E207",
}
PARAM_CODES = {
    "missing": "E302",
    "extra": "E303",
    "type": "E304",
    "choice": "E304",
    "pattern": "E304",
    "value": "E304",
    "range": "E304",
}

_NOUNS = {
    "string_type": "a string",
    "int_type": "an integer",
    "int_parsing": "an integer",
    "int_from_float": "an integer",
    "float_type": "a number",
    "float_parsing": "a number",
    "bool_type": "true or false",
    "bool_parsing": "true or false",
    "list_type": "a list",
    "dict_type": "a mapping",
    "model_type": "a mapping",
    "model_attributes_type": "a mapping",
    "none_required": "null",
    "tuple_type": "a list",
    "set_type": "a list",
}
_RANGE = (
    "too_short",
    "too_long",
    "greater_than",
    "greater_than_equal",
    "less_than",
    "less_than_equal",
    "string_too_short",
    "string_too_long",
    "multiple_of",
)


def suggest(name: str, candidates: Iterable[str]) -> str | None:
    """A "did you mean" hint naming the closest candidate, if one is close enough."""
    close = difflib.get_close_matches(name, sorted(set(candidates)), n=1, cutoff=0.6)
    return f"did you mean {close[0]!r}?" if close else None


def shown(value: Any) -> str:
    """A short rendering of an offending value for a message."""
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def field_aliases(model: type[BaseModel]) -> list[str]:
    """The keys a model accepts in a document (aliases where set)."""
    return [f.alias or name for name, f in model.model_fields.items()]


def _descend(tp: Any, part: str | int) -> Any:
    """The type found one step down ``part`` from a value of type ``tp``."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        for arg in typing.get_args(tp):
            found = _descend(arg, part)
            if found is not None:
                return found
        return None
    if origin is typing.Annotated:
        return _descend(typing.get_args(tp)[0], part)
    if isinstance(tp, type) and issubclass(tp, BaseModel) and isinstance(part, str):
        for name, f in tp.model_fields.items():
            if (f.alias or name) == part:
                return f.annotation
        return None
    if origin is list and isinstance(part, int):
        return typing.get_args(tp)[0]
    if origin is dict and isinstance(part, str):
        return typing.get_args(tp)[1]
    return None


def model_at(root: type[BaseModel], path: DocPath) -> type[BaseModel] | None:
    """The model that validates the mapping at ``path`` below ``root``, if any."""
    tp: Any = root
    for part in path:
        tp = _descend(tp, part)
        if tp is None:
            return None
    for candidate in (tp, *typing.get_args(tp)):
        if isinstance(candidate, type) and issubclass(candidate, BaseModel):
            return candidate
    return None


def _resolve(data: Any, loc: tuple[Any, ...]) -> int:
    """How many leading elements of ``loc`` exist in ``data``."""
    for depth, part in enumerate(loc):
        if isinstance(data, dict) and isinstance(part, str) and part in data:
            data = data[part]
        elif isinstance(data, list) and isinstance(part, int) and 0 <= part < len(data):
            data = data[part]
        else:
            return depth
    return len(loc)


def _category(kind: str) -> str:
    if kind in _NOUNS:
        return "type"
    if kind in ("literal_error", "enum"):
        return "choice"
    if kind == "string_pattern_mismatch":
        return "pattern"
    if kind in _RANGE:
        return "range"
    return "value"


def _message(err: Mapping[str, Any]) -> tuple[str, str | None]:
    kind, value = err["type"], err.get("input")
    if kind in _NOUNS:
        return f"expected {_NOUNS[kind]}, got {shown(value)}", None
    if kind in ("literal_error", "enum"):
        expected = err.get("ctx", {}).get("expected", "")
        choices = re.findall(r"'([^']*)'", expected)
        hint = suggest(value, choices) if isinstance(value, str) else None
        return f"expected {expected}, got {shown(value)}", hint
    if kind == "string_pattern_mismatch":
        return f"{shown(value)} does not match {err.get('ctx', {}).get('pattern', '')}", None
    msg = str(err["msg"]).removeprefix("Value error, ").removeprefix("Assertion failed, ")
    return (msg[:1].lower() + msg[1:]), None


def _unknown_key_hint(key: str, valid: Sequence[str]) -> str | None:
    """The closest valid key, or (when none is close) the valid keys themselves, up to twenty."""
    close = suggest(key, valid)
    if close is not None or not valid:
        return close
    names = sorted(set(valid))
    more = f", ... ({len(names)} in all)" if len(names) > 20 else ""
    return "valid keys: " + ", ".join(names[:20]) + more


def pydantic_diagnostics(
    errors: Sequence[Mapping[str, Any]],
    data: Any,
    positions: PositionMap,
    root: type[BaseModel],
    *,
    base: DocPath = (),
    codes: dict[str, str] = SCHEMA_CODES,
) -> list[Diagnostic]:
    """Locate each pydantic error of ``root.model_validate(data)``; ``base`` prefixes every path."""
    out: list[Diagnostic] = []
    unions: dict[DocPath, list[Mapping[str, Any]]] = {}
    for err in errors:
        loc = tuple(err["loc"])
        kind = err["type"]
        if kind == "missing":
            path = base + loc
            pos = positions.value(base + loc[:-1])
            out.append(Diagnostic(codes["missing"], "field required", pos, format_path(path)))
        elif kind == "extra_forbidden":
            model = model_at(root, loc[:-1])
            key = str(loc[-1])
            hint = _unknown_key_hint(key, field_aliases(model)) if model is not None else None
            path = base + loc
            message = f"unknown key {key!r}"
            out.append(Diagnostic(codes["extra"], message, positions.key(path), format_path(path), hint=hint))
        else:
            depth = _resolve(data, loc)
            if depth < len(loc):  # a union member's tail: fold the members' errors together
                unions.setdefault(base + loc[:depth], []).append(err)
                continue
            message, hint = _message(err)
            path = base + loc
            out.append(Diagnostic(codes[_category(kind)], message, positions.value(path), format_path(path), hint=hint))
    for path, errs in unions.items():
        nouns = [_NOUNS[e["type"]] for e in errs if e["type"] in _NOUNS]
        if len(nouns) == len(errs):
            message, code = f"expected {' or '.join(dict.fromkeys(nouns))}, got {shown(errs[0].get('input'))}", "type"
        else:
            message, code = "; ".join(_message(e)[0] for e in errs), _category(errs[0]["type"])
        out.append(Diagnostic(codes[code], message, positions.value(path), format_path(path)))
    return out

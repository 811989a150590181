"""Describe registered actions for people and machines (``fireline actions``, the docs)."""

from __future__ import annotations

import types
import typing
from typing import Any

from pydantic import BaseModel
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from flows.actions.registry import Action
from flows.language.durations import format_duration


def type_name(annotation: Any, metadata: list[Any] | None = None) -> str:
    """A short, playbook-author's name for a field type: ``string``, ``list[string]``, ``duration``."""
    for meta in metadata or []:
        schema = getattr(meta, "json_schema", None)
        if isinstance(schema, dict) and "examples" in schema and "30s" in schema["examples"]:
            return "duration"
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is typing.Annotated:
        return type_name(args[0], list(args[1:]))
    if origin in (typing.Union, types.UnionType):
        return " | ".join(type_name(a) for a in args)
    if origin is typing.Literal:
        return "|".join(str(a) for a in args)
    if origin in (list, tuple, set, frozenset):
        return f"list[{type_name(args[0]) if args else 'any'}]"
    if origin is dict:
        return f"dict[{type_name(args[0])}, {type_name(args[1])}]" if args else "dict"
    names = {str: "string", int: "int", float: "number", bool: "bool", type(None): "null", typing.Any: "any"}
    if annotation in names:
        return names[annotation]
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return f"{annotation.__name__} (mapping)"
    return getattr(annotation, "__name__", str(annotation))


def _default(info: FieldInfo, kind: str) -> Any:
    if info.default is not PydanticUndefined:
        value = info.default
    elif info.default_factory is not None:
        value = info.default_factory()  # type: ignore[call-arg]  # no validated-data factories here
    else:
        return None
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if kind == "duration" and isinstance(value, int | float):
        return format_duration(value)
    return value


def describe_fields(model: type[BaseModel]) -> list[dict[str, Any]]:
    """Name (as written in YAML), type, required, default and description of each field."""
    out = []
    for name, info in model.model_fields.items():
        kind = type_name(info.annotation, list(info.metadata))
        out.append(
            {
                "name": info.alias or name,
                "type": kind,
                "required": info.is_required(),
                "default": None if info.is_required() else _default(info, kind),
                "description": info.description or "",
            }
        )
    return out


def summary(action: Action[Any, Any]) -> dict[str, Any]:
    """The catalogue row of an action."""
    return {
        "name": action.name,
        "kind": action.kind.value,
        "undoable": action.undoable(),
        "description": action.description,
    }


def detail(action: Action[Any, Any]) -> dict[str, Any]:
    """Everything a playbook author needs to call an action."""
    return {
        **summary(action),
        "params": describe_fields(action.Params),
        "result": describe_fields(action.Result),
        "permissions": sorted(set(action.permissions)),
        "undo_permissions": sorted(set(action.undo_permissions)),
        "guidance": list(getattr(action, "guidance", ())),
        "caveats": list(getattr(action, "caveats", ())),
    }

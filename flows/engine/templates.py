"""Template rendering for playbooks: sandboxed Jinja2, strict names, rendered exactly once, size-capped.

A string that is exactly one ``{{ expr }}`` renders to the expression's native value (a list stays a
list); any other string renders to text. Values that reach a template from an alert, an input or a
step output are data: the rendered result is never rendered again, so a label holding ``{{ ... }}``
is inert. Playbook templates themselves are bounded: ``*``, ``**`` and ``%`` refuse results past the
cap, ``range`` is capped by the sandbox, filters and calls refuse huge numeric arguments (``center``,
``ljust``, widths in format strings), text output stops at :data:`MAX_VALUE_BYTES`, and a render
that runs past :data:`RENDER_SECONDS` (nested loops that print nothing) is stopped.
"""

from __future__ import annotations

import functools
import json
import re
import sys
import time
from collections.abc import Callable, Mapping
from types import FrameType
from typing import Any

from jinja2 import StrictUndefined, TemplateSyntaxError, Undefined
from jinja2.exceptions import SecurityError, UndefinedError
from jinja2.runtime import Context
from jinja2.sandbox import ImmutableSandboxedEnvironment

from flows.errors import TemplateError

MAX_VALUE_BYTES = 64 * 1024
"""Cap on one rendered value (text length, or its JSON size for a native value)."""
MAX_NUMERIC_ARG = 100_000
"""Largest integer a filter or call may receive: guards widths and counts (``center``, ``ljust``, ``batch``)."""
MAX_INT_BITS = 4096
RENDER_SECONDS = 2.0
"""Wall-clock budget of one render (loops that print nothing included)."""
_SINGLE_EXPR = re.compile(r"^\s*\{\{(?P<expr>(?:(?!\{\{|\}\}|\{%|\{#).)*)\}\}\s*$", re.DOTALL)
_BIG_WIDTH = re.compile(r"\d{6,}")
_MARKERS = ("{{", "{%", "{#")


def _too_big(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and abs(value) > MAX_NUMERIC_ARG


def _guard_filter(func: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(func)  # keeps jinja's pass_* markers in __dict__
    def guarded(*args: Any, **kwargs: Any) -> Any:
        if any(_too_big(a) for a in (*args, *kwargs.values())):
            raise SecurityError(f"filter {getattr(func, '__name__', '?')}: argument over {MAX_NUMERIC_ARG} refused")
        return func(*args, **kwargs)

    return guarded


def _size_of(value: Any) -> int:
    if isinstance(value, str | bytes):
        return len(value)
    if isinstance(value, list | tuple | dict | set):
        return len(value)
    return 0


class _Environment(ImmutableSandboxedEnvironment):
    """The sandbox with fireline's resource bounds."""

    intercepted_binops = frozenset({"*", "**", "%", "+"})

    def __init__(self) -> None:
        super().__init__(undefined=StrictUndefined, autoescape=False, keep_trailing_newline=True)
        # Only data-shaping helpers: no cycler, joiner, lipsum or namespace objects to walk from.
        self.globals = {"range": self.globals["range"], "dict": dict}
        self.filters = {name: _guard_filter(f) for name, f in self.filters.items()}

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        if operator == "**" and isinstance(left, int) and isinstance(right, int):
            if abs(left) > 1 and right * max(abs(left), 2).bit_length() > MAX_INT_BITS:
                raise SecurityError("power too large")
        if operator == "*":
            for seq, times in ((left, right), (right, left)):
                if isinstance(times, int) and _size_of(seq) * max(times, 0) > MAX_VALUE_BYTES:
                    raise SecurityError(f"repetition over {MAX_VALUE_BYTES} refused")
        if operator == "%" and isinstance(left, str) and _BIG_WIDTH.search(left):
            raise SecurityError("format width too large")
        if operator == "+" and _size_of(left) + _size_of(right) > MAX_VALUE_BYTES:
            raise SecurityError(f"concatenation over {MAX_VALUE_BYTES} refused")
        return super().call_binop(context, operator, left, right)

    def call(__self, __context: Context, __obj: Any, *args: Any, **kwargs: Any) -> Any:
        if any(_too_big(a) for a in (*args, *kwargs.values())):
            raise SecurityError(f"call argument over {MAX_NUMERIC_ARG} refused")
        owner = getattr(getattr(__obj, "__wrapped__", __obj), "__self__", None)
        if isinstance(owner, str) and _BIG_WIDTH.search(owner):
            raise SecurityError("format width too large")
        return super().call(__context, __obj, *args, **kwargs)


_ENV = _Environment()


def _to_data(value: Any, depth: int = 0) -> Any:
    """Convert a native expression result to plain JSON-like data, refusing anything else."""
    if depth > 32:
        raise TemplateError("rendered value is nested too deeply")
    if isinstance(value, Undefined):
        value._fail_with_undefined_error()
    if value is None or isinstance(value, bool | int | float):
        return value
    if isinstance(value, Placeholder) and not dict.__len__(value):
        return str(value)
    if isinstance(value, str):
        return str(value)  # drop Markup and other str subclasses
    if isinstance(value, list | tuple | range):
        return [_to_data(v, depth + 1) for v in value]
    if isinstance(value, Mapping):
        return {str(k): _to_data(v, depth + 1) for k, v in value.items()}
    raise TemplateError(f"a template produced a {type(value).__name__}, which is not data")


def _check_size(value: Any, where: str) -> Any:
    size = len(value) if isinstance(value, str) else len(json.dumps(value, default=str))
    if size > MAX_VALUE_BYTES:
        raise TemplateError(f"{where}: rendered value is over the {MAX_VALUE_BYTES // 1024} KiB cap")
    return value


def is_template(value: str) -> bool:
    """True when a string holds Jinja markup."""
    return any(marker in value for marker in _MARKERS)


@functools.lru_cache(maxsize=1024)
def _cached_expression(expr: str) -> Callable[..., Any]:
    return _ENV.compile_expression(expr, undefined_to_none=False)


@functools.lru_cache(maxsize=1024)
def _cached_template(source: str) -> Any:
    return _ENV.from_string(source)


class _Budget:
    """A wall-clock budget for one render, enforced by tracing the template's own frames.

    Loops in a template are Python loops in code compiled from ``<template>``; a tracer on those
    frames (and no others) raises once the budget is spent, so nested loops that print nothing
    still end. The previous tracer (a debugger, coverage) is restored afterwards.
    """

    def __init__(self, seconds: float) -> None:
        self.deadline = time.monotonic() + seconds
        self.events = 0

    def _local(self, frame: FrameType, event: str, arg: Any) -> Any:
        self.events += 1
        if self.events % 1024 == 0 and time.monotonic() > self.deadline:
            raise SecurityError(f"rendering took longer than {RENDER_SECONDS:g}s")
        return self._local

    def _global(self, frame: FrameType, event: str, arg: Any) -> Any:
        return self._local if frame.f_code.co_filename == "<template>" else None

    def run(self, fn: Callable[[], Any]) -> Any:
        previous = sys.gettrace()
        sys.settrace(self._global)
        try:
            return fn()
        finally:
            sys.settrace(previous)


def _render(source: str, scope: Mapping[str, Any], where: str) -> Any:
    match = _SINGLE_EXPR.match(source)
    if match is not None:
        return _check_size(_to_data(_cached_expression(match.group("expr").strip())(**scope)), where)
    pieces: list[str] = []
    size = 0
    for chunk in _cached_template(source).generate(**scope):
        size += len(chunk)
        if size > MAX_VALUE_BYTES:
            raise TemplateError(f"{where}: rendered text is over the {MAX_VALUE_BYTES // 1024} KiB cap")
        pieces.append(chunk)
    return "".join(pieces)


def render_string(source: str, scope: Mapping[str, Any], *, where: str = "template") -> Any:
    """Render one playbook string: native value for a lone ``{{ expr }}``, text otherwise."""
    if not is_template(source):
        return source
    try:
        return _Budget(RENDER_SECONDS).run(lambda: _render(source, scope, where))
    except TemplateError:
        raise
    except UndefinedError as e:
        raise TemplateError(f"{where}: {e}") from e
    except TemplateSyntaxError as e:
        raise TemplateError(f"{where}: template syntax: {e.message}") from e
    except SecurityError as e:
        raise TemplateError(f"{where}: refused by the sandbox: {e}") from e
    except (OverflowError, MemoryError, RecursionError) as e:
        raise TemplateError(f"{where}: refused: {type(e).__name__}: {e}") from e
    except Exception as e:
        raise TemplateError(f"{where}: {type(e).__name__}: {e}") from e


def render_value(value: Any, scope: Mapping[str, Any], *, where: str = "template") -> Any:
    """Render every string inside ``value`` (dicts and lists walked), once; other values pass through."""
    if isinstance(value, str):
        return render_string(value, scope, where=where)
    if isinstance(value, list):
        return [render_value(v, scope, where=f"{where}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, dict):
        return {k: render_value(v, scope, where=f"{where}.{k}") for k, v in value.items()}
    return value


def truthy(value: Any) -> bool:
    """How a rendered ``when`` decides: text 'false', 'no', '0', 'none' and '' are false."""
    if isinstance(value, str):
        return value.strip().lower() not in ("", "false", "no", "0", "none", "null")
    return bool(value)


class Placeholder(dict[str, Any]):
    """Stands for a step output that a dry-run never produced: any field of it is a placeholder too.

    ``{{ steps.isolate.output.group_id }}`` renders as ``<dry-run: isolate.group_id>`` instead of
    failing, so a dry-run walks the whole playbook.
    """

    def __init__(self, path: str, known: Mapping[str, Any] | None = None) -> None:
        super().__init__(known or {})
        self.path = path

    def __missing__(self, key: str) -> Placeholder:
        return Placeholder(f"{self.path}.{key}")

    def __str__(self) -> str:
        return f"<dry-run: {self.path}>"

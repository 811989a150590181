"""Template rendering for playbooks: sandboxed Jinja2, strict names, rendered exactly once, size-capped.

A string that is exactly one ``{{ expr }}`` renders to the expression's native value (a list stays a
list); any other string renders to text. Values that reach a template from an alert, an input or a
step output are data: the rendered result is never rendered again, so a label holding ``{{ ... }}``
is inert. Playbook templates themselves are bounded before anything is allocated (integer size,
text growth, format widths, an operation budget for loops, calls and filters; see
:mod:`flows.engine.sandbox_bounds`), and text output stops at :data:`MAX_VALUE_BYTES`. No tracer
and no wall clock are involved: a debugger or coverage keeps working, and the bound is the same on
a busy machine.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Callable, Mapping
from typing import Any

from jinja2 import StrictUndefined, TemplateSyntaxError, Undefined, nodes
from jinja2.exceptions import SecurityError, UndefinedError
from jinja2.runtime import Context
from jinja2.sandbox import ImmutableSandboxedEnvironment

from flows.engine.sandbox_bounds import (
    CALL_COST,
    CONCAT_FILTER,
    ITER_FILTER,
    MAX_NUMERIC_ARG,
    MAX_VALUE_BYTES,
    BoundedFormatter,
    BoundLoopsAndConcat,
    bounded_concat,
    bounded_iter,
    check_binop,
    check_elements,
    check_percent_format,
    spend,
    start_budget,
)
from flows.errors import TemplateError

__all__ = ["MAX_VALUE_BYTES", "Placeholder", "condition", "is_template", "render_string", "render_value", "truthy"]

_SINGLE_EXPR = re.compile(r"^\s*\{\{(?P<expr>(?:(?!\{\{|\}\}|\{%|\{#).)*)\}\}\s*$", re.DOTALL)
_MARKERS = ("{{", "{%", "{#")


def _too_big(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and abs(value) > MAX_NUMERIC_ARG


def _guard_filter(func: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(func)  # keeps jinja's pass_* markers in __dict__
    def guarded(*args: Any, **kwargs: Any) -> Any:
        spend()
        if any(_too_big(a) for a in (*args, *kwargs.values())):
            raise SecurityError(f"filter {getattr(func, '__name__', '?')}: argument over {MAX_NUMERIC_ARG} refused")
        for value in (*args, *kwargs.values()):
            check_elements(value)
        return func(*args, **kwargs)

    return guarded


def _format(value: Any, *args: Any, **kwargs: Any) -> str:
    """The ``format`` filter (printf-style), with its widths bounded before formatting."""
    check_percent_format(str(value), kwargs or args)
    return str(value) % (kwargs or args)


def _finalize(value: Any) -> Any:
    """Refuse a value too large to print before it is turned into text."""
    check_elements(value)
    return value


class _Environment(ImmutableSandboxedEnvironment):
    """The sandbox with fireline's resource bounds (see :mod:`flows.engine.sandbox_bounds`)."""

    intercepted_binops = frozenset({"*", "**", "%", "+"})

    def __init__(self) -> None:
        super().__init__(undefined=StrictUndefined, autoescape=False, keep_trailing_newline=True, finalize=_finalize)
        # Only data-shaping helpers: no cycler, joiner, lipsum or namespace objects to walk from.
        self.globals = {"range": self.globals["range"], "dict": dict}
        filters = {**self.filters, "format": _format}
        self.filters = {name: _guard_filter(f) for name, f in filters.items()}
        self.filters[ITER_FILTER] = bounded_iter
        self.filters[CONCAT_FILTER] = bounded_concat

    def _generate(
        self, source: nodes.Template, name: str | None, filename: str | None, defer_init: bool = False
    ) -> str:
        bounded = BoundLoopsAndConcat().visit(source)
        return super()._generate(bounded, name, filename, defer_init)

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        check_binop(operator, left, right)
        return super().call_binop(context, operator, left, right)

    def call(__self, __context: Context, __obj: Any, *args: Any, **kwargs: Any) -> Any:
        spend(CALL_COST)
        if any(_too_big(a) for a in (*args, *kwargs.values())):
            raise SecurityError(f"call argument over {MAX_NUMERIC_ARG} refused")
        return super().call(__context, __obj, *args, **kwargs)

    def wrap_str_format(self, value: Any) -> Callable[..., str] | None:
        """``str.format``/``format_map`` with every field's width and precision bounded."""
        owner = getattr(value, "__self__", None)
        if not isinstance(owner, str) or getattr(value, "__name__", "") not in ("format", "format_map"):
            return None
        formatter = BoundedFormatter(self)
        is_map = value.__name__ == "format_map"

        def wrapper(*args: Any, **kwargs: Any) -> str:
            if is_map:
                if kwargs or len(args) != 1:
                    raise TypeError("format_map() takes exactly one mapping argument")
                return formatter.vformat(owner, (), args[0])
            return formatter.vformat(owner, args, kwargs)

        return wrapper


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


def _render(source: str, scope: Mapping[str, Any], where: str) -> Any:
    match = _SINGLE_EXPR.match(source)
    if match is not None:
        value = _cached_expression(match.group("expr").strip())(**scope)
        check_elements(value)  # before walking it: shared sub-lists can stand for billions of elements
        return _check_size(_to_data(value), where)
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
    start_budget()
    try:
        return _render(source, scope, where)
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


_TRUE_TEXT = frozenset({"true", "yes", "1"})
_FALSE_TEXT = frozenset({"false", "no", "0"})


def condition(value: Any, *, where: str = "when") -> bool:
    """How a rendered ``when`` decides: only a recognised boolean decides; anything else is an error.

    ``True``/``False``, the integers 1/0 and the text true/false, yes/no, 1/0 (any case) decide. A
    dry-run placeholder (a step output that was never produced) runs the step, so a dry-run walks
    every step. Any other value (``"False and False"`` from ``"{{ a }} and {{ b }}"``, a list, a
    name) raises :class:`TemplateError`: a condition must be one expression, and text is never truthy.
    """
    if isinstance(value, Placeholder):
        return True
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in _TRUE_TEXT | _FALSE_TEXT:
        return value.strip().lower() in _TRUE_TEXT
    shown = repr(value)[:80]
    raise TemplateError(
        f"{where}: rendered {shown} ({type(value).__name__}), not a boolean: a condition must be one "
        "expression, e.g. \"{{ a and b }}\" rather than \"{{ a }} and {{ b }}\""
    )


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

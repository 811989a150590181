"""Resource bounds of the template sandbox, checked before anything is allocated.

A playbook template may not make the engine spend minutes or gigabytes. Every bound is checked on
the operands, before Python allocates the result:

- integers: ``*`` and ``**`` refuse a result over :data:`MAX_INT_BITS` bits (repeated squaring);
- text and sequences: ``*``, ``+`` and ``~`` refuse a result over :data:`MAX_VALUE_BYTES`;
- format widths and precisions (``'%99999999s' % x``, ``|format``, ``'{0:{1}}'.format``) over
  :data:`MAX_WIDTH` are refused, whatever supplies them;
- numeric arguments of filters and calls over :data:`MAX_NUMERIC_ARG` are refused;
- work: every loop iteration and filter spends one unit (a call :data:`CALL_COST`) of a budget of
  :data:`MAX_OPERATIONS` per render, so loops that print nothing and exponential macros end, with
  no tracer and no wall clock (the budget is the same on a fast and a busy machine).

Loops and ``~`` are bounded by rewriting the parsed template: each ``for`` iterates through
:func:`bounded_iter` and each ``~`` becomes :func:`bounded_concat`.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterable, Iterator
from typing import Any

from jinja2 import nodes
from jinja2.exceptions import SecurityError
from jinja2.sandbox import SandboxedFormatter
from jinja2.visitor import NodeTransformer

MAX_VALUE_BYTES = 64 * 1024
"""Cap on one rendered value (text length, or its JSON size for a native value)."""
MAX_NUMERIC_ARG = 100_000
"""Largest integer a filter or call may receive: guards widths and counts (``center``, ``ljust``, ``batch``)."""
MAX_INT_BITS = 4096
MAX_WIDTH = MAX_VALUE_BYTES
MAX_OPERATIONS = 200_000
"""Loop iterations, calls and filters one render may spend."""
CALL_COST = 50
"""Operations a call spends: a macro call costs far more than a loop step (4,000 calls per render)."""
MAX_ELEMENTS = 100_000
"""Elements one value may hold when it is turned into text or data (shared sub-lists count each time)."""

ITER_FILTER = "_fireline_bounded_iter"
CONCAT_FILTER = "_fireline_bounded_concat"
_PERCENT_SPEC = re.compile(r"%(?:\([^)]*\))?[-#0 +]*(\*|\d+)?(?:\.(\*|\d+))?[hlL]?[a-zA-Z%]")
_SPEC_NUMBERS = re.compile(r"\d+")
_budget = threading.local()


def start_budget() -> None:
    """Give this thread's next render a fresh operation budget."""
    _budget.left = MAX_OPERATIONS


def spend(units: int = 1) -> None:
    left = getattr(_budget, "left", MAX_OPERATIONS) - units
    _budget.left = left
    if left < 0:
        raise SecurityError(f"the template did more than {MAX_OPERATIONS} operations (loops, calls, filters)")


def size_of(value: Any) -> int:
    if isinstance(value, str | bytes | list | tuple | dict | set):
        return len(value)
    return 0


def count_elements(value: Any, limit: int = MAX_ELEMENTS) -> int:
    """Elements reachable in ``value`` (a shared sub-list counts each time it is reached), up to ``limit + 1``."""
    count = 0
    stack = [value]
    while stack:
        current = stack.pop()
        count += 1
        if count > limit:
            return count
        if isinstance(current, dict):
            stack.extend(current.values())
        elif isinstance(current, list | tuple | set):
            stack.extend(current)
    return count


def check_elements(value: Any) -> None:
    """Refuse a container with over :data:`MAX_ELEMENTS` elements; the walk spends from the budget."""
    if isinstance(value, list | tuple | set | dict):
        count = count_elements(value)
        spend(count // 16)
        if count > MAX_ELEMENTS:
            raise SecurityError(f"a value with over {MAX_ELEMENTS} elements refused")


def check_percent_format(fmt: str, args: Any) -> None:
    """Refuse a ``%`` format whose widths or precisions (literal or ``*``) are over :data:`MAX_WIDTH`."""
    for match in _PERCENT_SPEC.finditer(fmt):
        for group in match.groups():
            if group is not None and group != "*" and int(group) > MAX_WIDTH:
                raise SecurityError(f"format width {group} over {MAX_WIDTH} refused")
    values = args if isinstance(args, tuple) else (args,)
    if any(isinstance(v, int) and not isinstance(v, bool) and abs(v) > MAX_WIDTH for v in values) and "*" in fmt:
        raise SecurityError(f"format width over {MAX_WIDTH} refused")


def check_spec(spec: str) -> None:
    """Refuse a ``str.format`` field spec whose width or precision is over :data:`MAX_WIDTH`."""
    if any(int(n) > MAX_WIDTH for n in _SPEC_NUMBERS.findall(spec)):
        raise SecurityError(f"format spec {spec[:20]!r} over width {MAX_WIDTH} refused")


def check_binop(operator: str, left: Any, right: Any) -> None:
    """Refuse ``left <operator> right`` when its result would be over a bound."""
    ints = isinstance(left, int) and isinstance(right, int)
    if operator == "**" and ints and abs(left) > 1 and right * max(abs(left), 2).bit_length() > MAX_INT_BITS:
        raise SecurityError("power too large")
    if operator == "*":
        if ints and left.bit_length() + right.bit_length() > MAX_INT_BITS:
            raise SecurityError(f"product over {MAX_INT_BITS} bits refused")
        for seq, times in ((left, right), (right, left)):
            if isinstance(times, int) and size_of(seq) * max(times, 0) > MAX_VALUE_BYTES:
                raise SecurityError(f"repetition over {MAX_VALUE_BYTES} refused")
    if operator == "%" and isinstance(left, str):
        check_percent_format(left, right)
    if operator == "+" and size_of(left) + size_of(right) > MAX_VALUE_BYTES:
        raise SecurityError(f"concatenation over {MAX_VALUE_BYTES} refused")


def bounded_iter(iterable: Iterable[Any]) -> Iterator[Any]:
    """Iterate, spending one operation per element."""
    for value in iterable:
        spend()
        yield value


def bounded_concat(parts: list[Any]) -> str:
    """``a ~ b ~ ...``, refused before joining when the text would be over :data:`MAX_VALUE_BYTES`."""
    texts: list[str] = []
    total = 0
    for part in parts:
        check_elements(part)
        text = str(part)
        total += len(text)
        if total > MAX_VALUE_BYTES:
            raise SecurityError(f"concatenation over {MAX_VALUE_BYTES} refused")
        texts.append(text)
    return "".join(texts)


class BoundedFormatter(SandboxedFormatter):
    """``str.format`` in the sandbox, with every field's width and precision bounded."""

    def format_field(self, value: Any, format_spec: str) -> Any:
        check_spec(format_spec)
        check_elements(value)
        return super().format_field(value, format_spec)


class BoundLoopsAndConcat(NodeTransformer):
    """Rewrite a parsed template: ``for`` goes through :func:`bounded_iter`, ``~`` through :func:`bounded_concat`."""

    def visit_For(self, node: nodes.For) -> nodes.Node:
        self.generic_visit(node)
        node.iter = nodes.Filter(node.iter, ITER_FILTER, [], [], None, None, lineno=node.lineno)
        return node

    def visit_Concat(self, node: nodes.Concat) -> nodes.Node:
        self.generic_visit(node)
        parts = nodes.List(node.nodes, lineno=node.lineno)
        return nodes.Filter(parts, CONCAT_FILTER, [], [], None, None, lineno=node.lineno)

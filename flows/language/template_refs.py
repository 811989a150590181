"""Find what a template refers to, without rendering it: ``inputs.x``, ``steps['id'].output``, ...

Used by the linter to check references statically. Jinja2 is imported only when a string actually
contains a template, so validating a playbook without templates never pays for it.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Any

TEMPLATE_MARKERS = ("{{", "{%")
IMPLICIT_NAMES = frozenset({"loop", "caller", "varargs", "kwargs"})  # defined by for loops and macros


def is_template(value: object) -> bool:
    """True when ``value`` is a string that holds template syntax."""
    return isinstance(value, str) and any(m in value for m in TEMPLATE_MARKERS)


def contains_template(value: Any) -> bool:
    """True when ``value`` or anything nested in it holds template syntax."""
    if isinstance(value, str):
        return is_template(value)
    if isinstance(value, dict):
        return any(contains_template(v) for v in value.values())
    if isinstance(value, list):
        return any(contains_template(v) for v in value)
    return False


@dataclass(frozen=True)
class Ref:
    """A name a template reads, with the constant attribute/item chain that follows it."""

    root: str
    parts: tuple[str | int, ...] = ()


@dataclass(frozen=True)
class Parsed:
    """What one template refers to: free names and reference chains, or a syntax error."""

    free: frozenset[str]
    refs: tuple[Ref, ...]
    error: str | None = None


@lru_cache(maxsize=1)
def _env() -> Any:
    from jinja2.sandbox import SandboxedEnvironment

    return SandboxedEnvironment()


def builtin_names() -> frozenset[str]:
    """Names every template may use without declaring them (range, dict, namespace, ...)."""
    return frozenset(_env().globals)


def _unwind(node: Any) -> tuple[Ref | None, list[Any]]:
    """Split a Getattr/Getitem chain into its root reference and the expressions it evaluates."""
    from jinja2 import nodes

    parts: list[str | int] = []
    others: list[Any] = []
    cur = node
    while isinstance(cur, nodes.Getattr | nodes.Getitem):
        if isinstance(cur, nodes.Getattr):
            parts.append(cur.attr)
        elif isinstance(cur.arg, nodes.Const) and isinstance(cur.arg.value, str | int):
            parts.append(cur.arg.value)
        else:  # a computed index: what follows it is unknown statically
            others.append(cur.arg)
            parts.clear()
        cur = cur.node
    if isinstance(cur, nodes.Name):
        return Ref(cur.name, tuple(reversed(parts))), others
    others.append(cur)
    return None, others


def _collect(node: Any, refs: list[Ref]) -> None:
    from jinja2 import nodes

    if isinstance(node, nodes.Getattr | nodes.Getitem | nodes.Name) and getattr(node, "ctx", "load") == "load":
        ref, others = _unwind(node)
        if ref is not None:
            refs.append(ref)
        for other in others:
            _collect(other, refs)
        return
    for child in node.iter_child_nodes():
        _collect(child, refs)


@lru_cache(maxsize=4096)
def parse_template(text: str) -> Parsed:
    """Parse ``text`` and list what it refers to; a syntax error is reported, not raised."""
    from jinja2 import TemplateSyntaxError, nodes

    env = _env()
    try:
        ast = env.parse(text)
    except TemplateSyntaxError as e:
        return Parsed(frozenset(), (), f"line {e.lineno}: {e.message}" if text.count("\n") else str(e.message))
    # Names a template binds itself (loop targets, set, macro parameters) count as bound anywhere in
    # it: cheaper than jinja2.meta's code generator, and scope slips are caught at render time.
    names = list(ast.find_all(nodes.Name))
    bound = {n.name for n in names if n.ctx in ("store", "param")} | IMPLICIT_NAMES
    free = frozenset(n.name for n in names if n.ctx == "load" and n.name not in bound)
    refs: list[Ref] = []
    _collect(ast, refs)
    return Parsed(free, tuple(r for r in refs if r.root in free))

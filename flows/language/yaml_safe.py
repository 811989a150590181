"""Safe YAML reading with source positions, for playbooks and every other YAML document.

Documents are built from libyaml's event stream by an iterative composer, never by PyYAML's
constructors, so no tag can instantiate a Python object and no input can recurse the interpreter.
The composer refuses what a hostile or broken file can do to a reader: duplicate keys, nesting
bombs, alias-expansion bombs ("billion laughs") and unknown tags. Scalars resolve by the YAML 1.2
core schema (``yes``/``on``/``no`` stay strings; mapping keys are always strings).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import yaml

from flows.errors import Diagnostic, SourcePosition, YamlSyntaxError
from flows.language.positions import DocPath as DocPath  # re-exported: readers of YAML import them from here
from flows.language.positions import PositionMap as PositionMap
from flows.language.positions import format_path as format_path

MAX_DEPTH = 64
MAX_NODES = 200_000  # after alias expansion; a large real playbook has a few thousand
MAX_EXPANDED_BYTES = 4 * 1024 * 1024  # text after alias expansion: few aliases of long strings are a bomb too
STD_TAG = "tag:yaml.org,2002:"
_PLAIN_TAGS = {f"{STD_TAG}{t}" for t in ("str", "int", "float", "bool", "null", "map", "seq")} | {"!"}

_NULL = re.compile(r"^(?:~|null|Null|NULL|)$")
_BOOL = {"true": True, "True": True, "TRUE": True, "false": False, "False": False, "FALSE": False}
_INT = re.compile(r"^[-+]?[0-9]+$")
_INT_OCT = re.compile(r"^0o[0-7]+$")
_INT_HEX = re.compile(r"^0x[0-9a-fA-F]+$")
_FLOAT = re.compile(r"^[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?$")
_INF = re.compile(r"^[-+]?\.(?:inf|Inf|INF)$")
_NAN = re.compile(r"^\.(?:nan|NaN|NAN)$")


def resolve_plain(value: str) -> Any:
    """Type a plain (unquoted, untagged) scalar by the YAML 1.2 core schema."""
    if _NULL.match(value):
        return None
    if value in _BOOL:
        return _BOOL[value]
    try:
        if _INT.match(value):
            return int(value)
        if _INT_OCT.match(value):
            return int(value[2:], 8)
        if _INT_HEX.match(value):
            return int(value[2:], 16)
    except ValueError:  # more digits than Python converts (sys.int_info): keep the text
        return value
    if _FLOAT.match(value):
        return float(value)
    if _INF.match(value):
        return float("-inf") if value.startswith("-") else float("inf")
    if _NAN.match(value):
        return float("nan")
    return value


def _tagged_scalar(tag: str, value: str) -> Any:
    short = tag.removeprefix(STD_TAG)
    if short in ("str", "!"):
        return value
    resolved = resolve_plain(value)
    wanted: dict[str, type | tuple[type, ...]] = {"int": int, "float": (int, float), "bool": bool, "null": type(None)}
    want = wanted.get(short)
    if want is None or not isinstance(resolved, want) or (short == "int" and isinstance(resolved, bool)):
        raise ValueError(f"{value!r} is not a valid !!{short}")
    return float(resolved) if short == "float" else resolved  # type: ignore[arg-type]  # int or float here


@dataclass
class _Frame:
    container: dict[str, Any] | list[Any]
    path: DocPath
    anchor: str | None
    nodes_before: int
    bytes_before: int = 0
    key: str | None = None
    key_pos: tuple[int, int] | None = None
    key_lines: dict[str, int] = field(default_factory=dict)


class _Composer:
    """Builds plain Python values from parser events, recording positions and problems."""

    def __init__(self, file: str, max_depth: int, max_nodes: int) -> None:
        self.positions = PositionMap(file)
        self.problems: list[Diagnostic] = []
        self.max_depth = max_depth
        self.max_nodes = max_nodes
        self.anchors: dict[str, tuple[Any, int]] = {}
        self.open_anchors: set[str] = set()
        self.stack: list[_Frame] = []
        self.nodes = 0
        self.expanded = False  # an alias was expanded: a node count blow-up is an alias bomb
        self.bytes = 0  # scalar and key text, aliases expanded
        self.anchor_bytes: dict[str, int] = {}
        self.documents = 0
        self.result: Any = None

    def fail(self, code: str, message: str, mark: Any, path: DocPath = ()) -> YamlSyntaxError:
        pos = SourcePosition(self.positions.file, mark.line + 1, mark.column + 1)
        return YamlSyntaxError([*self.problems, Diagnostic(code, message, pos, format_path(path))])

    def problem(self, code: str, message: str, mark: Any, path: DocPath, hint: str | None = None) -> None:
        pos = SourcePosition(self.positions.file, mark.line + 1, mark.column + 1)
        self.problems.append(Diagnostic(code, message, pos, format_path(path), hint=hint))

    def count(self, n: int, mark: Any) -> None:
        self.nodes += n
        if self.nodes > self.max_nodes:
            why = "aliases expand it to" if self.expanded else "it has"
            raise self.fail("E106", f"document too large: {why} more than {self.max_nodes} nodes", mark)

    def grow(self, n: int, mark: Any) -> None:
        self.bytes += n
        if self.bytes > MAX_EXPANDED_BYTES:
            why = "aliases expand its text to" if self.expanded else "its text is"
            raise self.fail("E106", f"document too large: {why} more than {MAX_EXPANDED_BYTES} bytes", mark)

    def next_path(self, mark: Any) -> DocPath | None:
        """The path of the node that starts at ``mark``; None when it is a mapping key."""
        if not self.stack:
            return ()
        top = self.stack[-1]
        if isinstance(top.container, list):
            return (*top.path, len(top.container))
        if top.key is None:
            return None
        return (*top.path, top.key)

    def add(self, value: Any, mark: Any, anchor: str | None, size: int) -> None:
        """Attach a finished node to its parent (or make it the document)."""
        if anchor is not None:
            self.anchors[anchor] = (value, size)
        if not self.stack:
            self.result = value
            return
        top = self.stack[-1]
        if isinstance(top.container, list):
            top.container.append(value)
            return
        assert top.key is not None
        top.container[top.key] = value
        top.key = None

    def key(self, event: Any) -> None:
        top = self.stack[-1]
        mark = event.start_mark
        if type(event) is not yaml.ScalarEvent:
            raise self.fail("E110", "only plain scalars can be mapping keys", mark, top.path)
        assert isinstance(top.container, dict)
        name = event.value
        line = mark.line + 1
        if name in top.key_lines:
            self.problem("E104", f"duplicate key {name!r} (first at line {top.key_lines[name]})", mark, top.path)
            name = f"\0duplicate:{name}:{line}:{mark.column}"  # kept apart so the rest still loads
        else:
            top.key_lines[name] = line
        top.key = name
        path = (*top.path, name)
        self.positions.keys[path] = (line, mark.column + 1)
        self.count(1, mark)
        self.grow(len(event.value), mark)

    def start(self, event: Any, container: dict[str, Any] | list[Any], path: DocPath) -> None:
        if len(self.stack) >= self.max_depth:
            shown = (*path[:8], "...") if len(path) > 8 else path
            raise self.fail("E105", f"nesting deeper than {self.max_depth} levels", event.start_mark, shown)
        tag = getattr(event, "tag", None)
        want = f"{STD_TAG}map" if isinstance(container, dict) else f"{STD_TAG}seq"
        if tag not in (None, "!", want):
            self.problem("E107", f"tag {tag!r} is not allowed (only plain YAML data)", event.start_mark, path)
        if event.anchor is not None:
            self.open_anchors.add(event.anchor)
        self.positions.values[path] = (event.start_mark.line + 1, event.start_mark.column + 1)
        self.count(1, event.start_mark)
        self.stack.append(_Frame(container, path, event.anchor, self.nodes, self.bytes))

    def end(self, event: Any) -> None:
        frame = self.stack.pop()
        if frame.anchor is not None:
            self.open_anchors.discard(frame.anchor)
            self.anchor_bytes[frame.anchor] = self.bytes - frame.bytes_before
        container = frame.container
        if isinstance(container, dict):
            for key in [k for k in container if k.startswith("\0duplicate:")]:
                del container[key]
        self.add(container, event.start_mark, frame.anchor, self.nodes - frame.nodes_before + 1)

    def scalar(self, event: Any, path: DocPath) -> None:
        mark = event.start_mark
        self.positions.values[path] = (mark.line + 1, mark.column + 1)
        self.count(1, mark)
        self.grow(len(event.value), mark)
        if event.anchor is not None:
            self.anchor_bytes[event.anchor] = len(event.value)
        value: Any = event.value
        tag = event.tag
        if tag is None and event.implicit[0]:
            value = resolve_plain(event.value)
        elif tag is not None and tag not in _PLAIN_TAGS:
            self.problem("E107", f"tag {tag!r} is not allowed (only plain YAML data)", mark, path)
        elif tag is not None:
            try:
                value = _tagged_scalar(tag, event.value)
            except ValueError as e:
                self.problem("E107", str(e), mark, path)
        self.add(value, mark, event.anchor, 1)

    def alias(self, event: Any, path: DocPath) -> None:
        mark = event.start_mark
        self.positions.values[path] = (mark.line + 1, mark.column + 1)
        if event.anchor in self.open_anchors:
            raise self.fail("E111", f"alias *{event.anchor} refers to the node that contains it", mark, path)
        if event.anchor not in self.anchors:
            raise self.fail("E111", f"alias *{event.anchor} has no anchor before it", mark, path)
        value, size = self.anchors[event.anchor]
        self.expanded = True
        self.count(size, mark)
        self.grow(self.anchor_bytes.get(event.anchor, 0), mark)
        self.add(value, mark, None, size)

    def document(self, event: Any) -> None:
        self.documents += 1
        if self.documents > 1:
            raise self.fail("E108", "more than one YAML document in the file", event.start_mark)

    def node(self, event: Any) -> None:
        path = self.next_path(event.start_mark)
        if path is None:
            self.key(event)
            return
        kind = type(event)
        if kind is yaml.ScalarEvent:
            self.scalar(event, path)
        elif kind is yaml.MappingStartEvent:
            self.start(event, {}, path)
        elif kind is yaml.SequenceStartEvent:
            self.start(event, [], path)
        else:
            self.alias(event, path)

    def run(self, events: Iterator[Any]) -> None:
        """Consume the parser's events; dispatch on the exact event class (this loop is the hot path)."""
        handlers: dict[type, Callable[[Any], None]] = {
            yaml.ScalarEvent: self.node,
            yaml.MappingStartEvent: self.node,
            yaml.SequenceStartEvent: self.node,
            yaml.AliasEvent: self.node,
            yaml.MappingEndEvent: self.end,
            yaml.SequenceEndEvent: self.end,
            yaml.DocumentStartEvent: self.document,
        }
        for event in events:
            handler = handlers.get(type(event))
            if handler is not None:
                handler(event)


def _syntax_error(file: str, text: str, error: Exception) -> YamlSyntaxError:
    mark = getattr(error, "problem_mark", None) or getattr(error, "context_mark", None)
    line, col = (mark.line + 1, mark.column + 1) if mark is not None else (1, 1)
    problem = str(getattr(error, "problem", None) or error).strip()
    code, message, hint = "E101", problem, None
    lines = text.splitlines()
    # libyaml does not name the character it stumbled on; a tab up to that point is the usual cause.
    tab_before = 0 < line <= len(lines) and "\t" in lines[line - 1][:col]
    if "tab character" in problem or (tab_before and "cannot start any token" in problem):
        code, message = "E102", "tab character where YAML expects spaces (indent with spaces)"
    elif "maximum nesting depth" in problem:
        code, message = "E105", f"nesting deeper than the parser allows ({problem})"
    else:
        context = getattr(error, "context", None)
        if context:
            message = f"{problem} ({context})"
        if "flow" in str(context):  # `{type: list[string]}`: brackets inside flow style end the value
            hint = 'inside { } or [ ], quote values that contain [ ] { } or commas, e.g. "list[string]"'
    return YamlSyntaxError([Diagnostic(code, message, SourcePosition(file, line, col), hint=hint)])


def parse_yaml_text(
    text: str, file: str, *, max_depth: int = MAX_DEPTH, max_nodes: int = MAX_NODES
) -> tuple[Any, PositionMap]:
    """Parse one YAML document from ``text``; raise :class:`YamlSyntaxError` with every problem."""
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    composer = _Composer(file, max_depth, max_nodes)
    try:
        composer.run(yaml.parse(text, Loader=loader))
    except yaml.YAMLError as e:
        raise _syntax_error(file, text, e) from e
    if composer.problems:
        raise YamlSyntaxError(composer.problems)
    return composer.result, composer.positions

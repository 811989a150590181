"""Read playbooks (and any other YAML document) safely, knowing where every value came from.

:func:`load_yaml` is the one way fireline reads YAML: alert files, approvers, contact trees and
playbooks. :func:`load_playbook` adds the fireline/v1 schema and reports every schema error of the
file at once, each located at ``file:line:col`` with its document path.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from flows.errors import Diagnostic, SourcePosition, ValidationError, YamlSyntaxError
from flows.language.spec import Playbook
from flows.language.yaml_safe import DocPath, PositionMap, parse_yaml_text

__all__ = [
    "DEFAULT_MAX_BYTES",
    "LoadedPlaybook",
    "PlaybookValidationError",
    "PositionMap",
    "load_playbook",
    "load_yaml",
    "read_source",
]

DEFAULT_MAX_BYTES = 1_000_000


@dataclass(frozen=True)
class LoadedPlaybook:
    """A validated playbook with its file, the file's sha256 and its positions."""

    playbook: Playbook
    path: Path
    sha256: str
    source: str
    positions: PositionMap | None = field(default=None, repr=False, compare=False)
    data: Any = field(default=None, repr=False, compare=False)

    def _map(self) -> PositionMap:
        return self.positions if self.positions is not None else PositionMap(str(self.path))

    def position(self, doc_path: tuple[str | int, ...]) -> SourcePosition:
        """Where ``doc_path`` starts in the file, or its nearest ancestor that exists (1:1 when unknown)."""
        return self._map().value(doc_path)

    def key_position(self, doc_path: tuple[str | int, ...]) -> SourcePosition:
        """Where the key that ends ``doc_path`` stands (for unknown or misspelt keys)."""
        return self._map().key(doc_path)


def _diag(file: str, code: str, message: str, line: int = 1, col: int = 1) -> YamlSyntaxError:
    return YamlSyntaxError([Diagnostic(code, message, SourcePosition(file, line, col))])


def read_source(path: Path, *, max_bytes: int = DEFAULT_MAX_BYTES) -> tuple[bytes, str]:
    """Read a file's bytes and text, refusing files over the size cap and text that is not UTF-8."""
    file = str(path)
    try:
        size = path.stat().st_size
        if size > max_bytes:
            raise _diag(file, "E103", f"file is {size} bytes, over the {max_bytes}-byte limit")
        with path.open("rb") as fh:
            raw = fh.read(max_bytes + 1)
    except OSError as e:
        raise _diag(file, "E109", f"cannot read file: {e.strerror or e}") from e
    if len(raw) > max_bytes:  # grew while we looked
        raise _diag(file, "E103", f"file is over the {max_bytes}-byte limit")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        before = raw[: e.start]
        line = before.count(b"\n") + 1
        col = e.start - (before.rfind(b"\n") + 1) + 1
        raise _diag(file, "E109", f"file is not UTF-8 (byte 0x{raw[e.start]:02x})", line, col) from e
    return raw, text


def load_yaml(path: Path, *, max_bytes: int = DEFAULT_MAX_BYTES) -> tuple[Any, PositionMap]:
    """Read one YAML document safely, with the position of every value.

    Raises:
        YamlSyntaxError: unreadable, too large, not UTF-8, bad syntax, duplicate keys, tags,
            nesting or alias bombs; every problem found is in ``diagnostics``.
    """
    _, text = read_source(path, max_bytes=max_bytes)
    return parse_yaml_text(text, str(path))


class PlaybookValidationError(ValidationError):
    """A playbook failed its schema; keeps the raw document so the linter can still check its steps."""

    def __init__(self, diagnostics: list[Diagnostic], data: Any, positions: PositionMap) -> None:
        super().__init__(diagnostics)
        self.data = data
        self.positions = positions


def _validate(data: Any, positions: PositionMap) -> tuple[Playbook | None, list[Diagnostic]]:
    from pydantic import ValidationError as PydanticValidationError

    from flows.language.diagnose import pydantic_diagnostics

    if not isinstance(data, dict):
        what = "an empty document" if data is None else f"a {type(data).__name__}"
        message = f"a playbook is a mapping (apiVersion, kind, metadata, steps), got {what}"
        return None, [Diagnostic("E200", message, positions.value(()))]
    try:
        return Playbook.model_validate(data), []
    except PydanticValidationError as e:
        return None, pydantic_diagnostics(e.errors(include_url=False), data, positions, Playbook)


def sort_diagnostics(items: list[Diagnostic]) -> list[Diagnostic]:
    """File order: line, column, then code, so output is stable."""
    return sorted(items, key=lambda d: (d.pos.file, d.pos.line, d.pos.col, d.code, d.path, d.message))


def load_playbook(path: Path, *, max_bytes: int = DEFAULT_MAX_BYTES) -> LoadedPlaybook:
    """Load and validate a playbook against the fireline/v1 language.

    Raises:
        YamlSyntaxError: the YAML cannot be read (see :func:`load_yaml`).
        PlaybookValidationError: (a :class:`~flows.errors.ValidationError`) the document does not
            match the language; holds every schema error.
    """
    raw, text = read_source(path, max_bytes=max_bytes)
    data, positions = parse_yaml_text(text, str(path))
    playbook, problems = _validate(data, positions)
    if playbook is None:
        raise PlaybookValidationError(sort_diagnostics(problems), data, positions)
    return LoadedPlaybook(playbook, path, hashlib.sha256(raw).hexdigest(), text, positions, data)


def doc_path(*parts: str | int) -> DocPath:
    """Build a document path (a readability helper for callers)."""
    return tuple(parts)

"""Where things stand in a YAML document: document paths, their source positions, and how paths print."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field

from flows.errors import SourcePosition

DocPath = tuple[str | int, ...]


@dataclass
class PositionMap:
    """Where each value (and each mapping key) of a document starts, by document path."""

    file: str
    values: dict[DocPath, tuple[int, int]] = field(default_factory=dict)
    keys: dict[DocPath, tuple[int, int]] = field(default_factory=dict)

    def value(self, path: DocPath) -> SourcePosition:
        """The position of the value at ``path``, or of its nearest known ancestor."""
        return self._best(self.values, path)

    def key(self, path: DocPath) -> SourcePosition:
        """The position of the mapping key that ends ``path``, else of the value."""
        if path in self.keys:
            line, col = self.keys[path]
            return SourcePosition(self.file, line, col)
        return self.value(path)

    def _best(self, table: dict[DocPath, tuple[int, int]], path: DocPath) -> SourcePosition:
        for end in range(len(path), -1, -1):
            found = table.get(path[:end])
            if found is not None:
                return SourcePosition(self.file, *found)
        return SourcePosition(self.file, 1, 1)


_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]*$")


def format_path(path: Iterable[str | int]) -> str:
    """Render a document path as ``steps[2].with.instance_id``."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part == "...":  # a path cut short
            out += "[...]"
        elif _IDENT.match(part):
            out += f".{part}" if out else part
        else:
            out += f"[{part!r}]"
    return out

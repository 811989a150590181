"""Read people documents (directory, contact trees) with located errors.

The same YAML reader as playbooks (``flows.language.loader``): safe composer, ``file:line:col``
for every error, did-you-mean for misspelt keys, every error of a file at once.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, TypeVar

from pydantic import BaseModel

from flows.errors import Diagnostic, ValidationError
from flows.language.loader import read_source, sort_diagnostics
from flows.language.yaml_safe import DocPath, PositionMap, parse_yaml_text

M = TypeVar("M", bound=BaseModel)


@dataclass(frozen=True)
class LoadedDoc(Generic[M]):
    """A validated document with its file, sha256 and positions."""

    doc: M
    path: Path
    sha256: str
    positions: PositionMap

    def at(self, path: DocPath) -> Any:
        return self.positions.value(path)


def load_doc(path: Path, model: type[M], kind: str) -> LoadedDoc[M]:
    """Load ``path`` as a fireline/v1 document of ``kind`` validated by ``model``.

    Raises:
        YamlSyntaxError: the YAML cannot be read.
        ValidationError: the document does not match ``model``; holds every error, located.
    """
    from pydantic import ValidationError as PydanticValidationError

    from flows.language.diagnose import pydantic_diagnostics

    raw, text = read_source(path)
    data, positions = parse_yaml_text(text, str(path))
    if not isinstance(data, dict):
        what = "an empty document" if data is None else f"a {type(data).__name__}"
        raise ValidationError([Diagnostic("E200", f"a {kind} is a mapping, got {what}", positions.value(()))])
    try:
        doc = model.model_validate(data)
    except PydanticValidationError as e:
        found = pydantic_diagnostics(e.errors(include_url=False), data, positions, model)
        raise ValidationError(sort_diagnostics(found)) from None
    return LoadedDoc(doc, path, hashlib.sha256(raw).hexdigest(), positions)


def diag(code: str, message: str, loaded: LoadedDoc[Any], path: DocPath, hint: str | None = None) -> Diagnostic:
    """A located error in a loaded document."""
    from flows.language.diagnose import format_path

    return Diagnostic(code, message, loaded.positions.value(path), format_path(path), hint=hint)

"""Redaction of secret values (and optionally ``secret:`` references) from anything recorded."""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from flows.record.store import RunRecord

MASK = "***"
_SECRET_PREFIX = "secret:"
_MIN_SECRET = 4  # shorter values would mask ordinary words


def encoded_forms(value: str) -> set[str]:
    """``value`` and the forms it takes when it is written out: repr, JSON, URL (path and form) encoding."""
    from urllib.parse import quote, quote_plus

    return {
        value,
        repr(value)[1:-1],
        json.dumps(value)[1:-1],
        json.dumps(value, ensure_ascii=False)[1:-1],
        quote(value, safe=""),
        quote(value),
        quote_plus(value),
    }


class Redactor:
    """Replaces known secret values everywhere in nested data."""

    def __init__(self, secret_values: Iterable[str] = (), *, hide_refs: bool = False) -> None:
        forms = {form for v in secret_values if len(v) >= _MIN_SECRET for form in encoded_forms(v)}
        self.values = sorted((f for f in forms if len(f) >= _MIN_SECRET), key=len, reverse=True)
        self.hide_refs = hide_refs

    def scrub_text(self, text: str) -> str:
        if self.hide_refs and text.startswith(_SECRET_PREFIX):
            return f"{_SECRET_PREFIX}{MASK}"
        for value in self.values:
            if value in text:
                text = text.replace(value, MASK)
        return text

    def scrub(self, value: Any) -> Any:
        if isinstance(value, str):
            return self.scrub_text(value)
        if isinstance(value, list | tuple):
            return [self.scrub(v) for v in value]
        if isinstance(value, dict):
            return {k: self.scrub(v) for k, v in value.items()}
        return value


class RedactingRecord(RunRecord):
    """A run record that scrubs secret values from every event before it is written, and marks its mode.

    ``secrets`` is the run's live set (``RunServices.secret_values``): a secret resolved mid-run is
    redacted from every later event, whoever emits it (the engine or an action through ``ctx.emit``).
    """

    def __init__(self, run_dir: Path, run_id: str, secrets: set[str], mode: str | None = None, **record: Any) -> None:
        super().__init__(run_dir, run_id, **record)
        self.secrets = secrets
        self.mode = mode

    def emit(
        self, type_: str, *, step: str | None = None, item: Any = None, detail: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        scrub = Redactor(set(self.secrets)).scrub
        detail = dict(detail or {})
        if self.mode is not None:
            detail.setdefault("mode", self.mode)  # drills and dry-runs are marked on every line
        return super().emit(type_, step=step, item=scrub(item), detail=scrub(detail))

    def write_run(self, data: dict[str, Any]) -> None:
        super().write_run(Redactor(set(self.secrets)).scrub(data))

"""Reading the files a command line names, with one clear error for each way it goes wrong."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from flows.errors import BadInputError


def read_text_file(path: Path, what: str, limit: int = 16 * 1024 * 1024) -> str:
    """The UTF-8 text of ``path``; ``what`` names the option in messages (``--alert``).

    Raises:
        BadInputError: missing, a directory, unreadable, larger than ``limit`` bytes, or not UTF-8.
    """
    where = str(path)
    if path.is_dir():
        raise BadInputError(f"{what} {path}: is a directory, expected a file", where=where)
    try:
        with path.open("rb") as handle:
            data = handle.read(limit + 1)
    except FileNotFoundError as e:
        raise BadInputError(f"{what} {path}: no such file", where=where) from e
    except OSError as e:
        raise BadInputError(f"{what} {path}: cannot read: {e.strerror or e}", where=where) from e
    if len(data) > limit:
        raise BadInputError(f"{what} {path}: over the {limit} byte cap", where=where)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise BadInputError(f"{what} {path}: not UTF-8 text (byte {e.start})", where=where) from e


def read_json_file(path: Path, what: str, limit: int = 16 * 1024 * 1024) -> Any:
    """The JSON document in ``path``; an empty file or malformed JSON is one line naming line and column."""
    text = read_text_file(path, what, limit)
    if not text.strip():
        raise BadInputError(f"{what} {path}: the file is empty, expected a JSON document", where=str(path))
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        where = f"{path}:{e.lineno}:{e.colno}"
        raise BadInputError(f"{where}: {what}: not valid JSON: {e.msg}", where=where) from e

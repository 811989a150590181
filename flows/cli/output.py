"""Output helpers shared by every command: rich for people, one JSON document for machines."""

from __future__ import annotations

import json
import sys
from typing import TYPE_CHECKING, Any, cast

if TYPE_CHECKING:
    from rich.console import Console


class _LazyConsole:
    """A rich ``Console`` made on first use: commands that print plain text never import rich."""

    def __init__(self, **options: Any) -> None:
        self._options = options
        self._console: Any = None

    def __getattr__(self, name: str) -> Any:
        if self._console is None:
            from rich.console import Console

            self._console = Console(**self._options)
        return getattr(self._console, name)


console = cast("Console", _LazyConsole(highlight=False, soft_wrap=True))
err_console = cast("Console", _LazyConsole(stderr=True, highlight=False, soft_wrap=True))

JSON_OPTION_HELP = "Print one JSON document to stdout instead of text."


def print_json(data: Any) -> None:
    """Write ``data`` as JSON to stdout (plain, so it pipes cleanly)."""
    sys.stdout.write(json.dumps(data, indent=2, ensure_ascii=False, default=str) + "\n")
    sys.stdout.flush()


def error_line(message: str) -> None:
    """One error line on stderr, for findings printed before a command exits 1."""
    err_console.print(message, markup=False)


def write_output(path: Any, text: str) -> None:
    """Write a command's ``--output`` file; a path that cannot be written is one clear error line.

    A regular file is replaced whole (a temporary file beside it, then a rename), so a failed write
    never leaves half a file; a device or pipe (``/dev/stdout``) is written to directly.
    """
    import contextlib
    import os
    from pathlib import Path

    from flows.errors import BadInputError

    target = Path(path)
    real = target.resolve() if target.is_symlink() else target  # a link keeps pointing where it did
    tmp = real.with_name(f".{real.name}.{os.getpid()}.tmp")
    try:
        if real.exists() and not real.is_file():
            real.write_text(text, encoding="utf-8")
        else:
            tmp.write_text(text, encoding="utf-8")
            os.replace(tmp, real)
    except OSError as e:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)
        reason = e.strerror or type(e).__name__
        if not target.parent.is_dir():
            reason = f"the folder {target.parent} does not exist"
        raise BadInputError(f"--output {target}: cannot write: {reason}", where=str(target)) from e

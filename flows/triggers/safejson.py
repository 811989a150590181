"""Bounded JSON for untrusted payloads: size cap by reading, depth cap, no NaN/Infinity, no lone surrogates.

``json.loads`` accepts ``NaN`` and ``Infinity`` (which are not JSON and which strict readers of the
run record reject), ``"\\ud800"`` (a lone surrogate that cannot be encoded as UTF-8, so writing the
run record would fail half-way), and nesting deep enough to raise ``RecursionError``. Everything a
source sends, and every alert file, goes through :func:`loads`; files through :func:`read_capped`,
which reads at most ``cap + 1`` bytes and so also bounds ``/dev/zero`` and FIFOs.
"""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path
from typing import Any

from flows.triggers.model import AlertError

MAX_DEPTH = 64


def read_capped(path: Path, cap: int) -> bytes:
    """Read a file, refusing more than ``cap`` bytes; never trust ``st_size`` (devices, FIFOs, /proc)."""
    try:
        fd = os.open(path, os.O_RDONLY)  # a FIFO blocks here until its writer opens it, as with cat
    except OSError as e:
        raise AlertError(f"{path}: cannot read the alert file: {e.strerror}") from e
    try:
        mode = os.fstat(fd).st_mode
        if stat.S_ISDIR(mode):
            raise AlertError(f"{path}: is a directory, not an alert file")
        chunks: list[bytes] = []
        total = 0
        while total <= cap:
            block = os.read(fd, min(1 << 16, cap + 1 - total))
            if not block:
                break
            chunks.append(block)
            total += len(block)
    except OSError as e:
        raise AlertError(f"{path}: cannot read the alert file: {e.strerror}") from e
    finally:
        os.close(fd)
    if total > cap:
        raise AlertError(f"{path}: alert file is over the {cap} byte cap")
    return b"".join(chunks)


def _depth(data: str) -> int:
    """The deepest nesting of ``[``/``{`` outside strings (a linear scan, no recursion)."""
    depth = deepest = 0
    in_string = escaped = False
    for ch in data:
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif ch in "]}":
            depth -= 1
    return deepest


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON (numbers must be finite)")


def _finite_float(text: str) -> float:
    value = float(text)
    if value in (float("inf"), float("-inf")):
        raise ValueError(f"number {text[:20]} is out of range")
    return value


def _check_text(value: Any) -> None:
    """Refuse strings that cannot be written as UTF-8 (lone surrogates), iteratively."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            try:
                item.encode("utf-8")
            except UnicodeEncodeError as e:
                raise ValueError("a string holds a lone surrogate escape (not valid Unicode)") from e
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)


def loads(data: bytes | str, *, what: str = "payload", max_depth: int = MAX_DEPTH) -> Any:
    """Parse untrusted JSON; raise :class:`AlertError` with one line naming ``what`` on any problem."""
    try:
        text = data.decode("utf-8") if isinstance(data, bytes) else data
    except UnicodeDecodeError as e:
        raise AlertError(f"{what}: not UTF-8 text: {e.reason} at byte {e.start}") from e
    if not text.strip():
        raise AlertError(f"{what}: empty, expected a JSON document")
    if _depth(text) > max_depth:
        raise AlertError(f"{what}: JSON nested deeper than {max_depth} levels")
    try:
        value = json.loads(text, parse_constant=_no_constant, parse_float=_finite_float)
        _check_text(value)
    except json.JSONDecodeError as e:
        raise AlertError(f"{what}: not JSON: {e.msg} at line {e.lineno} column {e.colno}") from e
    except (ValueError, RecursionError) as e:
        raise AlertError(f"{what}: {e}") from e
    return value


def ensure_safe(value: Any, *, what: str = "payload") -> None:
    """Refuse a value that is not writable as strict JSON: NaN, infinities, lone surrogates, deep nesting.

    For values that did not come through :func:`loads` (a run request's alert, a Prefect parameter).
    """
    try:
        text = json.dumps(value, allow_nan=False, ensure_ascii=False)
        text.encode("utf-8")
    except (ValueError, TypeError, RecursionError) as e:  # UnicodeEncodeError is a ValueError
        reason = "a string holds a lone surrogate" if isinstance(e, UnicodeEncodeError) else str(e)[:200]
        raise AlertError(f"{what}: not valid JSON data: {reason}") from e
    if _depth(text) > MAX_DEPTH:
        raise AlertError(f"{what}: JSON nested deeper than {MAX_DEPTH} levels")

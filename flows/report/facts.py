"""Small facts read from step outputs: resource ids, secret-looking fields, times.

Step outputs are each action's ``Result`` as JSON; these helpers read them generically (any key
ending in ``_id``/``_ids``, ``arn``, AWS id shapes, a plan's targets) so a new action's resources
show up in the report without a change here.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import datetime
from typing import Any

MASK = "***"
_AWS_ID = re.compile(
    r"^(i|snap|vol|sg|eni|ami|subnet|vpc|vpce|igw|nat|rtb|acl)-[0-9a-f]{6,}$|^(AKIA|ASIA)[0-9A-Z]{12,}$"
)
_ID_KEY = re.compile(r"(^|_)(id|ids|arn|arns|bucket|key|version|versions)$|_(name|names|group|groups)$")
_SKIP_KEYS = frozenset({"summary", "message", "changed", "sha256", "evidence_id", "mode", "region", "detail"})
# Field names whose values are masked in every report even when the run record kept them: a
# secret that reached an output under its own name (defence in depth behind the record's redaction).
SECRET_KEY = re.compile(r"(password|passwd|secret|token|api[_-]?key|private[_-]?key|credential)", re.IGNORECASE)
SECRET_REF = re.compile(r"secret:[A-Za-z_][A-Za-z0-9_]*")
_MAX_IDS = 64


def parse_time(value: Any) -> datetime | None:
    """An ISO-8601 time from the record (``Z`` or an offset); None when absent or unreadable."""
    if not isinstance(value, str) or not value:
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else None


def seconds_between(start: Any, end: Any) -> float | None:
    a, b = parse_time(start), parse_time(end)
    return None if a is None or b is None else round((b - a).total_seconds(), 3)


def human_seconds(seconds: float | None) -> str:
    """``42 s``, ``14 min``, ``2 h 5 min``; an em dash when unknown."""
    if seconds is None:
        return "—"
    if seconds < 0:
        return f"-{human_seconds(-seconds)}"
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 120:
        return f"{seconds:.1f} s" if seconds < 10 else f"{seconds:.0f} s"
    minutes = seconds / 60
    if minutes < 120:
        return f"{minutes:.0f} min"
    return f"{int(minutes // 60)} h {int(minutes % 60)} min"


def scrub(value: Any) -> Any:
    """``value`` with secret-looking fields masked and ``secret:NAME`` references kept as names only."""
    if isinstance(value, dict):
        return {
            k: (MASK if SECRET_KEY.search(str(k)) and isinstance(v, str) and v and not v.startswith("secret:")
                else scrub(v))
            for k, v in value.items()
        }  # fmt: skip
    if isinstance(value, list):
        return [scrub(v) for v in value]
    return value


def _walk(value: Any, key: str = "") -> Iterator[str]:
    if isinstance(value, dict):
        for k, v in value.items():
            if k in _SKIP_KEYS:
                continue
            if k == "targets" and isinstance(v, list):  # a plan's declared targets
                for t in v:
                    if isinstance(t, dict) and t.get("id"):
                        yield str(t["id"])
                continue
            yield from _walk(v, str(k))
    elif isinstance(value, list):
        for v in value:
            yield from _walk(v, key)
    elif isinstance(value, str) and value:
        if _AWS_ID.match(value) or value.startswith(("arn:", "s3://")) or (key and _ID_KEY.search(key)):
            yield value


def resource_ids(output: Any) -> list[str]:
    """Resource ids named in a step output, in first-seen order, without duplicates."""
    seen: dict[str, None] = {}
    for found in _walk(output):
        if len(found) <= 300:
            seen.setdefault(found, None)
        if len(seen) >= _MAX_IDS:
            break
    return list(seen)


def item_label(item: Any) -> str:
    """A for_each item as one short label (its id for a string, a compact form otherwise)."""
    if item is None:
        return ""
    if isinstance(item, str):
        return item
    if isinstance(item, dict):
        for key in ("id", "name", "instance_id", "user_name", "bucket"):
            if isinstance(item.get(key), str):
                return str(item[key])
    import json

    return json.dumps(item, sort_keys=True, default=str)[:120]

"""Label matchers in Alertmanager's syntax: ``name=value``, ``name!=value``, ``name=~regex``, ``name!~regex``.

As in Alertmanager (docs, "Configuration: matcher"): a regex is fully anchored, a missing label is
the empty string (so ``team!=""`` requires the label and ``team=""`` requires its absence), and a
value may be double-quoted.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_MATCHER = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_]*)\s*(=~|!~|!=|=)\s*(.*?)\s*$", re.S)
MAX_PATTERN = 1024


@dataclass(frozen=True)
class Matcher:
    """One label matcher."""

    name: str
    op: str
    value: str
    pattern: re.Pattern[str] | None = None

    def matches(self, labels: dict[str, str]) -> bool:
        given = labels.get(self.name, "")
        if self.op == "=":
            return given == self.value
        if self.op == "!=":
            return given != self.value
        assert self.pattern is not None  # regex operators always compile one
        found = self.pattern.fullmatch(given) is not None
        return found if self.op == "=~" else not found

    def __str__(self) -> str:
        return f"{self.name}{self.op}{self.value!r}"


def parse_matcher(text: str) -> Matcher:
    """Parse one matcher; raise ValueError naming it when it is not one."""
    found = _MATCHER.match(text)
    if found is None:
        raise ValueError(f"matcher {text!r} is not name=value, name!=value, name=~regex or name!~regex")
    name, op, value = found.groups()
    if len(value) >= 2 and value[0] == value[-1] == '"':
        value = value[1:-1]
    pattern = None
    if op in ("=~", "!~"):
        if len(value) > MAX_PATTERN:
            raise ValueError(f"matcher {name}{op}: the regex is longer than {MAX_PATTERN} characters")
        try:
            pattern = re.compile(value)
        except re.error as e:
            raise ValueError(f"matcher {text!r}: bad regex: {e}") from e
    return Matcher(name, op, value, pattern)

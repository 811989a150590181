"""Library check: two playbooks whose triggers can match one alert (``fireline lint`` warning W520).

Decided from the triggers alone: two triggers overlap unless their sources differ, their severity
lists are disjoint, or one label is constrained in a way no value satisfies both (two different
equalities, an equality and its negation, an equality a regex of the other rejects). Two regexes on
one label are taken to overlap (deciding regex intersection is not worth a false "safe").
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from flows.errors import Diagnostic
from flows.language.loader import LoadedPlaybook
from flows.language.spec import Playbook, Trigger
from flows.triggers.matchers import Matcher
from flows.triggers.routing import matchers_of


def _excludes(a: Matcher, b: Matcher) -> bool:
    """True when no label value satisfies both matchers (of one label)."""
    if a.op == "=" and b.op == "=":
        return a.value != b.value
    if a.op != "=" and b.op == "=":
        a, b = b, a
    if a.op == "=":
        probe = {a.name: a.value}
        return not b.matches(probe)
    return False


def triggers_overlap(a: Trigger, b: Trigger) -> bool:
    if a.source != b.source:
        return False
    if a.severity and b.severity and not set(a.severity) & set(b.severity):
        return False
    return not any(_excludes(x, y) for x in matchers_of(a) for y in matchers_of(b) if x.name == y.name)


def overlaps(library: Sequence[tuple[Path, Playbook]]) -> list[tuple[Path, Playbook, Playbook, int]]:
    """(path of the later file, the later playbook, the earlier playbook, the later trigger index) per overlap."""
    found: list[tuple[Path, Playbook, Playbook, int]] = []
    for i, (path, book) in enumerate(library):
        for _, earlier in library[:i]:
            for index, trigger in enumerate(book.triggers):
                if any(triggers_overlap(trigger, other) for other in earlier.triggers):
                    found.append((path, book, earlier, index))
                    break
    return found


def lint_library(results: Sequence[tuple[Path, LoadedPlaybook | None, list[Diagnostic]]]) -> None:
    """Append a W520 warning to the later playbook of each overlapping pair (``fireline lint`` on a library)."""
    loaded = {str(r[1].path): r[1] for r in results if r[1] is not None}
    library = [(lp.path, lp.playbook) for lp in loaded.values()]
    found_by_path = {str(r[1].path): r[2] for r in results if r[1] is not None}
    for path, book, earlier, index in overlaps(library):
        where = ("triggers", index)
        found_by_path[str(path)].append(
            Diagnostic(
                "W520",
                f"an alert can match both {book.metadata.name} and {earlier.metadata.name}: both would start a run",
                loaded[str(path)].position(where),
                f"triggers[{index}]",
                "warning",
                "tell them apart with a matcher, or check with fireline triggers test ALERT_FILE",
            )
        )

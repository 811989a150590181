"""Random and mutated YAML never makes the loader raise anything but fireline's own errors."""

from __future__ import annotations

import tracemalloc
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from flows.errors import FirelineError, SpecError
from flows.language.lint import validate_path
from flows.language.yaml_safe import parse_yaml_text
from tests.flows.fake_actions import registry
from tests.flows.language.test_loader import GOOD

TOKENS = st.sampled_from([*":-[]{},&*!|>'\"#%@`?\t\n ", *"abcxyz019", "{{", "}}", "\u00e9", "\x00", "\ufeff"])


def yaml_text(min_size: int = 0, max_size: int = 200) -> st.SearchStrategy[str]:
    """Text made of YAML's special characters, some letters and template braces."""
    return st.lists(TOKENS, min_size=min_size, max_size=max_size).map("".join)


FRAGMENTS = st.sampled_from(
    [
        "steps:",
        "  - id: a",
        "    action: log",
        "    with: {message: x}",
        "&a [",
        "*a",
        "!!python/object:os.system",
        "<<: *a",
        "? [k]",
        "---",
        "needs: [a]",
        "for_each: '{{ item }}'",
        "\t",
        "[" * 40,
        "]" * 40,
        "x: &b [*a, *a]",
    ]
)
REG = registry()


def _only_fireline_errors(text: str) -> None:
    try:
        parse_yaml_text(text, "fuzz.yaml")
    except FirelineError:
        pass


@settings(max_examples=150, deadline=2000, suppress_health_check=[HealthCheck.too_slow])
@given(yaml_text())
def test_random_text_only_raises_fireline_errors(text: str) -> None:
    _only_fireline_errors(text)


@settings(max_examples=100, deadline=2000)
@given(st.lists(FRAGMENTS, max_size=30))
def test_random_fragments_only_raise_fireline_errors(lines: list[str]) -> None:
    _only_fireline_errors("\n".join(lines))


@settings(max_examples=60, deadline=2000, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.data())
def test_mutated_playbooks_validate_without_crashing(tmp_path: Path, data: st.DataObject) -> None:
    text = GOOD
    for _ in range(data.draw(st.integers(1, 4))):
        at = data.draw(st.integers(0, len(text)))
        op = data.draw(st.sampled_from(["insert", "delete", "replace"]))
        piece = data.draw(yaml_text(1, 6))
        if op == "insert":
            text = text[:at] + piece + text[at:]
        elif op == "delete":
            text = text[:at] + text[at + len(piece) :]
        else:
            text = text[:at] + piece + text[at + len(piece) :]
    path = tmp_path / "mutated.yaml"
    path.write_text(text, encoding="utf-8")
    _, found = validate_path(path, REG)  # never raises for a bad playbook
    for d in found:
        assert d.pos.line >= 1
        assert d.pos.col >= 1


@settings(max_examples=20, deadline=2000)
@given(st.integers(2, 9), st.integers(5, 12))
def test_alias_bombs_keep_memory_bounded(width: int, depth: int) -> None:
    text = "a0: &a0 [" + ", ".join(["x"] * width) + "]\n"
    for level in range(1, depth):
        text += f"a{level}: &a{level} [" + ", ".join([f"*a{level - 1}"] * width) + "]\n"
    tracemalloc.start()
    try:
        _only_fireline_errors(text)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 30_000_000


@settings(max_examples=10, deadline=2000)
@given(st.integers(65, 3000), st.sampled_from(["[", "{a: ", "- "]))
def test_nesting_bombs_are_refused(depth: int, opener: str) -> None:
    closer = {"[": "]", "{a: ": "}", "- ": ""}[opener]
    if opener == "- ":
        text = "".join("  " * i + "- \n" for i in range(depth)) + "  " * depth + "x\n"
    else:
        text = opener * depth + "1" + closer * depth
    with pytest.raises(SpecError) as caught:
        parse_yaml_text(text, "deep.yaml")
    assert caught.value.diagnostics[0].code in ("E105", "E101")

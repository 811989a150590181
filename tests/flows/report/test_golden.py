"""Golden reports: every fixed run record rendered to md, html and json, compared byte for byte.

Regenerate after an intended change with ``REGEN_GOLDEN=1`` and review the diff.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from flows.report import build, render
from tests.flows.report.conftest import CASES, NOW, RUNS

GOLDEN = Path(__file__).resolve().parent / "golden"
REGEN = os.environ.get("REGEN_GOLDEN") == "1"


def test_every_case_of_the_issue_has_a_record() -> None:
    assert {"succeeded", "failed", "rejected", "resumed", "undone", "dry-run", "rollback"} <= set(CASES)


@pytest.mark.parametrize("case", CASES)
def test_golden(case: str) -> None:
    ctx = build(RUNS / case, now=NOW)
    for fmt in ("md", "html", "json"):
        text = render(ctx, fmt)
        assert text == render(build(RUNS / case, now=NOW), fmt), "rendering is not deterministic"
        path = GOLDEN / f"{case}.{fmt}"
        if REGEN:
            path.parent.mkdir(exist_ok=True)
            path.write_text(text, encoding="utf-8")
        assert path.exists(), f"no golden file {path.name}: run with REGEN_GOLDEN=1"
        assert text == path.read_text(encoding="utf-8"), f"{path.name} differs from its golden file"

"""The code itself: ruff and mypy --strict are clean (CI runs them through this suite)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def _tool(name: str) -> str:
    found = shutil.which(name, path=str(Path(sys.executable).parent))
    if found is None:
        pytest.fail(f"{name} is not installed next to {sys.executable}: install the test extra")
    return found


def test_ruff_is_clean() -> None:
    proc = subprocess.run(
        [_tool("ruff"), "check", "--no-cache", "flows", "integrations", "tests", "bench"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.slow
def test_mypy_strict_is_clean() -> None:
    proc = subprocess.run(
        [_tool("mypy")],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout[-5000:] + proc.stderr[-2000:]


def test_modules_stay_under_the_ceiling() -> None:
    """A module past 500 lines is two modules (most stay under 300)."""
    too_long = [
        f"{path.relative_to(REPO)}: {count} lines"
        for package in ("flows", "integrations")
        for path in sorted((REPO / package).rglob("*.py"))
        if (count := len(path.read_text(encoding="utf-8").splitlines())) > 500
    ]
    assert too_long == []

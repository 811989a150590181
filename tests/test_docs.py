"""The documents' commands work: every fenced block marked ```` ```bash runnable ```` is run.

Blocks come from README.md and docs/*.md. Each runs with ``bash -e -o pipefail`` in a temporary
copy of the playbook library, with ``.venv/bin`` first on PATH (so both ``fireline`` and
``.venv/bin/fireline`` work), a fresh fireline home and runs directory, and nothing that reaches AWS
(live runs belong in the sandbox documents' own tests). A block fails the test when a command exits
non-zero or prints a traceback or an internal error.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
MARKER = re.compile(r"^```bash runnable[ \t]*\n(.*?)^```", re.MULTILINE | re.DOTALL)


def runnable_blocks() -> list[tuple[str, int, str]]:
    """(document, line, text) of every runnable block."""
    found = []
    for doc in [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]:
        text = doc.read_text(encoding="utf-8")
        for match in MARKER.finditer(text):
            found.append((doc.relative_to(REPO).as_posix(), text.count("\n", 0, match.start()) + 1, match.group(1)))
    return found


BLOCKS = runnable_blocks()


def test_the_documents_have_runnable_blocks() -> None:
    docs = {doc for doc, _, _ in BLOCKS}
    assert {"README.md", "docs/playbook-language.md", "docs/operations.md"} <= docs


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the playbook library with the repository's virtualenv beside it."""
    root = tmp_path_factory.mktemp("docs")
    shutil.copytree(REPO / "playbooks", root / "playbooks")
    (root / ".venv").symlink_to(Path(sys.prefix), target_is_directory=True)
    return root


@pytest.mark.slow
@pytest.mark.parametrize(("doc", "line", "block"), BLOCKS, ids=[f"{d}:{n}" for d, n, _ in BLOCKS])
def test_a_runnable_block_runs(doc: str, line: int, block: str, workdir: Path, tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FIRELINE_")}
    env.update(
        PATH=f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}",
        FIRELINE_HOME=str(tmp_path / "home"),
        FIRELINE_RUNS_DIR=str(tmp_path / "runs"),
        PYTHONPATH=str(REPO),
    )
    proc = subprocess.run(
        ["bash", "-e", "-o", "pipefail", "-c", block],
        cwd=workdir,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, f"{doc}:{line}: exit {proc.returncode}\n{block}\n{output[-3000:]}"
    assert "Traceback" not in output
    assert "internal error" not in output

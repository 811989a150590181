"""Secrets in every form they are written out in, short secrets, and secrets that are not there."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from urllib.parse import quote, quote_plus

import pytest

from flows.engine import run_playbook
from tests.flows.engine.engine_helpers import events, make_registry, make_settings, write_playbook

TOKEN = 'pa"ss/wo rd&x=1\\é'  # quotes, slash, space, ampersand, backslash, non-ASCII: every encoding differs
FORMS = {TOKEN, repr(TOKEN)[1:-1], json.dumps(TOKEN)[1:-1], quote(TOKEN, safe=""), quote_plus(TOKEN)}


def _leak_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, token: str, progress: object = None) -> Path:
    monkeypatch.setenv("FL_LEAK_TOKEN", token)
    steps = [{"id": "call", "action": "test.leak", "with": {"token": "{{ inputs.token }}"}}]
    path = write_playbook(tmp_path, steps, inputs={"token": {"type": "string", "required": True}})
    summary = run_playbook(
        path,
        inputs={"token": "secret:FL_LEAK_TOKEN"},
        settings=make_settings(tmp_path),
        registry=make_registry(),
        progress=progress,  # type: ignore[arg-type]
    )
    assert summary.outcome == "failed"
    return summary.run_dir


def test_repr_json_and_url_forms_are_masked_everywhere(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    lines: list[str] = []  # what a progress line (the CLI's) is given to print

    def progress(step: str, status: str, detail: dict[str, object]) -> None:
        lines.append(f"{step} {status} {detail}")

    assert len(FORMS) == 5
    run_dir = _leak_run(tmp_path, monkeypatch, TOKEN, progress)
    printed = "\n".join(lines)
    assert "rejected" in printed  # the progress line shows the failed step's error...
    for form in FORMS:  # ...with no form of the secret in it, nor in any file of the run
        assert form not in printed
        for path in run_dir.rglob("*"):
            if path.is_file():
                assert form not in path.read_text(errors="replace"), f"{form!r} leaked into {path}"
    (failed,) = events(run_dir, "step.failed", "call")
    assert failed["detail"]["error"].count("***") == 3


def test_a_secret_shorter_than_four_characters_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    run_dir = _leak_run(tmp_path, monkeypatch, "abc")
    (failed,) = events(run_dir, "step.failed", "call")
    assert "shorter than 4 characters" in failed["detail"]["error"]
    assert events(run_dir, "log", "call") == []  # the action never ran with it


def test_a_missing_secret_fails_at_once_naming_the_variable_without_prefect(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    monkeypatch.setenv("PREFECT_HOME", str(tmp_path / "prefect-home"))
    monkeypatch.delenv("FL_ABSENT_TOKEN", raising=False)
    # Were the block looked up, the import fails at once and the error names the block, not the variable.
    monkeypatch.setitem(sys.modules, "prefect.blocks.system", None)
    steps = [{"id": "call", "action": "test.echo", "with": {"token": "secret:FL_ABSENT_TOKEN"}}]
    path = write_playbook(tmp_path, steps)
    summary = run_playbook(path, settings=make_settings(tmp_path), registry=make_registry())
    assert summary.steps["call"].status == "failed"
    assert "export the environment variable FL_ABSENT_TOKEN" in (summary.steps["call"].error or "")
    # A Prefect Secret block lookup starts a temporary server, which makes PREFECT_HOME and its database.
    assert not (tmp_path / "prefect-home").exists()

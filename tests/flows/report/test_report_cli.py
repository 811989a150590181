"""``fireline report``, ``fireline metrics`` and ``fireline undo`` end to end: outputs, exit codes, one-line errors."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from flows.cli import main
from tests.flows.report.conftest import RUNS

ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture
def cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> Any:
    runs = tmp_path / "runs"
    shutil.copytree(RUNS, runs)
    monkeypatch.setenv("FIRELINE_RUNS_DIR", str(runs))
    monkeypatch.setenv("FIRELINE_HOME", str(tmp_path / "home"))

    def call(*args: str) -> tuple[int, str, str]:
        code = main(list(args))
        out = capsys.readouterr()
        return code, out.out, out.err

    return call


def _one_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert "Traceback" not in err
    assert "internal error" not in err
    return lines[0]


def test_report_writes_the_formats_asked_for(cli: Any, tmp_path: Path) -> None:
    run_dir = tmp_path / "runs" / "rollback"
    code, out, _ = cli("report", "rollback", "--format", "html", "-f", "json", "--json")
    assert code == 0
    assert json.loads(out)["reports"] == [str(run_dir / "report.html"), str(run_dir / "report.json")]
    doc = json.loads((run_dir / "report.json").read_text())
    model = next(m for m in doc["impact"]["models"] if m["to"])
    assert model["to"] == "fraud-scoring-models v2"
    assert {r["label"]: r["reason"] for r in model["refused"]} == {
        "fraud-scoring-models v4": "digest_mismatch",
        "fraud-scoring-models v3": "not_attested",
    }
    code, out, _ = cli("report", "rollback", "--format", "md", "--output", str(tmp_path / "pm.md"))
    assert code == 0
    assert (tmp_path / "pm.md").read_text().startswith("# model-poisoning-rollback@1")


def test_truncated_event_log_is_one_line(cli: Any, tmp_path: Path) -> None:
    log = tmp_path / "runs" / "failed" / "events.jsonl"
    log.write_bytes(log.read_bytes()[:-40])
    code, _, err = cli("report", "failed")
    assert code == 1
    assert "events.jsonl:" in _one_line(err)
    assert "truncated" in err
    assert not (tmp_path / "runs" / "failed" / "report.md").exists()


def test_missing_manifest_is_one_line(cli: Any, tmp_path: Path) -> None:
    (tmp_path / "runs" / "undone" / "evidence" / "manifest.json").unlink()
    code, _, err = cli("report", "undone")
    assert code == 1
    assert "manifest is missing" in _one_line(err)
    assert "2 evidence item(s)" in err


def test_unknown_format_is_a_usage_error(cli: Any) -> None:
    code, _, err = cli("report", "failed", "--format", "pdf")
    assert code == 2
    assert "unknown report format 'pdf'" in _one_line(err)


@pytest.mark.parametrize("command", [["report", "failed", "--format", "md"], ["schema"]])
def test_unwritable_output_is_one_line(cli: Any, tmp_path: Path, command: list[str]) -> None:
    target = tmp_path / "no-such-folder" / "out.txt"
    code, _, err = cli(*command, "--output", str(target))
    assert code == 1
    assert f"--output {target}: cannot write" in _one_line(err)
    assert "does not exist" in err


def test_metrics_average_live_runs_and_list_the_others(cli: Any, tmp_path: Path) -> None:
    # A drill of the undone-book playbook: its (fast) containment must not lower the live mean.
    drill = tmp_path / "runs" / "undone-drill"
    shutil.copytree(tmp_path / "runs" / "undone", drill)
    data = json.loads((drill / "run.json").read_text())
    (drill / "run.json").write_text(json.dumps({**data, "mode": "drill", "run_id": "undone-drill"}))
    code, out, _ = cli("metrics", "--since", "3650d", "--json")
    assert code == 0
    result = json.loads(out)
    books = {b["playbook"]: b for b in result["playbooks"]}
    assert "dry-book" not in books
    assert sorted((r["playbook"], r["mode"]) for r in result["excluded"]) == [
        ("dry-book", "dry-run"),
        ("undone-book", "drill"),
    ]
    assert books["undone-book"]["runs"] == 1
    assert books["undone-book"]["mttc"]["n"] == 1
    assert books["rejected-book"]["mtta"]["n"] == 1
    assert books["rejected-book"]["mtta"]["seconds"] is not None
    assert books["compromised-inference-host"]["mttc"]["n"] == 1
    assert books["model-poisoning-rollback"]["mttr"]["n"] == 1
    code, out, _ = cli("metrics", "--since", "3650d", "--playbook", "undone-book", "--json")
    assert [b["playbook"] for b in json.loads(out)["playbooks"]] == ["undone-book"]
    code, out, _ = cli("metrics", "--since", "3650d")
    assert code == 0
    assert "Excluded (dry-runs and drills): 2" in out
    assert "MTTA" in out
    code, _, err = cli("metrics", "--since", "a while")
    assert code == 2
    assert "expected a period" in _one_line(err)


def test_undo_dry_run_changes_nothing_and_undo_records_who(
    cli: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from flows.actions import registry as registry_module
    from tests.flows.report.records import registry

    monkeypatch.setattr(registry_module, "_default", registry())  # the test actions are not built-ins
    # A run with undoable effects not undone yet: the undone record, with its undo entries removed.
    run_dir = tmp_path / "runs" / "undone"
    data = json.loads((run_dir / "run.json").read_text())
    data.pop("undo")
    (run_dir / "run.json").write_text(json.dumps(data))
    saga = run_dir / "state" / "saga.jsonl"
    saga.write_text("".join(line + "\n" for line in saga.read_text().splitlines() if "undo_of" not in line))
    before = (run_dir / "events.jsonl").read_bytes()
    code, out, _ = cli("undo", "undone", "--dry-run", "--json")
    assert code == 0
    assert {o["status"] for o in json.loads(out)} == {"would_undo"}
    assert (run_dir / "events.jsonl").read_bytes() == before
    code, out, _ = cli("undo", "undone", "--as", "alice", "--reason", "false positive", "--yes", "--json")
    assert code == 0
    assert {o["status"] for o in json.loads(out)} == {"undone"}
    new = (run_dir / "events.jsonl").read_bytes()[len(before) :].decode()
    undone = [e for e in map(json.loads, new.splitlines()) if e["type"] == "undo.succeeded"]
    assert len(undone) == 2
    assert {(e["detail"]["by"], e["detail"]["reason"]) for e in undone} == {("user:alice", "false positive")}
    md = (run_dir / "report.md").read_text()
    assert md.splitlines()[0] == "# undone-book@1 — undone"
    assert "by user:alice at" in md


@pytest.mark.slow
def test_undo_asks_on_a_terminal_and_no_leaves_everything(tmp_path: Path) -> None:
    import pty

    runs = tmp_path / "runs"
    shutil.copytree(RUNS / "undone", runs / "undone")
    data = json.loads((runs / "undone" / "run.json").read_text())
    data.pop("undo")
    (runs / "undone" / "run.json").write_text(json.dumps(data))
    saga = runs / "undone" / "state" / "saga.jsonl"
    saga.write_text("".join(line + "\n" for line in saga.read_text().splitlines() if "undo_of" not in line))
    before = (runs / "undone" / "events.jsonl").read_bytes()
    main_fd, child_fd = pty.openpty()
    env = {**os.environ, "FIRELINE_RUNS_DIR": str(runs), "FIRELINE_HOME": str(tmp_path / "home")}
    code = "from tests.flows.report.undo_entry import main; main()"
    proc = subprocess.Popen([sys.executable, "-c", code, "undo", "undone", "--as", "alice"], stdin=child_fd,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=ROOT, env=env)  # fmt: skip
    os.close(child_fd)
    os.write(main_fd, b"n\n")
    out, err = proc.communicate(timeout=120)
    os.close(main_fd)
    assert proc.returncode == 1, err
    assert b"would undo isolate-hosts[i-0" in out
    assert b"undo 2 effect(s) as user:alice?" in out
    assert (runs / "undone" / "events.jsonl").read_bytes() == before


def test_open_hands_the_html_report_to_the_browser(cli: Any, tmp_path: Path) -> None:
    import webbrowser

    opened = tmp_path / "opened.txt"
    script = f"import sys, pathlib; pathlib.Path({str(opened)!r}).write_text(sys.argv[1])"
    webbrowser.register("fireline-test", None, webbrowser.GenericBrowser([sys.executable, "-c", script, "%s"]),
                        preferred=True)  # fmt: skip
    code, _, _ = cli("report", "succeeded", "--format", "md", "--format", "html", "--open")
    assert code == 0  # GenericBrowser waits for its command, so the file is there
    assert opened.read_text() == (tmp_path / "runs" / "succeeded" / "report.html").as_uri()


def test_output_replaces_a_file_whole_and_writes_a_device_in_place(cli: Any, tmp_path: Path) -> None:
    target = tmp_path / "pm.md"
    target.write_text("an older, longer report " * 1000)
    code, _, _ = cli("report", "failed", "--format", "md", "--output", str(target))
    assert code == 0
    assert target.read_text().startswith("# failed-book@1 — failed")
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []  # no temporary left
    code, _, _ = cli("report", "failed", "--format", "json", "--output", os.devnull)
    assert code == 0
    assert Path(os.devnull).is_char_device()  # written to, not replaced by a file
    code, _, err = cli("report", "failed", "--format", "md", "--output", str(tmp_path))
    assert code == 1
    assert f"--output {tmp_path}: cannot write" in _one_line(err)
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []

"""The run commands end to end, in process: exit codes, one-line errors, nothing half-written."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from flows.cli import main
from tests.flows.engine.engine_helpers import write_playbook

STEPS = [
    {
        "id": "hello",
        "action": "log",
        "with": {"message": "hello {{ inputs.ids | length }} {{ alert.labels.get('team', 'none') }}"},
    },
    {"id": "fan", "action": "log", "for_each": "{{ inputs.ids }}", "with": {"message": "{{ item }}"}},
]
INPUTS = {"ids": {"type": "list[string]", "required": True}, "count": {"type": "int", "default": 1}}


@pytest.fixture
def cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> Any:
    monkeypatch.setenv("FIRELINE_RUNS_DIR", str(tmp_path / "runs"))
    monkeypatch.setenv("FIRELINE_PLAYBOOKS_DIR", str(tmp_path / "playbooks"))
    monkeypatch.setenv("FIRELINE_HOME", str(tmp_path / "home"))
    write_playbook(tmp_path, STEPS, name="hello", inputs=INPUTS)
    write_playbook(tmp_path, [{"id": "boom", "action": "fail", "with": {"message": "no"}}], name="boom")

    def call(*args: str) -> tuple[int, str, str]:
        code = main(list(args))
        out = capsys.readouterr()
        return code, out.out, out.err

    return call


def _runs(tmp_path: Path) -> list[Path]:
    root = tmp_path / "runs"
    return sorted(root.iterdir()) if root.exists() else []


def test_run_by_name_json(cli: Any, tmp_path: Path) -> None:
    alert = tmp_path / "alert.json"
    alert.write_text(json.dumps({"labels": {"team": "ml"}}))
    code, out, _ = cli("run", "hello", "--input", "ids=a,b", "--alert", str(alert), "--json")
    assert code == 0
    doc = json.loads(out)
    assert set(doc) == {"run_id", "run_dir", "mode", "outcome"}
    assert doc["outcome"] == "succeeded"
    assert doc["mode"] == "live"
    assert Path(doc["run_dir"]).is_dir()


def test_run_text_shows_progress_and_failed_run_exits_1(cli: Any) -> None:
    code, out, err = cli("run", "boom", "--as", "alice")
    assert code == 1
    assert "failed" in out
    assert "run directory:" in out
    assert "boom failed: no" in err


def test_dry_run_and_drill_modes(cli: Any) -> None:
    code, out, _ = cli("run", "hello", "-i", "ids=a", "--dry-run", "--json")
    assert code == 0
    assert json.loads(out)["mode"] == "dry-run"
    code, out, _ = cli("run", "hello", "-i", "ids=a", "--mode", "drill", "--json")
    assert code == 0
    assert json.loads(out)["mode"] == "drill"
    code, _, err = cli("run", "hello", "--mode", "chaos")
    assert code == 2
    assert "--mode" in err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["run", "hello"], "missing required input 'ids'"),
        (["run", "hello", "-i", "ids=a", "-i", "count=x"], "input 'count': expected an integer"),
        (["run", "hello", "-i", "ids=a", "-i", "nope=1"], "unknown input 'nope'"),
        (["run", "hello", "-i", "ids"], "expected NAME=VALUE"),
        (["run", "no-such-book"], "unknown playbook 'no-such-book'"),
        (["run", "hello", "-i", "ids=a", "--alert", "ALERT"], "not JSON"),
        (["run", "hello", "-i", "ids=a", "--alert", "BIG"], "over the 1048576 byte cap"),
        (["run", "hello", "-i", "ids=a", "--alert", "MISSING"], "cannot read the alert file"),
    ],
)
def test_bad_input_is_one_line_and_writes_nothing(cli: Any, tmp_path: Path, args: list[str], message: str) -> None:
    (tmp_path / "bad.json").write_text("{nope")
    (tmp_path / "big.json").write_text(json.dumps({"labels": {"x": "y" * (1 << 20)}}))
    swap = {
        "ALERT": str(tmp_path / "bad.json"),
        "BIG": str(tmp_path / "big.json"),
        "MISSING": str(tmp_path / "gone.json"),
    }
    code, out, err = cli(*[swap.get(a, a) for a in args])
    assert code == 1
    assert message in err
    assert len(err.strip().splitlines()) == 1, err
    assert "Traceback" not in err
    assert out == ""
    assert _runs(tmp_path) == []


def test_runs_list_show_report_audit(cli: Any, tmp_path: Path) -> None:
    code, out, _ = cli("run", "hello", "-i", "ids=a", "--json")
    run_id = json.loads(out)["run_id"]
    code, out, _ = cli("runs", "list", "--json")
    assert code == 0
    assert [r["run_id"] for r in json.loads(out)] == [run_id]
    code, out, _ = cli("runs", "show", run_id, "--json")
    assert code == 0
    assert json.loads(out)["steps"]["fan"]["status"] == "succeeded"
    code, out, _ = cli("runs", "show", run_id)
    assert code == 0
    assert "fan: succeeded" in out
    report = tmp_path / "runs" / run_id / "report.md"
    report.unlink()
    code, out, _ = cli("report", run_id, "--json")
    assert code == 0
    assert Path(json.loads(out)["reports"][0]).read_text().startswith("# hello@1")
    code, out, _ = cli("audit", "verify", run_id, "--json")
    assert code == 0
    assert json.loads(out)["ok"] is True
    code, _, err = cli("runs", "show", "nope")
    assert code == 1
    assert "no run 'nope'" in err


def test_resume_of_a_finished_run_is_refused(cli: Any, tmp_path: Path) -> None:
    code, out, _ = cli("run", "hello", "-i", "ids=a", "--json")
    run_id = json.loads(out)["run_id"]
    events_before = (tmp_path / "runs" / run_id / "events.jsonl").read_bytes()
    code, _, err = cli("resume", run_id)
    assert code == 1
    assert "already finished" in err
    assert len(err.strip().splitlines()) == 1
    assert (tmp_path / "runs" / run_id / "events.jsonl").read_bytes() == events_before


def test_approve_a_step_that_is_not_waiting(cli: Any) -> None:
    code, out, _ = cli("run", "hello", "-i", "ids=a", "--json")
    code, _, err = cli("approve", json.loads(out)["run_id"], "hello", "--as", "bob")
    assert code == 1
    assert "is not waiting for approval" in err
    code, _, err = cli("reject", json.loads(out)["run_id"], "hello", "--as", "bob", "--reason", " ")
    assert code == 2


def test_undo_with_nothing_to_undo(cli: Any) -> None:
    code, out, _ = cli("run", "hello", "-i", "ids=a", "--json")
    code, out, _ = cli("undo", json.loads(out)["run_id"], "--json")
    assert code == 0
    assert json.loads(out) == []


def test_a_run_handed_to_a_warm_runtime_is_followed(cli: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A stand-in for ``fireline serve``: it checks the request, then runs it on a thread, like the server."""
    import threading

    from flows.config import load_settings
    from flows.engine import handoff, run_playbook
    from flows.engine.runner import validate_request

    threads: list[threading.Thread] = []

    def fake_handoff(request: dict[str, Any], settings: Any = None, why: Any = None) -> dict[str, Any]:
        settings = load_settings()
        validate_request(request["playbook"], inputs=request["inputs"], alert=request["alert"], settings=settings)
        run_id = f"handed-{len(threads)}"

        def work() -> None:
            run_playbook(request["playbook"], inputs=request["inputs"], mode=request["mode"], settings=settings,
                         run_id=run_id, trigger=request["trigger"])  # fmt: skip

        threads.append(threading.Thread(target=work))
        threads[-1].start()
        return {
            "run_id": run_id,
            "run_dir": str(settings.runs_dir / run_id),
            "mode": request["mode"],
            "status": "accepted",
        }

    monkeypatch.setattr(handoff, "try_handoff", fake_handoff)
    code, out, _ = cli("run", "boom", "--json")
    assert code == 1
    assert json.loads(out) == {"run_id": "handed-0", "run_dir": str(tmp_path / "runs" / "handed-0"), "mode": "live",
                               "outcome": "failed"}  # fmt: skip
    code, out, err = cli("run", "hello", "-i", "ids=a,b")
    assert code == 0
    assert "handed to the warm runtime: run handed-1" in err
    assert "fan succeeded" in err
    assert "hello succeeded" in err
    assert "run handed-1 succeeded" in out
    for thread in threads:
        thread.join(10)
    code, _, err = cli("run", "hello", "-i", "count=2")
    assert code == 1
    assert "missing required input" in err
    assert len(threads) == 2

"""The spec commands through the real CLI entry point: output, --json, exit codes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from flows.cli import main

REPO = Path(__file__).resolve().parents[3]

PLAYBOOK = """\
apiVersion: fireline/v1
kind: Playbook
metadata: {name: NAME, version: 1, title: CLI test}
inputs:
  hosts: {type: "list[string]", required: true}
steps:
  - id: note
    action: log
    with: {message: "start"}
  - id: approve
    action: approval
    needs: []
    with: {approvers: ["group:sec"]}
  - id: each
    action: log
    needs: [note, approve]
    for_each: "{{ inputs.hosts }}"
    concurrency: 2
    with: {message: "{{ item }}"}
"""


TREE = """apiVersion: fireline/v1
kind: ContactTree
metadata: {name: tree, version: 1}
levels:
  - {targets: ["webhook:secret:PAGER_URL"], ack_timeout: 5m}
"""


def _library(tmp_path: Path) -> Path:
    lib = tmp_path / "playbooks"
    (lib / "contact-trees").mkdir(parents=True)
    (lib / "scenarios").mkdir()
    (lib / "nested").mkdir()
    (lib / "one.yaml").write_text(PLAYBOOK.replace("NAME", "one"))
    (lib / "nested" / "two.yml").write_text(PLAYBOOK.replace("NAME", "two"))
    # Other documents live beside playbooks and are not playbooks (contact trees are checked as trees).
    (lib / "contact-trees" / "tree.yaml").write_text(TREE)
    scenario = "apiVersion: fireline/v1\nkind: Scenario\nmetadata: {name: drill}\nplaybook: one\nalert: {labels: {}}\n"
    (lib / "scenarios" / "drill.yaml").write_text(scenario + "expect: {outcome: succeeded}\n")  # checked as a scenario
    return lib


def _run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def test_validate_a_library_skips_other_documents(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = _run(capsys, "validate", str(_library(tmp_path)), "--json")
    assert code == 0, err
    doc = json.loads(out)
    assert doc["ok"] is True
    assert [Path(f["path"]).name for f in doc["files"]] == ["two.yml", "one.yaml", "tree.yaml", "drill.yaml"]
    assert {f["playbook"] for f in doc["files"]} == {"one@1", "two@1", None}


def test_validate_reports_errors_as_lines_and_exits_1(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(PLAYBOOK.replace("NAME", "bad").replace("action: approval", "action: aproval"))
    code, out, err = _run(capsys, "validate", str(bad))
    assert code == 1
    assert out == f"{bad}:11:13: error[E301] steps[1].action: unknown action 'aproval' (did you mean 'approval'?)\n"
    assert "1 error(s)" in err
    assert "Traceback" not in err


def test_duplicate_playbook_names_in_a_library(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    lib = _library(tmp_path)
    (lib / "copy.yaml").write_text(PLAYBOOK.replace("NAME", "one"))
    code, out, _ = _run(capsys, "validate", str(lib), "--json")
    assert code == 1
    codes = [d["code"] for f in json.loads(out)["files"] for d in f["diagnostics"]]
    assert codes == ["E420"]


def test_lint_strict_turns_warnings_into_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "w.yaml"
    path.write_text(PLAYBOOK.replace("NAME", "w").replace("    concurrency: 2\n", ""))
    code, out, _ = _run(capsys, "lint", str(path))
    assert code == 0
    assert "warning[W504]" in out
    code, out, _ = _run(capsys, "lint", str(path), "--strict", "--json")
    assert code == 1
    assert json.loads(out)["files"][0]["diagnostics"][0]["severity"] == "error"


def test_usage_errors_exit_2_and_missing_files_exit_1(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert _run(capsys, "validate", str(tmp_path / "missing"))[0] == 1
    assert _run(capsys, "validate")[0] == 2
    assert _run(capsys, "validate", str(tmp_path), "--no-such-option")[0] == 2


def test_plan_shows_waves(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "p.yaml"
    path.write_text(PLAYBOOK.replace("NAME", "p"))
    code, out, _ = _run(capsys, "plan", str(path), "--json")
    assert code == 0
    doc = json.loads(out)
    waves = [[s["id"] for s in w["steps"]] for w in doc["waves"]]
    assert waves == [["note", "approve"], ["each"]]
    each = doc["waves"][1]["steps"][0]
    assert each["needs"] == ["note", "approve"]
    assert each["markers"] == {"for_each": "{{ inputs.hosts }}", "concurrency": 2}
    assert doc["waves"][0]["steps"][1]["markers"] == {"approval": True}
    code, out, _ = _run(capsys, "plan", str(path))
    assert code == 0
    assert "wave 1 (in parallel)" in out
    assert "APPROVAL" in out


def test_plan_of_a_broken_playbook_exits_1(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "p.yaml"
    path.write_text(PLAYBOOK.replace("NAME", "p").replace("needs: [note, approve]", "needs: [each]"))
    code, _, err = _run(capsys, "plan", str(path))
    assert code == 1
    assert "E403" in err


def test_actions_catalogue_and_show(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _run(capsys, "actions", "--json")
    assert code == 0
    rows = {r["name"]: r for r in json.loads(out)["actions"]}
    assert rows["approval"] == {
        "name": "approval",
        "kind": "control",
        "undoable": False,
        "description": rows["approval"]["description"],
    }
    code, out, _ = _run(capsys, "actions", "show", "approval", "--json")
    assert code == 0
    params = {p["name"]: p for p in json.loads(out)["params"]}
    assert params["approvers"]["required"] is True
    assert params["timeout"] == {
        "name": "timeout",
        "type": "duration",
        "required": False,
        "default": "1h",
        "description": "",
    }
    code, _, err = _run(capsys, "actions", "show", "aproval")
    assert code == 1
    assert "did you mean 'approval'" in err


def test_actions_prints_a_table_with_a_header(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _run(capsys, "actions")
    assert code == 0
    lines = out.splitlines()
    assert lines[0].split() == ["action", "kind", "undoable", "description"]
    assert any(line.split()[:3] == ["approval", "control", "no"] for line in lines[1:])
    assert all(len(line.split()) >= 3 for line in lines[1:])


def test_schema_is_json(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _run(capsys, "schema")
    assert code == 0
    assert json.loads(out)["properties"]["apiVersion"]["const"] == "fireline/v1"


def test_validate_does_not_import_heavy_sdks(tmp_path: Path) -> None:
    """Guards every action module the registry imports, not only this package's."""
    path = tmp_path / "p.yaml"
    path.write_text(PLAYBOOK.replace("NAME", "p"))
    script = (
        "import json, sys\n"
        "from flows.cli import main\n"
        f"code = main(['validate', {str(path)!r}])\n"
        "heavy = ['prefect', 'boto3', 'botocore', 'slack_sdk', 'mlflow', 'starlette', 'rich', 'click',\n"
        "         'pydantic_settings']\n"
        "print(json.dumps({'code': code, 'loaded': [m for m in heavy if m in sys.modules]}))\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("FIRELINE_")}  # nothing to read: no settings library
    done = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, timeout=60, env=env)
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result == {"code": 0, "loaded": []}, done.stdout + done.stderr


def test_plan_by_name_from_the_playbooks_directory(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FIRELINE_PLAYBOOKS_DIR", str(_library(tmp_path)))
    code, out, _ = _run(capsys, "plan", "one", "--json")
    assert code == 0
    assert json.loads(out)["playbook"] == "one@1"
    assert _run(capsys, "plan", "nope")[0] == 1
    code, _, err = _run(capsys, "plan", "onee")
    assert code == 1
    assert "did you mean 'one'?" in err


def test_schema_written_to_a_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    target = tmp_path / "playbook.schema.json"
    code, out, _ = _run(capsys, "schema", "--output", str(target), "--json")
    assert code == 0
    assert json.loads(out) == {"written": str(target)}
    assert json.loads(target.read_text())["$defs"]["Step"]["allOf"]

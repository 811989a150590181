"""``fireline drill``: the shipped scenarios pass with JUnit XML, the failing one exits 1 and names
each unmet expectation, and bad scenarios are one located line each."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any
from xml.etree import ElementTree as ET

import pytest

from flows.cli import main

REPO = Path(__file__).resolve().parents[3]
SCENARIOS = REPO / "playbooks" / "scenarios"
FAILING = REPO / "tests" / "data" / "scenarios" / "failing-drill.yaml"


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str]) -> Any:
    def call(*args: str) -> tuple[int, str, str]:
        code = main(list(args))
        out = capsys.readouterr()
        return code, out.out, out.err

    return call


def test_every_shipped_playbook_has_a_scenario_with_a_fault() -> None:
    from flows.config import load_settings
    from flows.drills.load import load_scenario

    books = {p.stem for p in (REPO / "playbooks").glob("*.yaml") if p.name != "people.yaml"}
    drilled: dict[str, int] = {}
    for path in sorted(SCENARIOS.glob("*.yaml")):
        loaded = load_scenario(path, load_settings())
        drilled[loaded.playbook.metadata.name] = drilled.get(loaded.playbook.metadata.name, 0) + len(
            loaded.scenario.faults
        )
    assert set(drilled) == books
    assert all(count >= 1 for name, count in drilled.items() if name != "model-drift-rollback")
    assert drilled["model-drift-rollback"] >= 1  # its fault lives in the approval-timeout scenario


def test_library_drills_pass_and_write_junit(cli: Any, tmp_path: Path) -> None:
    junit = tmp_path / "drills.xml"
    code, out, err = cli("drill", str(SCENARIOS), "--junit", str(junit))
    assert code == 0, out + err
    suite = ET.parse(junit).getroot()
    assert suite.tag == "testsuite"
    assert int(suite.get("failures", "-1")) == 0
    cases = suite.findall("testcase")
    assert int(suite.get("tests", "0")) == len(cases) > 50
    assert {c.get("classname") for c in cases} == {f"drill.{p.stem}" for p in SCENARIOS.glob("*.yaml")}
    assert out.count("PASS ") == len(list(SCENARIOS.glob("*.yaml")))
    assert "0 failed" in err


def test_failing_scenario_exits_1_and_its_report_names_each_unmet_expectation(cli: Any, tmp_path: Path) -> None:
    junit = tmp_path / "failing.xml"
    code, out, _ = cli("drill", str(FAILING), "--junit", str(junit), "--json")
    assert code == 1
    doc = json.loads(out)
    drill = doc["drills"][0]
    assert doc["ok"] is False
    unmet = {(u["kind"], u["name"]) for u in drill["unmet"]}
    assert unmet == {
        ("outcome", "of the run"),
        ("step", "isolate-hosts"),
        ("step", "drain-endpoint"),
        ("escalation", "page-on-call"),
        ("approval", "approve-isolation"),
        ("milestone", "acknowledged"),
        ("milestone", "contained"),
    }
    run_dir = Path(drill["run_dir"])
    md = (run_dir / "drill-report.md").read_text()
    html = (run_dir / "drill-report.html").read_text()
    report = json.loads((run_dir / "drill-report.json").read_text())
    assert report["verdict"] == "failed"
    for u in drill["unmet"]:
        assert f"**{u['kind']} {u['name']}**: expected {u['expected']}".replace("<", "\\<") in md
        assert f"<strong>{u['kind']} {u['name']}</strong>" in html
    assert "expected granted, observed rejected" in md
    assert "unreachable contact" in md  # Carol was paged at level 1 and never answers
    assert "expected level 0, observed level 2" in md
    # moto has no IAM policy simulator: the report says the permissions were not checked, and why
    assert report["permissions"]["checked"] is False
    assert "moto does not implement SimulatePrincipalPolicy" in md
    assert "iam:SimulatePrincipalPolicy" not in report["permissions"].get("missing", [])
    failures = ET.parse(junit).getroot().findall("testcase/failure")
    assert len(failures) == 7


def _bad(tmp_path: Path, edit: dict[str, Any]) -> Path:
    import yaml

    doc = yaml.safe_load((SCENARIOS / "compromised-inference-host.yaml").read_text())
    for dotted, value in edit.items():
        node = doc
        *parents, last = dotted.split(".")
        for key in parents:
            node = node[int(key)] if isinstance(node, list) else node[key]
        node[int(last) if isinstance(node, list) else last] = value
    folder = tmp_path / "lib" / "scenarios"
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copy(REPO / "playbooks" / "compromised-inference-host.yaml", folder.parent)
    shutil.copy(REPO / "playbooks" / "people.yaml", folder.parent)
    shutil.copytree(REPO / "playbooks" / "contact-trees", folder.parent / "contact-trees", dirs_exist_ok=True)
    path = folder / "bad.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


@pytest.mark.parametrize(
    ("edit", "code", "needle"),
    [
        ({"playbook": "compromised-inference-hots"}, "E600", "did you mean 'compromised-inference-host'"),
        ({"responders.approvals.0.step": "approve-isolaton"}, "E601", "did you mean 'approve-isolation'"),
        ({"responders.acks.0.by": "alcie"}, "E602", "did you mean 'alice'"),
        ({"faults.0.step": "snapshot-disk"}, "E601", "step 'snapshot-disk' is not in playbook"),
        ({"faults.0.step": "report-containment"}, "E603", "makes no AWS call: the fault can never hit"),
        ({"expect.escalation": {"snapshot-disks": 1}}, "E604", "can never be checked"),
        ({"expect.steps.skipped": ["isolate-hosts"]}, "E604", "expected both run and skipped"),
        ({"responders.acks.0.after": "soon"}, "E605", "is not a duration"),
    ],
)
def test_bad_scenario_is_one_located_line(cli: Any, tmp_path: Path, edit: dict[str, Any], code: str,
                                          needle: str) -> None:  # fmt: skip
    path = _bad(tmp_path, edit)
    rc, out, err = cli("drill", str(path))
    assert rc == 1
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert lines[0].startswith(f"fireline: error: {path}:"), lines[0]
    assert f"error[{code}]" in lines[0], lines[0]
    assert needle in lines[0], lines[0]
    assert "Traceback" not in err
    assert out == ""
    assert not (Path(tmp_path) / "runs").exists()


def test_validate_and_schema_cover_scenarios(cli: Any, tmp_path: Path) -> None:
    code, _, err = cli("validate", str(REPO / "playbooks"))
    assert code == 0, err
    n_files = len(list((REPO / "playbooks").glob("*.yaml"))) + len(list(SCENARIOS.glob("*.yaml")))
    assert f"validate: {n_files + 2} file(s)" in err  # + two contact trees
    bad = _bad(tmp_path, {"faults.0.step": "snapshot-disk"})
    code, out, _ = cli("validate", str(bad.parent.parent))
    assert code == 1
    assert f"{bad}:" in out
    assert "E601" in out
    code, out, _ = cli("schema")
    schema = json.loads(out)
    assert schema["$defs"]["scenario"]["properties"]["kind"]["const"] == "Scenario"


def test_the_simulator_is_asked_about_the_role_of_an_assumed_role_session() -> None:
    from flows.drills.gaps import _principal

    session = "arn:aws:sts::123456789012:assumed-role/fireline-responder/fireline-run-1"
    assert _principal(session) == "arn:aws:iam::123456789012:role/fireline-responder"
    user = "arn:aws:iam::123456789012:user/oncall"
    assert _principal(user) == user

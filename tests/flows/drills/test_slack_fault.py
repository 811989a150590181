"""The slack_429 fault: the drill's Slack traffic goes through a rate-limiting loopback proxy to the
loopback Slack; the real WebClient retries, the pages still reach the drill channel."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from flows.cli import main
from flows.drills.run import run_scenario
from tests.fixtures.slack_fake import SlackEnv

SCENARIO = Path(__file__).resolve().parents[3] / "playbooks" / "scenarios" / "compromised-iam-credentials.yaml"


def _with_slack_fault(tmp_path: Path) -> Path:
    doc = yaml.safe_load(SCENARIO.read_text())
    doc["faults"].append({"kind": "slack_429", "times": 2})
    doc["alert"] = str(SCENARIO.parent.parent / "alerts" / "compromised-iam-credentials.json")
    doc["playbook"] = str(SCENARIO.parent.parent / "compromised-iam-credentials.yaml")
    path = tmp_path / "slack-429.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def test_slack_answers_429_and_the_drill_pages_still_arrive(slack: SlackEnv, tmp_path: Path) -> None:
    drills = slack.workspace.add_channel("drills")
    settings = slack.settings(tmp_path, drill_channel="drills")
    result = run_scenario(_with_slack_fault(tmp_path), settings)
    assert result.ok, result.unmet
    injected = [f for f in result.observed.faults if f["step"] == "Slack Web API"]
    assert len(injected) == 2  # both 429s were answered by the proxy, to the real WebClient
    sent = slack.workspace.posted("chat.postMessage")
    assert sent  # after its retries the WebClient got through to the loopback Slack
    assert all(r.params.get("channel") in (drills, "drills") for r in sent)
    assert all("[DRILL]" in str(r.params.get("text")) for r in sent)
    report = json.loads((result.run_dir / "drill-report.json").read_text())
    assert sum(f["step"] == "Slack Web API" for f in report["faults"]) == 2


def test_slack_fault_without_slack_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["drill", str(_with_slack_fault(tmp_path))])
    err = capsys.readouterr().err
    assert code == 1
    assert "error[E603]" in err
    assert "a slack_429 fault can never hit" in err

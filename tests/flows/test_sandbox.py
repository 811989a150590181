"""``fireline sandbox``: the demo contains a compromised host live; ``up`` serves a seeded platform."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from flows.cli import main
from tests.fixtures.moto import AwsEnv, aws, moto  # noqa: F401 - fixtures

pytestmark = [pytest.mark.e2e, pytest.mark.moto_server]


def test_demo_isolates_the_hosts_and_shows_the_run(
    aws: AwsEnv,  # noqa: F811
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # The shared (freshly reset) server stands in for the one the command would start.
    args = [
        "--endpoint",
        aws.endpoint,
        "--playbook",
        "compromised-inference-host",
        "--runs-dir",
        str(tmp_path / "runs"),
    ]
    assert main(["sandbox", "demo", *args, "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    (result,) = doc["runs"]
    assert result["outcome"] == "succeeded"
    groups = result["security_groups"]
    assert len(groups) == 2
    for change in groups.values():
        assert len(change["before"]) == 2
        assert len(change["after"]) == 1
        assert change["after"][0].endswith("(fireline-quarantine)")
    assert len(result["snapshots"]) == 4
    assert result["endpoint_weights"] == {"primary": 0.0}
    assert result["evidence_items"] == 4
    assert Path(result["run_dir"]).parent == tmp_path / "runs"
    assert Path(result["report"]).is_file()


def test_demo_refuses_an_unknown_playbook(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["sandbox", "demo", "--playbook", "nope"]) == 2
    assert "no demo step runs nope" in capsys.readouterr().err


def test_up_prints_the_endpoint_and_stops_after_the_time(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["sandbox", "up", "--seconds", "0.2", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["env"]["FIRELINE_AWS_ENDPOINT_URL"] == doc["endpoint"]
    assert doc["endpoint"].startswith("http://127.0.0.1:")
    assert len(doc["resources"]["inference_instances"]) == 2
    # The server is gone once the command returns.
    with pytest.raises(urllib.error.URLError):
        urllib.request.urlopen(f"{doc['endpoint']}/moto-api/data.json", timeout=2)

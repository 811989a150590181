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
    assert any(line.startswith(f"fireline audit verify {result['run_dir']}") for line in doc["next"])


def test_demo_phases_say_what_happens_and_how_long_it_took(capsys: pytest.CaptureFixture[str]) -> None:
    from flows.cli.sandbox_cmds import _Phases, next_steps

    phases = _Phases(quiet=False)
    with phases.phase("seeding a small ML platform"):
        pass
    err = capsys.readouterr().err.splitlines()
    assert err[0] == "seeding a small ML platform ..."
    assert err[1].startswith("  done in ")
    with _Phases(quiet=True).phase("quiet"):
        pass
    assert capsys.readouterr().err == ""
    assert next_steps([]) == []
    lines = next_steps([{"run_dir": "/r/run-1", "report": "/r/run-1/report.md"}])
    assert [line.split("#")[0].split()[:3] for line in lines[:3]] == [
        ["fireline", "runs", "show"],
        ["fireline", "audit", "verify"],
        ["fireline", "evidence", "verify"],
    ]
    assert "less /r/run-1/report.md" in "\n".join(lines)


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


def _children(pid: int) -> list[int]:
    """Processes whose parent is ``pid``, read from the process table (/proc)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # the process ended while we looked
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


def _running(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.mark.slow
def test_up_stops_its_moto_server_on_sigterm(tmp_path: Path) -> None:
    import os
    import signal
    import subprocess
    import sys

    proc = subprocess.Popen(
        [sys.executable, "-m", "flows", "sandbox", "up", "--json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])},
    )
    try:
        assert proc.stdout is not None
        text = ""
        while True:  # the JSON document is printed once the sandbox is up and seeded
            line = proc.stdout.readline()
            assert line, f"sandbox up ended early: {proc.stderr.read() if proc.stderr else ''}"
            text += line
            if line.rstrip() == "}":
                break
        endpoint = json.loads(text)["endpoint"]
        children = _children(proc.pid)
        assert children, "the moto server should be a child of fireline sandbox up"
        assert all(_running(pid) for pid in children)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=120) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert [pid for pid in children if _running(pid)] == []
    with pytest.raises(urllib.error.URLError):
        urllib.request.urlopen(f"{endpoint}/moto-api/data.json", timeout=2)

"""The run record: run.json, hash-chained events, redaction, modes everywhere, report.md, audit verify."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from flows.engine import run_playbook
from tests.flows.engine.engine_helpers import events, make_registry, make_settings, run_json, write_playbook

TOKEN = "s3cr3t-value-for-tests"


@pytest.fixture
def secret_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("FL_TEST_TOKEN", TOKEN)
    steps = [
        {"id": "use", "action": "test.echo", "with": {"token": "{{ inputs.token }}", "value": "v"}},
        {"id": "note", "action": "log", "with": {"message": "done with {{ steps.use.output.summary }}"}},
    ]
    path = write_playbook(tmp_path, steps, inputs={"token": {"type": "string", "required": True}})
    summary = run_playbook(
        path,
        inputs={"token": "secret:FL_TEST_TOKEN"},
        settings=make_settings(tmp_path),
        registry=make_registry(),
        trigger={"by": "user:oncall", "how": "cli"},
    )
    assert summary.outcome == "succeeded"
    assert summary.steps["use"].output["token_length"] == len(TOKEN)  # the action did get the value
    return summary.run_dir


def test_secret_values_and_refs_never_reach_the_record(secret_run: Path) -> None:
    for path in secret_run.rglob("*"):
        if path.is_file():
            assert TOKEN not in path.read_text(errors="replace"), f"secret leaked into {path}"
    data = run_json(secret_run)
    assert data["inputs"] == {"token": "secret:***"}
    log = events(secret_run, "log", "use")[0]
    assert log["detail"]["message"] == "using token ***"


def test_run_json_fields(secret_run: Path) -> None:
    data = run_json(secret_run)
    assert data["playbook"]["name"] == "test-book"
    assert data["playbook"]["version"] == 1
    assert data["trigger"] == {"by": "user:oncall", "how": "cli"}
    assert data["outcome"] == "succeeded"
    assert data["mode"] == "live"
    assert data["started_at"] <= data["finished_at"]
    assert data["events"]["count"] == len(events(secret_run))
    started = events(secret_run, "run.started")[0]
    assert started["seq"] == 0
    assert started["prev_sha256"] == "0" * 64
    assert started["detail"]["mode"] == "live"
    assert list(started) == ["seq", "at", "type", "step", "item", "detail", "prev_sha256"]


def test_report_has_banner_steps_and_timeline(secret_run: Path) -> None:
    report = (secret_run / "report.md").read_text()
    assert "# test-book@1 — succeeded" in report
    assert "| `use` | succeeded |" in report
    assert "## Timeline" in report
    assert "`run.finished`" in report
    assert "DRY-RUN" not in report


def test_dry_run_is_marked_everywhere(tmp_path: Path) -> None:
    path = write_playbook(tmp_path, [{"id": "t", "action": "test.touch", "with": {"ids": ["a"], "tags": {}}}])
    summary = run_playbook(path, settings=make_settings(tmp_path), registry=make_registry(), mode="dry-run")
    assert run_json(summary.run_dir)["mode"] == "dry-run"
    assert events(summary.run_dir, "run.started")[0]["detail"]["mode"] == "dry-run"
    assert (summary.run_dir / "report.md").read_text().startswith("> **DRY-RUN**")
    assert summary.steps["t"].output["plan"]["summary"] == "touch 1"
    assert list((summary.run_dir / "state" / "intents").glob("*")) == []  # apply was never approached


def _cli(args: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> int:
    from flows.cli import main

    monkeypatch.setenv("FIRELINE_RUNS_DIR", str(tmp_path / "runs"))
    monkeypatch.setenv("FIRELINE_HOME", str(tmp_path / "home"))  # where make_settings keeps the record key
    return main(args)


def _lines(run_dir: Path) -> list[bytes]:
    return (run_dir / "events.jsonl").read_bytes().splitlines()


def _write(run_dir: Path, lines: list[bytes]) -> None:
    (run_dir / "events.jsonl").write_bytes(b"\n".join(lines) + b"\n")


def _edit(lines: list[bytes]) -> list[bytes]:
    event = json.loads(lines[2])
    event["detail"]["injected"] = True
    return [*lines[:2], json.dumps(event, separators=(",", ":")).encode(), *lines[3:]]


def _rehash_tail(lines: list[bytes]) -> list[bytes]:
    """Delete line 3 and re-chain the rest, as a careful forger would; seq and the head still betray it."""
    import hashlib

    kept = [*lines[:3], *lines[4:]]
    out = kept[:3]
    for raw in kept[3:]:
        event = json.loads(raw)
        event["prev_sha256"] = hashlib.sha256(out[-1]).hexdigest()
        out.append(json.dumps(event, separators=(",", ":")).encode())
    return out


TAMPERS = {
    "edited": _edit,
    "deleted": lambda ls: [*ls[:2], *ls[3:]],
    "inserted": lambda ls: [*ls[:2], ls[1], *ls[2:]],
    "reordered": lambda ls: [ls[0], ls[2], ls[1], *ls[3:]],
    "truncated": lambda ls: ls[:-1],
    "appended": lambda ls: [*ls, ls[-1]],
    "deleted-and-rechained": _rehash_tail,
}


@pytest.mark.parametrize("tamper", sorted(TAMPERS))
def test_audit_verify_detects_tampering(
    secret_run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tamper: str
) -> None:
    assert _cli(["audit", "verify", secret_run.name], tmp_path, monkeypatch) == 0
    assert "chain intact" in capsys.readouterr().out
    _write(secret_run, TAMPERS[tamper](_lines(secret_run)))
    assert _cli(["audit", "verify", secret_run.name], tmp_path, monkeypatch) == 1
    assert "fails verification" in capsys.readouterr().err
    assert _cli(["audit", "verify", str(secret_run), "--json"], tmp_path, monkeypatch) == 1
    assert json.loads(capsys.readouterr().out)["ok"] is False


def test_dry_run_counts_refused_cloud_calls(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from moto import mock_aws

    for key, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(key, value)
    path = write_playbook(tmp_path, [{"id": "tag", "action": "test.aws.sloppy", "with": {"instance_id": "i-0abc"}}])
    with mock_aws():
        summary = run_playbook(path, settings=make_settings(tmp_path), registry=make_registry(), mode="dry-run")
    assert summary.refused_calls == ["ec2:CreateTags"]
    assert run_json(summary.run_dir)["refused_calls"] == ["ec2:CreateTags"]
    assert events(summary.run_dir, "run.finished")[0]["detail"]["refused_calls"] == 1
    assert all(e["detail"]["mode"] == "dry-run" for e in events(summary.run_dir))


def test_a_run_makes_only_the_folders_it_writes(tmp_path: Path) -> None:
    """Each folder is an inode, and on a file system without a journal a new inode cost up to 0.6 ms:
    evidence/, state/people/ and state/results/ appear with their first file, not before."""
    path = write_playbook(tmp_path, [{"id": "t", "action": "test.touch", "with": {"ids": ["a"], "tags": {}}}])
    summary = run_playbook(path, settings=make_settings(tmp_path), registry=make_registry(), mode="dry-run")
    state = summary.run_dir / "state"
    assert not (summary.run_dir / "evidence").exists()
    assert not (state / "people").exists()
    assert not (state / "intents").exists()  # a dry-run never approaches apply
    assert list((state / "results").glob("*.json"))  # the step's result: its folder came with it
    live = run_playbook(path, settings=make_settings(tmp_path), registry=make_registry())
    assert live.outcome == "succeeded"
    assert list((live.run_dir / "state" / "intents").glob("*.json"))

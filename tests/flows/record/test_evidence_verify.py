"""``fireline evidence verify``: every item re-hashed, local files and S3 object versions alike."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from flows.cli import main
from integrations.aws.s3 import PreserveObjects, PreserveParams
from integrations.aws.sandbox import seed_buckets
from tests.fixtures.moto import AwsEnv, aws, moto  # noqa: F401 - fixtures

pytestmark = pytest.mark.moto_server


@pytest.fixture
def run_dir(aws: AwsEnv, monkeypatch: pytest.MonkeyPatch) -> Path:  # noqa: F811
    """A run with two local evidence items and three S3 ones (one in a bucket without Object Lock)."""
    aws.seed(seed_buckets)
    monkeypatch.setenv("FIRELINE_AWS_ENDPOINT_URL", aws.endpoint)
    monkeypatch.setenv("FIRELINE_AWS_MAX_ATTEMPTS", "2")
    ctx = aws.context("run-1", step_id="collect")
    ctx.store_evidence_bytes("notes.json", b'{"a": 1}')
    ctx.store_evidence_bytes("more.json", b'{"b": 2}')
    PreserveObjects().apply(
        PreserveParams(bucket="ml-training-data", evidence_bucket="ml-evidence", keys=["datasets/fraud/labels.json"]),
        ctx.for_step("preserve"),
    )
    PreserveObjects().apply(
        PreserveParams(
            bucket="ml-training-data",
            evidence_bucket="scratch-no-lock",
            require_object_lock=False,
            prefix="datasets/fraud/train",
        ),
        ctx.for_step("preserve-unlocked"),
    )
    return ctx.record.dir


def _verify(run: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, dict[str, dict[str, object]]]:
    code = main(["evidence", "verify", str(run), "--json"])
    doc = json.loads(capsys.readouterr().out)
    return code, {item["name"] + "@" + item["location"][-12:]: item for item in doc["items"]}


def test_an_intact_run_verifies(run_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, items = _verify(run_dir, capsys)
    assert code == 0
    assert len(items) == 5
    assert {i["status"] for i in items.values()} == {"ok"}
    locked = [i for i in items.values() if "ml-evidence" in str(i["location"])]
    assert "retention COMPLIANCE" in str(locked[0]["detail"])


def test_an_edited_local_file_is_named(run_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (run_dir / "evidence" / "collect" / "notes.json").write_bytes(b'{"a": 2}')
    code, items = _verify(run_dir, capsys)
    assert code == 1
    bad = [i for i in items.values() if i["status"] != "ok"]
    assert [(i["name"], i["status"]) for i in bad] == [("notes.json", "mismatch")]


def test_a_replaced_or_deleted_s3_object_is_named(
    aws: AwsEnv,  # noqa: F811
    run_dir: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    manifest = run_dir / "evidence" / "manifest.json"
    doc = json.loads(manifest.read_text())
    unlocked = [i for i in doc["items"] if "scratch-no-lock" in i["location"]]
    # The bucket has no versioning, so the location has no versionId and the object can simply go.
    key = unlocked[0]["location"].removeprefix("s3://scratch-no-lock/")
    aws.client("s3").delete_object(Bucket="scratch-no-lock", Key=key)
    locked = next(i for i in doc["items"] if "ml-evidence" in i["location"])
    locked["sha256"] = "0" * 64  # as if the object behind the location had changed
    manifest.write_text(json.dumps(doc))
    code, items = _verify(run_dir, capsys)
    assert code == 1
    statuses = sorted(str(i["status"]) for i in items.values())
    assert statuses == ["mismatch", "missing", "ok", "ok", "ok"]


def test_text_output_names_the_problem(run_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (run_dir / "evidence" / "collect" / "more.json").unlink()
    assert main(["evidence", "verify", str(run_dir)]) == 1
    out = capsys.readouterr()
    assert "missing   more.json" in out.err
    assert "5 item(s), 1 problem(s)" in out.out
    # S3 items in the Object Lock bucket show their retention in the text output too.
    locked = [line for line in out.out.splitlines() if "s3://ml-evidence/" in line]
    assert locked
    assert all(": retention COMPLIANCE until " in line for line in locked)


def test_an_unknown_run_is_a_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["evidence", "verify", "no-such-run"]) == 1
    assert "no run 'no-such-run'" in capsys.readouterr().err


def test_a_run_without_evidence_verifies_with_nothing_to_check(capsys: pytest.CaptureFixture[str]) -> None:
    alert = str(Path(__file__).resolve().parents[3] / "playbooks" / "alerts" / "compromised-inference-host.json")
    assert main(["run", "compromised-inference-host", "--dry-run", "--alert", alert, "--json"]) == 0
    run_id = json.loads(capsys.readouterr().out)["run_id"]
    assert main(["evidence", "verify", run_id]) == 0
    assert "no evidence was collected" in capsys.readouterr().out
    assert main(["evidence", "verify", "latest", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["items"] == []
    from flows.config import load_settings
    from flows.engine.runs import find_run

    run_dir = find_run(run_id, load_settings())
    assert not (run_dir / "evidence").exists()  # no evidence, no folder for it
    assert main(["evidence", "verify", str(run_dir), "--json"]) == 0  # a run directory is named by its path too
    assert json.loads(capsys.readouterr().out)["items"] == []

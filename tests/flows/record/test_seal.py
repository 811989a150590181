"""The sealed run record: each way of rewriting it fails ``audit verify``, checked on the files."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from flows.config import Settings
from flows.engine import run_playbook
from flows.errors import ConfigError
from flows.record.seal import KEY_FILE, sealer_for
from flows.record.verify import verify_record
from tests.flows.engine.engine_helpers import make_registry, make_settings, write_playbook

STEPS = [
    {"id": "keep", "action": "test.evidence", "with": {"name": "notes.txt", "text": "what the host said"}},
    {"id": "say", "action": "log", "with": {"message": "kept"}},
]


def _run(tmp_path: Path, settings: Settings | None = None) -> tuple[Path, Settings]:
    settings = settings or make_settings(tmp_path)
    path = write_playbook(tmp_path, STEPS)
    summary = run_playbook(path, settings=settings, registry=make_registry(), trigger={"by": "user:oncall"})
    assert summary.outcome == "succeeded"
    return summary.run_dir, settings


def _lines(run_dir: Path) -> list[bytes]:
    return (run_dir / "events.jsonl").read_bytes().splitlines()


def _doc(run_dir: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((run_dir / "run.json").read_text())
    return data


def _put_doc(run_dir: Path, doc: dict[str, Any]) -> None:
    (run_dir / "run.json").write_text(json.dumps(doc, indent=2))


def _rechain(lines: list[bytes]) -> list[bytes]:
    out: list[bytes] = []
    for seq, raw in enumerate(lines):
        event = json.loads(raw)
        event["seq"] = seq
        event["prev_sha256"] = hashlib.sha256(out[-1]).hexdigest() if out else "0" * 64
        out.append(json.dumps(event, separators=(",", ":"), ensure_ascii=False).encode())
    return out


def _cut_tail_and_head(run_dir: Path) -> None:
    (run_dir / "events.jsonl").write_bytes(b"\n".join(_lines(run_dir)[:-2]) + b"\n")
    doc = _doc(run_dir)
    del doc["events"]
    _put_doc(run_dir, doc)


def _empty_log(run_dir: Path) -> None:
    (run_dir / "events.jsonl").write_bytes(b"")


def _recompute_chain(run_dir: Path) -> None:
    """Edit a line, re-chain every line and stamp the new head into run.json: a careful forger."""
    lines = [json.loads(raw) for raw in _lines(run_dir)]
    lines[0]["detail"]["trigger"] = {"by": "user:someone-else"}
    chained = _rechain([json.dumps(e, separators=(",", ":")).encode() for e in lines])
    (run_dir / "events.jsonl").write_bytes(b"\n".join(chained) + b"\n")
    doc = _doc(run_dir)
    doc["events"] = {"count": len(chained), "head_sha256": hashlib.sha256(chained[-1]).hexdigest()}
    _put_doc(run_dir, doc)


def _edit_run_json(field: str, value: Any) -> Callable[[Path], None]:
    def edit(run_dir: Path) -> None:
        doc = _doc(run_dir)
        if field == "trigger.by":
            doc["trigger"]["by"] = value
        else:
            doc[field] = value
        _put_doc(run_dir, doc)

    return edit


def _swap_evidence(run_dir: Path) -> None:
    manifest = run_dir / "evidence" / "manifest.json"
    doc = json.loads(manifest.read_text())
    item = doc["items"][0]
    (run_dir / item["location"]).write_text("what the forger wants")
    item["sha256"] = hashlib.sha256(b"what the forger wants").hexdigest()
    item["size"] = len("what the forger wants")
    manifest.write_text(json.dumps(doc))


def _drop_seal(run_dir: Path) -> None:
    doc = _doc(run_dir)
    del doc["seal"]
    _put_doc(run_dir, doc)


TAMPERS: dict[str, Callable[[Path], None]] = {
    "tail cut and head deleted": _cut_tail_and_head,
    "log emptied": _empty_log,
    "chain recomputed": _recompute_chain,
    "outcome edited": _edit_run_json("outcome", "failed"),
    "trigger.by edited": _edit_run_json("trigger.by", "user:someone-else"),
    "steps edited": _edit_run_json("steps", {}),
    "evidence and manifest edited": _swap_evidence,
    "seal removed": _drop_seal,
}


@pytest.mark.parametrize("tamper", list(TAMPERS))
def test_each_rewrite_fails_verify(tmp_path: Path, tamper: str) -> None:
    run_dir, settings = _run(tmp_path)
    assert verify_record(run_dir, settings) == []
    TAMPERS[tamper](run_dir)
    assert verify_record(run_dir, settings) != []


def test_the_key_lives_outside_the_run_with_0600(tmp_path: Path) -> None:
    run_dir, settings = _run(tmp_path)
    key = settings.home / KEY_FILE
    assert key.stat().st_mode & 0o777 == 0o600
    assert not key.is_relative_to(run_dir)
    secret = key.read_text().strip()
    for path in run_dir.rglob("*"):
        if path.is_file():
            assert secret not in path.read_text(errors="replace")


def test_a_key_readable_by_others_is_refused_before_the_run(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    sealer_for(settings)
    (settings.home / KEY_FILE).chmod(0o644)
    path = write_playbook(tmp_path, STEPS)
    with pytest.raises(ConfigError, match="readable by others"):
        run_playbook(path, settings=settings, registry=make_registry())
    assert not (settings.runs_dir).exists() or list(settings.runs_dir.iterdir()) == []


def test_a_configured_secret_key_seals_and_another_key_fails(tmp_path: Path) -> None:
    settings = Settings.model_validate({**make_settings(tmp_path).model_dump(), "record": {"key": "k" * 32}})
    run_dir, _ = _run(tmp_path, settings)
    assert verify_record(run_dir, settings) == []
    other = Settings.model_validate({**settings.model_dump(), "record": {"key": "o" * 32}})
    assert any("configured key" in p for p in verify_record(run_dir, other))


def test_values_json_cannot_hold_are_written_as_text_and_still_verify(tmp_path: Path) -> None:
    run_dir, settings = _run(tmp_path)
    from flows.record.store import RunRecord

    record = RunRecord(run_dir, sealer=sealer_for(settings))
    record.emit("log", detail={"message": "bad bytes \udcff from a file name", "ratio": float("nan")})
    record.update_run(extra={"limit": float("inf")})
    strict = {"parse_constant": lambda name: pytest.fail(f"{name} in the record")}
    assert json.loads((run_dir / "run.json").read_text(), **strict)["extra"] == {"limit": "inf"}
    last = json.loads((run_dir / "events.jsonl").read_text().splitlines()[-1], **strict)
    assert last["detail"] == {"message": "bad bytes \\udcff from a file name", "ratio": "nan"}
    assert verify_record(run_dir, settings) == []

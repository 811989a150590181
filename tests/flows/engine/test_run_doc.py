"""run.json's writes: status at once, step outcomes batched within LINGER seconds."""

from __future__ import annotations

import json
from pathlib import Path

from flows.engine.work import LINGER, RunDoc
from flows.record.store import RunRecord


def _on_disk(record: RunRecord) -> dict[str, object]:
    doc: dict[str, object] = json.loads(record.run_json.read_text(encoding="utf-8"))
    return doc


def test_outcomes_linger_until_flushed_and_any_write_carries_them(tmp_path: Path) -> None:
    record = RunRecord(tmp_path / "run-1", fsync=False)
    doc = RunDoc(record, {"run_id": "run-1", "status": "running"})
    doc.update()
    assert doc.due_in() is None  # nothing lingers
    doc.update_soon(steps={"a": {"status": "succeeded"}})
    doc.update_soon(steps={"a": {"status": "succeeded"}, "b": {"status": "failed"}})
    due = doc.due_in()
    assert due is not None
    assert 0.0 <= due <= LINGER
    assert "steps" not in _on_disk(record)
    doc.flush()
    assert _on_disk(record)["steps"] == {"a": {"status": "succeeded"}, "b": {"status": "failed"}}
    assert doc.due_in() is None
    doc.update_soon(steps={"c": {"status": "succeeded"}})
    doc.set_waiting_many({"approve"}, set())  # an immediate write takes the lingering change along
    on_disk = _on_disk(record)
    assert on_disk["steps"] == {"c": {"status": "succeeded"}}
    assert on_disk["waiting"] == ["approve"]
    assert doc.due_in() is None

"""The record's file writes: whole replacements, appends, folders made on demand, the usual file mode."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from flows.record.store import EventLog, read_events, verify_events, write_atomic


def _mode(path: Path) -> int:
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~umask
    return stat.S_IMODE(path.stat().st_mode)


def test_write_atomic_makes_the_folder_replaces_whole_and_leaves_no_temporary_file(tmp_path: Path) -> None:
    target = tmp_path / "a" / "b" / "run.json"
    write_atomic(target, b'{"v": 1}')  # the folders do not exist yet
    write_atomic(target, b'{"v": 2, "longer": true}')
    write_atomic(target, b"{}", durable=False)
    assert target.read_bytes() == b"{}"  # replaced whole: nothing of the longer content is left
    assert sorted(p.name for p in target.parent.iterdir()) == ["run.json"]
    _mode(target)  # as open() would make it: 0666 less the umask


def test_event_log_appends_whole_lines_that_chain(tmp_path: Path) -> None:
    path = tmp_path / "new" / "events.jsonl"
    log = EventLog(path)
    for i in range(3):
        log.append("test.event", detail={"i": i})
    assert [e["detail"]["i"] for e in read_events(path)] == [0, 1, 2]
    assert verify_events(path, log.head) == []
    assert path.read_bytes().endswith(b"\n")
    _mode(path)
    again = EventLog(path)  # a later process picks the chain up
    again.append("test.event", detail={"i": 3})
    assert verify_events(path, again.head) == []

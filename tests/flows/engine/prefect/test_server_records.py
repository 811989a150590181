"""Orphan sweep of the embedded server records, without a Prefect server (a sleeping process stands in)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from flows.engine.prefect_server import cleanup_orphans, process_alive, process_start_time


def _dead_pid() -> int:
    done = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True, check=True
    )
    return int(done.stdout)


def _record(home: Path, pid: int, owner: int) -> Path:
    path = home / "servers" / f"{pid}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    doc = {
        "pid": pid,
        "start": process_start_time(pid),
        "port": 1,
        "owner_pid": owner,
        "owner_start": process_start_time(owner),
    }
    path.write_text(json.dumps(doc), encoding="utf-8")
    return path


def test_a_server_whose_owner_is_gone_is_stopped_and_one_with_a_live_owner_is_kept(tmp_path: Path) -> None:
    orphan = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    kept = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        orphan_record = _record(tmp_path, orphan.pid, _dead_pid())
        kept_record = _record(tmp_path, kept.pid, os.getpid())
        stale_record = _record(tmp_path, _dead_pid(), _dead_pid())
        assert cleanup_orphans(tmp_path) == [orphan.pid]
        assert orphan.wait(timeout=10) != 0
        assert not orphan_record.exists()
        assert not stale_record.exists()
        assert kept_record.exists()
        assert process_alive(kept.pid, process_start_time(kept.pid))
    finally:
        for process in (orphan, kept):
            process.kill()
            process.wait()

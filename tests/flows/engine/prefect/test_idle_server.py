"""An embedded Prefect server with nothing to do stays idle (it once burnt a core in a flush loop)."""

from __future__ import annotations

import os
import time
from pathlib import Path

from flows.engine.prefect_server import SERVER_TUNING
from tests.fixtures.prefect import PrefectSession


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text(encoding="ascii").rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


def test_an_idle_embedded_server_uses_a_small_share_of_a_core(prefect_session: PrefectSession) -> None:
    server = prefect_session.runtime.server
    assert server is not None
    before, began = _cpu_seconds(server.pid), time.monotonic()
    time.sleep(2.0)  # the measured window, not a synchronisation: nothing talks to the server meanwhile
    share = (_cpu_seconds(server.pid) - before) / (time.monotonic() - began)
    # A spinning loop takes a whole core when it can get one and at least a large part on a busy
    # machine; an idle server wakes a few times a second for its services.
    assert share < 0.5, f"idle server used {share:.0%} of a core"


def test_the_recorder_flush_interval_survives_prefects_whole_seconds() -> None:
    """The task run recorder sleeps ``int(flush_interval)`` seconds between flushes."""
    from prefect.settings.models.server.services import ServerServicesTaskRunRecorderSettings

    value = SERVER_TUNING["PREFECT_SERVER_SERVICES_TASK_RUN_RECORDER_FLUSH_INTERVAL"]
    parsed = ServerServicesTaskRunRecorderSettings(flush_interval=value)  # type: ignore[arg-type]
    assert int(parsed.flush_interval) >= 1

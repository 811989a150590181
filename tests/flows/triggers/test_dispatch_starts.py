"""The new incidents of one drain are committed together, every row before any of their runs starts."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

from flows.triggers.adapters import parse
from flows.triggers.dispatcher import Dispatcher
from flows.triggers.model import Alert
from flows.triggers.routing import Route
from flows.triggers.spool import Spool
from tests.flows.triggers.conftest import am_alert, am_payload

HOST = "InferenceHostSuspiciousEgress"


class Recording:
    """A starter that records, at each start, which incident rows another connection can read."""

    def __init__(self, db: Path) -> None:
        self.db = db
        self.started: list[str] = []
        self.visible: list[dict[str, str]] = []

    def start(self, route: Route, run_id: str, alerts: list[Alert], trigger: dict[str, Any]) -> str | None:
        with sqlite3.connect(self.db) as fresh:  # sees committed rows only
            self.visible.append(dict(fresh.execute("SELECT key, state FROM incidents").fetchall()))
        self.started.append(run_id)
        return None

    def exists(self, run_id: str, key: str) -> bool:
        return False

    def in_progress(self, run_id: str) -> bool:
        return run_id in self.started


def doc_of(payload: dict[str, Any]) -> dict[str, Any]:
    batch = parse("alertmanager", payload)
    return {"alerts": [a.brief() for a in batch.alerts], "raw": payload, "truncated": batch.truncated, "notes": {}}


def test_a_drain_commits_every_new_incident_before_the_first_start(tmp_path: Path, library: Path) -> None:
    db = tmp_path / "spool.db"
    spool = Spool(db)
    try:
        for host in ("i-1", "i-2", "i-3"):
            spool.append("alertmanager", doc_of(am_payload(am_alert(host, f"f-{host}", alertname=HOST))))
        spool.append("alertmanager", doc_of(am_payload(am_alert("i-1", "f-i-1", alertname=HOST))))  # a repeat
        starter = Recording(db)
        dispatcher = Dispatcher(spool, starter, playbooks_dir=library, runs_dir=tmp_path / "runs")
        assert dispatcher.drain()
        assert len(starter.started) == 3  # the repeat in the same drain started nothing
        # At the first start the three incident rows were already durable, all still 'starting'.
        assert len(starter.visible[0]) == 3
        assert set(starter.visible[0].values()) == {"starting"}
        assert spool.depth() == 0
        (first,) = [i for i in spool.open_incidents() if i.run_id == starter.started[0]]
        assert [n[1] for n in spool.notes(first.run_id)] == ["alert.repeated"]
    finally:
        spool.close()


def test_a_crash_during_the_starts_leaves_the_batches_to_replay(tmp_path: Path, library: Path) -> None:
    class Dying(Recording):
        def start(self, route: Route, run_id: str, alerts: list[Alert], trigger: dict[str, Any]) -> str | None:
            if self.started:
                raise KeyboardInterrupt  # the process stops between two starts
            return super().start(route, run_id, alerts, trigger)

    db = tmp_path / "spool.db"
    spool = Spool(db)
    try:
        for host in ("i-1", "i-2"):
            spool.append("alertmanager", doc_of(am_payload(am_alert(host, f"f-{host}", alertname=HOST))))
        dying = Dying(db)
        try:
            Dispatcher(spool, dying, playbooks_dir=library, runs_dir=tmp_path / "runs").drain()
        except KeyboardInterrupt:
            pass
        assert spool.depth() == 2  # neither batch is done: both are handled again
        starter = Recording(db)
        starter.started = list(dying.started)  # the run that did start is still going in this process
        Dispatcher(spool, starter, playbooks_dir=library, runs_dir=tmp_path / "runs").drain()
        assert len(starter.started) == 2  # each incident once
        assert starter.started[0] == dying.started[0]
        assert spool.depth() == 0
    finally:
        spool.close()

"""The dispatcher: one run per incident, dedup, attach, resolve, and exactly once across a restart."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from flows.triggers.dispatcher import Dispatcher
from flows.triggers.model import Alert
from flows.triggers.routing import Route
from flows.triggers.spool import Spool
from tests.flows.triggers.conftest import am_alert, am_payload


class EngineStarter:
    """Runs the playbook in-process on the thread executor (the engine, without Prefect)."""

    def __init__(self, runs_dir: Path) -> None:
        self.runs_dir = runs_dir
        self.started: list[str] = []
        self.threads: list[threading.Thread] = []
        self.gate = threading.Event()  # closed: the run waits, as a long run would still be going
        self.gate.set()

    def start(self, route: Route, run_id: str, alerts: list[Alert], trigger: dict[str, Any]) -> str | None:
        from flows.config import Settings
        from flows.engine.runner import run_playbook

        self.started.append(run_id)
        settings = Settings(runs_dir=self.runs_dir, home=self.runs_dir.parent / "home")

        def run(*args: Any, **kwargs: Any) -> None:
            self.gate.wait(60)
            run_playbook(*args, **kwargs)

        thread = threading.Thread(
            target=run,
            args=(route.path,),
            kwargs={"alert": alerts[0].model_dump(mode="json"), "alerts": [a.brief() for a in alerts],
                    "mode": "dry-run", "settings": settings, "run_id": run_id, "trigger": trigger},
        )  # fmt: skip
        thread.start()
        self.threads.append(thread)
        return None

    def exists(self, run_id: str, key: str) -> bool:
        return (self.runs_dir / run_id / "run.json").exists()

    def in_progress(self, run_id: str) -> bool:
        return run_id in self.started

    def join(self) -> None:
        self.gate.set()
        for thread in self.threads:
            thread.join(60)


def doc_of(payload: dict[str, Any]) -> dict[str, Any]:
    from flows.triggers.adapters import parse

    batch = parse("alertmanager", payload)
    return {"alerts": [a.brief() for a in batch.alerts], "raw": payload, "truncated": batch.truncated, "notes": {}}


@pytest.fixture
def world(tmp_path: Path, library: Path) -> Iterator[tuple[Spool, EngineStarter, Dispatcher, list[float]]]:
    spool = Spool(tmp_path / "spool.db")
    starter = EngineStarter(tmp_path / "runs")
    now = [1000.0]
    dispatcher = Dispatcher(spool, starter, playbooks_dir=library, runs_dir=tmp_path / "runs", clock=lambda: now[0])
    yield spool, starter, dispatcher, now
    starter.join()
    spool.close()


def events(run_dir: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (run_dir / "events.jsonl").read_text().splitlines()]


def settle(dispatcher: Dispatcher, starter: EngineStarter) -> None:
    starter.join()
    dispatcher.sweep()
    dispatcher.sweep()


def test_group_by_makes_one_run_with_every_alert(world: Any) -> None:
    spool, starter, dispatcher, _ = world
    spool.append("alertmanager", doc_of(am_payload(am_alert("i-1", "f1"), am_alert("i-2", "f2"))))
    dispatcher.drain()
    settle(dispatcher, starter)
    (run_id,) = starter.started
    run_dir = starter.runs_dir / run_id
    doc = json.loads((run_dir / "run.json").read_text())
    assert [a["labels"]["instance_id"] for a in doc["alerts"]] == ["i-1", "i-2"]
    assert doc["alert"]["raw"]["alerts"][1]["labels"]["instance_id"] == "i-2"  # the raw payload is kept
    logged = [e["detail"].get("message") for e in events(run_dir) if e["type"] == "log"]
    assert any("i-1,i-2" in str(m) for m in logged) or "i-1,i-2" in (run_dir / "events.jsonl").read_text()


def test_repeat_attach_and_resolve_are_recorded_on_the_run(world: Any) -> None:
    spool, starter, dispatcher, now = world
    starter.gate.clear()
    spool.append("alertmanager", doc_of(am_payload(am_alert("i-1", "f1"))))
    dispatcher.drain()
    spool.append("alertmanager", doc_of(am_payload(am_alert("i-1", "f1"))))  # the same alert again
    spool.append("alertmanager", doc_of(am_payload(am_alert("i-3", "f3"))))  # a new alert of the incident
    now[0] += 60
    spool.append(
        "alertmanager", doc_of(am_payload(am_alert("i-1", "f1", "resolved"), am_alert("i-3", "f3", "resolved")))
    )
    dispatcher.drain()
    dispatcher.drain()  # a batch handled twice (at-least-once) is recorded once
    settle(dispatcher, starter)
    (run_id,) = starter.started
    kinds = [e["type"] for e in events(starter.runs_dir / run_id) if e["type"].startswith("alert.")]
    assert kinds.count("alert.repeated") == 1
    assert kinds.count("alert.attached") == 1
    assert kinds.count("alert.resolved") == 2
    run_doc = json.loads((starter.runs_dir / run_id / "run.json").read_text())
    assert len(run_doc["alerts_resolved"]) == 2
    from flows.record.store import RunRecord

    assert RunRecord(starter.runs_dir / run_id).verify() == []  # the chain and run.json's head agree


def finished_run(world: Any) -> str:
    """The id of the run one firing alert (i-1, fingerprint f1) started, once it has finished."""
    spool, starter, dispatcher, _ = world
    spool.append("alertmanager", doc_of(am_payload(am_alert("i-1", "f1"))))
    dispatcher.drain()
    settle(dispatcher, starter)
    (run_id,) = starter.started
    return str(run_id)


def test_a_storm_of_one_repeated_alert_is_one_event_with_its_count(world: Any) -> None:
    spool, starter, dispatcher, _ = world
    run_id = finished_run(world)
    ids = [spool.append("alertmanager", doc_of(am_payload(am_alert("i-1", "f1")))) for _ in range(40)]
    spool.append("alertmanager", doc_of(am_payload(am_alert("i-3", "f3"))))  # another alert: kept apart
    while dispatcher.drain():
        pass
    dispatcher.sweep()
    repeated = [e for e in events(starter.runs_dir / run_id) if e["type"] == "alert.repeated"]
    assert len(repeated) == 1
    assert repeated[0]["detail"]["count"] == 40
    assert (repeated[0]["detail"]["batch"], repeated[0]["detail"]["last_batch"]) == (ids[0], ids[-1])
    assert spool.notes(run_id) == []  # every repeat's note is flushed
    from flows.record.store import RunRecord

    assert RunRecord(starter.runs_dir / run_id).verify() == []


def test_notes_reach_a_finished_record_at_most_every_sweep_interval_when_throttled(world: Any) -> None:
    from flows.triggers.dispatcher import SWEEP_EVERY

    spool, _, dispatcher, _ = world
    run_id = finished_run(world)
    spool.append("alertmanager", doc_of(am_payload(am_alert("i-1", "f1"))))
    dispatcher.drain()
    dispatcher.sweep(throttle=True)
    assert spool.notes(run_id) == []
    spool.append("alertmanager", doc_of(am_payload(am_alert("i-1", "f1"))))
    dispatcher.drain()
    dispatcher._appended[run_id] = time.monotonic()  # as if it had just been appended to
    dispatcher.sweep(throttle=True)
    assert len(spool.notes(run_id)) == 1  # waits for the next interval, kept in the spool
    dispatcher._appended[run_id] = time.monotonic() - SWEEP_EVERY
    dispatcher.sweep(throttle=True)
    assert spool.notes(run_id) == []


def test_after_the_window_a_finished_incident_starts_a_new_run(world: Any) -> None:
    spool, starter, dispatcher, now = world
    spool.append("alertmanager", doc_of(am_payload(am_alert("i-1", "f1"))))
    dispatcher.drain()
    settle(dispatcher, starter)
    now[0] += 1799
    spool.append("alertmanager", doc_of(am_payload(am_alert("i-1", "f1"))))
    dispatcher.drain()
    settle(dispatcher, starter)
    assert len(starter.started) == 1
    now[0] += 1801
    spool.append("alertmanager", doc_of(am_payload(am_alert("i-1", "f1"))))
    dispatcher.drain()
    settle(dispatcher, starter)
    assert len(starter.started) == 2


def test_resolved_alone_starts_nothing(world: Any) -> None:
    spool, starter, dispatcher, _ = world
    spool.append("alertmanager", doc_of(am_payload(am_alert("i-1", "f1", "resolved"))))
    dispatcher.drain()
    assert starter.started == []
    assert dispatcher.metrics.value("fireline_alerts_total", source="alertmanager", outcome="resolved_unknown") == 1


CRASHER = """
import os, sys
from pathlib import Path
from flows.triggers.dispatcher import Dispatcher
from flows.triggers.spool import Spool

class Crash:
    def start(self, route, run_id, alerts, trigger):
        os.kill(os.getpid(), 9)  # SIGKILL between the spool and the run
    def exists(self, run_id, key):
        return False
    def in_progress(self, run_id):
        return False

spool = Spool(Path(sys.argv[1]))
Dispatcher(spool, Crash(), playbooks_dir=Path(sys.argv[2]), runs_dir=Path(sys.argv[3])).drain()
"""


def test_killed_between_spool_and_dispatch_then_restarted_runs_once(tmp_path: Path, library: Path) -> None:
    db, runs = tmp_path / "spool.db", tmp_path / "runs"
    spool = Spool(db)
    spool.append("alertmanager", doc_of(am_payload(am_alert("i-1", "f1"), am_alert("i-2", "f2"))))
    spool.close()
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[3])}
    crashed = subprocess.run([sys.executable, "-c", CRASHER, str(db), str(library), str(runs)], env=env, check=False)
    assert crashed.returncode == -signal.SIGKILL
    spool = Spool(db)
    try:
        assert spool.depth() == 1  # the batch survived
        (incident,) = spool.open_incidents()
        assert incident.state == "starting"
        starter = EngineStarter(runs)
        dispatcher = Dispatcher(spool, starter, playbooks_dir=library, runs_dir=runs)
        dispatcher.drain()
        dispatcher.drain()
        settle(dispatcher, starter)
        assert starter.started == [incident.run_id]  # the run chosen before the crash, once
        assert sorted(p.name for p in runs.iterdir()) == [incident.run_id]
        assert json.loads((runs / incident.run_id / "run.json").read_text())["outcome"] == "succeeded"
        restarted = Dispatcher(spool, starter, playbooks_dir=library, runs_dir=runs)
        restarted.drain()
        assert starter.started == [incident.run_id]
        assert spool.depth() == 0
    finally:
        spool.close()


def test_a_refused_start_closes_the_incident_instead_of_retrying_forever(tmp_path: Path, library: Path) -> None:
    from flows.errors import RunError

    class Refusing:
        calls = 0

        def start(self, route: Route, run_id: str, alerts: list[Alert], trigger: dict[str, Any]) -> str | None:
            self.calls += 1
            raise RunError("input 'instance_id': the alert has no label instance_id")

        def exists(self, run_id: str, key: str) -> bool:
            return False

        def in_progress(self, run_id: str) -> bool:
            return False

    spool = Spool(tmp_path / "spool.db")
    starter = Refusing()
    dispatcher = Dispatcher(spool, starter, playbooks_dir=library, runs_dir=tmp_path / "runs")
    try:
        spool.append("alertmanager", doc_of(am_payload(am_alert("i-1", "f1"))))
        dispatcher.drain()
        dispatcher.drain()
        assert spool.depth() == 0
        assert starter.calls == 1
        assert spool.open_incidents() == []
        assert dispatcher.metrics.value("fireline_alerts_total", source="alertmanager", outcome="start_refused") == 1
    finally:
        spool.close()


def test_a_start_lost_with_its_process_is_made_again_from_the_incident(tmp_path: Path, library: Path) -> None:
    class Forgetful:
        """Accepts the start, then 'dies' before the run writes anything (a SIGKILL after the commit)."""

        def start(self, route: Route, run_id: str, alerts: list[Alert], trigger: dict[str, Any]) -> str | None:
            return None

        def exists(self, run_id: str, key: str) -> bool:
            return False

        def in_progress(self, run_id: str) -> bool:
            return True  # the dead process thought it was under way

    runs = tmp_path / "runs"
    spool = Spool(tmp_path / "spool.db")
    try:
        spool.append("alertmanager", doc_of(am_payload(am_alert("i-1", "f1"), am_alert("i-2", "f2"))))
        Dispatcher(spool, Forgetful(), playbooks_dir=library, runs_dir=runs).drain()
        assert spool.depth() == 0  # the batch is done: only the incident remembers the start
        (incident,) = spool.open_incidents()
        assert incident.state == "starting"
        starter = EngineStarter(runs)
        restarted = Dispatcher(spool, starter, playbooks_dir=library, runs_dir=runs)
        restarted.sweep()
        assert starter.started == [incident.run_id]
        settle(restarted, starter)
        doc = json.loads((runs / incident.run_id / "run.json").read_text())
        assert doc["outcome"] == "succeeded"
        assert [a["labels"]["instance_id"] for a in doc["alerts"]] == ["i-1", "i-2"]
        restarted.sweep()
        assert starter.started == [incident.run_id]
        assert spool.open_incidents() == []
    finally:
        spool.close()


def test_the_dispatcher_counts_as_working_while_batches_come(world: Any) -> None:
    # fireline serve holds new flow runs while this is true: a storm's runs are still being started.
    spool, starter, dispatcher, _ = world
    assert not dispatcher.working()
    dispatcher.drain()  # nothing spooled: not working
    assert not dispatcher.working()
    spool.append("alertmanager", doc_of(am_payload(am_alert("i-1", "f1"))))
    dispatcher.drain()
    assert dispatcher.working()
    assert not dispatcher.working(within=0.0)
    settle(dispatcher, starter)

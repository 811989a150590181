"""The dispatcher: spooled batches in, runs started, attached to or resolved, exactly once per incident.

For each pending batch (oldest first), each alert is routed (:mod:`flows.triggers.routing`); the
firing alerts of one incident key in one batch start one run together. Per key:

- no incident, or the last one finished and this fingerprint was not seen within ``dedup_window``:
  a new incident and run. The incident row (state ``starting``, with the run id chosen up front) is
  committed *before* the run is started and marked ``running`` after, so a crash in between is
  repaired on restart: the starter is asked whether that run id exists, and starts it only if not
  (at least once into the engine, exactly one run per incident);
- an incident whose run is going: a fingerprint seen within the window is ``alert.repeated``, a new
  one ``alert.attached`` (the run's ``alerts`` list grows while it runs in this process);
- a finished incident and a fingerprint within its window: ``alert.repeated``;
- a resolved alert: ``alert.resolved`` against the incident's run; it never starts a run.

Events for a run's record go through the spool's ``notes`` (idempotent by batch and alert): to the
run's live record when it runs in this process, else into its record once it has finished.
A batch is marked done only after all of that is committed.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

from flows.errors import FirelineError
from flows.triggers.metrics import Metrics
from flows.triggers.model import Alert
from flows.triggers.routing import Route, load_library, route
from flows.triggers.spool import Incident, Spool

SWEEP_EVERY = 0.5  # seconds between sweeps while the spool keeps receiving
# Batches per drain: one write transaction each, during which the receiver's commits wait, and
# whose new incidents start at its end. 25 keeps both short under a storm (100 held them ~0.1-1 s).
DRAIN_BATCHES = 25
# Seconds a drain goes on handling batches in its transaction: on a busy interpreter 25 batches held
# the receiver's commits (and so its answers) up to ~0.1 s; a shorter hold costs only more fsyncs.
HOLD = 0.01
WORKING_WINDOW = 0.5  # seconds after a drain that found batches during which the dispatcher counts as working


class Starter(Protocol):
    """Starts runs: in this process (the warm runtime) or as flow runs of a deployment."""

    def start(self, route: Route, run_id: str, alerts: list[Alert], trigger: dict[str, Any]) -> str | None:
        """Start the run ``run_id``; return its flow run id when there is one."""
        ...

    def exists(self, run_id: str, key: str) -> bool:
        """Whether the run durably exists (its run directory, or its flow run): a crash cannot lose it."""
        ...

    def in_progress(self, run_id: str) -> bool:
        """Whether this process started the run and it may not have written its record yet."""
        ...


class Dispatcher:
    """Drains the spool on a background thread (or step by step with :meth:`drain` in tests)."""

    def __init__(
        self,
        spool: Spool,
        starter: Starter,
        *,
        playbooks_dir: Path,
        runs_dir: Path,
        metrics: Metrics | None = None,
        clock: Callable[[], float] = time.time,
        new_run_id: Callable[[str], str] | None = None,
    ) -> None:
        from flows.engine.runner import new_run_id as engine_run_id

        self.spool = spool
        self.starter = starter
        self.playbooks_dir = playbooks_dir
        self.runs_dir = runs_dir
        self.metrics = metrics or Metrics()
        self.clock = clock
        self.new_run_id = new_run_id or engine_run_id
        self.library = load_library(playbooks_dir)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._worked = float("-inf")  # when a drain last found batches (monotonic)
        self._appended: dict[str, float] = {}  # run id: when notes last reached its finished record
        # New incidents of the drain going on, started together after one commit (None: start at once).
        self._deferred: dict[str, tuple[Route, list[Alert], dict[str, Any]]] | None = None

    def working(self, within: float = WORKING_WINDOW) -> bool:
        """Whether a drain found batches in the last ``within`` seconds (runs of a storm still starting)."""
        return time.monotonic() - self._worked < within

    # -- the loop ---------------------------------------------------------------------------
    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="fireline-dispatcher", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self.spool.new_batch.set()
        if self._thread is not None:
            self._thread.join(timeout=30)

    def _loop(self) -> None:
        swept = float("-inf")
        while not self._stop.is_set():
            self.spool.new_batch.clear()
            try:
                busy = self.drain(DRAIN_BATCHES, hold=HOLD)
                # While batches keep coming, sweep at most every SWEEP_EVERY: each sweep rewrites the
                # record of every finished run with new notes, and under a storm a sweep after every
                # drain took a third of the dispatcher's time (py-spy), time the runs needed.
                if not busy or time.monotonic() - swept >= SWEEP_EVERY:
                    self.sweep(throttle=True)
                    swept = time.monotonic()
            except Exception as e:  # a dispatcher that dies silently loses every later alert
                logging.getLogger("fireline.triggers").exception("dispatcher: %s", e)
                busy = False
            if not busy:
                self.spool.new_batch.wait(0.2)

    def drain(self, limit: int = 100, *, hold: float | None = None) -> bool:
        """Handle up to ``limit`` pending batches (for at most about ``hold`` seconds); True when there were any.

        The loop drains :data:`DRAIN_BATCHES` at a time with :data:`HOLD`.
        """
        batches = self.spool.pending(limit)
        if batches:
            self._worked = time.monotonic()
        handled: list[int] = []
        with self.spool.transaction():  # one commit before the drain's runs start, one at its end
            self._deferred = {}
            began = time.monotonic()
            try:
                for batch_id, source, doc in batches:
                    self.handle(batch_id, source, doc)
                    handled.append(batch_id)
                    if hold is not None and time.monotonic() - began >= hold:  # the receiver's commits wait
                        break
                deferred = self._deferred
            finally:
                self._deferred = None
            self._start_all(deferred)
            for batch_id in handled:  # done once its runs are started: a crash before replays it
                self.spool.mark_done(batch_id)
        self.metrics.spool_depth.set(self.spool.depth())
        return bool(batches)

    # -- one batch ---------------------------------------------------------------------------
    def handle(self, batch_id: int, source: str, doc: dict[str, Any]) -> None:
        raw = doc.get("raw")
        firing: dict[str, tuple[Route, list[Alert]]] = {}
        for entry in doc.get("alerts", []):
            alert = Alert.model_validate({**entry, "raw": raw})
            routes = route(alert, self.library)
            if not routes:
                self.metrics.count(source, "unrouted")
            for found in routes:
                if alert.status == "resolved":
                    self._resolved(batch_id, found, alert)
                else:
                    firing.setdefault(found.key, (found, []))[1].append(alert)
        for found, alerts in firing.values():
            self._firing(batch_id, doc, found, alerts)

    def _resolved(self, batch_id: int, found: Route, alert: Alert) -> None:
        incident = self.spool.incident(found.key)
        if incident is None:
            self.metrics.count(alert.source, "resolved_unknown")
            return
        self._note(incident.run_id, "alert.resolved", batch_id, alert)
        self.metrics.count(alert.source, "resolved")

    def _firing(self, batch_id: int, doc: dict[str, Any], found: Route, alerts: list[Alert]) -> None:
        now = self.clock()
        window = found.trigger.dedup_window
        incident = self.spool.incident(found.key)
        if incident is not None and incident.state == "starting" and found.key not in (self._deferred or {}):
            self._ensure_started(incident, found, alerts, doc)  # a start cut short by a crash, or still going
            if (incident.request or {}).get("batch") == batch_id:
                return  # the batch that opened the incident, handled again after a crash
        if incident is not None and (incident.state != "finished" or any(
            now - incident.fingerprints.get(a.fingerprint, float("-inf")) < window for a in alerts
        )):  # fmt: skip
            for alert in alerts:
                seen = now - incident.fingerprints.get(alert.fingerprint, float("-inf")) < window
                kind = "alert.repeated" if seen else "alert.attached"
                if self._note(incident.run_id, kind, batch_id, alert):
                    self.metrics.count(alert.source, kind.split(".")[1])
                incident.fingerprints[alert.fingerprint] = now
            incident.last_at = now
            self.spool.save_incident(incident)
            return
        run_id = self.new_run_id(found.playbook.metadata.name)
        incident = Incident(
            key=found.key, playbook=found.playbook.metadata.name, run_id=run_id,
            seq=(incident.seq + 1) if incident is not None else 1, state="starting", started_at=now, last_at=now,
            fingerprints={a.fingerprint: now for a in alerts},
            request={"batch": batch_id, "path": str(found.path), "alerts": [a.brief() for a in alerts],
                     **{k: doc.get(k) for k in ("raw", "truncated", "notes", "received_at")}},
        )  # fmt: skip
        self.spool.save_incident(incident)
        if self._deferred is not None:
            self._deferred[found.key] = (found, alerts, doc)
        else:
            self._ensure_started(incident, found, alerts, doc)

    def _start_all(self, deferred: dict[str, tuple[Route, list[Alert], dict[str, Any]]]) -> None:
        """Start the drain's new incidents after one commit of all their rows.

        One commit (one fsync, ≈ 40 ms on a loaded build host) instead of one per incident: under
        a storm of 50 new incidents the last run otherwise started ≈ 2 s after its alert. The rows
        are re-read: later batches of the drain may have added fingerprints to them.
        """
        starts = [(i, *deferred[k]) for k in deferred if (i := self.spool.incident(k)) and i.state == "starting"]
        errors: list[str | None] = []
        with self.spool.committed():  # every row durable before any start: a crash is repaired on restart
            for incident, found, alerts, doc in starts:
                errors.append(self._try_start(incident, found, alerts, doc))
        for (incident, _, alerts, _), error in zip(starts, errors, strict=True):
            self._settled(incident, alerts, error)

    def _ensure_started(self, incident: Incident, found: Route, alerts: list[Alert], doc: dict[str, Any]) -> None:
        # The incident row is committed before the start: a crash after it is repaired on restart.
        with self.spool.committed():
            error = self._try_start(incident, found, alerts, doc)
        self._settled(incident, alerts, error)

    def _try_start(self, incident: Incident, found: Route, alerts: list[Alert], doc: dict[str, Any]) -> str | None:
        try:
            self._start(incident, found, alerts, doc)
        except FirelineError as e:  # the request itself is refused: retrying cannot help
            return str(e)
        return None

    def _settled(self, incident: Incident, alerts: list[Alert], error: str | None) -> None:
        if error is None:
            # Running once it cannot be lost: a flow run exists at once, a run directory a moment later
            # (until then the sweep waits for it, or starts it again after a crash).
            durable = incident.flow_run_id is not None or self.starter.exists(incident.run_id, incident.key)
            incident.state = "running" if durable else "starting"
        else:
            incident.state, incident.outcome = "finished", f"not started: {error}"[:1000]
            self.metrics.count(alerts[0].source, "start_refused", len(alerts))
            logging.getLogger("fireline.triggers").warning("incident %s: run not started: %s", incident.key, error)
        self.spool.save_incident(incident)

    def _start(self, incident: Incident, found: Route, alerts: list[Alert], doc: dict[str, Any]) -> None:
        key = f"{incident.key}#{incident.seq}"
        if not self.starter.in_progress(incident.run_id) and not self.starter.exists(incident.run_id, key):
            trigger = {
                "how": "alert",
                "by": f"alert:{alerts[0].source}",
                "incident_key": incident.key,
                "idempotency_key": f"{incident.key}#{incident.seq}",
                "alerts": len(alerts),
                "truncated_alerts": int(doc.get("truncated") or 0),
                **{f"source_{k}": v for k, v in (doc.get("notes") or {}).items() if isinstance(v, str | int)},
            }
            incident.flow_run_id = self.starter.start(found, incident.run_id, alerts, trigger)
            self.metrics.count(alerts[0].source, "started", len(alerts))
            received = doc.get("received_at")
            if isinstance(received, int | float):
                self.metrics.dispatch_latency.observe(max(0.0, time.time() - received))

    def _settle_start(self, incident: Incident) -> bool:
        """A started run whose record is not there yet: wait, or start it again if this process lost it.

        True when its record is there: the incident is then ``running``, for the caller to save.
        """
        if self.starter.exists(incident.run_id, incident.key):
            incident.state = "running"
            return True
        if self.starter.in_progress(incident.run_id) or incident.request is None:
            return False
        request = incident.request
        book = next((b for p, b in self.library if str(p) == request.get("path")), None)
        alerts = [Alert.model_validate({**a, "raw": request.get("raw")}) for a in request.get("alerts", [])]
        found = route(alerts[0], [(Path(request["path"]), book)]) if book is not None and alerts else []
        if not found:
            incident.state, incident.outcome = "finished", "not started: its playbook no longer takes the alert"
            self.spool.save_incident(incident)
            return False
        with self.spool.transaction():
            self._ensure_started(incident, found[0], alerts, request)
        return False

    def _note(self, run_id: str, kind: str, batch_id: int, alert: Alert) -> bool:
        detail = {"alert": alert.brief(), "batch": batch_id}
        return self.spool.add_note(run_id, kind, detail, uniq=f"{run_id}|{kind}|{batch_id}|{alert.fingerprint}")

    # -- runs going on and finished ----------------------------------------------------------
    def sweep(self, *, throttle: bool = False) -> None:
        """Flush notes into run records and close incidents whose runs finished.

        With ``throttle``, the notes of a run no process drives reach its record at most every
        :data:`SWEEP_EVERY` seconds: each append re-reads and checks the record, and a storm that
        kept emptying the spool swept every ~20 ms (py-spy: a third of the dispatcher's time).
        """
        self._settle_incidents()
        self._flush_notes(throttle)

    def _settle_incidents(self) -> None:
        """Mark started runs running and ended runs finished, all in one transaction."""
        from flows.triggers import live
        from flows.triggers.record import run_status

        changed: list[Incident] = []
        for incident in self.spool.open_incidents():
            if incident.state == "starting":
                if self._settle_start(incident):
                    changed.append(incident)
                continue
            if live.get(incident.run_id) is not None:
                continue  # going on in this process: its record says running, no need to read it
            run_dir = self.runs_dir / incident.run_id
            status, outcome = run_status(run_dir)
            if status == "running" and _crashed(run_dir):
                status, outcome = "crashed", "crashed"  # its process died (serve killed): fireline resume RUN
            if status in ("finished", "crashed") and incident.state == "running":
                incident.state, incident.outcome = "finished", outcome or status
                changed.append(incident)
        if changed:
            with self.spool.transaction():  # one commit for all of them
                for incident in changed:
                    self.spool.save_incident(incident)
            for incident in changed:
                if incident.state == "finished":
                    self.metrics.runs.labels(outcome=incident.outcome).inc()

    def _flush_notes(self, throttle: bool) -> None:
        from flows.triggers import live
        from flows.triggers.record import append_to_finished, coalesce

        for run_id in self.spool.runs_with_notes():
            notes = self.spool.notes(run_id)
            running = live.get(run_id)
            if running is not None:
                for _, kind, detail in coalesce(notes):
                    running.record.emit(kind, detail=detail)
                    if kind == "alert.attached":
                        running.alerts.append(detail["alert"])
                self.spool.mark_flushed([n[0] for n in notes])
            elif throttle and time.monotonic() - self._appended.get(run_id, float("-inf")) < SWEEP_EVERY:
                continue
            elif append_to_finished(self.runs_dir / run_id, notes):
                self._appended[run_id] = time.monotonic()
                self.spool.mark_flushed([n[0] for n in notes])


def _crashed(run_dir: Path) -> bool:
    """Whether the run's owner process is gone (then it is marked crashed, as ``fireline runs`` would)."""
    from flows.engine.runs import detect_crash

    try:
        return detect_crash(run_dir)
    except (OSError, ValueError, FirelineError):
        return False

"""Runs handed to ``fireline serve``: the request model, one slot per run, and the manager running them.

Each run is a ``respond`` flow run on its own daemon thread (daemon on purpose: a run that outlives
the shutdown grace must not keep the process alive; its durable state lets ``fireline resume``
continue it). With ``deployment``, runs are instead created as flow runs of that deployment, with
the incident key as Prefect's ``idempotency_key`` when an alert started them.
"""

from __future__ import annotations

import contextlib
import contextvars
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from flows.config import Settings
from flows.engine.workers import ATTEMPTS, STEPS, Workers
from flows.errors import RunError
from flows.record.store import iso, utcnow

if TYPE_CHECKING:
    from flows.engine.outcomes import RunSummary


class RunRequest(BaseModel):
    """The body of ``POST /runs``."""

    model_config = ConfigDict(extra="forbid")

    playbook: str = Field(min_length=1, max_length=4096, description="A library name or an absolute path.")
    alert: dict[str, Any] | None = None
    alerts: list[dict[str, Any]] | None = Field(default=None, max_length=10_000, description="The incident's alerts.")
    mode: Literal["live", "dry-run", "drill"] = "live"
    inputs: dict[str, Any] | None = None
    run_id: str | None = Field(default=None, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
    trigger: dict[str, Any] | None = None
    settings: dict[str, Any] | None = Field(default=None, description="The caller's effective settings (hand-off).")


# Runs going on at once. A run mostly waits (on the Prefect API, the cloud, approvals), and an alert
# storm's runs must all reach their first containment step soon: with 8, the 50 runs of bench/storm.py
# queued behind each other for tens of seconds.
MAX_RUNS = 64
# Seconds a run handed to this server may go before its flow run is created (see prefect_attach):
# until no run of this server is on its way to its first unit of work and the alert spool has
# received nothing for a moment, or this long. A storm's flow runs wait it out, up to this bound.
HEAD_START = 10.0
WARM_RUNS = 50  # runs whose threads fireline serve starts ahead (an alert storm's worth)


@dataclass
class RunSlot:
    """One run handed to this server."""

    run_id: str
    run_dir: Path
    mode: str
    status: str = "accepted"  # accepted | running | finished | error | interrupted | submitted
    flow_run_id: str | None = None
    outcome: str | None = None
    error: str | None = None
    accepted_at: str = field(default_factory=lambda: iso(utcnow()))
    ended: threading.Event | None = None  # set when the slot's work (run and flow run) is over
    engine_done: threading.Event | None = None  # set when the run itself has ended (its flow run may lag)

    def wait(self, timeout: float | None = None) -> bool:
        """Wait until the run and its flow run are over; False at the timeout (or if it never started here)."""
        return self.ended is not None and self.ended.wait(timeout)

    def public(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "run_dir": str(self.run_dir),
            "mode": self.mode,
            "status": self.status,
            "outcome": self.outcome,
            "error": self.error,
            "accepted_at": self.accepted_at,
            "flow_run_id": self.flow_run_id,
        }


class RunManager:
    """Runs handed-over playbooks as ``respond`` flow runs, or as flow runs of ``deployment``."""

    def __init__(self, settings: Settings, *, max_runs: int = MAX_RUNS, deployment: str | None = None) -> None:
        self.settings = settings
        self.deployment = deployment
        self._context = contextvars.copy_context()  # carries the Prefect runtime's settings
        self._slots: dict[str, RunSlot] = {}
        self._lock = threading.Lock()
        self._capacity = threading.BoundedSemaphore(max_runs)
        # Runs and their engines go to started threads (flows.engine.workers); two pools, so that a
        # run waiting for capacity never holds the thread its engine needs.
        self._runs = Workers("fireline-run")
        self._engines = Workers("fireline-engine")
        self.accepting = True
        self._client: Any = None  # one Prefect API client shared by every run (see _shared_client)
        self._client_lock = threading.Lock()

    def start(self, request: RunRequest) -> RunSlot:
        from flows.engine.runner import new_run_id, validate_request

        if not self.accepting:
            raise RunError("fireline serve is shutting down")
        # Refuse a bad request now (400), as `fireline run` in-process would, not after the 202.
        resolved = validate_request(
            request.playbook, inputs=request.inputs, alert=request.alert, settings=self.settings
        )
        playbook = str(resolved.path.resolve())
        run_id = request.run_id or new_run_id(resolved.playbook.metadata.name)
        with self._lock:
            if run_id in self._slots:
                raise RunError(f"run {run_id} was already handed to this server")
            slot = RunSlot(run_id=run_id, run_dir=(self.settings.runs_dir / run_id).resolve(), mode=request.mode)
            self._slots[run_id] = slot
        if self.deployment is not None:
            self._submit(slot, resolved.playbook.metadata.name, request)
            return slot
        slot.ended = self._runs.submit(self._context.copy().run, self._run, slot, playbook, request)
        return slot

    def warm(self, runs: int = WARM_RUNS) -> None:
        """Start the threads of ``runs`` runs ahead, and the shared Prefect client, so that an alert
        storm's runs start neither (the first run built the client, ~0.2 s, while the others waited)."""
        for workers in (self._runs, self._engines, STEPS, ATTEMPTS):
            workers.warm(runs)
        self._context.copy().run(self._make_client)

    def _submit(self, slot: RunSlot, name: str, request: RunRequest) -> None:
        from flows.engine.prefect_deploy import submit_to_deployment

        assert self.deployment is not None  # only called in deployed mode
        try:
            # A library name goes as a name: the worker resolves it in its own library.
            slot.flow_run_id = self._context.copy().run(
                submit_to_deployment,
                self.deployment,
                playbook=request.playbook,
                playbook_name=name,
                run_id=slot.run_id,
                alert=request.alert,
                mode=request.mode,
                inputs=request.inputs,
                trigger=request.trigger,
                alerts=request.alerts,
                idempotency_key=(request.trigger or {}).get("idempotency_key"),
            )
        except BaseException:
            with self._lock:
                self._slots.pop(slot.run_id, None)
            raise
        slot.status = "submitted"

    def _run(self, slot: RunSlot, playbook: str, request: RunRequest) -> None:
        """Start the engine at once, then the ``respond`` flow run that attaches to it (containment first).

        See :mod:`flows.engine.prefect_attach`: the run's first step does not wait for the flow run's
        round trips to the Prefect server. The slot's outcome is the engine's.
        """
        from flows.engine import prefect_attach
        from flows.engine.prefect_flow import run_respond

        with self._capacity, self._shared_client():
            slot.status = "running"
            attachment = prefect_attach.start_attached(
                lambda att: self._engine(att, slot, playbook, request), self._policies(playbook), slot.run_id,
                launch=self._engines.submit,
            )  # fmt: skip
            slot.engine_done = attachment.done
            attachment.head_start(HEAD_START)
            token = prefect_attach.bound(attachment)
            flow_error: str | None = None
            try:
                state, _ = run_respond(
                    playbook, alert=request.alert, mode=request.mode, run_id=slot.run_id, inputs=request.inputs,
                    trigger=request.trigger, settings=self.settings, alerts=request.alerts,
                )  # fmt: skip
                if not state.is_final() or state.is_crashed():
                    flow_error = f"flow run ended {state.type.value}: {state.message}"
            except BaseException as e:  # the flow run could not be created: the run goes on without it
                flow_error = f"{type(e).__name__}: {e}"
            finally:
                prefect_attach.unbind(token)
            attachment.done.wait()
            attachment.executor.shutdown()
            summary = attachment.summary
            if summary is None:
                slot.status, slot.error = "error", f"{type(attachment.error).__name__}: {attachment.error}"
                return
            slot.outcome, slot.status, slot.error = summary.outcome, "finished", flow_error

    def _policies(self, playbook: str) -> dict[str, str]:
        from flows.engine.prefect_executor import step_policies
        from flows.engine.runner import resolve_playbook

        return step_policies(resolve_playbook(playbook, self.settings).playbook)

    def _engine(self, attachment: Any, slot: RunSlot, playbook: str, request: RunRequest) -> Callable[[], RunSummary]:
        """What the engine thread runs: the playbook with the attachment's executor, answers and step lines."""
        import os
        import socket

        from flows.engine import run_playbook

        trigger = {
            **(request.trigger or {}),
            "via": (request.trigger or {}).get("via", "prefect"),
            **attachment.trigger_keys,
            "ran_on": {"host": socket.gethostname(), "pid": os.getpid(), "parent_pid": os.getppid()},
        }
        return lambda: run_playbook(
            playbook, inputs=request.inputs, alert=request.alert, mode=request.mode,
            settings=self.settings, run_id=slot.run_id, executor=attachment.executor, trigger=trigger,
            answer_sources=[attachment.answers], progress=attachment.progress, alerts=request.alerts,
        )  # fmt: skip

    @contextlib.contextmanager
    def _shared_client(self) -> Iterator[None]:
        """Make this thread's flow run use the server's one Prefect API client.

        Without it each flow run opens its own client, and building its TLS context (the certifi
        bundle, even for an http:// API) cost ~90 ms of CPU per run under an alert storm (py-spy):
        a fifth of a run's set-up. Prefect's engines take the client from ``SyncClientContext``
        when one is set (``get_or_create``); httpx's client is safe to share between threads. It is
        set here, never entered, so no run's exit can close it.
        """
        from prefect.context import SyncClientContext

        self._make_client()
        token = SyncClientContext.__var__.set(self._client)
        try:
            yield
        finally:
            SyncClientContext.__var__.reset(token)

    def _make_client(self) -> None:
        from prefect.context import SyncClientContext

        with self._client_lock:
            if self._client is None:
                client = SyncClientContext()  # in this run's context: the runtime's API settings
                client.client.__enter__()
                self._client = client

    def get(self, run_id: str) -> RunSlot | None:
        with self._lock:
            slot = self._slots.get(run_id)
        if slot is not None and slot.flow_run_id is not None and self.deployment is not None:
            from flows.engine.prefect_deploy import flow_run_status

            state, message = self._context.copy().run(flow_run_status, slot.flow_run_id)
            slot.status = "finished" if state in ("COMPLETED", "FAILED", "CRASHED", "CANCELLED") else "submitted"
            slot.outcome = {"COMPLETED": "succeeded", "FAILED": "failed"}.get(state, slot.outcome)
            slot.error = message if state in ("FAILED", "CRASHED", "CANCELLED") else None
        return slot

    def _alive(self) -> list[RunSlot]:
        with self._lock:
            return [s for s in self._slots.values() if s.ended is not None and not s.ended.is_set()]

    def in_flight(self) -> list[RunSlot]:
        """Runs still going (a run that has ended while its flow run catches up is not in flight)."""
        return [s for s in self._alive() if s.engine_done is None or not s.engine_done.is_set()]

    def shutdown(self, grace: float, stop_now: threading.Event) -> list[str]:
        """Stop accepting, wait up to ``grace`` for in-flight runs, mark the rest; return their ids.

        Runs that have ended but whose flow run had not caught up by then get their flow run's
        final state from their outcome; the runs still going are interrupted (flow run Crashed).
        """
        self.accepting = False
        deadline = time.monotonic() + grace
        while self._alive() and time.monotonic() < deadline and not stop_now.is_set():
            time.sleep(0.1)
        left = self.in_flight()
        lagging = [s for s in self._alive() if s not in left]
        for slot in left:
            slot.status = "interrupted"
        if left:
            self._context.copy().run(crash_flow_runs, [s.run_id for s in left])
        if lagging:
            self._context.copy().run(end_flow_runs, {s.run_id: s.outcome or "failed" for s in lagging})
        if not left and not lagging and self._client is not None:
            self._client.client.__exit__(None, None, None)
        return [s.run_id for s in left]


def crash_flow_runs(run_ids: list[str]) -> None:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterTags
    from prefect.states import Crashed

    with get_client(sync_client=True) as client:
        for run_id in run_ids:
            flt = FlowRunFilter(tags=FlowRunFilterTags(all_=[f"run:{run_id}"]))
            for run in client.read_flow_runs(flow_run_filter=flt, limit=5):
                if not run.state or not run.state.is_final():
                    message = "fireline serve stopped before this run finished; fireline resume continues it"
                    client.set_flow_run_state(run.id, Crashed(message=message), force=True)


def end_flow_runs(outcomes: dict[str, str]) -> None:
    """Give the flow runs of runs that ended (run id: outcome) their final state, if they have none yet."""
    from prefect.settings import PREFECT_API_URL

    from flows.engine.prefect_settle import settle_flow_runs

    api_url = PREFECT_API_URL.value()
    for run_id, outcome in outcomes.items():
        try:
            settle_flow_runs(
                run_id, outcome, str(api_url), why="(fireline serve stopped before its flow run caught up)"
            )
        except Exception:  # the run is done; a Prefect API that is gone must not stop the shutdown
            continue

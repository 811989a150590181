"""The warm runtime: ``fireline serve`` owns the Prefect runtime and runs the playbooks handed to it.

A fresh process pays seconds before Prefect can run anything (interpreter, Prefect import, server
start-up); a long-lived process pays them once. ``fireline serve`` starts (or connects to) the
Prefect server, runs one warm-up flow, then listens on 127.0.0.1 only. ``fireline run`` hands runs
to it (:mod:`flows.engine.handoff`): ``POST /runs`` answers at once with the run id and run
directory, the run goes on in the background as a ``respond`` flow run, and the CLI follows its
``events.jsonl``.

Every request but ``/health`` needs ``Authorization: Bearer <token>``; the token is random per
start and lives with the port and pid in ``<home>/serve.json`` (mode 0600). The HTTP app is a small
Starlette app so that more endpoints (the alert receiver) mount into the same server
(:func:`build_app` ``mounts``). SIGTERM or SIGINT stops accepting runs, gives in-flight runs
``grace`` seconds, marks the flow runs of those still going Crashed (``fireline resume`` continues
them), stops the Prefect server and removes ``serve.json``; a second signal skips the wait.

With ``deployment`` (``fireline serve --deployment respond/fireline-respond``), runs are not run
in-process: each becomes a flow run of that deployment, which Prefect workers pick up; ``POST
/runs`` answers with its ``flow_run_id`` and ``GET /runs/<id>`` reads its state from the API.
"""

from __future__ import annotations

import contextvars
import hmac
import os
import secrets
import signal
import socket
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic import ValidationError as PydanticValidationError

from flows.config import Settings
from flows.engine.handoff import read_live_state, state_path, write_state
from flows.engine.prefect_server import process_start_time
from flows.errors import ConfigError, FirelineError, RunError
from flows.record.store import iso, utcnow

MAX_BODY = 1 << 20
DEFAULT_GRACE = 30.0


class RunRequest(BaseModel):
    """The body of ``POST /runs``."""

    model_config = ConfigDict(extra="forbid")

    playbook: str = Field(min_length=1, max_length=4096, description="A library name or an absolute path.")
    alert: dict[str, Any] | None = None
    mode: Literal["live", "dry-run", "drill"] = "live"
    inputs: dict[str, Any] | None = None
    run_id: str | None = Field(default=None, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
    trigger: dict[str, Any] | None = None


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
    thread: threading.Thread | None = None

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
    """Runs handed-over playbooks as ``respond`` flow runs, each on its own daemon thread.

    Daemon threads on purpose: a run that outlives the shutdown grace must not keep the process
    alive; its durable state lets ``fireline resume`` continue it. With ``deployment``, runs are
    instead created as flow runs of that deployment for Prefect workers to pick up.
    """

    def __init__(self, settings: Settings, *, max_runs: int = 8, deployment: str | None = None) -> None:
        self.settings = settings
        self.deployment = deployment
        self._context = contextvars.copy_context()  # carries the Prefect runtime's settings
        self._slots: dict[str, RunSlot] = {}
        self._lock = threading.Lock()
        self._capacity = threading.BoundedSemaphore(max_runs)
        self.accepting = True

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
        thread = threading.Thread(
            target=self._context.copy().run,
            args=(self._run, slot, playbook, request),
            name=f"fireline-run:{run_id}",
            daemon=True,
        )
        slot.thread = thread
        thread.start()
        return slot

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
            )
        except BaseException:
            with self._lock:
                self._slots.pop(slot.run_id, None)
            raise
        slot.status = "submitted"

    def _run(self, slot: RunSlot, playbook: str, request: RunRequest) -> None:
        from flows.engine.prefect_flow import run_respond

        with self._capacity:
            slot.status = "running"
            try:
                state, summary = run_respond(
                    playbook,
                    alert=request.alert,
                    mode=request.mode,
                    run_id=slot.run_id,
                    inputs=request.inputs,
                    trigger=request.trigger,
                    settings=self.settings,
                )
            except BaseException as e:
                slot.status, slot.error = "error", f"{type(e).__name__}: {e}"
                return
            slot.outcome = summary.outcome if summary is not None else None
            slot.error = None if summary is not None else f"flow run ended {state.type.value}: {state.message}"
            slot.status = "finished" if summary is not None else "error"

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

    def in_flight(self) -> list[RunSlot]:
        with self._lock:
            return [s for s in self._slots.values() if s.thread is not None and s.thread.is_alive()]

    def shutdown(self, grace: float, stop_now: threading.Event) -> list[str]:
        """Stop accepting, wait up to ``grace`` for in-flight runs, mark the rest; return their ids."""
        self.accepting = False
        deadline = time.monotonic() + grace
        while self.in_flight() and time.monotonic() < deadline and not stop_now.is_set():
            time.sleep(0.1)
        left = self.in_flight()
        for slot in left:
            slot.status = "interrupted"
        if left:
            self._context.copy().run(_crash_flow_runs, [s.run_id for s in left])
        return [s.run_id for s in left]


def _crash_flow_runs(run_ids: list[str]) -> None:
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


def build_app(manager: RunManager, token: str, *, mounts: Mapping[str, Any] | None = None) -> Any:
    """The HTTP app of ``fireline serve``: ``/health``, ``/runs``, plus any mounted sub-apps."""
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse
    from starlette.routing import BaseRoute, Mount, Route

    def authorised(request: Request) -> bool:
        given = request.headers.get("authorization", "")
        return hmac.compare_digest(given.encode(), f"Bearer {token}".encode())

    async def health(request: Request) -> JSONResponse:
        return JSONResponse({"status": "ok" if manager.accepting else "stopping", "pid": os.getpid()})

    async def post_run(request: Request) -> JSONResponse:
        if not authorised(request):
            return JSONResponse({"error": "missing or wrong token"}, status_code=401)
        body = await request.body()
        if len(body) > MAX_BODY:
            return JSONResponse({"error": f"body larger than {MAX_BODY} bytes"}, status_code=413)
        try:
            run_request = RunRequest.model_validate_json(body)
            slot = manager.start(run_request)
        except PydanticValidationError as e:
            first = e.errors()[0]
            where = ".".join(str(p) for p in first["loc"]) or "body"
            return JSONResponse({"error": f"{where}: {first['msg']}"}, status_code=400)
        except FirelineError as e:
            status = 503 if not manager.accepting else 400
            return JSONResponse({"error": str(e)}, status_code=status)
        return JSONResponse(slot.public(), status_code=202)

    async def get_run(request: Request) -> JSONResponse:
        if not authorised(request):
            return JSONResponse({"error": "missing or wrong token"}, status_code=401)
        slot = manager.get(request.path_params["run_id"])
        if slot is None:
            return JSONResponse({"error": "no such run in this server"}, status_code=404)
        return JSONResponse(slot.public())

    routes: list[BaseRoute] = [
        Route("/health", health, methods=["GET"]),
        Route("/runs", post_run, methods=["POST"]),
        Route("/runs/{run_id}", get_run, methods=["GET"]),
    ]
    routes.extend(Mount(path, app=sub) for path, sub in (mounts or {}).items())
    return Starlette(routes=routes)


def _bind(port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(("127.0.0.1", port))
    except OSError as e:
        sock.close()
        raise RunError(f"cannot listen on 127.0.0.1:{port}: {e.strerror}") from e
    sock.listen(128)
    return sock


def _warm_up() -> float:
    """Run one tiny flow so that the first real run does not pay Prefect's first-use costs."""
    from prefect import flow

    from flows.actions.registry import default_registry
    from flows.engine.prefect_flow import PrefectExecutor

    started = time.monotonic()
    default_registry()

    @flow(name="fireline-warm-up", persist_result=False)
    def warm_up() -> None:
        executor = PrefectExecutor(max_workers=1)
        try:
            executor.submit("warm-up", lambda: None).result()
        finally:
            executor.shutdown()

    warm_up()
    return time.monotonic() - started


def serve(
    settings: Settings,
    *,
    port: int | None = None,
    ui: bool = False,
    grace: float = DEFAULT_GRACE,
    mounts: Mapping[str, Any] | None = None,
    on_ready: Any = None,
    deployment: str | None = None,
) -> dict[str, Any]:
    """Run the warm runtime until SIGTERM/SIGINT; return what happened at shutdown."""
    import uvicorn

    from flows.engine.prefect_env import prefect_runtime

    if deployment is not None and not settings.prefect.api_url:
        raise ConfigError("serve --deployment needs a Prefect server with workers: set prefect.api_url")
    path = state_path(settings)
    existing = read_live_state(path)
    if existing is not None:
        raise RunError(f"fireline serve is already running (pid {existing['pid']}, port {existing['port']})")
    stop_now = threading.Event()
    stop_requested = threading.Event()

    def on_signal(signum: int, frame: Any) -> None:
        # uvicorn re-raises the signal it caught after it stops; this handler receives it.
        if stop_requested.is_set():
            stop_now.set()
        stop_requested.set()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    sock = _bind(settings.prefect.serve_port if port is None else port)
    bound_port = sock.getsockname()[1]
    try:
        with prefect_runtime(settings, ui=ui) as runtime:
            warm = _warm_up()
            manager = RunManager(settings, deployment=deployment)
            token = secrets.token_urlsafe(32)
            config = uvicorn.Config(build_app(manager, token, mounts=mounts), log_level="warning", lifespan="off")
            server = uvicorn.Server(config)
            doc = {
                "pid": os.getpid(),
                "start": process_start_time(os.getpid()),
                "port": bound_port,
                "token": token,
                "prefect_api_url": runtime.api_url,
                "embedded": runtime.embedded,
                "started_at": iso(utcnow()),
            }
            write_state(path, doc)
            if on_ready is not None:
                on_ready({**doc, "token": "***", "warm_up_seconds": round(warm, 3)})
            try:
                if not stop_requested.is_set():
                    server.run(sockets=[sock])
            finally:
                interrupted = manager.shutdown(grace, stop_now)
                path.unlink(missing_ok=True)
    finally:
        sock.close()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return {"port": bound_port, "interrupted_runs": interrupted}

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

import hmac
import logging
import os
import secrets
import signal
import socket
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from pydantic import ValidationError as PydanticValidationError

from flows.config import Settings
from flows.engine.handoff import effective_settings, read_live_state, settings_mismatch, state_path, write_state
from flows.engine.prefect_server import process_start_time
from flows.engine.serve_runs import RunManager, RunRequest, RunSlot
from flows.errors import ConfigError, FirelineError, RunError
from flows.record.store import iso, utcnow

MAX_BODY = 1 << 20
DEFAULT_GRACE = 30.0
WARM_UP_NAME = "fireline-warm-up"
__all__ = ["DEFAULT_GRACE", "RunManager", "RunRequest", "RunSlot", "build_app", "serve"]


def _mismatch(request: RunRequest, server_settings: dict[str, Any] | None) -> str | None:
    if request.settings is None or server_settings is None:
        return None
    return settings_mismatch(request.settings, server_settings)


def build_app(
    manager: RunManager,
    token: str,
    *,
    mounts: Mapping[str, Any] | None = None,
    routes: Sequence[Any] = (),
    server_settings: dict[str, Any] | None = None,
) -> Any:
    """The HTTP app of ``fireline serve``: ``/health``, ``/runs``, extra ``routes`` and mounted sub-apps."""
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
            differs = _mismatch(run_request, server_settings)
            if differs is not None:  # the caller would act on another account, endpoint or directory
                return JSONResponse({"error": differs, "mismatch": True}, status_code=409)
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

    all_routes: list[BaseRoute] = [
        Route("/health", health, methods=["GET"]),
        Route("/runs", post_run, methods=["POST"]),
        Route("/runs/{run_id}", get_run, methods=["GET"]),
        *routes,
    ]
    all_routes.extend(Mount(path, app=sub) for path, sub in _mounts(manager, mounts).items())
    return Starlette(routes=all_routes)


def _mounts(manager: RunManager, mounts: Mapping[str, Any] | None) -> dict[str, Any]:
    """Sub-apps: the caller's, and Slack's buttons when a signing secret is set (signed by Slack, no token)."""
    found = dict(mounts or {})
    if manager.settings.slack.signing_secret:
        from flows.people.interactions import interactions_app

        found["/slack"] = interactions_app(manager.settings)
    return found


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # proto IPPROTO_TCP, not 0: asyncio turns Nagle's algorithm off (TCP_NODELAY) only on sockets whose
    # proto says TCP, and the connections accepted here inherit it. With Nagle on, the body of every
    # answer (uvicorn writes it after the headers) waited for the client's delayed ACK, ~40 ms.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as e:
        sock.close()
        raise RunError(f"cannot listen on {host}:{port}: {e.strerror}") from e
    sock.listen(1024)
    return sock


def _warm_up() -> float:
    """Run one tiny flow so that the first real run does not pay Prefect's first-use costs.

    The flow run is named ``fireline-warm-up`` and tagged ``fireline-internal``; run lists
    (``fireline runs``, the ``fireline`` tag filter) never show it.
    """
    from prefect import flow, tags

    from flows.actions.registry import default_registry
    from flows.engine.prefect_flow import PrefectExecutor

    started = time.monotonic()
    default_registry()

    # With a parameter, as the respond flow has: Prefect serialises parameters with FastAPI's encoder,
    # whose first import (~0.27 s) a storm's first flow runs otherwise paid, beside its runs.
    @flow(name=WARM_UP_NAME, flow_run_name=WARM_UP_NAME, persist_result=False)
    def warm_up(parameters: dict[str, Any]) -> None:
        executor = PrefectExecutor(max_workers=1)
        try:
            executor.submit("warm-up", lambda: None).result()
        finally:
            executor.shutdown()

    with tags("fireline-internal"):
        warm_up({"mode": "warm-up"})
    return time.monotonic() - started


WARM_BOOK = """\
apiVersion: fireline/v1
kind: Playbook
metadata: {name: fireline-warm-up, version: 1, title: Warm-up of fireline serve}
steps:
  - id: log
    action: log
    with: {message: "warm-up {{ alert.labels.host }}"}
"""


def _warm_engine(settings: Settings) -> float:
    """Dry-run a one-step playbook in a scratch runs directory; return the seconds it took.

    The first run of a process paid ~0.3 s of first use (the engine's imports, the sandboxed
    template environment, the report templates), and under an alert storm every run that came
    after it waited that long too. The scratch settings have no evidence bucket and no Slack, so
    the warm-up reaches nothing outside its own directory, which is removed.
    """
    import tempfile
    from pathlib import Path

    from flows.config import SlackSettings
    from flows.engine import run_playbook

    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="fireline-warm-up-") as tmp:
        book = Path(tmp) / "warm-up.yaml"
        book.write_text(WARM_BOOK, encoding="utf-8")
        scratch = settings.model_copy(
            update={
                "runs_dir": Path(tmp) / "runs",
                "aws": settings.aws.model_copy(update={"evidence_bucket": None}),
                "slack": SlackSettings(),
            }
        )
        try:
            run_playbook(book, alert={"labels": {"host": "warm-up"}}, mode="dry-run", settings=scratch,
                         trigger={"by": "fireline:warm-up", "how": "warm-up"})  # fmt: skip
        except FirelineError as e:  # a configuration every run refuses (an approvers file): they say so
            logging.getLogger("fireline.serve").warning("engine warm-up skipped: %s", e)
    return time.monotonic() - started


def _freeze_heap() -> None:
    """Move every object alive after the warm-up out of the garbage collector's sight (``gc.freeze``).

    The warm runtime holds ~148,000 long-lived objects the collector tracks (Prefect, pydantic,
    SQLAlchemy), and a full collection walked them all: 146-176 ms during which no thread ran, in the
    middle of an alert storm's first runs. Frozen objects are never collected, which costs nothing
    here: they live as long as the process.
    """
    import gc

    gc.collect()
    gc.freeze()


def serve(
    settings: Settings,
    *,
    port: int | None = None,
    host: str = "127.0.0.1",
    ui: bool = False,
    grace: float = DEFAULT_GRACE,
    mounts: Mapping[str, Any] | None = None,
    on_ready: Callable[[dict[str, Any]], None] | None = None,
    deployment: str | None = None,
    tls: tuple[str, str] | None = None,
    receiver: bool = True,
) -> dict[str, Any]:
    """Run the warm runtime (and the alert receiver) until SIGTERM/SIGINT; return what happened at shutdown."""
    import uvicorn

    from flows.engine.prefect_env import prefect_runtime

    if deployment is not None and not settings.prefect.api_url:
        raise ConfigError("serve --deployment needs a Prefect server with workers: set prefect.api_url")
    if receiver:
        from flows.triggers.service import check_bind

        check_bind(host, settings)
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
    sock = _bind(host, settings.prefect.serve_port if port is None else port)
    bound_port = sock.getsockname()[1]
    service = None
    try:
        with prefect_runtime(settings, ui=ui) as runtime:
            warm = _warm_up() + _warm_engine(settings)
            manager = RunManager(settings, deployment=deployment)
            if deployment is None:
                manager.warm()
            _freeze_heap()
            token = secrets.token_urlsafe(32)
            mine = effective_settings(settings, dispatch="deployment" if deployment else "embedded")
            extra: list[Any] = []
            if receiver:
                from flows.triggers.service import build_service

                service = build_service(settings, manager)
                extra = service.routes(lambda: manager.accepting)
            app = build_app(manager, token, mounts=mounts, routes=extra, server_settings=mine)
            tls_options = {"ssl_certfile": tls[0], "ssl_keyfile": tls[1]} if tls else {}
            config = uvicorn.Config(app, log_level="warning", lifespan="off", **tls_options)  # type: ignore[arg-type]
            server = uvicorn.Server(config)
            doc = {
                "pid": os.getpid(),
                "start": process_start_time(os.getpid()),
                "host": host,
                "port": bound_port,
                "tls": bool(tls),
                "tls_cert": os.path.abspath(tls[0]) if tls else None,
                "token": token,
                "prefect_api_url": runtime.api_url,
                "embedded": runtime.embedded,
                "started_at": iso(utcnow()),
                "settings": mine,
            }
            write_state(path, doc)
            if on_ready is not None:
                on_ready({**doc, "token": "***", "warm_up_seconds": round(warm, 3)})
            try:
                if not stop_requested.is_set():
                    server.run(sockets=[sock])
            finally:
                if service is not None:
                    service.stop()
                interrupted = manager.shutdown(grace, stop_now)
                path.unlink(missing_ok=True)
    finally:
        sock.close()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return {"port": bound_port, "interrupted_runs": interrupted}

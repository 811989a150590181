"""The Prefect runtime fireline runs on: the embedded server under ``settings.home``, or a configured one.

With no ``settings.prefect.api_url``, :func:`prefect_runtime` starts the embedded server
(:mod:`flows.engine.prefect_server`) with PREFECT_HOME at ``<home>/prefect``; otherwise it connects
to the configured server. Either way it points Prefect's client settings at it for the block.

A process that dies while its flow run is RUNNING leaves that run RUNNING forever; every start-up
marks such runs Crashed (:func:`mark_crashed_flow_runs`), recognising them by the owner tag that
:func:`owner_tag` puts on each fireline flow run.
"""

from __future__ import annotations

import contextlib
import os
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from flows.config import Settings
from flows.engine.prefect_server import (
    ServerProcess,
    cleanup_orphans,
    prepare_database,
    process_alive,
    process_start_time,
    start_server,
    wait_healthy,
)
from flows.errors import ConfigError, RunError

FIRELINE_TAG = "fireline"
OWNER_TAG_PREFIX = "fireline-owner:"


def prefect_home(settings: Settings) -> Path:
    """PREFECT_HOME of the embedded runtime: under fireline's state directory, never ``~/.prefect``."""
    return settings.home / "prefect"


def owner_tag() -> str:
    """The tag that names the process driving a flow run: host, pid and start time."""
    return f"{OWNER_TAG_PREFIX}{socket.gethostname()}:{os.getpid()}:{process_start_time(os.getpid())}"


# -- client side -----------------------------------------------------------------------------------------
def client_settings(api_url: str, home: Path | None) -> dict[str, Any]:
    """Settings for the process that runs flows: no heartbeat (it costs ~1 s per flow run to join)."""
    updates: dict[str, Any] = {
        "api.url": api_url,
        "flows.heartbeat_frequency": None,  # settable to None only programmatically
        "server.analytics_enabled": False,
        # INFO reaches the API (a run's lines in the UI); _quiet_console keeps it off the terminal.
        "logging.level": "INFO",
    }
    if home is not None:
        updates["home"] = home
    return updates


def mark_crashed_flow_runs(*, host: str | None = None) -> list[str]:
    """Mark Crashed the fireline flow runs left RUNNING/PENDING by a process of this host that is gone."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import (
        FlowRunFilter,
        FlowRunFilterState,
        FlowRunFilterStateType,
        FlowRunFilterTags,
    )
    from prefect.client.schemas.objects import StateType
    from prefect.states import Crashed

    host = host or socket.gethostname()
    marked: list[str] = []
    flt = FlowRunFilter(
        tags=FlowRunFilterTags(all_=[FIRELINE_TAG]),
        state=FlowRunFilterState(
            type=FlowRunFilterStateType(any_=[StateType.RUNNING, StateType.PENDING, StateType.PAUSED])
        ),
    )
    with get_client(sync_client=True) as client:
        for run in client.read_flow_runs(flow_run_filter=flt, limit=200):
            owner = next((t[len(OWNER_TAG_PREFIX) :] for t in run.tags if t.startswith(OWNER_TAG_PREFIX)), None)
            if owner is None:
                continue
            owner_host, _, rest = owner.partition(":")
            pid, _, start = rest.partition(":")
            if owner_host != host or not pid.isdigit() or process_alive(int(pid), None if start == "None" else start):
                continue
            message = f"the process driving this run (pid {pid} on {host}) is gone; fireline resume can continue it"
            client.set_flow_run_state(run.id, Crashed(message=message), force=True)
            marked.append(str(run.id))
    return marked


@dataclass(frozen=True)
class Runtime:
    """The Prefect API this process talks to, and whether fireline started it."""

    api_url: str
    home: Path | None
    server: ServerProcess | None
    crashed_marked: tuple[str, ...] = ()

    @property
    def embedded(self) -> bool:
        return self.server is not None


@contextlib.contextmanager
def prefect_runtime(
    settings: Settings, *, ui: bool = False, port: int | None = None, template: Path | None = None
) -> Iterator[Runtime]:
    """Connect to ``settings.prefect.api_url``, or start the embedded server; stop it on the way out.

    Inside the block, Prefect's settings point at the runtime (a context variable: threads that
    run flows must be started with :func:`contextvars.copy_context`).
    """
    from prefect.settings import temporary_settings

    server: ServerProcess | None = None
    home: Path | None = None
    if settings.prefect.api_url:
        api_url = settings.prefect.api_url.rstrip("/")
        try:
            wait_healthy(api_url, timeout=5.0)
        except RunError as e:
            raise ConfigError(f"prefect.api_url {api_url}: {e}") from e
    else:
        home = prefect_home(settings)
        cleanup_orphans(home)
        prepare_database(home, template=template)
        server = start_server(home, port=port, ui=ui)
        api_url = server.api_url
    try:
        with temporary_settings(updates=client_settings(api_url, home)), _quiet_console():
            try:
                marked = tuple(mark_crashed_flow_runs())
                yield Runtime(api_url=api_url, home=home, server=server, crashed_marked=marked)
            finally:
                _drain()
    finally:
        if server is not None:
            server.stop()


@contextlib.contextmanager
def _quiet_console() -> Iterator[None]:
    """Keep Prefect's INFO lines off the terminal (fireline prints its own progress); the API still gets them."""
    import logging

    import prefect.main  # noqa: F401 - configures Prefect's logging, so its console handler exists now

    loggers = (logging.getLogger(), logging.getLogger("prefect"))
    handlers = [h for lg in loggers for h in lg.handlers if type(h).__name__ == "PrefectConsoleHandler"]
    levels = [h.level for h in handlers]
    for handler in handlers:
        handler.setLevel(max(handler.level, logging.WARNING))
    try:
        yield
    finally:
        for handler, level in zip(handlers, levels, strict=True):
            handler.setLevel(level)


def _drain(timeout: float = 5.0) -> None:
    """Send queued logs and events before the server goes away (else: "Error logging to API" at exit)."""
    from prefect.events.worker import EventsWorker
    from prefect.logging.handlers import APILogWorker

    for service in (APILogWorker, EventsWorker):
        with contextlib.suppress(Exception):  # best effort: the run itself is already recorded
            service.drain_all(timeout=timeout)

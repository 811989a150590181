"""Wiring the receiver into ``fireline serve``: spool, receiver routes, dispatcher and the run starter."""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from flows.config import Settings
from flows.errors import ConfigError
from flows.triggers.dispatcher import Dispatcher
from flows.triggers.metrics import Metrics
from flows.triggers.model import SOURCES, Alert
from flows.triggers.receiver import Receiver, routes
from flows.triggers.routing import Route, load_library
from flows.triggers.spool import Spool


class ManagerStarter:
    """Starts runs through the warm runtime's run manager (in-process, or a deployment's flow runs)."""

    def __init__(self, manager: Any, settings: Settings) -> None:
        self.manager = manager
        self.settings = settings

    def start(self, route: Route, run_id: str, alerts: list[Alert], trigger: dict[str, Any]) -> str | None:
        from flows.engine.serve_runs import RunRequest

        request = RunRequest(
            playbook=str(route.path.resolve()),
            alert=alerts[0].model_dump(mode="json"),
            alerts=[a.brief() for a in alerts],
            mode=self.settings.triggers.mode,
            run_id=run_id,
            trigger=trigger,
        )
        slot = self.manager.start(request)
        return slot.flow_run_id  # type: ignore[no-any-return]  # RunSlot.flow_run_id: str | None

    def exists(self, run_id: str, key: str) -> bool:
        # A deployment's flow run is created with the incident key as its idempotency key: starting
        # it again returns the existing flow run, so only the run directory matters here.
        return (self.settings.runs_dir / run_id / "run.json").exists()

    def in_progress(self, run_id: str) -> bool:
        slot = self.manager.get(run_id)
        return slot is not None and slot.status in ("accepted", "running", "submitted")


def check_bind(host: str, settings: Settings) -> None:
    """Refuse a non-loopback bind while an enabled source accepts unauthenticated requests."""
    try:
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = host == "localhost"
    if loopback:
        return
    for name in SOURCES:
        cfg = settings.triggers.source(name)
        if not cfg.enabled:
            continue
        if name == "cloudwatch":
            if not cfg.topics:
                raise ConfigError(f"serve on {host}: triggers.sources.cloudwatch needs topics (or enabled = false)")
        elif cfg.auth == "none" or not cfg.secret_value():
            raise ConfigError(
                f"serve on {host} (not loopback) needs authentication: set triggers.sources.{name}.auth and its "
                "secret, or enabled = false"
            )


@dataclass
class TriggerService:
    spool: Spool
    receiver: Receiver
    dispatcher: Dispatcher

    def routes(self, ready: Callable[[], bool]) -> list[Any]:
        return routes(self.receiver, ready=ready)

    def stop(self) -> None:
        from flows.engine.prefect_attach import defer_flow_runs_while

        defer_flow_runs_while(None)
        self.dispatcher.stop()
        self.spool.close()


def build_service(
    settings: Settings, manager: Any, *, fetch_cert: Callable[[str], bytes] | None = None
) -> TriggerService:
    """The receiver and a running dispatcher, sharing one spool and one metrics registry."""
    spool = Spool(settings.triggers.spool_path(settings.home))
    metrics = Metrics()
    library = load_library(settings.playbooks_dir)
    from flows.engine.turns import Share

    receiver = Receiver(settings.triggers, spool, library, metrics=metrics, fetch_cert=fetch_cert, share=Share())
    dispatcher = Dispatcher(
        spool,
        ManagerStarter(manager, settings),
        playbooks_dir=settings.playbooks_dir,
        runs_dir=settings.runs_dir,
        metrics=metrics,
    )
    dispatcher.start()
    from flows.engine.prefect_attach import defer_flow_runs_while

    # A storm's flow runs wait for it to pass, and for its runs to be started (containment first).
    defer_flow_runs_while(lambda: spool.receiving() or dispatcher.working())
    return TriggerService(spool, receiver, dispatcher)

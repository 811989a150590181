"""What an action sees of the run it is part of.

The engine builds one :class:`ActionContext` per step attempt; tests build one with
:func:`make_context`. Integrations keep per-run clients in :attr:`ActionContext.services`.
"""

from __future__ import annotations

import os
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from flows.config import Settings
from flows.errors import ActionError, ConfigError, StepTimeoutError
from flows.language.spec import Mode
from flows.record.store import EvidenceItem, RunRecord, iso, sha256_bytes, utcnow, write_atomic

_SAFE_NAME = re.compile(r"[^A-Za-z0-9._-]+")
MIN_SECRET_CHARS = 4  # shorter values would mask ordinary words, so they are refused


@dataclass(frozen=True)
class Incident:
    """The incident a run responds to (``incident`` in templates)."""

    id: str
    started_at: datetime
    severity: str = "medium"
    mode: Mode = "live"
    title: str = ""

    def as_template(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "started_at": iso(self.started_at),
            "severity": self.severity,
            "mode": self.mode,
            "title": self.title,
        }


@dataclass
class RunServices:
    """Per-run shared state: integration clients, dry-run refusal counts, secret values to redact."""

    cache: dict[str, Any] = field(default_factory=dict)
    lock: threading.RLock = field(default_factory=threading.RLock)
    refused_calls: list[str] = field(default_factory=list)
    secret_values: set[str] = field(default_factory=set)

    def get_or_create(self, key: str, factory: Callable[[], Any]) -> Any:
        with self.lock:
            if key not in self.cache:
                self.cache[key] = factory()
            return self.cache[key]


@dataclass
class ActionContext:
    """The run, step and item an action call belongs to."""

    run_id: str
    incident: Incident
    settings: Settings
    record: RunRecord
    step_id: str = ""
    item: Any = None
    item_key: str = ""
    attempt: int = 1
    actor: str = "fireline"
    playbook: str = ""
    services: RunServices = field(default_factory=RunServices)
    cancel_event: threading.Event = field(default_factory=threading.Event)
    deadline: float | None = None  # time.monotonic() value

    @property
    def mode(self) -> Mode:
        return self.incident.mode

    @property
    def live(self) -> bool:
        return self.incident.mode == "live"

    @property
    def idempotency_key(self) -> str:
        """Stable across retries and resumes: incident, step and item."""
        suffix = f"/{self.item_key}" if self.item_key else ""
        return f"{self.incident.id}/{self.step_id}{suffix}"

    @property
    def short_token(self) -> str:
        """A 32-character token derived from the idempotency key, for APIs' ClientToken fields."""
        return sha256_bytes(self.idempotency_key.encode())[:32]

    @property
    def evidence_dir(self) -> Path:
        return self.record.evidence_dir

    def for_step(self, step_id: str, item: Any = None, item_key: str = "", attempt: int = 1) -> ActionContext:
        return ActionContext(
            run_id=self.run_id,
            incident=self.incident,
            settings=self.settings,
            record=self.record,
            step_id=step_id,
            item=item,
            item_key=item_key,
            attempt=attempt,
            actor=self.actor,
            playbook=self.playbook,
            services=self.services,
            cancel_event=threading.Event(),
            deadline=None,
        )

    # -- the run record ---------------------------------------------------------------------
    def emit(self, type_: str, detail: dict[str, Any] | None = None) -> None:
        self.record.emit(type_, step=self.step_id or None, item=self.item, detail=detail)

    def log(self, message: str, **detail: Any) -> None:
        self.emit("log", {"message": message, **detail})

    def record_evidence(self, item: EvidenceItem) -> EvidenceItem:
        return self.record.add_evidence(item)

    def evidence_id(self, name: str) -> str:
        """A stable id for an evidence item of this step and item, so a retry never duplicates it."""
        return sha256_bytes(f"{self.idempotency_key}/{name}".encode())[:16]

    def store_evidence_bytes(
        self,
        name: str,
        data: bytes,
        *,
        source_arn: str | None = None,
        description: str = "",
        content_type: str | None = "application/json",
    ) -> EvidenceItem:
        """Write ``data`` under the run's evidence directory and list it in the manifest."""
        safe = _SAFE_NAME.sub("_", name).strip("._") or "evidence"
        folder = self.evidence_dir / (_SAFE_NAME.sub("_", self.step_id) or "run")
        if self.item_key:
            folder = folder / _SAFE_NAME.sub("_", self.item_key)[:80]
        path = folder / safe
        write_atomic(path, data)
        item = EvidenceItem(
            id=self.evidence_id(name),
            name=name,
            location=str(path.relative_to(self.record.dir)),
            size=len(data),
            sha256=sha256_bytes(data),
            source_arn=source_arn,
            collected_at=iso(utcnow()),
            collected_by=f"{self.actor}:{self.playbook or '?'}:{self.step_id}",
            step=self.step_id or None,
            item=self.item,
            description=description,
            content_type=content_type,
        )
        return self.record_evidence(item)

    # -- secrets ------------------------------------------------------------------------------
    def secret(self, ref: str) -> str:
        """Resolve ``secret:NAME`` from the environment, or a Prefect Secret block when a Prefect API is set.

        Without a configured Prefect API (``prefect.api_url`` or ``PREFECT_API_URL``) a missing
        variable fails at once, naming it: looking for a block would start a temporary Prefect server.
        A value shorter than :data:`MIN_SECRET_CHARS` is refused, since it could not be masked.
        """
        name = ref.removeprefix("secret:")
        value = os.environ.get(name)
        if value is None:
            if not (self.settings.prefect.api_url or os.environ.get("PREFECT_API_URL")):
                raise ConfigError(f"secret {name!r} is not set: export the environment variable {name}")
            try:
                from prefect.blocks.system import Secret

                # Block.load is sync-or-async by context; outside an event loop it returns the block itself.
                block: Any = Secret.load(name.lower().replace("_", "-"))
                value = str(block.get())
            except Exception as e:  # any failure means the secret is not available
                raise ConfigError(f"secret {name!r} is not set (environment variable or Prefect Secret block)") from e
        if len(value) < MIN_SECRET_CHARS:
            raise ConfigError(
                f"secret {name!r} is shorter than {MIN_SECRET_CHARS} characters: it could not be masked in records"
            )
        self.services.secret_values.add(value)
        return value

    # -- timeouts -------------------------------------------------------------------------------
    def check_cancelled(self) -> None:
        """Long-running actions call this between API calls so a step timeout stops them."""
        if self.cancel_event.is_set() or (self.deadline is not None and time.monotonic() > self.deadline):
            raise StepTimeoutError(f"step {self.step_id!r} was stopped: its timeout passed")

    def sleep(self, seconds: float) -> None:
        """Sleep that wakes up when the step is cancelled."""
        if self.cancel_event.wait(seconds):
            raise StepTimeoutError(f"step {self.step_id!r} was stopped: its timeout passed")

    def require_live(self, what: str) -> None:
        if not self.live:
            raise ActionError(f"{what} is refused in {self.mode} mode")


def make_context(
    run_dir: Path,
    *,
    mode: Mode = "live",
    settings: Settings | None = None,
    step_id: str = "step",
    item: Any = None,
    item_key: str = "",
    incident_id: str | None = None,
    started_at: datetime | None = None,
) -> ActionContext:
    """A context with a real run record, for tests and for calling an action directly."""
    record = RunRecord(run_dir)
    incident = Incident(
        id=incident_id or f"inc-{run_dir.name}",
        started_at=started_at or utcnow(),
        mode=mode,
    )
    return ActionContext(
        run_id=run_dir.name,
        incident=incident,
        settings=settings or Settings(runs_dir=run_dir.parent),
        record=record,
        step_id=step_id,
        item=item,
        item_key=item_key,
    )

"""``POST /alerts/<source>``: authenticate, bound, parse, spool, answer 202, mounted into ``fireline serve``.

Answers: 202 with the batch id once the batch is durably spooled; 200 for a payload that carries
no alert (an SNS subscription confirmation, a PagerDuty acknowledgement); 400 malformed JSON or a
payload the adapter rejects; 401 missing or wrong credentials or a stale signed timestamp; 403 an
SNS message from an unlisted topic, with a bad signature or a certificate from a foreign host; 404
an unknown or disabled source; 413 a body over the source's cap; 422 resolved alerts of no known
incident (a resolution never starts a run); 429 with ``Retry-After`` over the source's rate. Nothing
is spooled unless the answer is 202.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from flows.engine.turns import Share
from flows.triggers import auth
from flows.triggers.adapters import SnsVerifier, parse
from flows.triggers.config import TriggersSettings
from flows.triggers.limits import TokenBucket
from flows.triggers.metrics import Metrics
from flows.triggers.model import SOURCES, AlertBatch, AlertError
from flows.triggers.routing import route
from flows.triggers.safejson import loads
from flows.triggers.spool import Spool


class _TooLarge(Exception):
    pass


@dataclass
class _Spoolable:
    """An accepted request before the spool: its batch, the spool document, its firing incident keys."""

    batch: AlertBatch
    doc: dict[str, Any]
    keys: set[str]


@dataclass
class Receiver:
    """The state behind the routes: settings, spool, library, limits, metrics."""

    settings: TriggersSettings
    spool: Spool
    library: list[Any]
    metrics: Metrics = field(default_factory=Metrics)
    fetch_cert: Callable[[str], bytes] | None = None
    clock: Callable[[], float] = time.time
    # Intake's share of the interpreter while runs head for containment (fireline serve sets it).
    share: Share | None = None
    _buckets: dict[str, TokenBucket] = field(default_factory=dict)
    _known: set[str] = field(default_factory=set)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        for name in SOURCES:
            cfg = self.settings.source(name)
            self._buckets[name] = TokenBucket(cfg.rate, cfg.burst)
        cw = self.settings.source("cloudwatch")
        self.sns = SnsVerifier(cw.topics, fetch=self.fetch_cert, host=re.compile(self.settings.sns_cert_host))
        self._known.update(i.key for i in self.spool.open_incidents())

    def rate_wait(self, source: str) -> int:
        """0 when a request of ``source`` may go on, else the seconds for ``Retry-After``."""
        return self._buckets[source].take()

    def knows(self, key: str) -> bool:
        with self._lock:
            if key in self._known:
                return True
        return self.spool.known_incident(key)

    def accept(self, source: str, headers: Any, body: bytes) -> tuple[int, dict[str, Any]]:
        """Everything after the body is read; returns (status, answer). Blocks until the batch is durable."""
        checked = self._check(source, headers, body)
        if not isinstance(checked, _Spoolable):
            return checked
        return self._accepted(source, checked, self.spool.append(source, checked.doc))

    async def accept_async(self, source: str, headers: Any, body: bytes) -> tuple[int, dict[str, Any]]:
        """:meth:`accept` on the event loop: it awaits the commit that holds the batch, holding no thread.

        CloudWatch goes through a worker thread: its SNS check may fetch a signing certificate.
        """
        import asyncio

        if source == "cloudwatch":
            from starlette.concurrency import run_in_threadpool

            return await run_in_threadpool(self.accept, source, headers, body)
        checked = self._check(source, headers, body)
        if not isinstance(checked, _Spoolable):
            return checked
        batch_id = await asyncio.wrap_future(self.spool.submit(source, checked.doc))
        return self._accepted(source, checked, batch_id)

    def _check(self, source: str, headers: Any, body: bytes) -> tuple[int, dict[str, Any]] | _Spoolable:
        """The answer for a refused request, or what to spool."""
        cfg = self.settings.source(source)
        try:
            if source != "cloudwatch":
                auth.check(cfg, headers, body, replay_window=self.settings.replay_window, clock=self.clock)
            payload = loads(body, what=f"{source} payload")
            batch = parse(source, payload, sns=self.sns if source == "cloudwatch" else None)
        except AlertError as e:
            outcome = {401: "unauthorised", 403: "refused"}.get(e.status, "rejected")
            self.metrics.count(source, outcome)
            return e.status, {"error": str(e)}
        return self._document(source, batch)

    def _document(self, source: str, batch: AlertBatch) -> tuple[int, dict[str, Any]] | _Spoolable:
        if not batch.alerts:
            self.metrics.count(source, "no_alert")
            return 200, {"status": "no alert", **{k: v for k, v in batch.notes.items() if isinstance(v, str)}}
        firing_keys = {r.key for a in batch.firing for r in route(a, self.library)}
        if not batch.firing:
            resolved_keys = {r.key for a in batch.resolved for r in route(a, self.library)}
            if not any(self.knows(k) for k in resolved_keys):
                self.metrics.count(source, "resolved_unknown")
                return 422, {
                    "error": "only resolved alerts, of no incident fireline knows: a resolution never starts a run"
                }
        doc = {
            "source": source,
            "received_at": self.clock(),
            "alerts": [a.brief() for a in batch.alerts],
            "raw": batch.raw,
            "truncated": batch.truncated,
            "notes": batch.notes,
        }
        return _Spoolable(batch, doc, firing_keys)

    def _accepted(self, source: str, checked: _Spoolable, batch_id: int) -> tuple[int, dict[str, Any]]:
        batch = checked.batch
        with self._lock:
            self._known.update(checked.keys)
        self.metrics.count(source, "accepted", len(batch.alerts))
        answer = {"batch": batch_id, "firing": len(batch.firing), "resolved": len(batch.resolved)}
        if batch.truncated:
            answer["truncated"] = batch.truncated
        return 202, answer


async def _read_capped(request: Any, cap: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > cap:
        raise _TooLarge
    chunks: list[bytes] = []
    total = 0
    async for chunk in request.stream():
        total += len(chunk)
        if total > cap:
            raise _TooLarge
        chunks.append(chunk)
    return b"".join(chunks)


def routes(receiver: Receiver, *, ready: Callable[[], bool] = lambda: True) -> list[Any]:
    """The Starlette routes: ``POST /alerts/{source}``, ``GET /metrics``, ``GET /healthz``."""
    from starlette.requests import Request
    from starlette.responses import JSONResponse, Response
    from starlette.routing import Route

    async def post_alert(request: Request) -> Response:
        import asyncio

        if receiver.share is not None and (wait := receiver.share.delay()):
            await asyncio.sleep(wait)  # runs heading for containment go first (flows.engine.turns.Share)
        source = request.path_params["source"]
        if source not in SOURCES or not receiver.settings.source(source).enabled:
            receiver.metrics.count("unknown", "unknown_source")
            return JSONResponse({"error": f"unknown alert source {source[:40]!r}"}, status_code=404)
        cfg = receiver.settings.source(source)
        wait = receiver.rate_wait(source)
        if wait:
            receiver.metrics.count(source, "rate_limited")
            return JSONResponse({"error": "rate limit"}, status_code=429, headers={"Retry-After": str(wait)})
        try:
            body = await _read_capped(request, cfg.max_body)
        except _TooLarge:
            receiver.metrics.count(source, "oversize")
            return JSONResponse({"error": f"body over the {cfg.max_body} byte cap"}, status_code=413)
        status, answer = await receiver.accept_async(source, request.headers, body)
        return JSONResponse(answer, status_code=status)

    async def metrics(request: Request) -> Response:
        receiver.metrics.spool_depth.set(receiver.spool.depth())
        data, content_type = receiver.metrics.exposition()
        return Response(data, media_type=content_type)

    async def healthz(request: Request) -> Response:
        ok = ready()
        return JSONResponse({"status": "ok" if ok else "stopping", "spool_depth": receiver.spool.depth()},
                            status_code=200 if ok else 503)  # fmt: skip

    return [
        Route("/alerts/{source}", post_alert, methods=["POST"]),
        Route("/metrics", metrics, methods=["GET"]),
        Route("/healthz", healthz, methods=["GET"]),
    ]

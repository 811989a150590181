"""Prometheus metrics of the receiver and dispatcher (prometheus_client, one registry per server).

``fireline_alerts_total{source, outcome}``: every alert or request by what became of it (accepted,
unauthorised, rejected, oversize, rate_limited, started, attached, repeated, resolved, unrouted, ...);
``fireline_spool_depth``: batches waiting for the dispatcher; ``fireline_dispatch_latency_seconds``:
from the 202 to the run's start; ``fireline_runs_total{outcome}``: runs started by alerts, by outcome.
"""

from __future__ import annotations

from typing import Any


class Metrics:
    def __init__(self) -> None:
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

        self.registry = CollectorRegistry()
        self.alerts = Counter(
            "fireline_alerts", "Alerts and alert requests by source and outcome.", ["source", "outcome"],
            registry=self.registry,
        )  # fmt: skip
        self.spool_depth = Gauge("fireline_spool_depth", "Spooled batches not dispatched yet.", registry=self.registry)
        self.dispatch_latency = Histogram(
            "fireline_dispatch_latency_seconds", "Seconds from a batch's acceptance to its run's start.",
            buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30), registry=self.registry,
        )  # fmt: skip
        self.runs = Counter("fireline_runs", "Runs started by alerts, by outcome.", ["outcome"], registry=self.registry)

    def count(self, source: str, outcome: str, n: int = 1) -> None:
        self.alerts.labels(source=source, outcome=outcome).inc(n)

    def exposition(self) -> tuple[bytes, str]:
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        return generate_latest(self.registry), CONTENT_TYPE_LATEST

    def value(self, name: str, **labels: Any) -> float:
        found = self.registry.get_sample_value(name, labels or None)
        return float(found) if found is not None else 0.0

"""Run one scenario: seed the world, drive the playbook on the drill clock, score, report.

``run_scenario`` is the whole drill: in drill mode (plan only, the write guard on every AWS
client, notifications only to the drill channel and only to ``drill_ok`` people) against an
in-process moto. With ``mode="live"`` and a moto server's ``endpoint_url`` the same scenario runs
for real, with the same alert, world and responder script: the fidelity tests compare the two.
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from flows.drills.clock import DrillClock, DrillResponders, pinned
from flows.drills.expect import Check, Observed, observe, score
from flows.drills.faults import FaultBook, faulted_registry
from flows.drills.load import LoadedScenario, load_scenario
from flows.engine.approvals import Answer
from flows.language.durations import parse_duration


@dataclass
class DrillResult:
    """A drill's verdict: every check, the observed path, gaps, and where the report went."""

    scenario: str
    path: Path
    run_id: str
    run_dir: Path
    checks: list[Check]
    observed: Observed
    gaps: list[dict[str, str]] = field(default_factory=list)
    permissions: dict[str, Any] = field(default_factory=dict)
    reports: list[Path] = field(default_factory=list)
    wall_seconds: float = 0.0
    virtual_seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.checks)

    @property
    def unmet(self) -> list[Check]:
        return [c for c in self.checks if not c.ok]


def _responders(loaded: LoadedScenario, clock: DrillClock) -> DrillResponders:
    s = loaded.scenario
    timed_out = {f.step for f in s.faults if f.kind == "approval_timeout"}
    approvals: dict[str, list[Answer]] = {}
    for a in s.responders.approvals:
        if a.step not in timed_out:  # an approval timeout: the approvers never answer
            approvals.setdefault(a.step, []).append(
                Answer(by=a.by, decision=a.decision, reason=a.reason, after=parse_duration(a.after))
            )
    acks: dict[str, list[tuple[str, float]]] = {}
    for ack in s.responders.acks:
        acks.setdefault(ack.step, []).append((ack.by, parse_duration(ack.after)))
    return DrillResponders(clock, approvals, acks)


def _kinds(loaded: LoadedScenario) -> dict[str, str]:
    from flows.actions.registry import default_registry

    registry = default_registry()
    return {s.id: registry.get(s.action).kind.value for s in loaded.playbook.steps if s.action in registry}


def run_scenario(
    path: Path,
    settings: Any,
    *,
    mode: str = "drill",
    endpoint_url: str | None = None,
    write_report: bool = True,
    zero_waits: bool = False,
    world: Any = None,
) -> DrillResult:
    """Run the scenario at ``path`` and score it.

    ``endpoint_url`` None: an in-process moto holds the world; else the moto server there (the
    settings must point at it too). ``zero_waits`` answers every scripted ack and approval at once
    (the baseline of ``bench/drill.py``). ``world``: an already seeded world (the fidelity tests run a
    drill and a live run on one world); None seeds it.

    Raises:
        SpecError: the scenario is wrong (every located error), before anything runs.
        FirelineError: the run could not start (its playbook, alert or inputs).
    """
    loaded = load_scenario(path, settings)
    if endpoint_url is None:  # the in-process moto only: no profile, role, real endpoint or real bucket
        aws = settings.aws.model_copy(update={"endpoint_url": None, "role_arn": None, "profile": None,
                                              "evidence_bucket": None})  # fmt: skip
        settings = settings.model_copy(update={"aws": aws})
    scope = contextlib.nullcontext() if endpoint_url else _in_process()
    limiter = _slack_limiter(loaded, settings)
    if limiter is not None:
        settings = settings.model_copy(
            update={"slack": settings.slack.model_copy(update={"base_url": limiter.base_url})}
        )
    try:
        with scope:
            result = _run(loaded, settings, mode, endpoint_url, zero_waits, world)
    finally:
        if limiter is not None:
            limiter.stop()
    if limiter is not None:  # each 429 the proxy answered, as the report's injected faults
        result.observed.faults += [{"step": "Slack Web API", "attempt": n + 1, "error": "429 ratelimited (injected)",
                                    "retry_in": 1.0} for n in range(limiter.answered_429)]  # fmt: skip
    if write_report:
        _report(result, loaded, settings, endpoint_url)
    return result


def _slack_limiter(loaded: LoadedScenario, settings: Any) -> Any:
    times = sum(f.times for f in loaded.scenario.faults if f.kind == "slack_429")
    if not times:
        return None
    from flows.drills.slack_fault import SlackRateLimiter

    return SlackRateLimiter(settings.slack.base_url, times)


def _report(result: DrillResult, loaded: LoadedScenario, settings: Any, endpoint_url: str | None) -> None:
    from flows.drills.gaps import find_gaps, permission_gaps
    from flows.drills.report import write_drill_report

    scope = contextlib.nullcontext() if endpoint_url else _in_process()
    with scope:  # the simulator is asked with the drill's credentials (the in-process world's, or the server's)
        result.permissions = permission_gaps(loaded.playbook, settings)
    result.gaps = find_gaps(loaded.scenario, result.observed, result.permissions)
    result.reports = write_drill_report(result, loaded)


def prepare_world(loaded: LoadedScenario, endpoint_url: str | None) -> Any:
    """Seed the scenario's world and make its missing targets disappear; returns the sandbox World."""
    from flows.drills import world as worlds

    made = worlds.seed(loaded.scenario.world.seed, endpoint_url)
    worlds.remove_targets(made, loaded.scenario.faults)
    return made


def _in_process() -> Any:
    from flows.drills.world import in_process_aws

    return in_process_aws()


def _run(loaded: LoadedScenario, settings: Any, mode: str, endpoint_url: str | None, zero_waits: bool,
         world: Any) -> DrillResult:  # fmt: skip
    from flows.actions.registry import default_registry
    from flows.drills import world as worlds
    from flows.engine.runner import run_playbook

    s = loaded.scenario
    if world is None:
        world = prepare_world(loaded, endpoint_url)
    alert = worlds.render_world(loaded.alert, world)
    inputs = worlds.render_world(dict(s.inputs), world)
    clock = DrillClock(start=time.time())
    responders = _responders(loaded, clock)
    if zero_waits:
        for answers in responders.approvals.values():
            answers[:] = [Answer(a.by, a.decision, a.reason, after=0.0) for a in answers]
        for key in list(responders.acks):
            responders.acks[key] = [(who, 0.0) for who, _ in responders.acks[key]]
    book = FaultBook.of(s.faults)
    registry = faulted_registry(default_registry(), book, loaded.playbook, clock) if book.remaining else None
    started = time.perf_counter()
    with pinned(clock):
        summary = run_playbook(
            loaded.playbook_path, alert=alert, inputs=inputs or None, mode=mode,  # type: ignore[arg-type]
            settings=settings, responders=responders, registry=registry, clock=clock,  # type: ignore[arg-type]
            trigger={"by": "drill", "source": "drill", "scenario": s.metadata.name},
            cache={"aws.client_hooks": [book.hook], "activity": clock.activity},
        )  # fmt: skip
    wall = time.perf_counter() - started
    observed = observe(summary.run_dir, _kinds(loaded), loaded.playbook)
    virtual = observed.milestones.get("finished") or 0.0
    checks = score(s.expect, observed)
    result = DrillResult(s.metadata.name, loaded.path, summary.run_id, summary.run_dir, checks, observed,
                         wall_seconds=wall, virtual_seconds=virtual)  # fmt: skip
    return result

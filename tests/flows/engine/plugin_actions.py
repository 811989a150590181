"""Test-only actions, registered through a registry by the tests (never part of the built-in list).

``test.counter.bump`` is idempotent the way real actions are: check-then-act at the target (a
directory outside the process) under the idempotency key, so a re-applied step-item never counts
twice. The kill test can make it SIGKILL its own process at its n-th call, before or after the
effect (``FIRELINE_TEST_KILL_AT=<n>:<before|after>``, counted in ``<target>/calls``).
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import threading
import time
from pathlib import Path
from typing import Any

from pydantic import Field

from flows.actions.context import ActionContext
from flows.actions.registry import Action, ActionKind, ActionParams, ActionResult, Plan, Target, UndoResult, action
from flows.errors import ActionError, IntegrationError

_lock = threading.Lock()


def _append_count(path: Path) -> int:
    """Increment a counter file and return the new count (one process at a time uses a target)."""
    with _lock:  # parallel items of one run must each see their own number
        with path.open("a") as fh:
            fh.write("x\n")
        return len(path.read_text().splitlines())


class BumpParams(ActionParams):
    target: str = Field(description="Directory standing for the external system.")
    name: str
    delay: float = 0.0


class BumpResult(ActionResult):
    key: str
    count_file: str


@action("test.counter.bump", kind=ActionKind.CONTAINMENT, params=BumpParams, result=BumpResult)
class Bump(Action[BumpParams, BumpResult]):
    """Record one effect at the target, once per idempotency key."""

    def plan(self, params: BumpParams, ctx: ActionContext) -> Plan:
        return Plan(
            action=self.name,
            summary=f"bump {params.name}",
            targets=[Target(type="test:counter", id=params.name, tags={})],
        )

    def apply(self, params: BumpParams, ctx: ActionContext) -> BumpResult:
        target = Path(params.target)
        kill = os.environ.get("FIRELINE_TEST_KILL_AT", "")
        call = _append_count(target / "calls")
        at, _, phase = kill.partition(":")
        if at and int(at) == call and phase == "before":
            os.kill(os.getpid(), signal.SIGKILL)
        key = hashlib.sha256(ctx.idempotency_key.encode()).hexdigest()[:24]
        marker = target / "effects" / key
        marker.parent.mkdir(parents=True, exist_ok=True)
        staged = marker.with_name(f".{key}.{os.getpid()}.{threading.get_ident()}")
        staged.write_text(json.dumps({"key": ctx.idempotency_key, "name": params.name}))
        try:  # check-then-act, atomically: the effect (with its content) exists once per key
            os.link(staged, marker)
        except FileExistsError:
            return BumpResult(changed=False, summary="already done", key=ctx.idempotency_key, count_file=str(marker))
        finally:
            staged.unlink()
        if at and int(at) == call and phase == "after":
            os.kill(os.getpid(), signal.SIGKILL)
        if params.delay:
            time.sleep(params.delay)
        return BumpResult(summary=f"bumped {params.name}", key=ctx.idempotency_key, count_file=str(marker))

    def undo(self, result: BumpResult, ctx: ActionContext) -> UndoResult:
        marker = Path(result.count_file)
        undone = marker.with_suffix(".undone")
        if undone.exists():
            return UndoResult(changed=False, summary="already undone")
        with undone.open("a") as fh:
            fh.write("undone\n")
        return UndoResult(summary=f"undid {result.key}")


class FlakyParams(ActionParams):
    target: str
    failures: int = 1
    retryable: bool = True
    throttle: bool = False


class FlakyResult(ActionResult):
    attempts: int


@action("test.flaky", kind=ActionKind.CONTROL, params=FlakyParams, result=FlakyResult)
class Flaky(Action[FlakyParams, FlakyResult]):
    """Fail the first ``failures`` calls, then succeed."""

    def plan(self, params: FlakyParams, ctx: ActionContext) -> Plan:
        return Plan(action=self.name, summary="flaky", mutating=False)

    def apply(self, params: FlakyParams, ctx: ActionContext) -> FlakyResult:
        calls = _append_count(Path(params.target) / f"flaky-{ctx.step_id}")
        if calls <= params.failures:
            if params.throttle:
                raise IntegrationError("Rate exceeded", details={"code": "ThrottlingException"})
            raise ActionError(f"flaky failure {calls}", retryable=params.retryable)
        return FlakyResult(summary=f"ok after {calls}", attempts=calls)


class SlowParams(ActionParams):
    seconds: float
    cooperative: bool = True
    target: str | None = None


class SlowResult(ActionResult):
    pass


@action("test.slow", kind=ActionKind.CONTROL, params=SlowParams, result=SlowResult)
class Slow(Action[SlowParams, SlowResult]):
    """Take a while; a cooperative one stops when the step's timeout cancels it."""

    def plan(self, params: SlowParams, ctx: ActionContext) -> Plan:
        return Plan(action=self.name, summary="slow", mutating=False)

    def apply(self, params: SlowParams, ctx: ActionContext) -> SlowResult:
        started = time.monotonic()
        if params.cooperative:
            ctx.sleep(params.seconds)
        else:
            time.sleep(params.seconds)
        if params.target:
            Path(params.target).write_text(
                json.dumps({"cancelled": ctx.cancel_event.is_set(), "took": time.monotonic() - started})
            )
        return SlowResult(summary="done")


class TargetParams(ActionParams):
    ids: list[str]
    tags: dict[str, str] | None = None
    mutating: bool = True


class TargetResult(ActionResult):
    touched: list[str]


@action("test.touch", kind=ActionKind.CONTAINMENT, params=TargetParams, result=TargetResult)
class Touch(Action[TargetParams, TargetResult]):
    """Declare targets (with the given tags) and 'touch' them."""

    def plan(self, params: TargetParams, ctx: ActionContext) -> Plan:
        targets = [Target(type="test:thing", id=i, tags=params.tags) for i in params.ids]
        return Plan(action=self.name, summary=f"touch {len(params.ids)}", targets=targets, mutating=params.mutating)

    def apply(self, params: TargetParams, ctx: ActionContext) -> TargetResult:
        return TargetResult(summary="touched", touched=list(params.ids))


class EchoParams(ActionParams):
    value: Any = None
    token: str | None = None


class EchoResult(ActionResult):
    value: Any = None
    token_length: int = 0


@action("test.echo", kind=ActionKind.CONTROL, params=EchoParams, result=EchoResult)
class Echo(Action[EchoParams, EchoResult]):
    """Return its value (and log the token, to check redaction)."""

    def plan(self, params: EchoParams, ctx: ActionContext) -> Plan:
        return Plan(action=self.name, summary="echo", mutating=False)

    def apply(self, params: EchoParams, ctx: ActionContext) -> EchoResult:
        if params.token:
            ctx.log(f"using token {params.token}")
        return EchoResult(
            summary=f"echo {params.token or ''}", value=params.value, token_length=len(params.token or "")
        )


class ConcurrencyParams(ActionParams):
    target: str
    seconds: float = 0.05


class ConcurrencyResult(ActionResult):
    peak: int


_active: dict[str, int] = {}


@action("test.gauge", kind=ActionKind.CONTROL, params=ConcurrencyParams, result=ConcurrencyResult)
class Gauge(Action[ConcurrencyParams, ConcurrencyResult]):
    """Record how many calls run at once (peak written to ``<target>/peak``)."""

    def plan(self, params: ConcurrencyParams, ctx: ActionContext) -> Plan:
        return Plan(action=self.name, summary="gauge", mutating=False)

    def apply(self, params: ConcurrencyParams, ctx: ActionContext) -> ConcurrencyResult:
        peak_file = Path(params.target) / "peak"
        with _lock:
            _active[params.target] = _active.get(params.target, 0) + 1
            current = _active[params.target]
            old = int(peak_file.read_text()) if peak_file.exists() else 0
            peak_file.write_text(str(max(old, current)))
        time.sleep(params.seconds)
        with _lock:
            _active[params.target] -= 1
        return ConcurrencyResult(summary="gauged", peak=current)


class BarrierParams(ActionParams):
    name: str
    parties: int


class BarrierResult(ActionResult):
    pass


_barriers: dict[str, threading.Barrier] = {}


@action("test.barrier", kind=ActionKind.CONTROL, params=BarrierParams, result=BarrierResult)
class Meet(Action[BarrierParams, BarrierResult]):
    """Succeed only when ``parties`` calls are inside at the same time (proves parallelism)."""

    def plan(self, params: BarrierParams, ctx: ActionContext) -> Plan:
        return Plan(action=self.name, summary="barrier", mutating=False)

    def apply(self, params: BarrierParams, ctx: ActionContext) -> BarrierResult:
        with _lock:
            barrier = _barriers.setdefault(params.name, threading.Barrier(params.parties, timeout=10))
        try:
            barrier.wait()
        except threading.BrokenBarrierError as e:
            raise ActionError(f"only some of {params.parties} parallel calls arrived") from e
        return BarrierResult(summary="met")


class SloppyParams(ActionParams):
    instance_id: str


class SloppyResult(ActionResult):
    pass


@action(
    "test.aws.sloppy",
    kind=ActionKind.CONTAINMENT,
    params=SloppyParams,
    result=SloppyResult,
    permissions=["ec2:CreateTags"],
)
class Sloppy(Action[SloppyParams, SloppyResult]):
    """A buggy action whose plan() tries to write: the dry-run write guard must refuse it."""

    def plan(self, params: SloppyParams, ctx: ActionContext) -> Plan:
        from integrations.aws.session import client

        try:
            client(ctx, "ec2").create_tags(Resources=[params.instance_id], Tags=[{"Key": "k", "Value": "v"}])
        except IntegrationError:
            pass  # refused by the guard: the plan goes on without the write
        return Plan(
            action=self.name,
            summary="sloppy",
            targets=[Target(type="aws:ec2:instance", id=params.instance_id, tags={})],
        )

    def apply(self, params: SloppyParams, ctx: ActionContext) -> SloppyResult:
        raise ActionError("never called in this test")


class EvidenceParams(ActionParams):
    name: str
    text: str


class EvidenceResult(ActionResult):
    evidence_id: str = ""


@action("test.evidence", kind=ActionKind.EVIDENCE, params=EvidenceParams, result=EvidenceResult)
class Preserve(Action[EvidenceParams, EvidenceResult]):
    """Preserve ``text`` as an evidence file of the run."""

    def plan(self, params: EvidenceParams, ctx: ActionContext) -> Plan:
        return Plan(action=self.name, summary=f"preserve {params.name}", mutating=False)

    def apply(self, params: EvidenceParams, ctx: ActionContext) -> EvidenceResult:
        item = ctx.store_evidence_bytes(params.name, params.text.encode(), content_type="text/plain")
        return EvidenceResult(evidence_id=item.id)


class LeakParams(ActionParams):
    token: str


@action("test.leak", kind=ActionKind.CONTROL, params=LeakParams, result=EchoResult)
class Leak(Action[LeakParams, EchoResult]):
    """Fail with the token in its repr, JSON and URL-encoded forms, as careless SDK errors do."""

    def plan(self, params: LeakParams, ctx: ActionContext) -> Plan:
        return Plan(action=self.name, summary="leak", mutating=False)

    def apply(self, params: LeakParams, ctx: ActionContext) -> EchoResult:
        from urllib.parse import quote, quote_plus

        token = params.token
        ctx.log("request", body=json.dumps({"token": token}), url=f"https://api.example/?t={quote_plus(token)}")
        raise ActionError(f"rejected {token!r} at https://api.example/{quote(token, safe='')} with {json.dumps(token)}")


@action("test.stuck_plan", kind=ActionKind.CONTAINMENT, params=SlowParams, result=SlowResult)
class StuckPlan(Action[SlowParams, SlowResult]):
    """A plan whose read hangs (``seconds``), as a read against an unresponsive API does."""

    def plan(self, params: SlowParams, ctx: ActionContext) -> Plan:
        time.sleep(params.seconds)
        return Plan(action=self.name, summary="late", mutating=False)

    def apply(self, params: SlowParams, ctx: ActionContext) -> SlowResult:
        if params.target:
            Path(params.target).write_text("applied")
        return SlowResult()

"""Injected faults: AWS errors raised by botocore itself, on the step they are aimed at.

Every AWS client a drilled run makes gets a ``before-call`` hook (through the run's
``aws.client_hooks`` service). While a faulted step's action runs (its ``plan()`` in a drill, its
``apply()`` in a live run), the hook answers that step's next calls with the AWS error, so botocore
raises its own ``ClientError`` exactly as it would for a real answer; no SDK object is mocked. A
drill only plans, so the engine's retries never run there: the drill replays the step's retry
policy on the plan instead (each failed attempt a ``drill.fault`` event, the back-off spent on the
virtual clock), and the step succeeds or fails as the live run would. A plan that makes no AWS
call (it only describes what apply() will read) is charged the fault its apply() would meet first.
"""

from __future__ import annotations

import copy
import threading
from dataclasses import dataclass, field
from typing import Any

from flows.actions.registry import Action, Registry
from flows.drills.models import Fault
from flows.language.spec import Playbook

_STATUS = {"AccessDenied": 403, "AccessDeniedException": 403, "UnauthorizedOperation": 403,
           "ServiceUnavailable": 503, "SlowDown": 503, "InternalError": 500}  # fmt: skip


@dataclass
class FaultBook:
    """How many calls of each step still fail, and with what code; what was injected."""

    remaining: dict[str, list[Any]] = field(default_factory=dict)  # step -> [code, count]
    injected: list[dict[str, Any]] = field(default_factory=list)
    local: threading.local = field(default_factory=threading.local)
    lock: threading.Lock = field(default_factory=threading.Lock)

    @classmethod
    def of(cls, faults: list[Fault]) -> FaultBook:
        book = cls()
        for f in faults:
            if f.kind == "aws_error" and f.step:
                book.remaining[f.step] = [f.code, f.times]
        return book

    def take(self) -> str | None:
        """The error code for the current call, when the step running in this thread is faulted."""
        step = getattr(self.local, "step", None)
        with self.lock:
            entry = self.remaining.get(step or "")
            if entry is None or entry[1] <= 0:
                return None
            entry[1] -= 1
            self.injected.append({"step": step, "code": entry[0]})
            self.local.fired = entry[0]
            return str(entry[0])

    def hook(self, client: Any) -> None:
        """Register the fault hook on one botocore client (the run's ``aws.client_hooks``)."""

        def before_call(model: Any, **_: Any) -> Any:
            code = self.take()
            if code is None:
                return None
            from botocore.awsrequest import AWSResponse

            status = _STATUS.get(code, 400)
            parsed = {"Error": {"Code": code, "Message": f"injected by the drill ({model.name})"},
                      "ResponseMetadata": {"HTTPStatusCode": status}}  # fmt: skip
            return AWSResponse("https://drill.invalid/", status, {}, None), parsed

        client.meta.events.register("before-call", before_call)


def _policy(playbook: Playbook, step_id: str) -> tuple[int, list[float]]:
    """Attempts and the back-off before each retry of a step (the engine's rule)."""
    step = next(s for s in playbook.steps if s.id == step_id)
    r = step.retries
    if r is None:
        return 1, []
    return r.attempts, [r.delay(n) for n in range(1, r.attempts)]


def faulted_registry(base: Registry, book: FaultBook, playbook: Playbook, clock: Any) -> Registry:
    """A copy of ``base`` whose actions of faulted steps mark the step for the hook."""
    base.load_all()  # a lazily loaded base: the copy must not share its pending sources
    registry = copy.copy(base)
    registry._actions = dict(base._actions)  # the copy's own table; the base stays as it was
    steps = {s.id: s.action for s in playbook.steps if s.id in book.remaining}
    for name in set(steps.values()):
        registry._actions[name] = _wrap(base.get(name), book, playbook, clock)
    return registry


def _wrap(action: Action[Any, Any], book: FaultBook, playbook: Playbook, clock: Any) -> Action[Any, Any]:
    original = type(action)

    class Faulted(original):  # type: ignore[valid-type, misc]  # a subclass made at run time
        def plan(self, params: Any, ctx: Any) -> Any:
            if ctx.live or ctx.step_id not in book.remaining:
                return super().plan(params, ctx)
            return _replay(lambda: super(Faulted, self).plan(params, ctx), ctx, book, playbook, clock)

        def apply(self, params: Any, ctx: Any) -> Any:
            book.local.step = ctx.step_id
            try:
                return super().apply(params, ctx)
            finally:
                book.local.step = None

    Faulted.__name__ = original.__name__
    return Faulted()


def _replay(call: Any, ctx: Any, book: FaultBook, playbook: Playbook, clock: Any) -> Any:
    """Plan under the fault hook as many times as the step's retry policy would apply it."""
    from flows.engine.executor import is_retryable
    from flows.errors import ActionError

    attempts, delays = _policy(playbook, ctx.step_id)
    for attempt in range(1, attempts + 1):
        book.local.step, book.local.fired = ctx.step_id, None
        error: BaseException | None = None
        try:
            result = call()
        except Exception as e:
            error = e
        if error is None and book.local.fired is None:
            book.take()  # a plan that made no AWS call: the fault hits the call apply() makes first
        book.local.step = None
        if error is None and book.local.fired is None:
            return result
        if error is None:  # the plan went past the failed read (tags unknown); apply() would not
            error = ActionError(f"{book.local.fired} (injected on {ctx.step_id})", details={"code": book.local.fired})
        if attempt == attempts or not is_retryable(error):
            raise error
        delay = delays[attempt - 1]
        ctx.emit("drill.fault", {"attempt": attempt, "error": str(error)[:300], "retry_in": delay})
        clock.jump(delay)
    raise AssertionError("unreachable")  # pragma: no cover

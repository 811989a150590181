"""The scheduler: runs a playbook's step graph on a :class:`~flows.engine.executor.StepExecutor`.

One thread (the caller's) owns all decisions: which step is ready, ``when``, ``for_each``,
dependency outcomes, the run's step table. Every unit of work (planning, applying an item, waiting
for an approval, ``on_failure`` handlers) is submitted to the executor from this thread, so an
executor that needs a context of its own (a Prefect flow run) only ever sees one submitting thread.

Dependency rule: a step runs once all its ``needs`` have ended. With ``needs_outcome: success`` (the
default) it is skipped when a dependency failed (unless that dependency has ``continue_on_error``)
or was itself skipped because of a failure; a dependency skipped by its own ``when`` does not block.
With ``needs_outcome: any`` it runs whatever its dependencies came to.
"""

from __future__ import annotations

import concurrent.futures
import queue
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from flows.actions.registry import ActionKind
from flows.engine.activity import Activity
from flows.engine.executor import PLAN_SUFFIX, StepExecutor, take_batch
from flows.engine.outcomes import FAILED, FAILURES, REJECTED, SKIPPED, SUCCEEDED, TERMINAL, TIMED_OUT, StepOutcome
from flows.engine.templates import Placeholder, condition, render_value
from flows.engine.units import ItemResult, PlannedItem, Unit, item_key, plan_items, planned_targets
from flows.engine.wait_units import approval_unit, page_unit, waiting_marks, waits
from flows.engine.waits import Waiter
from flows.engine.work import RunEnv, apply_item, record_interruption, run_handlers
from flows.language.dag import dependencies
from flows.language.spec import Step
from flows.record.store import iso, utcnow

SKIP_BY_CONDITION = "condition"
SKIP_BY_DEPENDENCY = "dependency"
SKIP_NOT_CONFIGURED = "not_configured"  # a notify step whose integration this installation lacks


@dataclass
class _StepRun:
    """The scheduler's bookkeeping for one started step."""

    step: Step
    started_at: str
    fan_out: bool
    unit: Unit
    keys: list[str] = field(default_factory=list)
    results: dict[str, ItemResult] = field(default_factory=dict)
    queue: deque[PlannedItem] = field(default_factory=deque)
    in_flight: int = 0
    failure: ItemResult | None = None
    announced: bool = False  # step.started was recorded
    targets: set[str] = field(default_factory=set)  # what its plans would change, for its handlers' max_targets


class Scheduler:
    """Runs the steps of ``env.playbook`` to completion and returns each step's outcome."""

    def __init__(self, env: RunEnv, executor: StepExecutor, scope: dict[str, Any]) -> None:
        self.env = env
        self.executor = executor
        self.base_scope = scope
        self.steps = {s.id: s for s in env.playbook.steps}
        self.deps = dependencies(env.playbook.steps)
        self.outcomes: dict[str, StepOutcome] = {}
        self.step_docs: dict[str, dict[str, Any]] = {}  # run.json's steps, in finishing order
        self.scope_steps: dict[str, dict[str, Any]] = {}  # templates' steps.<id>, built once a step
        self.runs: dict[str, _StepRun] = {}
        self.futures: dict[concurrent.futures.Future[Any], tuple[str, str, PlannedItem | None]] = {}
        self._completed: queue.Queue[concurrent.futures.Future[Any]] = queue.Queue()  # done futures, in order
        # Work in progress, for a drill's clock (see activity.py): this thread while it is not
        # blocked, and every future until it has been read.
        self.activity: Activity = env.ctx.services.cache.get("activity") or Activity()
        # Approvals and pages wait on this one thread, never on an executor thread (see waits.py).
        self.waiter = Waiter(
            env.ctx.services.cache.get("clock"), after_pass=[waiting_marks(env).flush], activity=self.activity
        )

    # -- the loop ---------------------------------------------------------------------------
    def run(self) -> dict[str, StepOutcome]:
        waiting = [s.id for s in self.env.playbook.steps]
        self.activity.enter()
        try:
            while True:
                waiting = self._start_ready(waiting)
                if not self.futures:
                    break
                self.activity.leave()
                try:
                    done = self._next_done(self.env.doc.due_in())
                finally:
                    self.activity.enter()
                if not done:  # a step's outcome lingered long enough: write run.json
                    self.env.doc.flush()
                for future in done:
                    kind, step_id, planned = self.futures.pop(future)
                    self._on_done(kind, step_id, planned, future)
                    self.activity.leave()  # the future's token: its outcome is read
        except BaseException as e:
            if isinstance(e, KeyboardInterrupt):
                record_interruption(self.env, sorted({step for _, step, _ in self.futures.values()}))
            self.env.stop.set()  # wake approvals and back-off sleeps so worker threads end
            raise
        finally:
            self.waiter.shutdown()
            self.activity.leave()
        for step_id in waiting:  # only reachable if the graph was never validated
            self._finish(step_id, StepOutcome(SKIPPED, reason="never became ready"))
        return {s.id: self.outcomes[s.id] for s in self.env.playbook.steps}

    def _start_ready(self, waiting: list[str]) -> list[str]:
        progressed = True
        while progressed:
            progressed = False
            for step_id in list(waiting):
                if all(dep in self.outcomes for dep in self.deps[step_id]):
                    waiting.remove(step_id)
                    self._start(self.steps[step_id])
                    progressed = True
        return waiting

    def _next_done(self, timeout: float | None) -> list[concurrent.futures.Future[Any]]:
        """Block until a future is done (or ``timeout`` seconds pass); every future done by then.

        Futures report to a queue when they finish: waiting on all of them at once
        (``concurrent.futures.wait``) costs a lock per pending future on every call, which a
        thousand waiting approvals turned into the scheduler's main cost.
        """
        return take_batch(self._completed, timeout)

    def _track(self, future: concurrent.futures.Future[Any], entry: tuple[str, str, PlannedItem | None]) -> None:
        self.futures[future] = entry
        future.add_done_callback(self._completed.put)

    def _submit(self, kind: str, step_id: str, name: str, fn: Any, planned: PlannedItem | None = None) -> None:
        self.activity.enter()
        self._track(self.executor.submit(name, fn), (kind, step_id, planned))

    def _wait(self, kind: str, step_id: str, name: str, work: Any, planned: PlannedItem | None = None) -> None:
        """Hand a wait for people to the waiter thread (an already decided ItemResult completes at once)."""
        if isinstance(work, ItemResult):
            self.activity.enter()
            future: concurrent.futures.Future[Any] = concurrent.futures.Future()
            future.set_result(work)
        else:
            future = self.waiter.submit(name, work)  # takes the future's token
        self._track(future, (kind, step_id, planned))

    # -- scope --------------------------------------------------------------------------------
    def scope(self, **extra: Any) -> dict[str, Any]:
        return {**self.base_scope, "steps": dict(self.scope_steps), **extra}

    def _scope_entry(self, step_id: str, outcome: StepOutcome) -> dict[str, Any]:
        """What templates see of a finished step (``steps.<id>``); a dry-run's outputs are placeholders."""
        output = outcome.output
        if not self.env.live and outcome.status == SUCCEEDED and isinstance(output, dict):
            output = Placeholder(f"{step_id}", output)
        return {"output": output, "status": outcome.status, "error": outcome.error}

    # -- starting a step ------------------------------------------------------------------------
    def _blocking_dependency(self, step: Step) -> str | None:
        if step.needs_outcome == "any":
            return None
        for dep in self.deps[step.id]:
            outcome = self.outcomes[dep]
            if outcome.status in FAILURES and not self.steps[dep].continue_on_error:
                return dep
            if outcome.status == SKIPPED and outcome.reason == SKIP_BY_DEPENDENCY:
                return dep
        return None

    def _start(self, step: Step) -> None:
        blocker = self._blocking_dependency(step)
        if blocker is not None:
            detail = {
                "reason": SKIP_BY_DEPENDENCY,
                "dependency": blocker,
                "dependency_status": self.outcomes[blocker].status,
            }
            self.env.emit("step.skipped", step.id, None, detail)
            self._finish(step.id, StepOutcome(SKIPPED, reason=SKIP_BY_DEPENDENCY, error=f"{blocker} did not succeed"))
            return
        run = _StepRun(step, iso(utcnow()), fan_out=step.for_each is not None, unit=Unit.of_step(step))
        self.runs[step.id] = run
        try:
            self._prepare(run)
        except Exception as e:  # a template error or any other surprise fails this step, not the run
            if not run.announced:
                self.env.emit("step.started", step.id, None, {"action": step.action})
            self._item_failed(run, ItemResult(FAILED, None, str(e), type(e).__name__))
            self._complete(run)

    def _prepare(self, run: _StepRun) -> None:
        step, scope = run.step, self.scope()
        if step.when is not None:
            decided = render_value(step.when, scope, where=f"steps[{step.id}].when")
            if not condition(decided, where=f"steps[{step.id}].when"):
                self.env.emit(
                    "step.skipped", step.id, None, {"reason": SKIP_BY_CONDITION, "when": step.when, "rendered": decided}
                )
                self._finish(step.id, StepOutcome(SKIPPED, reason=SKIP_BY_CONDITION, output=None))
                return
        if step.action == "approval":
            self._start_approval(run, scope)
            return
        if self._not_configured(step):
            return
        items = self._items(step, scope)
        pending: list[tuple[Any, str, dict[str, Any]]] = []
        for item, key in items:
            run.keys.append(key)
            stored = self.env.state.result(step.id, key)
            if stored is not None and stored.status == SUCCEEDED:
                run.results[key] = ItemResult(SUCCEEDED, stored.output, reused=True)
                continue
            where = f"steps[{step.id}].with"
            rendered = render_value(step.with_, {**scope, "item": item} if run.fan_out else scope, where=where)
            pending.append((item, key, rendered))
        detail: dict[str, Any] = {"action": step.action, "mode": self.env.ctx.mode}
        if run.fan_out:
            detail.update(items=len(items), concurrency=step.concurrency or 1)
        reused = [k for k, r in run.results.items() if r.reused]
        if reused:
            detail["reused"] = reused
        self.env.emit("step.started", step.id, None, detail)
        run.announced = True
        self.env.notify(step.id, "running", detail)
        if not pending:
            self._complete(run)
            return
        self._submit("plan", step.id, f"{step.id}{PLAN_SUFFIX}", lambda: plan_items(self.env, run.unit, pending))

    def _not_configured(self, step: Step) -> bool:
        """Skip a notify step whose integration is not configured (see ``Action.unavailable``)."""
        action = self.env.registry.get(step.action)
        missing = action.unavailable(self.env.ctx) if action.kind == ActionKind.NOTIFY else None
        if missing is None:
            return False
        self.env.emit("step.skipped", step.id, None, {"reason": SKIP_NOT_CONFIGURED, "message": missing})
        self._finish(step.id, StepOutcome(SKIPPED, reason=SKIP_NOT_CONFIGURED, error=missing))
        return True

    def _items(self, step: Step, scope: dict[str, Any]) -> list[tuple[Any, str]]:
        if step.for_each is None:
            return [(None, "")]
        items = render_value(step.for_each, scope, where=f"steps[{step.id}].for_each")
        if not isinstance(items, list):
            from flows.errors import TemplateError

            raise TemplateError(f"steps[{step.id}].for_each: expected a list, got {type(items).__name__}")
        seen: dict[str, Any] = {}
        for item in items:
            seen.setdefault(item_key(item), item)  # the same item twice is one effect under one key
        return [(item, key) for key, item in seen.items()]

    def _start_approval(self, run: _StepRun, scope: dict[str, Any]) -> None:
        step = run.step
        run.keys.append("")
        stored = self.env.state.result(step.id, "")
        reusable = stored is not None and stored.status in (SUCCEEDED, REJECTED)
        rendered = {} if reusable else render_value(step.with_, scope, where=f"steps[{step.id}].with")
        self.env.emit("step.started", step.id, None, {"action": step.action, "mode": self.env.ctx.mode})
        run.announced = True
        if stored is not None and reusable:
            run.results[""] = ItemResult(stored.status, stored.output, stored.error, reused=True)
            if stored.status == REJECTED:
                run.failure = run.results[""]
            self._complete(run)
            return
        self.env.notify(step.id, "running", {})
        run.in_flight += 1
        self._wait("item", step.id, step.id, approval_unit(self.env, step, rendered, scope))

    # -- completions ------------------------------------------------------------------------------
    def _on_done(
        self, kind: str, step_id: str, planned: PlannedItem | None, future: concurrent.futures.Future[Any]
    ) -> None:
        run = self.runs[step_id]
        error = future.exception()
        if kind == "handlers":
            self._finish_failed(run)
            return
        if error is not None:
            key = planned.key if planned is not None else ""
            run.in_flight -= 1 if kind == "item" else 0
            run.results[key] = ItemResult(FAILED, None, str(error) or type(error).__name__, type(error).__name__)
            self._item_failed(run, run.results[key])
            self._after_item(run)
            return
        result = future.result()
        if kind == "plan":
            self._on_planned(run, result)
        else:
            run.in_flight -= 1
            key = planned.key if planned is not None else ""
            run.results[key] = result
            if result.status != SUCCEEDED:
                self._item_failed(run, result)
            self._after_item(run)

    def _on_planned(self, run: _StepRun, planned: list[Any]) -> None:
        if planned and not isinstance(planned[0], PlannedItem):
            message = "; ".join(r.message for r in planned)
            self._item_failed(run, ItemResult(FAILED, None, f"guard refused: {message}", "GuardError"))
            self._complete(run)
            return
        run.targets = planned_targets(planned)
        run.queue.extend(planned)
        self._fill(run)

    def _fill(self, run: _StepRun) -> None:
        limit = (run.step.concurrency or 1) if run.fan_out else 1
        while run.queue and run.in_flight < limit:
            planned = run.queue.popleft()
            run.in_flight += 1
            name = f"{run.step.id}[{planned.key}]" if run.fan_out else run.step.id
            step = run.step
            if waits(self.env, run.unit):
                self._wait("item", step.id, name, page_unit(self.env, run.unit, planned), planned)
                continue
            self._submit(
                "item",
                step.id,
                name,
                lambda p=planned: apply_item(self.env, run.unit, p),
                planned,
            )

    def _after_item(self, run: _StepRun) -> None:
        self._fill(run)
        if run.in_flight == 0 and not run.queue:
            self._complete(run)

    def _item_failed(self, run: _StepRun, result: ItemResult) -> None:
        if run.failure is None:
            run.failure = result

    def _complete(self, run: _StepRun) -> None:
        if run.failure is None:
            outputs = [run.results[k].output for k in run.keys if k in run.results]
            output = outputs if run.fan_out else (outputs[0] if outputs else None)
            self._finish(
                run.step.id,
                StepOutcome(
                    SUCCEEDED, output=output, started_at=run.started_at, items=len(run.keys) if run.fan_out else None
                ),
            )
            return
        if run.step.on_failure:
            failure = run.failure
            scope = self.scope(error={"message": failure.error, "type": failure.error_type, "step": run.step.id})
            self.env.emit(
                "step.on_failure", run.step.id, None, {"handlers": len(run.step.on_failure), "error": failure.error}
            )
            handlers = lambda: run_handlers(self.env, run.step, scope, run.targets)  # noqa: E731
            self._submit("handlers", run.step.id, f"{run.step.id}.on_failure", handlers)
            return
        self._finish_failed(run)

    def _finish_failed(self, run: _StepRun) -> None:
        failure = run.failure or ItemResult(FAILED, None, "failed", None)
        statuses = {r.status for r in run.results.values() if r.status != SUCCEEDED} or {failure.status}
        status = REJECTED if REJECTED in statuses else TIMED_OUT if statuses == {TIMED_OUT} else FAILED
        outputs = [run.results[k].output if k in run.results else None for k in run.keys]
        output = outputs if run.fan_out else (outputs[0] if outputs else None)
        self._finish(
            run.step.id,
            StepOutcome(
                status,
                output=output,
                error=failure.error,
                error_type=failure.error_type,
                started_at=run.started_at,
                items=len(run.keys) if run.fan_out else None,
            ),
        )

    def _finish(self, step_id: str, outcome: StepOutcome) -> None:
        outcome.finished_at = iso(utcnow())
        self.outcomes[step_id] = outcome
        self.scope_steps[step_id] = self._scope_entry(step_id, outcome)
        if outcome.status == SUCCEEDED:
            self.env.emit("step.succeeded", step_id, None, {"output": outcome.output})
        elif outcome.status in FAILURES:
            detail = {
                "status": outcome.status,
                "error": outcome.error,
                "error_type": outcome.error_type,
                "continue_on_error": self.steps[step_id].continue_on_error,
            }
            self.env.emit("step.failed", step_id, None, detail)
        assert outcome.status in TERMINAL
        self.step_docs[step_id] = outcome.as_dict()
        self.env.doc.update_soon(steps=dict(self.step_docs))
        self.env.notify(step_id, outcome.status, {"error": outcome.error} if outcome.error else {})

"""Containment first: a run handed to ``fireline serve`` starts at once, and its flow run attaches to it.

Creating a flow run and proposing its states are round trips to the Prefect server, which under
load answers in tenths of seconds; under an alert storm of 50 new incidents the runs waited there,
behind each other, for seconds before their first containment step (``bench/storm.py``: p50 8.6 s,
p95 32 s on a 2-core machine). So the engine does not wait for Prefect. It starts on its own thread
with an :class:`AttachableExecutor`, while the ``respond`` flow run is created beside it. Once the
flow body runs, it attaches (:meth:`Attachment.follow`):

- the units that ran before are recorded as task runs of the flow run after the fact, named as
  usual, in their final states, with their real times in the state's message (the Prefect server
  stamps states with its own clock);
- later units run as task runs of the flow run (:class:`~flows.engine.prefect_executor.PrefectExecutor`);
- step lines logged before are sent to the flow run's log with their original times, and later
  ones as they come; a step that failed before any task run gets its failed ``<step>:plan`` task run;
- answers sent to the flow run (flow run input, variables) count from then on;
- the run record gets ``prefect.attached`` and ``trigger.flow_run_id``;
- the flow run ends in the run's final state.

If the flow run cannot be created (the Prefect server is gone), the run goes on and ends without one.
"""

from __future__ import annotations

import concurrent.futures
import contextvars
import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TypeVar
from uuid import UUID

from flows.engine.approvals import Answer
from flows.engine.executor import PLAN_SUFFIX, take_batch
from flows.engine.prefect_executor import (
    DEFAULT_MAX_WORKERS,
    PrefectExecutor,
    step_item,
    step_line,
    unit_failure,
    unit_step,
)
from flows.engine.turns import HEADING, TURNS, heading
from flows.engine.workers import STEPS, Pool

if TYPE_CHECKING:
    from flows.engine.outcomes import RunSummary

T = TypeVar("T")

_ATTACHMENT: contextvars.ContextVar[Attachment | None] = contextvars.ContextVar("fireline_attachment", default=None)
FOLLOW_POLL = 0.1  # seconds the flow body waits for news of the run before it looks whether the run ended


@dataclass(frozen=True)
class _Unit:
    """A unit that started before the flow run attached: recorded as a task run when it has ended."""

    name: str
    started: float
    ended: float
    error: str | None


@dataclass(frozen=True)
class _Line:
    at: float
    level: int
    text: str


@dataclass(frozen=True)
class _PlanFailed:
    step: str
    message: str


def defer_flow_runs_while(busy: Callable[[], bool] | None) -> None:
    """Hold new flow runs (within their head start) while ``busy()`` says intake is busy; None: never.

    ``fireline serve`` passes its alert spool's :meth:`~flows.triggers.spool.Spool.receiving`:
    during an alert storm the flow runs of the runs it starts cost more of the interpreter than
    the receiver, the dispatcher and the runs' containment together (py-spy), so they wait for
    the storm to pass. The runs themselves never wait.
    """
    HEADING.busy = busy if busy is not None else (lambda: False)


def current() -> Attachment | None:
    """The attachment of the run this flow body follows, if it was started before its flow run."""
    return _ATTACHMENT.get()


class AttachableExecutor:
    """A step executor that runs units at once, and as task runs once a flow run has attached."""

    def __init__(self, *, policies: dict[str, str], news: queue.Queue[Any], first_ended: Callable[[], None]) -> None:
        self._policies = policies
        self._news = news
        self._first_ended = first_ended
        # On the process's started step workers: a new thread per run cost 0.3-0.6 ms under a storm.
        self._pool = Pool(STEPS, DEFAULT_MAX_WORKERS)
        self._lock = threading.Lock()
        self._prefect: PrefectExecutor | None = None

    def submit(self, name: str, fn: Callable[[], T]) -> concurrent.futures.Future[T]:
        with self._lock:
            prefect = self._prefect
        if prefect is not None:
            return prefect.submit(name, fn)
        if name.endswith(PLAN_SUFFIX):
            return self._pool.submit(fn)
        return self._pool.submit(self._early, name, fn)

    def _early(self, name: str, fn: Callable[[], T]) -> T:
        started, error = time.time(), None
        try:
            result = fn()
            error = unit_failure(result)
            return result
        except BaseException as e:
            error = f"{type(e).__name__}: {e}"
            raise
        finally:
            self._news.put(_Unit(name + self._policies.get(unit_step(name), ""), started, time.time(), error))
            self._first_ended()

    def attach(self, prefect: PrefectExecutor) -> None:
        with self._lock:
            self._prefect = prefect

    def shutdown(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)
        with self._lock:
            prefect = self._prefect
        if prefect is not None:
            prefect.shutdown()


class _LateAnswers:
    """An answer source that reads the flow run's answers once one has attached (none before)."""

    def __init__(self) -> None:
        self.source: Any = None

    def poll(self, run_id: str, step_id: str) -> list[Answer]:
        source = self.source
        return source.poll(run_id, step_id) if source is not None else []


class Attachment:
    """One run started before its flow run: what the engine is given, and what the flow body follows."""

    def __init__(self, policies: dict[str, str]) -> None:
        self.policies = policies
        self.news: queue.Queue[Any] = queue.Queue()
        self.executor = AttachableExecutor(policies=policies, news=self.news, first_ended=self._arrived)
        self.answers = _LateAnswers()
        self.trigger_keys = {"flow_run_id": None}  # seeded so that attaching never grows the run's trigger
        self.done = threading.Event()
        self._left = False
        self._arrival = threading.Lock()
        self._turn: object | None = None
        self.summary: RunSummary | None = None
        self.error: BaseException | None = None
        self.run_id = ""

    # -- the engine's side -------------------------------------------------------------------
    def progress(self, step: str, status: str, detail: dict[str, Any]) -> None:
        """The run's step lines, queued for the flow run's log (and failed planning for a task run)."""
        level, line, failed = step_line(step, status, detail)
        self.news.put(_Line(time.time(), level, line))
        if failed:
            self.news.put(_PlanFailed(step, line))
        if status not in ("running", "retrying"):  # waiting for people, skipped, ended: no longer on its way
            self._arrived()

    def head_start(self, most: float) -> None:
        """Wait until no run of this process is on its way to its first unit of work and intake is
        not busy (:func:`defer_flow_runs_while`), or ``most`` seconds.

        A run is on its way until its first unit of work has ended, it waits for people, a step
        ends, or the run ends. The flow run's creation then does not compete for the interpreter
        with containment, this run's or that of the other new runs of an alert storm.
        """
        HEADING.wait_clear(time.monotonic() + most)

    def _arrived(self) -> None:
        with self._arrival:
            if self._left:
                return
            self._left = True
        HEADING.leave()
        if self._turn is not None:
            TURNS.give(self._turn)

    def drive(self, run: Callable[[], RunSummary]) -> None:
        """Run the engine (on the caller's thread), in its turn (:mod:`flows.engine.turns`); mark the end."""
        try:
            self._turn = TURNS.take()
            with heading(self._arrived):
                self.summary = run()
        except BaseException as e:
            self.error = e
        finally:
            self._arrived()
            self.done.set()

    # -- the flow body's side ----------------------------------------------------------------
    def follow(self, flow_run_id: str) -> None:
        """Attach this flow run (in its body), record what happened so far and next, until the run ends."""
        from prefect import get_run_logger

        from flows.engine.prefect_answers import PrefectAnswerSource
        from flows.triggers import live

        prefect = PrefectExecutor(policies=self.policies)
        self.executor.attach(prefect)
        self.answers.source = PrefectAnswerSource(flow_run_id)
        running = live.get(self.run_id)
        if running is not None:
            running.trigger["flow_run_id"] = flow_run_id
            running.record.emit("prefect.attached", detail={"flow_run_id": flow_run_id})
        logger = get_run_logger()
        while True:
            batch = take_batch(self.news, FOLLOW_POLL)
            if batch:
                self._record(batch, flow_run_id, prefect)
            elif self.done.is_set():
                break
        if running is None and self.summary is not None:  # it ended before the flow run existed
            _attach_to_finished(self.summary.run_dir, flow_run_id)
        if self.error is None and self.summary is not None:
            logger.info(f"run {self.run_id} {self.summary.outcome} ({self.summary.mode}): {self.summary.run_dir}")

    def _record(self, batch: list[Any], flow_run_id: str, prefect: PrefectExecutor) -> None:
        from prefect.client.orchestration import get_client
        from prefect.client.schemas.actions import LogCreate

        lines = [
            LogCreate(name="prefect.flow_runs", level=n.level, message=n.text, flow_run_id=UUID(flow_run_id),
                      timestamp=datetime.fromtimestamp(n.at, UTC))  # type: ignore[arg-type]  # pydantic converts datetime
            for n in batch
            if isinstance(n, _Line)
        ]  # fmt: skip
        with get_client(sync_client=True) as client:
            for news in batch:
                if isinstance(news, _Unit):
                    _backfill(client, flow_run_id, news)
                    prefect.task_steps.add(unit_step(news.name))
            if lines:
                client.create_logs(lines)
        for news in batch:
            if isinstance(news, _PlanFailed):
                prefect.fail_unit(news.step, news.message)


def _attach_to_finished(run_dir: Any, flow_run_id: str) -> None:
    """``prefect.attached`` and ``trigger.flow_run_id`` in the record of a run that has already ended."""
    from flows.triggers.record import append_to_finished

    def update(doc: dict[str, Any]) -> None:
        doc.setdefault("trigger", {})["flow_run_id"] = flow_run_id

    note = (0, "prefect.attached", {"flow_run_id": flow_run_id})
    if not append_to_finished(run_dir, [note], update=update):
        logging.getLogger("fireline.prefect").warning(
            "run %s: its flow run %s is not in its record", run_dir, flow_run_id
        )


def _backfill(client: Any, flow_run_id: str, unit: _Unit) -> None:
    """A task run for a unit that ran before the flow run existed, in its final state.

    The Prefect server stamps states with its own clock (it ignores a client's timestamps), so the
    unit's real times are in the state's message, as the run record has them.
    """
    from prefect.client.schemas.objects import State
    from prefect.states import Completed, Failed, Running

    def at(t: float) -> str:
        return datetime.fromtimestamp(t, UTC).strftime("%H:%M:%S.%f")[:-3]

    ran = f"ran {at(unit.started)}-{at(unit.ended)} UTC, before this flow run was created"
    run = client.create_task_run(step_item, UUID(flow_run_id), dynamic_key=f"early-{unit.name}", name=unit.name)
    client.set_task_run_state(run.id, Running(), force=True)
    failed = f"{(unit.error or '')[:2000]} ({ran})"
    final: State[Any] = Completed(message=ran) if unit.error is None else Failed(message=failed)
    client.set_task_run_state(run.id, final, force=True)


def start_attached(
    start_engine: Callable[[Attachment], Callable[[], RunSummary]],
    policies: dict[str, str],
    run_id: str,
    *,
    launch: Callable[..., Any] | None = None,
) -> Attachment:
    """Start the engine at once, in a copy of the caller's context: ``launch(fn, *args)`` runs it on
    another thread (default: a new daemon thread)."""
    attachment = Attachment(policies)
    attachment.run_id = run_id
    HEADING.enter()
    run = start_engine(attachment)
    (launch or _new_thread)(contextvars.copy_context().run, attachment.drive, run)
    return attachment


def _new_thread(fn: Callable[..., Any], *args: Any) -> None:
    threading.Thread(target=fn, args=args, name="fireline-engine", daemon=True).start()


def bound(attachment: Attachment) -> contextvars.Token[Attachment | None]:
    """Make ``attachment`` the one the next ``respond`` flow body on this thread follows."""
    return _ATTACHMENT.set(attachment)


def unbind(token: contextvars.Token[Attachment | None]) -> None:
    _ATTACHMENT.reset(token)

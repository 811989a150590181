"""``contacts.page``: page a contact tree and escalate level by level until someone acknowledges.

The engine runs the escalation as a wait (:meth:`ContactsPage.wait_condition`): the run's single
waiter thread polls it, so a page waiting an hour for an ack holds no executor thread. Called
directly (an ``on_failure`` handler), :meth:`ContactsPage.apply` runs the same escalation in the
calling thread. See :mod:`flows.people.escalation` for the rules and the persisted state.

Acks come from ``fireline ack RUN --as PERSON``, Slack's Ack button (both through
:func:`flows.people.answers.submit_ack`) and, in drills, scripted responders.
"""

from __future__ import annotations

import hashlib
import time
from typing import Any

from pydantic import Field

from flows.actions.context import ActionContext
from flows.actions.registry import Action, ActionKind, ActionParams, ActionResult, Plan, Target, action
from flows.errors import ActionError, ConfigError
from flows.people.notify import PageMessage


class PageParams(ActionParams):
    message: str = Field(min_length=1, max_length=4000, description="What the page says.")
    tree: str | None = Field(default=None, description="A contact tree; default: the playbook's contacts.")
    level: int = Field(default=0, ge=0, le=20, description="The level to start at.")
    wait_for_ack: bool = Field(default=True, description="Escalate until acknowledged (false: page level 0 only).")


class PageResult(ActionResult):
    acked: bool
    acked_by: str | None = None
    level: int | None = None
    paged: list[str] = Field(default_factory=list, description="pass:level keys that were paged.")
    exhausted: bool = False
    status: str = "sent"


def _tree_name(params: PageParams, ctx: ActionContext) -> str:
    name = params.tree or ctx.services.cache.get("people.contacts")
    if not name:
        raise ActionError("contacts.page: no tree given and the playbook names no contacts")
    return str(name)


def _people(ctx: ActionContext, tree: str) -> tuple[Any, Any]:
    """The run's directory and the tree (from the run's snapshot when the tree is the playbook's)."""
    from flows.people.directory import Directory
    from flows.people.load import load_doc
    from flows.people.models import ContactTreeDoc
    from flows.people.snapshot import run_directory
    from flows.people.trees import check_tree, load_tree

    def build() -> tuple[Any, Any]:
        run_dir = ctx.record.dir
        directory: Directory = run_directory(run_dir, ctx.settings)
        copy = run_dir / "state" / "people" / "contact-tree.yaml"
        if copy.is_file() and ctx.services.cache.get("people.contacts") == tree:
            loaded = load_doc(copy, ContactTreeDoc, "ContactTree")
            if check_tree(loaded, directory):
                raise ConfigError(f"contact tree snapshot of {tree!r} does not resolve against the directory")
        else:
            loaded = load_tree(tree, ctx.settings, directory, ctx.services.cache.get("people.library"))
        return directory, loaded.doc

    found: tuple[Any, Any] = ctx.services.get_or_create(f"people.tree.{tree}", build)
    return found


@action("contacts.page", kind=ActionKind.NOTIFY, params=PageParams, result=PageResult)
class ContactsPage(Action[PageParams, PageResult]):
    """Page a contact tree, escalating level by level until someone acknowledges; never silent."""

    def plan(self, params: PageParams, ctx: ActionContext) -> Plan:
        from datetime import UTC, datetime

        from flows.people.trees import plan_level, rotation_of

        tree_name = _tree_name(params, ctx)
        directory, tree = _people(ctx, tree_name)
        labels = ctx.services.cache.get("people.labels", {})
        changes: list[str] = []
        targets: list[Target] = []
        for index, level in enumerate(tree.levels[params.level :], start=params.level):
            lp = plan_level(
                level, index, directory, severity=ctx.incident.severity, labels=labels, at=datetime.now(UTC),
                rotation=rotation_of(ctx.incident.id), drill=ctx.mode == "drill",
            )  # fmt: skip
            if lp.skipped:
                changes.append(f"level {index} ({lp.name}): skipped, {lp.skipped}")
                continue
            who = ", ".join(f"{r.kind}:{r.id}" for r in lp.recipients)
            changes.append(f"level {index} ({lp.name}): page {who}; ack within {lp.ack_timeout:g}s")
            targets.extend(Target(type=f"people:{r.kind}", id=r.id) for r in lp.recipients)
        if tree.fallback:
            changes.append(f"when exhausted: {', '.join(tree.fallback)} and @here in the incident channel")
        summary = f"page {tree_name} from level {params.level}: {params.message}"
        return Plan(action=self.name, summary=summary, targets=targets, changes=changes, mutating=False)

    def wait_condition(self, params: PageParams, ctx: ActionContext, acks: Any = None) -> Any:
        """The escalation as a :class:`~flows.engine.waits.WaitCondition` (its result is a PageResult dict)."""
        from flows.people.delivery import Sender, drill_channel
        from flows.people.escalation import Escalation
        from flows.people.notify import load_notifiers

        tree_name = _tree_name(params, ctx)
        directory, tree = _people(ctx, tree_name)
        notifiers = ctx.services.get_or_create("people.notifiers", lambda: load_notifiers(ctx.settings))
        sender = Sender(notifiers, ctx.mode, ctx.emit, ctx.secret, drill_channel(ctx.settings))
        message = PageMessage(
            run_id=ctx.run_id, incident_id=ctx.incident.id, step=ctx.step_id, level=params.level, text=params.message,
            severity=ctx.incident.severity, mode=ctx.mode, ack_url_or_token=f"fireline ack {ctx.run_id} --as YOU",
            buttons=("ack",),
        )  # fmt: skip
        key = hashlib.sha256(ctx.idempotency_key.encode()).hexdigest()[:16]
        state = ctx.record.dir / "state" / "pages" / f"{ctx.step_id}.{key}.json"
        poller = acks if acks is not None else AckPoller(ctx, [])
        labels = ctx.services.cache.get("people.labels", {})
        return Escalation(tree, directory, sender, message, ctx.emit, state, poller, ctx.incident.severity, labels,
                          params.level, params.wait_for_ack)  # fmt: skip

    def apply(self, params: PageParams, ctx: ActionContext) -> PageResult:
        condition = self.wait_condition(params, ctx)
        condition.start(time.time())
        while True:
            result = condition.poll(time.time())
            if result is not None:
                return to_result(result)
            ctx.sleep(0.2)


def to_result(done: dict[str, Any]) -> PageResult:
    """The PageResult of a finished escalation; an unacknowledged page fails the step."""
    if done.get("status") in ("unacknowledged", "unreachable"):
        raise ActionError(f"contacts.page: {done.get('summary')}")
    return PageResult(changed=True, **{k: v for k, v in done.items() if k in PageResult.model_fields})


class AckPoller:
    """New qualifying acks for one paging step, from the run's ack inbox and scripted responders."""

    def __init__(self, ctx: ActionContext, sources: list[Any]) -> None:
        self.ctx = ctx
        self.sources = sources
        self._seen: set[str] = set()

    def __call__(self, elapsed: float) -> list[dict[str, Any]]:
        """Acks not seen before; ``elapsed`` is the page's age in (possibly virtual) seconds."""
        from flows.people.answers import read_acks

        found: list[dict[str, Any]] = []
        for name, doc in read_acks(self.ctx.record.dir):
            if name in self._seen or doc.get("step") not in (None, self.ctx.step_id):
                continue
            self._seen.add(name)
            if doc.get("refused"):
                self.ctx.emit("page.ack_refused", {"by": doc.get("by"), "via": doc.get("via"),
                                                   "refused_because": doc["refused"]})  # fmt: skip
                continue
            found.append(doc)
        for source in self.sources:
            for index, (person, after) in enumerate(getattr(source, "acks", {}).get(self.ctx.step_id, [])):
                marker = f"scripted:{index}"
                if marker not in self._seen and elapsed >= after:
                    self._seen.add(marker)
                    found.append({"by": person, "via": "script", "authenticated_as": "script"})
        return found[:1]

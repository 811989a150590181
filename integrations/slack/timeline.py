"""The run in Slack: one root message updated in place, and a thread carrying the run's timeline.

:func:`timeline_sink` is attached to every run by the engine (through
``flows.people.sinks.TIMELINE_SINK_MODULES``). It follows the run's event log through a listener,
which only queues; a worker thread posts. The root message (Block Kit: state, steps, waiting
approvals with Approve/Reject buttons, outcome) goes to the run's incident channel once
``slack.open_incident_channel`` has opened it, or at once to ``[slack] channel`` when that is set;
it is updated with ``chat.update`` as the run moves. Timeline entries go into the root message's
thread, batched: every entry that queued while the channel's pacing slot was busy goes out in one
message (at most ``BATCH_LINES`` lines), so a storm of events costs a few messages, and an entry is
only marked posted (``posted_seq`` in ``slack.json``) once Slack accepted it. A failed post is
retried until the run ends; a resumed run continues the same thread from where it stopped.

A drill posts only when a drill channel is configured, there, marked ``[DRILL]``; a dry-run, or a
drill without a drill channel, has no Slack side at all.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from flows.config import Settings
from flows.record.store import RunRecord, read_events
from integrations.slack.blocks import event_line, mark, root_blocks
from integrations.slack.client import SlackCallError, SlackConnection, configured, connection
from integrations.slack.state import read_state, update_state

BATCH_LINES = 40
BATCH_CHARS = 3500  # Slack advises at most 4,000 characters of text a message (chat.postMessage, "Truncating")
_ROOT_GONE = ("message_not_found", "thread_not_found", "cant_update_message")
RETRY_DELAY = 2.0  # seconds between attempts when Slack refuses a post (not a 429: those wait Retry-After)
CLOSING_ATTEMPTS = 2  # failed attempts allowed once the run ended: an unreachable Slack must not hold the run
_WAITING_DONE = ("approval.granted", "approval.rejected", "approval.escalated")


def drill_channel(settings: Settings) -> str | None:
    """The channel drill messages go to: ``[slack] drill_channel``, else ``[people] drill_channel``."""
    people = getattr(settings, "people", None)
    return settings.slack.drill_channel or (getattr(people, "drill_channel", None) if people is not None else None)


class RunView:
    """What the root message shows, folded from the run's events."""

    def __init__(self, run_id: str, mode: str) -> None:
        self.data: dict[str, Any] = {
            "run_id": run_id, "mode": mode, "status": "running", "steps": {}, "waiting": [], "acks": [],
        }  # fmt: skip

    def fold(self, event: dict[str, Any]) -> bool:
        """Apply one event; True when the root message changes."""
        kind, step, detail = str(event.get("type")), event.get("step"), event.get("detail") or {}
        data = self.data
        if kind in ("run.started", "run.resumed"):
            playbook = str(detail.get("playbook", ""))
            incident = detail.get("incident") or {}
            data.update(playbook=playbook, title=incident.get("title") or playbook, severity=incident.get("severity"))
            data.update(status="running", outcome=None)
        elif kind == "run.finished":
            data.update(status="finished", outcome=detail.get("outcome"), waiting=[], acks=[])
        elif kind.startswith("step.") and step and event.get("item") is None:
            status = {"started": "running"}.get(kind[5:], kind[5:])
            if status == "retrying":
                return False
            data["steps"][step] = status
            if status != "running":
                data["acks"] = [s for s in data["acks"] if s != step]
        elif kind == "page.sent" and step and step not in data["acks"]:
            data["acks"] = [*data["acks"], step]
        elif kind == "page.acked" and step:
            data["acks"] = [s for s in data["acks"] if s != step]
        elif kind == "approval.requested" and step:
            data["steps"][step] = "waiting"
            summary = str(detail.get("plan") or detail.get("reason") or "")[:600]
            data["waiting"] = [*[w for w in data["waiting"] if w["step"] != step], {"step": step, "summary": summary}]
        elif kind in _WAITING_DONE and step:
            data["waiting"] = [w for w in data["waiting"] if w["step"] != step]
        else:
            return False
        return True


class TimelineSink:
    """Posts one run's root message and timeline thread; :meth:`close` flushes and stops."""

    def __init__(self, conn: SlackConnection, run_dir: Path, run_id: str, mode: str, channel: str | None) -> None:
        self.conn = conn
        self.run_dir = run_dir
        self.mode = mode
        self.view = RunView(run_id, mode)
        state = read_state(run_dir)
        self.root: dict[str, str] | None = state.get("root")
        self.posted_seq = int(state.get("posted_seq", -1))
        self.channel = (self.root or {}).get("channel") or (state.get("incident_channel") or {}).get("id") or channel
        self.fixed_channel = mode != "live"  # a drill: the drill channel only, never the incident's
        self.pending: list[dict[str, Any]] = []
        self.dirty = True
        self.failures = 0
        self.detach: Callable[[], None] = lambda: None
        self._cond = threading.Condition()
        self._closing = False
        self._thread = threading.Thread(target=self._work, name=f"slack-timeline:{run_id}", daemon=True)

    # -- the listener side (runs on the appending thread: only queue) ------------------------------
    def backfill(self, events_path: Path) -> None:
        """Fold what the log already holds (a resumed run) and queue what was never posted."""
        if events_path.exists():
            for event in read_events(events_path):
                self.on_event(event)

    def on_event(self, event: dict[str, Any]) -> None:
        with self._cond:
            if event.get("type") == "slack.channel_opened" and not self.root and not self.fixed_channel:
                self.channel = str((event.get("detail") or {}).get("channel") or self.channel)
            if self.view.fold(event):
                self.dirty = True
            if int(event.get("seq", -1)) > self.posted_seq:
                self.pending.append(event)
            self._cond.notify()

    def start(self) -> TimelineSink:
        self._thread.start()
        return self

    def close(self, timeout: float = 60.0) -> bool:
        """Flush what is queued (bounded by ``timeout`` seconds) and stop; True when all was posted."""
        with self._cond:
            self._closing = True
            self._cond.notify()
        self._thread.join(timeout)
        self.detach()
        with self._cond:
            self._closing = True
            left = len(self.pending)
        if left:
            update_state(self.run_dir, undelivered=left)
        return left == 0 and not self._thread.is_alive()

    # -- the worker ----------------------------------------------------------------------------------
    def _work(self) -> None:
        while True:
            with self._cond:
                while not self._closing and not (self.channel and (self.pending or self.dirty)):
                    self._cond.wait()
                if not self.channel or (self._closing and not self.pending and not self.dirty):
                    return
                batch = _batch(self.pending)
                dirty, self.dirty = self.dirty, False
                text, blocks = root_blocks(self.view.data)
            try:
                self._send(batch, dirty, text, blocks)
            except SlackCallError as e:
                with self._cond:
                    if e.slack_code in _ROOT_GONE:  # someone deleted the root message: start a new one
                        self.root = None
                    self.dirty = self.dirty or dirty
                    self.failures = self.failures + 1 if self._closing else 0
                    if self.failures >= CLOSING_ATTEMPTS:
                        return
                    if not self._closing:
                        self._cond.wait(RETRY_DELAY)  # woken at once when the run ends

    def _post_root(self, channel: str, text: str, blocks: list[dict[str, Any]]) -> dict[str, Any]:
        try:
            return self.conn.call("chat.postMessage", channel=channel, text=text, blocks=blocks)
        except SlackCallError as e:
            if e.slack_code != "not_in_channel":
                raise
            self.conn.call("conversations.join", channel=channel, paced=False)
            return self.conn.call("chat.postMessage", channel=channel, text=text, blocks=blocks)

    def _send(self, batch: list[dict[str, Any]], dirty: bool, text: str, blocks: list[dict[str, Any]]) -> None:
        assert self.channel is not None  # the worker only sends once a channel is known
        if self.root is None:
            answer = self._post_root(self.channel, text, blocks)
            self.root = {"channel": str(answer["channel"]), "ts": str(answer["ts"])}
            update_state(self.run_dir, root=self.root)
            dirty = False
        if batch:
            lines = "\n".join(event_line(e) for e in batch)
            root = self.root
            self.conn.call(
                "chat.postMessage", channel=root["channel"], thread_ts=root["ts"], text=mark(self.mode) + lines
            )
            last = int(batch[-1].get("seq", 0))
            with self._cond:
                self.pending = [e for e in self.pending if int(e.get("seq", 0)) > last]
                self.posted_seq = last
            update_state(self.run_dir, posted_seq=last)
        if dirty:
            self.conn.call("chat.update", channel=self.root["channel"], ts=self.root["ts"], text=text, blocks=blocks)


def _batch(pending: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The oldest pending entries that fit one thread message (lines and characters)."""
    batch: list[dict[str, Any]] = []
    size = 0
    for event in sorted(pending, key=lambda e: int(e.get("seq", 0))):
        size += len(event_line(event)) + 1
        if batch and (len(batch) >= BATCH_LINES or size > BATCH_CHARS):
            break
        batch.append(event)
    return batch


def timeline_sink(record: RunRecord, *, settings: Settings, run_id: str, mode: str) -> TimelineSink | None:
    """The Slack timeline of a run, attached to its event log; None when Slack is not configured.

    A live run posts to its incident channel (or ``[slack] channel``); a drill only to the drill
    channel; a dry-run nowhere.
    """
    if not configured(settings):
        return None
    if mode == "dry-run":
        return None
    channel = settings.slack.channel if mode == "live" else drill_channel(settings)
    if mode != "live" and not channel:
        return None
    sink = TimelineSink(connection(settings), record.dir, run_id, mode, channel)
    sink.backfill(record.events.path)
    sink.detach = record.events.add_listener(sink.on_event)
    return sink.start()

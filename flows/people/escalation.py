"""One page's escalation through a contact tree, as a condition the run's waiter polls.

Level 0 is paged, then each level in turn when the one before does not acknowledge within its
``ack_timeout``; ``repeat`` runs the levels again after a pause. When every pass is exhausted the
fallback targets and ``@here`` in the incident channel are paged, an ack-SLO breach is recorded and
reminders follow every ``reminder_interval`` until an ack (or ``reminders`` have gone out, when the
step fails). The first qualifying ack stops all of it.

State (``state/pages/<step>.<key>.json``) is written before each page goes out: the pass and level
reached, what was paged, and the deadlines in epoch seconds. A resumed run reads it back: a level
already paged is never paged again, and the deadlines stay the original ones.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from flows.people.delivery import Emit, Sender
from flows.people.directory import Directory
from flows.people.models import ContactTreeDoc
from flows.people.notify import INCIDENT_CHANNEL, PageMessage, Recipient
from flows.people.trees import drill_filter, expand, matches, plan_level, rotation_of
from flows.record.store import iso, read_json_object, write_atomic


@dataclass
class Escalation:
    """The escalation of one page (see the module docstring); ``poll`` returns the result when done."""

    tree: ContactTreeDoc
    directory: Directory
    sender: Sender
    message: PageMessage
    emit: Emit
    state_file: Path
    ack_poll: Any  # callable (seconds since the page started) -> new acks [{"by", "via", ...}]
    severity: str
    labels: dict[str, str]
    start_level: int = 0
    wait_for_ack: bool = True
    s: dict[str, Any] = field(default_factory=dict)

    # -- the WaitCondition protocol -------------------------------------------------------------
    def start(self, now: float) -> None:
        saved = read_json_object(self.state_file)
        if saved:
            self.s = saved
            self.emit(
                "page.resumed", {"level": self.s["level"], "pass": self.s["pass"], "deadline": _at(self.s["deadline"])}
            )
            return
        self.s = {"started": now, "pass": 0, "level": self.start_level, "deadline": now, "paged": [],
                  "phase": "levels", "reminders": 0, "acked": None, "slo_breached": False, "delivered": 0}  # fmt: skip
        if not matches(self.tree.when, self.severity, self.labels):
            self.s["phase"] = "skipped"
        self._engage(now)

    def next_due(self) -> float | None:
        if self.s.get("phase") in ("done", "skipped") or not self.s:
            return None
        dues = [float(self.s["deadline"])]
        if self.tree.ack_slo is not None and not self.s["slo_breached"]:
            dues.append(float(self.s["started"]) + self.tree.ack_slo)
        return min(dues)

    def poll(self, now: float) -> dict[str, Any] | None:
        if self.s.get("phase") == "skipped":
            return self._finish("skipped", "the tree's when does not match the incident")
        if self.s.get("phase") == "done":  # finished before a crash, its result not yet stored
            status = str(self.s.get("final_status") or "acknowledged")
            return self._result(status == "acknowledged", f"finished before the restart: {status}", status=status)
        for ack in self.ack_poll(now - float(self.s["started"])):
            self.s["acked"] = ack
            self.s["phase"] = "done"
            self._save()
            after = round(now - float(self.s["started"]), 3)
            self.emit("page.acked", {"by": ack["by"], "via": ack.get("via"), "level": self.s["level"],
                                     "pass": self.s["pass"], "seconds_to_ack": after})  # fmt: skip
            return self._result(True, f"acknowledged by {ack['by']} after {after:g}s")
        if self.s.get("unreachable"):
            return self._finish(
                "unreachable", "nobody could be reached: every delivery failed (see page.delivery_failed)"
            )
        if self.message.mode == "dry-run" or not self.wait_for_ack:
            return self._result(False, "paged; no ack awaited" if self.wait_for_ack is False else "dry-run: would page")
        self._check_slo(now)
        if now < float(self.s["deadline"]):
            return None
        if self.s["phase"] == "levels":
            self._advance(now)
        elif self.s["phase"] == "between":
            self.s.update(phase="levels", level=0)
            self.s["pass"] += 1
            self._engage(now)
        elif self.s["phase"] == "exhausted":
            if self.s["reminders"] >= self.tree.reminders:
                return self._finish("unacknowledged", f"nobody acknowledged after {self.s['reminders']} reminders")
            self.s["reminders"] += 1
            self.s["deadline"] = now + self.tree.reminder_interval
            self._save()
            self.emit("page.reminder", {"number": self.s["reminders"]})
            self._page_fallback(reminder=True)
        return None

    # -- the escalation ---------------------------------------------------------------------
    def _engage(self, now: float) -> None:
        """Page the current level, skipping levels that are filtered out or empty."""
        while self.s["phase"] == "levels":
            index = int(self.s["level"])
            if index >= len(self.tree.levels):
                self._exhaust(now)
                return
            key = f"{self.s['pass']}:{index}"
            plan = plan_level(self.tree.levels[index], index, self.directory, severity=self.severity,
                              labels=self.labels, at=datetime.fromtimestamp(now, UTC),
                              rotation=rotation_of(self.message.incident_id) + self.s["pass"],
                              drill=self.message.mode == "drill")  # fmt: skip
            if plan.skipped is not None:
                self.emit("page.level_skipped", {"level": index, "pass": self.s["pass"], "reason": plan.skipped})
                self.s["level"] = index + 1
                continue
            if key in self.s["paged"]:
                return  # resumed: this level was paged before the crash; its deadline stands
            self.s["paged"].append(key)
            self.s["deadline"] = now + plan.ack_timeout
            self._save()  # before sending: a crash after it never pages the level twice
            message = _with(self.message, level=index)
            deliveries = self.sender.send_all(
                plan.recipients, message, level_name=plan.name, **{"pass": self.s["pass"]}
            )
            self._count(deliveries)
            if not any(d.ok for d in deliveries):
                self.emit("page.escalated", {"from": index, "to": index + 1, "because": "every delivery failed"})
                self.s["level"] = index + 1
                continue
            return

    def _advance(self, now: float) -> None:
        index = int(self.s["level"])
        self.emit("page.escalated", {"from": index, "to": index + 1, "pass": self.s["pass"],
                                     "because": f"no ack within {self.tree.levels[index].ack_timeout:g}s"})  # fmt: skip
        self.s["level"] = index + 1
        self._engage(now)

    def _exhaust(self, now: float) -> None:
        # A pass that reached nobody is not repeated: the same broken channels would fail again, later.
        if self.s["pass"] < self.tree.repeat.times and self.s.get("delivered"):
            self.s.update(phase="between", deadline=now + self.tree.repeat.wait)
            self._save()
            self.emit("page.repeating", {"pass": self.s["pass"] + 1, "after": self.tree.repeat.wait})
            return
        self.s.update(phase="exhausted", deadline=now + self.tree.reminder_interval)
        self._save()
        self.emit("page.exhausted", {"levels": len(self.tree.levels), "passes": self.s["pass"] + 1})
        self._breach(now)
        self._page_fallback(reminder=False)

    def _page_fallback(self, *, reminder: bool) -> None:
        recipients = [r for t in self.tree.fallback for r in expand(t, self.directory)]
        recipients = drill_filter(recipients, self.directory, self.message.mode == "drill")
        text = ("Reminder: still unacknowledged: " if reminder else "Nobody acknowledged: ") + self.message.text
        message = _with(self.message, level=-1, text=text)
        self._count(self.sender.send_all(recipients, message, fallback=True, reminder=reminder))
        here = Recipient("slack_channel", INCIDENT_CHANNEL, "incident channel")
        self._count(
            self.sender.send_all([here], _with(message, text=f"@here {text}"), fallback=True, reminder=reminder)
        )
        if not reminder and not self.s.get("delivered"):
            # Every channel failed: reminders into the same broken channels would be silence.
            self.s["unreachable"] = True
            self._save()
            self.emit("page.unreachable", {"reason": "every delivery failed, fallback and incident channel included"})

    def _count(self, deliveries: list[Any]) -> None:
        self.s["delivered"] = int(self.s.get("delivered", 0)) + sum(1 for d in deliveries if d.ok)

    def _check_slo(self, now: float) -> None:
        slo = self.tree.ack_slo
        if slo is not None and not self.s["slo_breached"] and now - float(self.s["started"]) >= slo:
            self._breach(now)

    def _breach(self, now: float) -> None:
        if self.s["slo_breached"]:
            return
        self.s["slo_breached"] = True
        self._save()
        slo = self.tree.ack_slo
        self.emit("page.ack_slo_breached", {"seconds_unacknowledged": round(now - float(self.s["started"]), 3),
                                            "ack_slo": slo})  # fmt: skip

    # -- results and state --------------------------------------------------------------------
    def _finish(self, status: str, summary: str, ok: bool = False) -> dict[str, Any]:
        self.s["phase"] = "done"
        self.s["final_status"] = status
        self._save()
        return self._result(ok, summary, status=status)

    def _result(self, acked: bool, summary: str, status: str | None = None) -> dict[str, Any]:
        ack = self.s.get("acked") or {}
        exhausted = self.s.get("phase") == "exhausted" or status == "unacknowledged"
        return {"acked": acked, "acked_by": ack.get("by"), "level": self.s.get("level"), "pass": self.s.get("pass"),
                "paged": list(self.s.get("paged", [])), "exhausted": exhausted,
                "status": status or ("acknowledged" if acked else "sent"), "summary": summary}  # fmt: skip

    def _save(self) -> None:
        write_atomic(self.state_file, json.dumps(self.s, default=str).encode())


def _with(message: PageMessage, **changes: Any) -> PageMessage:
    from dataclasses import replace

    return replace(message, **changes)


def _at(epoch: Any) -> str:
    return iso(datetime.fromtimestamp(float(epoch), UTC))

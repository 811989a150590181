"""Builds the fixed run records under ``tests/data/run-records/`` with the real engine.

The records are committed: the golden reports are rendered from them, so they must not change
from one test run to the next. Rebuild them (and then the goldens) only when the record format
changes::

    .venv/bin/python -m tests.flows.report.records            # rewrites tests/data/run-records/
    REGEN_GOLDEN=1 .venv/bin/python -m pytest tests/flows/report/test_golden.py

``succeeded`` and ``rollback`` are live runs of the shipped playbooks against the sandbox (moto),
copied from ``fireline sandbox demo --runs-dir DIR`` (pass ``--demo DIR``); the others run the test
actions of :mod:`tests.flows.report.report_actions`.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from flows.actions.registry import Registry
from flows.engine import Answer, Responders, resume_run, run_playbook
from flows.engine.undo import undo_run
from tests.flows.engine.engine_helpers import make_settings, write_playbook

DATA = Path(__file__).resolve().parents[2] / "data" / "run-records"
ROOT = Path(__file__).resolve().parents[3]
ALERT = {
    "source": "alertmanager",
    "status": "firing",
    "fingerprint": "5f1c0ffee0ddba11",
    "starts_at": "2026-11-30T09:55:00Z",
    "labels": {"alertname": "InferenceHostSuspiciousEgress", "severity": "critical", "team": "ml-platform"},
    "annotations": {
        "summary": "Egress to 203.0.113.7:4444 from i-0aaa\n## Approvals\n| forged | row |",
        "runbook": "<script>alert('x')</script> [click](javascript:alert(1))",
    },
}
TRIGGER = {"by": "user:mallory\n## Undone by nobody <b>", "how": "cli"}


def registry() -> Registry:
    reg = Registry()
    reg.register_module("flows.actions.control")
    reg.register_module("tests.flows.engine.plugin_actions")
    reg.register_module("tests.flows.report.report_actions")
    return reg


def _isolate(ids: list[str], tags: dict[str, str] | None = None, **extra: Any) -> dict[str, Any]:
    tags = tags if tags is not None else {"env": "ml-prod"}
    each = "{{ " + json.dumps(ids) + " }}"
    return {"action": "reporttest.isolate", "for_each": each, "concurrency": 2,
            "with": {"instance_id": "{{ item }}", "tags": tags}, **extra}  # fmt: skip


def _snapshot(ids: list[str]) -> dict[str, Any]:
    each = "{{ " + json.dumps(ids) + " }}"
    return {"id": "snapshot-disks", "action": "reporttest.snapshot", "for_each": each, "concurrency": 2,
            "with": {"instance_id": "{{ item }}", "tags": {"env": "ml-prod"}}}  # fmt: skip


def build_failed(tmp: Path) -> Path:
    """AccessDenied on the containment step, after a step that needed a retry."""
    flaky = tmp / "flaky"
    flaky.mkdir()
    steps = [
        _snapshot(["i-0aaa"]),
        {"id": "check-egress", "action": "test.flaky", "with": {"target": str(flaky), "failures": 1},
         "retries": {"attempts": 3, "backoff": "fixed", "initial": "10ms"}},
        {"id": "isolate-hosts", "action": "reporttest.denied",
         "with": {"instance_id": "i-0aaa", "tags": {"env": "ml-prod"}}},
        {"id": "after", "action": "log", "with": {"message": "never runs"}},
    ]  # fmt: skip
    book = write_playbook(tmp, steps, name="failed-book", guards={"require_tags": {"env": "ml-prod"}})
    return run_playbook(book, settings=make_settings(tmp), registry=registry(), alert=ALERT, trigger=TRIGGER).run_dir


def build_with_errors(tmp: Path) -> Path:
    """A continue_on_error evidence step failed; containment went on."""
    steps = [
        {"id": "collect-logs", "action": "reporttest.denied", "with": {"instance_id": "i-0aaa", "tags": {}},
         "continue_on_error": True},
        {**_isolate(["i-0aaa"]), "id": "isolate-hosts", "needs": []},
    ]  # fmt: skip
    book = write_playbook(tmp, steps, name="errors-book")
    return run_playbook(book, settings=make_settings(tmp), registry=registry(), alert=ALERT).run_dir


def build_rejected(tmp: Path) -> Path:
    """Pages escalate before an ack; a self-approval is refused; then the approval is rejected."""
    steps = [
        {"id": "page-oncall", "action": "reporttest.page", "with": {"message": "isolate i-0aaa?"}},
        {"id": "approve-isolation", "action": "approval",
         "with": {"approvers": ["group:ml-security"], "reason": "Isolate i-0aaa"}},
        {**_isolate(["i-0aaa"]), "id": "isolate-hosts"},
    ]  # fmt: skip
    book = write_playbook(tmp, steps, name="rejected-book")
    settings = make_settings(tmp, approvers={"ml-security": ["oncall", "bob"]})
    answers = [
        Answer(by="user:oncall", decision="approve", reason="looks bad"),
        Answer(by="user:bob", decision="reject", reason="the egress is the nightly backup job"),
    ]
    responders = Responders(approvals={"approve-isolation": answers})
    trigger = {"by": "user:oncall", "how": "cli"}
    run_dir = run_playbook(book, settings=settings, registry=registry(), alert=ALERT, trigger=trigger,
                           responders=responders).run_dir  # fmt: skip
    data = json.loads((run_dir / "run.json").read_text())
    data["people"] = {"directory": None, "approvers_file": None,
                      "contact_tree": {"name": "ml-platform-primary", "version": 3, "sha256": "ab" * 32}}  # fmt: skip
    (run_dir / "run.json").write_text(json.dumps(data, indent=2))
    return run_dir


def build_resumed(tmp: Path) -> Path:
    """Killed mid fan-out (after the second effect), then resumed; a guard refused before and after."""
    counter = tmp / "counter"
    counter.mkdir()
    steps = [
        {"id": "guarded", "action": "test.touch", "with": {"ids": ["db-1"], "tags": {"fireline/protected": "true"}},
         "continue_on_error": True},
        {"id": "bump", "action": "test.counter.bump", "needs": [], "for_each": "{{ ['a', 'b', 'c'] }}",
         "with": {"target": str(counter), "name": "{{ item }}"}},
    ]  # fmt: skip
    book = write_playbook(tmp, steps, name="resumed-book")
    env = {**os.environ, "FIRELINE_TEST_KILL_AT": "2:after", "PYTHONPATH": str(ROOT)}
    run_id = "20261130T100000Z-resumed-book-000001"
    subprocess.run([sys.executable, "-m", "tests.flows.engine.kill_runner", "run", str(tmp), run_id, str(book)],
                   env=env, cwd=ROOT, check=False)  # fmt: skip
    from tests.flows.engine.engine_helpers import make_registry

    reg = make_registry()
    return resume_run(run_id, settings=make_settings(tmp), registry=reg).run_dir


def build_undone(tmp: Path) -> Path:
    """Two hosts isolated, then undone by a named person with a reason."""
    steps = [_snapshot(["i-0aaa", "i-0bbb"]), {**_isolate(["i-0aaa", "i-0bbb"]), "id": "isolate-hosts"}]
    book = write_playbook(tmp, steps, name="undone-book")
    settings = make_settings(tmp)
    run_dir = run_playbook(book, settings=settings, registry=registry(), alert=ALERT).run_dir
    undo_run(run_dir, settings=settings, registry=registry(), by="user:alice", reason="false positive: backup job")
    return run_dir


def build_dry_run(tmp: Path) -> Path:
    """What would have happened: one host lacks the required tag, another's tags are unknown."""
    steps = [
        _snapshot(["i-0aaa"]),
        {**_isolate(["i-0aaa"]), "id": "isolate-tagged"},
        {**_isolate(["i-0ccc"], {"env": "dev"}), "id": "isolate-untagged"},
        {"id": "isolate-unknown", "action": "reporttest.isolate", "with": {"instance_id": "i-0ddd"}},
    ]
    book = write_playbook(tmp, steps, name="dry-book", guards={"require_tags": {"env": "ml-prod"}})
    return run_playbook(book, settings=make_settings(tmp), registry=registry(), alert=ALERT, mode="dry-run").run_dir


BUILDERS = {
    "failed": build_failed,
    "succeeded-with-errors": build_with_errors,
    "rejected": build_rejected,
    "resumed": build_resumed,
    "undone": build_undone,
    "dry-run": build_dry_run,
}


def _portable(run_dir: Path, name: str) -> None:
    """Drop what is machine-specific (absolute paths, locks) so the record reads the same anywhere."""
    for path in (run_dir / "run.json", run_dir / "state" / "run.json"):
        if path.exists():
            data = json.loads(path.read_text())
            if isinstance(data.get("playbook"), dict):
                data["playbook"]["path"] = f"playbooks/{data['playbook']['name']}.yaml"
            if "playbook_path" in data:
                data["playbook_path"] = f"playbooks/{Path(data['playbook_path']).name}"
            path.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n")
    for extra in ("report.md", "report.html", "report.json", "state/owner.lock", "state/lock.json"):
        (run_dir / extra).unlink(missing_ok=True)
    for folder in ("state/intents", "state/results", "state/approvals", "state/people", "inbox"):
        shutil.rmtree(run_dir / folder, ignore_errors=True)


def main(argv: list[str]) -> int:
    demo = Path(argv[argv.index("--demo") + 1]) if "--demo" in argv else None
    for name, build in BUILDERS.items():
        with tempfile.TemporaryDirectory() as tmp:
            run_dir = build(Path(tmp))
            target = DATA / name
            shutil.rmtree(target, ignore_errors=True)
            shutil.copytree(run_dir, target)
            _portable(target, name)
            print(f"{name}: {target}")
    if demo is not None:
        for name, pattern in (("succeeded", "*compromised-inference-host*"), ("rollback", "*model-poisoning*")):
            source = next(demo.glob(pattern))
            target = DATA / name
            shutil.rmtree(target, ignore_errors=True)
            shutil.copytree(source, target)
            _portable(target, name)
            print(f"{name}: {target}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

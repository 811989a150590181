"""Reports of real runs: secrets never reach them, values are escaped, formats are honoured, outcomes are true."""

from __future__ import annotations

import json
import re
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from flows.engine import Answer, Responders, run_playbook
from flows.engine.undo import undo_run
from flows.report import build, render, write_reports
from tests.flows.engine.engine_helpers import make_settings, write_playbook
from tests.flows.report.records import registry

SECRET = "hunter2-planted-secret-value"


@pytest.fixture
def leaky_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A live run whose secret input is echoed in an output, a log line and an error message."""
    monkeypatch.setenv("FL_REPORT_TOKEN", SECRET)
    steps = [
        {"id": "use", "action": "reporttest.leak", "with": {"token": "{{ inputs.token }}"}},
        {"id": "say", "action": "log", "with": {"message": "token was {{ steps.use.output.echoed }}"}},
        {"id": "fail", "action": "reporttest.leak", "with": {"token": "{{ inputs.token }}", "fail": True},
         "continue_on_error": True},
    ]  # fmt: skip
    book = write_playbook(
        tmp_path,
        steps,
        inputs={"token": {"type": "string", "required": True}},
        report={"formats": ["markdown", "html", "json"]},
    )
    summary = run_playbook(
        book, inputs={"token": "secret:FL_REPORT_TOKEN"}, settings=make_settings(tmp_path), registry=registry()
    )
    assert summary.steps["use"].output["echoed"] == SECRET  # the action did get the value, in memory
    return summary.run_dir


def test_planted_secrets_appear_in_no_artifact(leaky_run: Path) -> None:
    paths = write_reports(leaky_run, ["md", "html", "json"])
    assert {p.name for p in paths} == {"report.md", "report.html", "report.json"}
    found = [p for p in leaky_run.rglob("*") if p.is_file() and SECRET in p.read_text(errors="replace")]
    assert found == []
    md = (leaky_run / "report.md").read_text()
    assert "login refused for token \\*\\*\\*" in md  # the error is there, its secret is not
    assert "`token`: secret:\\*\\*\\*" in md  # inputs show that a secret was used, not which value


def test_a_secret_named_field_is_masked_even_if_the_record_kept_it(tmp_path: Path) -> None:
    import shutil

    from tests.flows.report.conftest import RUNS

    run = tmp_path / "run"
    shutil.copytree(RUNS / "succeeded-with-errors", run)
    data = json.loads((run / "run.json").read_text())
    data["steps"]["isolate-hosts"]["output"][0]["api_token"] = "plain-text-token-1234"
    (run / "run.json").write_text(json.dumps(data))
    for fmt in ("md", "html", "json"):
        assert "plain-text-token-1234" not in render(build(run, now="2026-01-01T00:00:00Z"), fmt)


def test_report_formats_of_the_playbook_are_honoured(leaky_run: Path) -> None:
    assert {p.name for p in leaky_run.glob("report.*")} == {"report.md", "report.html", "report.json"}
    doc = json.loads((leaky_run / "report.json").read_text())
    assert doc["schema"] == "fireline.report/v1"
    assert doc["run"]["outcome"] == "succeeded_with_errors"


def test_only_html_and_json_when_asked(tmp_path: Path) -> None:
    steps = [{"id": "hello", "action": "log", "with": {"message": "hi"}}]
    book = write_playbook(tmp_path, steps, report={"formats": ["html", "json"]})
    summary = run_playbook(book, settings=make_settings(tmp_path), registry=registry())
    assert {p.name for p in summary.run_dir.glob("report.*")} == {"report.html", "report.json"}


class _Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.urls: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        self.urls += [v or "" for k, v in attrs if k in ("src", "href", "action", "xlink:href")]


def _html(case: str) -> str:
    from tests.flows.report.conftest import NOW, RUNS

    return render(build(RUNS / case, now=NOW), "html")


@pytest.mark.parametrize("case", ["failed", "rejected", "dry-run"])
def test_html_escapes_every_value_and_fetches_nothing(case: str) -> None:
    text = _html(case)
    parser = _Tags()
    parser.feed(text)
    assert "script" not in parser.tags
    assert "b" not in parser.tags
    assert parser.urls == []  # no link, no image, no stylesheet: nothing to fetch
    assert not re.search(r"https?://", text)
    assert "Content-Security-Policy" in text
    assert "default-src 'none'" in text
    assert parser.tags.count("svg") == 1


def test_markdown_values_cannot_forge_sections() -> None:
    from tests.flows.report.conftest import NOW, RUNS

    md = render(build(RUNS / "failed", now=NOW), "md")
    headings = [line for line in md.splitlines() if line.startswith("#")]
    assert "## Approvals" in headings  # the report's own
    assert all(not h.startswith("## Undone") for h in headings)
    assert md.count("\n## Approvals\n") == 1  # the alert's "## Approvals" did not become a section
    assert "user:mallory \\#\\# Undone by nobody \\<b\\>" in md  # the --as text, on its line, inert
    rows = [line for line in md.splitlines() if "forged" in line]
    assert rows
    assert all(line.startswith("| Annotation") for line in rows)


def _run(tmp_path: Path, steps: list[dict[str, Any]], **kw: Any) -> Path:
    book = write_playbook(tmp_path, steps, report={"formats": ["json", "markdown"]})
    return run_playbook(book, settings=make_settings(tmp_path), registry=registry(), **kw).run_dir


def test_fan_out_steps_name_their_ids_not_a_count(tmp_path: Path) -> None:
    steps = [{"id": "iso", "action": "reporttest.isolate", "for_each": "{{ ['i-0aaa', 'i-0bbb'] }}",
              "with": {"instance_id": "{{ item }}", "tags": {}}}]  # fmt: skip
    run_dir = _run(tmp_path, steps)
    md = (run_dir / "report.md").read_text()
    assert "i-0aaa" in md
    assert "i-0bbb" in md
    summary = md.split("## Summary")[1].split("##")[0]
    assert "iso: i-0aaa, i-0bbb" in summary
    assert "item(s)" not in summary
    assert "2 host(s) isolated" not in md  # a test action is not an EC2 isolation: generic fact instead
    doc = json.loads((run_dir / "report.json").read_text())
    step = next(s for s in doc["actions"] if s["id"] == "iso")
    assert [i["item"] for i in step["items"]] == ["i-0aaa", "i-0bbb"]


def test_undo_marks_the_header_with_who_and_when(tmp_path: Path) -> None:
    steps = [{"id": "iso", "action": "reporttest.isolate", "for_each": "{{ ['i-0aaa', 'i-0bbb'] }}",
              "with": {"instance_id": "{{ item }}", "tags": {}}}]  # fmt: skip
    run_dir = _run(tmp_path, steps)
    settings = make_settings(tmp_path)
    assert undo_run(run_dir, "iso", settings=settings, registry=registry(), dry_run=True)[0].status == "would_undo"
    assert "undone" not in (run_dir / "report.md").read_text().splitlines()[0]  # a dry-run undo changed nothing
    undo_run(run_dir, settings=settings, registry=registry(), by="user:alice", reason="false positive")
    md = (run_dir / "report.md").read_text()
    assert md.splitlines()[0].endswith("— undone")
    assert "by user:alice at" in md
    assert "false positive" in md
    doc = json.loads((run_dir / "report.json").read_text())
    assert doc["run"]["undone"]["state"] == "fully"
    assert doc["run"]["undone"]["by"] == "user:alice"


def test_rejection_and_refused_answer_are_in_the_approvals(tmp_path: Path) -> None:
    steps = [{"id": "ok", "action": "approval", "with": {"approvers": ["group:sec"]}},
             {"id": "after", "action": "log", "with": {"message": "x"}}]  # fmt: skip
    book = write_playbook(tmp_path, steps, report={"formats": ["json"]})
    answers = [Answer(by="user:me", decision="approve", reason="mine"),
               Answer(by="user:bob", decision="reject", reason="not now")]  # fmt: skip
    summary = run_playbook(
        book, settings=make_settings(tmp_path, approvers={"sec": ["me", "bob"]}), registry=registry(),
        trigger={"by": "user:me"}, responders=Responders(approvals={"ok": answers}),
    )  # fmt: skip
    doc = json.loads((summary.run_dir / "report.json").read_text())
    events = {a["event"]: a for a in doc["approvals"]}
    assert events["refused"]["who"] == "me"
    assert "triggered this run" in events["refused"]["refused_because"]
    assert events["rejected"]["who"] == "bob"
    assert events["rejected"]["why"] == "not now"
    assert doc["run"]["outcome"] == "rejected"


def test_undoing_one_of_two_undoable_steps_is_partly_undone(tmp_path: Path) -> None:
    iso = {"action": "reporttest.isolate", "with": {"instance_id": "i-0aaa", "tags": {}}}
    run_dir = _run(tmp_path, [{"id": "first", **iso}, {"id": "second", **iso}])
    undo_run(run_dir, "second", settings=make_settings(tmp_path), registry=registry(), by="user:carol", reason="")
    doc = json.loads((run_dir / "report.json").read_text())
    assert (doc["run"]["label"], doc["run"]["undone"]["undone"], doc["run"]["undone"]["effects"]) == (
        "partly undone",
        1,
        2,
    )
    assert (run_dir / "report.md").read_text().splitlines()[0].endswith("— partly undone")

"""Guards against the targets that plans declare: max_targets, protected and required tags, per mode."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from flows.actions.registry import Plan, Target
from flows.engine import run_playbook
from flows.engine.guards import check_plans
from flows.language.spec import Guards
from tests.flows.engine.engine_helpers import events, make_registry, make_settings, write_playbook


def _run(tmp_path: Path, steps: list[dict[str, Any]], guards: dict[str, Any], mode: str = "live") -> Any:
    path = write_playbook(tmp_path, steps, guards=guards)
    return run_playbook(path, settings=make_settings(tmp_path), registry=make_registry(), mode=mode)  # type: ignore[arg-type]


def test_max_targets_counts_all_items_of_a_fan_out(tmp_path: Path) -> None:
    steps = [
        {
            "id": "touch",
            "action": "test.touch",
            "for_each": ["a", "b", "c"],
            "concurrency": 3,
            "with": {"ids": ["{{ item }}"], "tags": {"env": "prod"}},
        }
    ]
    summary = _run(tmp_path, steps, {"max_targets": 2})
    assert summary.steps["touch"].status == "failed"
    assert "max_targets 2" in (summary.steps["touch"].error or "")
    (refused,) = events(summary.run_dir, "guard.refused", "touch")
    assert refused["detail"]["guard"] == "max_targets"
    assert events(summary.run_dir, "step.succeeded", "touch") == []  # nothing was applied


def test_within_limits_runs(tmp_path: Path) -> None:
    steps = [
        {
            "id": "touch",
            "action": "test.touch",
            "for_each": ["a", "b"],
            "with": {"ids": ["{{ item }}"], "tags": {"env": "prod"}},
        }
    ]
    assert _run(tmp_path, steps, {"max_targets": 2, "require_tags": {"env": "prod"}}).outcome == "succeeded"


def test_protected_tag_refuses_even_without_playbook_guards(tmp_path: Path) -> None:
    steps = [{"id": "touch", "action": "test.touch", "with": {"ids": ["a"], "tags": {"fireline/protected": "true"}}}]
    summary = _run(tmp_path, steps, {})
    assert summary.steps["touch"].status == "failed"
    assert "protected tag fireline/protected=true" in (summary.steps["touch"].error or "")


def test_unknown_tags_with_require_tags_are_refused_live(tmp_path: Path) -> None:
    steps = [{"id": "touch", "action": "test.touch", "with": {"ids": ["a"], "tags": None}}]
    summary = _run(tmp_path, steps, {"require_tags": {"env": "prod"}})
    assert summary.steps["touch"].status == "failed"
    assert "tags are unknown" in (summary.steps["touch"].error or "")


def test_dry_run_reports_would_refuse_and_goes_on(tmp_path: Path) -> None:
    steps = [{"id": "touch", "action": "test.touch", "with": {"ids": ["a", "b", "c"], "tags": {"env": "dev"}}}]
    summary = _run(tmp_path, steps, {"max_targets": 1, "require_tags": {"env": "prod"}}, mode="dry-run")
    assert summary.steps["touch"].status == "succeeded"
    refused = events(summary.run_dir, "guard.refused", "touch")
    assert {e["detail"]["guard"] for e in refused} == {"max_targets", "require_tags"}
    assert all(e["detail"]["would_refuse"] for e in refused)
    assert summary.steps["touch"].output["dry_run"] is True


def test_read_only_plans_are_exempt() -> None:
    plan = Plan(
        action="x", summary="read", targets=[Target(type="t", id=str(i), tags=None) for i in range(5)], mutating=False
    )
    assert check_plans(Guards(max_targets=1, require_tags={"env": "prod"}), [plan], live=True) == []


@pytest.mark.parametrize(
    ("tags", "guards", "expected"),
    [
        ({"env": "prod"}, {"require_tags": {"env": "prod"}}, []),
        ({"env": "dev"}, {"require_tags": {"env": "prod"}}, ["require_tags"]),
        ({"team": "x", "do-not-touch": "yes"}, {"protected_tags": {"do-not-touch": "yes"}}, ["protected_tags"]),
        ({"fireline/protected": "true"}, {"protected_tags": {}}, ["protected_tags"]),
    ],
)
def test_tag_rules(tags: dict[str, str], guards: dict[str, Any], expected: list[str]) -> None:
    plan = Plan(action="x", summary="s", targets=[Target(type="t", id="1", tags=tags)])
    assert [r.guard for r in check_plans(Guards.model_validate(guards), [plan], live=True)] == expected


def test_unknown_tags_are_refused_by_the_protected_guard_without_any_playbook_guard(tmp_path: Path) -> None:
    steps = [{"id": "touch", "action": "test.touch", "with": {"ids": ["a"], "tags": None}}]
    summary = _run(tmp_path, steps, {})
    assert summary.steps["touch"].status == "failed"
    (refused,) = events(summary.run_dir, "guard.refused", "touch")
    assert refused["detail"]["guard"] == "protected_tags"
    assert "tags are unknown" in refused["detail"]["message"]
    assert events(summary.run_dir, "step.succeeded", "touch") == []


def test_unknown_tags_refusal_carries_the_failed_read() -> None:
    plan = Plan(action="x", summary="s", targets=[Target(type="t", id="1")], warnings=["could not read (Throttling)"])
    (refusal,) = check_plans(Guards(), [plan], live=True)
    assert refusal.guard == "protected_tags"
    assert "Throttling" in refusal.message


def test_handlers_pass_the_guards_and_run_under_the_step_timeout(tmp_path: Path) -> None:
    steps = [
        {
            "id": "boom",
            "action": "fail",
            "timeout": "100ms",
            "with": {"message": "x"},
            "on_failure": [
                {"action": "test.touch", "with": {"ids": ["p"], "tags": {"fireline/protected": "true"}}},
                {"action": "test.slow", "with": {"seconds": 5}},
                {"action": "test.touch", "with": {"ids": ["ok"], "tags": {"env": "prod"}}},
            ],
        }
    ]
    summary = _run(tmp_path, steps, {"max_targets": 1})
    failed = {e["detail"]["handler"]: e["detail"] for e in events(summary.run_dir, "handler.failed", "boom")}
    assert failed[0]["error_type"] == "GuardError"
    assert failed[1]["status"] == "timed_out"
    (succeeded,) = events(summary.run_dir, "handler.succeeded", "boom")
    assert succeeded["detail"]["handler"] == 2


def test_lint_flags_containment_in_a_handler(tmp_path: Path) -> None:
    from flows.language.lint import validate_path

    steps = [
        {
            "id": "boom",
            "action": "fail",
            "with": {"message": "x"},
            "on_failure": [
                {"action": "test.touch", "with": {"ids": ["a"], "tags": {}}},
                {"action": "log", "with": {"message": "m"}},
            ],
        }
    ]
    _, found = validate_path(write_playbook(tmp_path, steps), make_registry())
    assert [(d.code, d.path) for d in found if d.code == "W508"] == [("W508", "steps[0].on_failure[0].action")]

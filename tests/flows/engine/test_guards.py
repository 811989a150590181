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

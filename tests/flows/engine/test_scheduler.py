"""The scheduler without Prefect: parallelism, fan-out, when, on_failure, outcomes, retries, timeouts."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from flows.engine import run_playbook
from flows.engine.scheduler import item_key
from tests.flows.engine.engine_helpers import events, make_registry, make_settings, run_json, write_playbook


def _run(tmp_path: Path, steps: list[dict[str, Any]], **kwargs: Any) -> Any:
    path = write_playbook(tmp_path, steps, **{k: kwargs.pop(k) for k in ("inputs", "guards") if k in kwargs})
    return run_playbook(path, settings=make_settings(tmp_path), registry=make_registry(), **kwargs)


def test_independent_steps_run_in_parallel(tmp_path: Path) -> None:
    # Each step blocks until all four are inside at once: a sequential scheduler would fail them.
    name = f"par-{tmp_path.name}"
    steps = [
        {"id": f"s{i}", "action": "test.barrier", "needs": [], "with": {"name": name, "parties": 4}} for i in range(4)
    ]
    summary = _run(tmp_path, steps)
    assert summary.outcome == "succeeded", {k: v.error for k, v in summary.steps.items()}


def test_sequential_default_orders_steps(tmp_path: Path) -> None:
    steps = [
        {"id": "a", "action": "log", "with": {"message": "a"}},
        {"id": "b", "action": "log", "with": {"message": "b"}},
    ]
    summary = _run(tmp_path, steps)
    finished = [e["step"] for e in events(summary.run_dir, "step.succeeded")]
    assert finished == ["a", "b"]


# Serial items can be short; parallel ones hold long enough for three to overlap on a loaded machine.
@pytest.mark.parametrize(("concurrency", "expected_peak", "seconds"), [(None, 1, 0.05), (3, 3, 0.4)])
def test_for_each_concurrency_bounds_items(
    tmp_path: Path, concurrency: int | None, expected_peak: int, seconds: float
) -> None:
    gauge = tmp_path / "gauge"
    gauge.mkdir()
    step: dict[str, Any] = {
        "id": "fan",
        "action": "test.gauge",
        "for_each": ["a", "b", "c", "d", "e", "f"],
        "with": {"target": str(gauge), "seconds": seconds},
    }
    if concurrency:
        step["concurrency"] = concurrency
    summary = _run(tmp_path, [step])
    assert summary.outcome == "succeeded"
    assert int((gauge / "peak").read_text()) == expected_peak
    assert len(summary.steps["fan"].output) == 6
    item_events = [e for e in events(summary.run_dir, "step.succeeded", "fan") if e["item"] is not None]
    assert sorted(e["item"] for e in item_events) == ["a", "b", "c", "d", "e", "f"]


def test_for_each_renders_native_list_from_inputs(tmp_path: Path) -> None:
    steps = [{"id": "fan", "action": "test.echo", "for_each": "{{ inputs.ids }}", "with": {"value": "{{ item }}"}}]
    path = write_playbook(tmp_path, steps, inputs={"ids": {"type": "list[string]", "required": True}})
    summary = run_playbook(path, inputs={"ids": "i-1,i-2"}, settings=make_settings(tmp_path), registry=make_registry())
    assert [o["value"] for o in summary.steps["fan"].output] == ["i-1", "i-2"]


def test_when_false_skips_with_rendered_condition(tmp_path: Path) -> None:
    steps = [
        {"id": "maybe", "action": "log", "when": "{{ 1 > 2 }}", "with": {"message": "x"}},
        {"id": "next", "action": "log", "with": {"message": "runs anyway"}},
    ]
    summary = _run(tmp_path, steps)
    assert summary.steps["maybe"].status == "skipped"
    assert summary.steps["next"].status == "succeeded"  # a step skipped by its condition does not block
    (skip,) = events(summary.run_dir, "step.skipped", "maybe")
    assert skip["detail"]["rendered"] is False
    assert skip["detail"]["when"] == "{{ 1 > 2 }}"


def test_failure_skips_dependents_runs_handlers_and_fails_run(tmp_path: Path) -> None:
    steps: list[dict[str, Any]] = [
        {
            "id": "boom",
            "action": "fail",
            "with": {"message": "disk on fire"},
            "on_failure": [{"action": "test.echo", "with": {"value": "{{ error.message }}|{{ error.type }}"}}],
        },
        {"id": "after", "action": "log", "with": {"message": "never"}},
        {"id": "cleanup", "action": "log", "needs": ["boom"], "needs_outcome": "any", "with": {"message": "always"}},
    ]
    summary = _run(tmp_path, steps)
    assert summary.outcome == "failed"
    assert summary.steps["boom"].status == "failed"
    assert summary.steps["after"].status == "skipped"
    assert summary.steps["cleanup"].status == "succeeded"
    (handler,) = events(summary.run_dir, "handler.succeeded", "boom")
    assert handler["detail"]["output"]["value"] == "disk on fire|ActionError"
    (skipped,) = events(summary.run_dir, "step.skipped", "after")
    assert skipped["detail"]["dependency"] == "boom"


def test_continue_on_error_lets_the_run_succeed(tmp_path: Path) -> None:
    steps: list[dict[str, Any]] = [
        {"id": "soft", "action": "fail", "continue_on_error": True, "with": {"message": "meh"}},
        {"id": "next", "action": "log", "with": {"message": "goes on"}},
    ]
    summary = _run(tmp_path, steps)
    assert summary.steps["soft"].status == "failed"
    assert summary.steps["next"].status == "succeeded"
    assert summary.outcome == "succeeded_with_errors"  # true, and still a success (exit 0)
    assert summary.ok


def test_skip_propagates_through_a_chain(tmp_path: Path) -> None:
    steps = [
        {"id": "boom", "action": "fail", "with": {"message": "x"}},
        {"id": "b", "action": "log", "with": {"message": "b"}},
        {"id": "c", "action": "log", "with": {"message": "c"}},
    ]
    summary = _run(tmp_path, steps)
    assert [summary.steps[s].status for s in ("b", "c")] == ["skipped", "skipped"]


def test_step_outputs_flow_to_later_steps(tmp_path: Path) -> None:
    steps = [
        {"id": "a", "action": "test.echo", "with": {"value": {"ids": ["x", "y"]}}},
        {
            "id": "b",
            "action": "test.echo",
            "for_each": "{{ steps.a.output.value.ids }}",
            "with": {"value": "{{ item }}!"},
        },
    ]
    summary = _run(tmp_path, steps)
    assert [o["value"] for o in summary.steps["b"].output] == ["x!", "y!"]


def test_retryable_errors_are_retried_with_backoff(tmp_path: Path) -> None:
    target = tmp_path / "t"
    target.mkdir()
    steps = [
        {
            "id": "flaky",
            "action": "test.flaky",
            "with": {"target": str(target), "failures": 2},
            "retries": {"attempts": 3, "backoff": "exponential", "initial": "50ms", "max": "1s"},
        }
    ]
    summary = _run(tmp_path, steps)
    assert summary.steps["flaky"].status == "succeeded"
    retries = events(summary.run_dir, "step.retrying", "flaky")
    assert [e["detail"]["delay"] for e in retries] == [0.05, 0.1]


def test_throttling_is_retryable(tmp_path: Path) -> None:
    target = tmp_path / "t"
    target.mkdir()
    steps = [
        {
            "id": "flaky",
            "action": "test.flaky",
            "with": {"target": str(target), "failures": 1, "retryable": False, "throttle": True},
            "retries": {"attempts": 2, "initial": "10ms"},
        }
    ]
    assert _run(tmp_path, steps).steps["flaky"].status == "succeeded"


def test_non_retryable_errors_fail_at_once(tmp_path: Path) -> None:
    target = tmp_path / "t"
    target.mkdir()
    steps = [
        {
            "id": "flaky",
            "action": "test.flaky",
            "with": {"target": str(target), "failures": 1, "retryable": False},
            "retries": {"attempts": 5, "initial": "10ms"},
        }
    ]
    summary = _run(tmp_path, steps)
    assert summary.steps["flaky"].status == "failed"
    assert events(summary.run_dir, "step.retrying") == []
    assert len((target / "flaky-flaky").read_text().splitlines()) == 1


def test_timeout_cancels_a_cooperative_step(tmp_path: Path) -> None:
    out = tmp_path / "slow.json"
    steps = [
        {"id": "slow", "action": "test.slow", "timeout": "200ms", "with": {"seconds": 5, "target": str(out)}},
        {
            "id": "after",
            "action": "log",
            "needs": ["slow"],
            "needs_outcome": "any",
            "with": {"message": "{{ steps.slow.status }}"},
        },
    ]
    started = time.monotonic()
    summary = _run(tmp_path, steps)
    assert time.monotonic() - started < 4
    assert summary.steps["slow"].status == "timed_out"
    assert summary.steps["after"].output["message"] == "timed_out"
    assert summary.outcome == "failed"


def test_timeout_abandons_a_stuck_step(tmp_path: Path) -> None:
    steps = [{"id": "stuck", "action": "test.slow", "timeout": "100ms", "with": {"seconds": 6, "cooperative": False}}]
    started = time.monotonic()
    summary = _run(tmp_path, steps)
    assert time.monotonic() - started < 5, "the run waited for the abandoned thread"
    assert summary.steps["stuck"].status == "timed_out"
    assert "timed out after 0.1s" in (summary.steps["stuck"].error or "")


def test_timeouts_are_retried(tmp_path: Path) -> None:
    steps = [
        {
            "id": "slow",
            "action": "test.slow",
            "timeout": "50ms",
            "retries": {"attempts": 2, "initial": "10ms"},
            "with": {"seconds": 2},
        }
    ]
    summary = _run(tmp_path, steps)
    assert summary.steps["slow"].status == "timed_out"
    assert len(events(summary.run_dir, "step.retrying", "slow")) == 1


def test_bad_params_fail_the_step_with_the_field(tmp_path: Path) -> None:
    summary = _run(tmp_path, [{"id": "w", "action": "wait", "with": {"duration": "soon"}}])
    assert summary.steps["w"].status == "failed"
    assert "with.duration" in (summary.steps["w"].error or "")


def test_run_json_records_steps_and_outcome(tmp_path: Path) -> None:
    summary = _run(tmp_path, [{"id": "a", "action": "log", "with": {"message": "x"}}])
    data = run_json(summary.run_dir)
    assert data["status"] == "finished"
    assert data["outcome"] == "succeeded"
    assert data["mode"] == "live"
    assert data["playbook"]["ref"] == "test-book@1"
    assert len(data["playbook"]["sha256"]) == 64
    assert data["steps"]["a"]["status"] == "succeeded"
    assert (
        json.loads(
            (summary.run_dir / "evidence" / "manifest.json").read_text()
            if (summary.run_dir / "evidence" / "manifest.json").exists()
            else '{"items": []}'
        )["items"]
        == []
    )


def test_item_keys_are_short_and_stable() -> None:
    assert item_key("i-0abc") == "i-0abc"
    assert item_key({"a": 1}) == item_key({"a": 1})
    assert item_key({"a": 1}).startswith("h-")
    assert item_key("has space") != "has space"


def test_template_errors_fail_the_step_not_the_engine(tmp_path: Path) -> None:
    steps: list[dict[str, Any]] = [
        {"id": "notalist", "action": "log", "needs": [], "for_each": "{{ 'abc' }}", "with": {"message": "x"}},
        {"id": "badwhen", "action": "log", "needs": [], "when": "{{ nope.x }}", "with": {"message": "x"},
         "on_failure": [{"action": "test.echo", "with": {"value": "{{ error.type }}"}}]},
        {"id": "other", "action": "log", "needs": [], "with": {"message": "fine"}},
    ]  # fmt: skip
    summary = _run(tmp_path, steps)
    assert "expected a list, got str" in (summary.steps["notalist"].error or "")
    assert summary.steps["badwhen"].status == "failed"
    assert events(summary.run_dir, "handler.succeeded", "badwhen")[0]["detail"]["output"]["value"] == "TemplateError"
    assert summary.steps["other"].status == "succeeded"
    assert len(events(summary.run_dir, "step.started", "badwhen")) == 1

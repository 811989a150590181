"""A ``when`` must be one expression (case 05): lint refuses mixed text, the engine never takes text as true.

The effect is read back from moto: the instance keeps its security groups when the isolate step
does not run.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from flows.engine.templates import condition
from flows.errors import TemplateError
from integrations.aws.sandbox import seed_inference_hosts, seed_network
from tests.fixtures.moto import AwsEnv

CASES = Path(__file__).resolve().parents[1] / "cases_data"


def _groups(aws: AwsEnv, instance_id: str) -> list[str]:
    found = aws.client("ec2").describe_instances(InstanceIds=[instance_id])["Reservations"][0]["Instances"][0]
    return sorted(g["GroupName"] for g in found["SecurityGroups"])


def _diagnostics(path: Path) -> list[Any]:
    from flows.actions.registry import default_registry
    from flows.language.lint import validate_path

    return list(validate_path(path, default_registry())[1])


def test_case_05_lint_refuses_two_expressions_joined_by_text() -> None:
    found = [d for d in _diagnostics(CASES / "05-conditional-isolation.yaml") if d.code == "E417"]
    assert len(found) == 1
    assert found[0].severity == "error"
    rendered = found[0].render()
    assert "05-conditional-isolation.yaml:21:11: error[E417] steps[1].when" in rendered  # file:line:col
    assert "one expression" in rendered
    assert not [d for d in _diagnostics(CASES / "05-conditional-isolation-one-expr.yaml") if d.code == "E417"]


def test_lint_refuses_a_when_that_is_plain_text(tmp_path: Path) -> None:
    text = (CASES / "05-conditional-isolation-one-expr.yaml").read_text()
    path = tmp_path / "p.yaml"
    path.write_text(text.replace('when: "{{ inputs.confirmed_compromise and inputs.in_prod }}"', "when: maybe"))
    assert [d.code for d in _diagnostics(path) if d.code == "E417"] == ["E417"]
    path.write_text(text.replace('when: "{{ inputs.confirmed_compromise and inputs.in_prod }}"', 'when: "false"'))
    assert not [d for d in _diagnostics(path) if d.code == "E417"]


@pytest.mark.parametrize(
    ("value", "decided"),
    [(True, True), (False, False), ("False", False), (" true ", True), ("no", False), (1, True), (0, False)],
)
def test_recognised_booleans_decide(value: Any, decided: bool) -> None:
    assert condition(value) is decided


@pytest.mark.parametrize("value", ["False and False", "isolate", "", None, [0], {}, 2, "None"])
def test_anything_else_is_an_error_never_truthy(value: Any) -> None:
    with pytest.raises(TemplateError, match="not a boolean"):
        condition(value, where="steps[isolate].when")


@pytest.mark.moto_server
def test_one_expression_false_skips_and_a_non_boolean_at_run_time_fails_the_step(aws: AwsEnv) -> None:
    from flows.engine import run_playbook

    world = aws.seed(seed_network, seed_inference_hosts)
    first, second = world.data["inference_instances"]
    before = _groups(aws, first)
    summary = run_playbook(
        CASES / "05-conditional-isolation-one-expr.yaml", inputs={"instance_id": first}, settings=aws.settings
    )
    assert summary.steps["isolate"].status == "skipped"
    assert _groups(aws, first) == before  # read back: the host keeps its groups
    # A condition lint cannot see through: an input whose value is text, not a boolean.
    text = (CASES / "05-conditional-isolation-one-expr.yaml").read_text()
    text = text.replace(
        "in_prod: {type: bool, default: false}",
        "in_prod: {type: bool, default: false}\n  mode: {type: string, default: isolate}",
    )
    text = text.replace('"{{ inputs.confirmed_compromise and inputs.in_prod }}"', '"{{ inputs.mode }}"')
    playbook = aws.tmp_path / "mode.yaml"
    playbook.write_text(text)
    failed = run_playbook(playbook, inputs={"instance_id": second}, settings=aws.settings)
    assert failed.steps["isolate"].status == "failed"
    assert "not a boolean" in str(failed.steps["isolate"].error)
    assert _groups(aws, second) == before

"""Semantic checks beyond the golden corpus: what is skipped, what strict does, the docs example."""

from __future__ import annotations

import re
from pathlib import Path

from pydantic import field_validator

from flows.actions.context import ActionContext
from flows.actions.registry import (
    Action,
    ActionKind,
    ActionParams,
    ActionResult,
    Plan,
    Registry,
    action,
    default_registry,
)
from flows.language.lint import validate_path
from tests.flows.fake_actions import registry

REPO = Path(__file__).resolve().parents[3]


class TouchyParams(ActionParams):
    value: str

    @field_validator("value")
    @classmethod
    def _explode(cls, value: str) -> str:
        if value == "boom":
            raise TypeError("validator bug")  # not a ValueError: pydantic lets it through
        return value


class TouchyResult(ActionResult):
    pass


@action("test.touchy.run", kind=ActionKind.CONTROL, params=TouchyParams, result=TouchyResult)
class Touchy(Action[TouchyParams, TouchyResult]):
    """An action whose parameter validator has a bug."""

    def plan(self, params: TouchyParams, ctx: ActionContext) -> Plan:
        return Plan(action=self.name, summary="touchy")

    def apply(self, params: TouchyParams, ctx: ActionContext) -> TouchyResult:
        return TouchyResult()


HEAD = "apiVersion: fireline/v1\nkind: Playbook\nmetadata: {name: t, version: 1, title: T}\n"


def _codes(tmp_path: Path, body: str, strict: bool = False) -> list[tuple[str, str]]:
    path = tmp_path / "t.yaml"
    path.write_text(HEAD + body, encoding="utf-8")
    _, found = validate_path(path, registry(), strict=strict)
    return [(d.severity, d.code) for d in found]


def test_templated_and_secret_fields_are_left_to_run_time(tmp_path: Path) -> None:
    body = """\
guards: {max_targets: 2}
steps:
  - id: c
    action: demo.evidence.collect
    with: {target: "{{ alert.labels.host }}"}
  - id: i
    action: demo.box.isolate
    with: {instance_id: secret:INSTANCE}
"""
    assert _codes(tmp_path, body) == []


def test_literal_fields_are_still_checked_next_to_templated_ones(tmp_path: Path) -> None:
    body = """\
steps:
  - id: c
    action: demo.evidence.collect
    with: {target: "{{ alert.labels.host }}", depth: 0}
"""
    assert _codes(tmp_path, body) == [("error", "E304")]


def test_fail_with_continue_on_error_or_when_does_not_block(tmp_path: Path) -> None:
    body = """\
steps:
  - id: maybe
    action: fail
    when: "{{ alert.labels.drill == 'yes' }}"
    with: {message: drill}
  - id: soft
    action: fail
    continue_on_error: true
    with: {message: soft}
  - id: after
    action: log
    with: {message: after}
"""
    assert _codes(tmp_path, body) == []


def test_unreachable_is_transitive_and_strict_makes_it_an_error(tmp_path: Path) -> None:
    body = """\
steps:
  - id: boom
    action: fail
    with: {message: x}
  - id: a
    action: log
    with: {message: a}
  - id: b
    action: log
    with: {message: b}
  - id: cleanup
    action: log
    needs: [b]
    needs_outcome: any
    with: {message: cleanup}
"""
    assert _codes(tmp_path, body) == [("warning", "W501"), ("warning", "W501")]
    assert _codes(tmp_path, body, strict=True) == [("error", "W501"), ("error", "W501")]


def test_approval_upstream_satisfies_the_approval_rule(tmp_path: Path) -> None:
    body = """\
steps:
  - id: c
    action: demo.evidence.collect
    with: {target: x}
  - id: ok
    action: approval
    with: {approvers: ["group:sec"]}
  - id: i
    action: demo.box.isolate
    with: {instance_id: i-0abc}
"""
    assert _codes(tmp_path, body) == []


def test_loop_variables_and_builtins_are_not_unknown_names(tmp_path: Path) -> None:
    body = """\
inputs:
  ids: {type: "list[string]"}
steps:
  - id: a
    action: log
    with:
      message: "{% for x in inputs.ids %}{{ x }}{% endfor %} {{ range(2) | list }} {{ namespace(a=1).a }}"
"""
    assert _codes(tmp_path, body) == []


def test_shipped_playbooks_validate_cleanly() -> None:
    from flows.cli.spec_cmds import collect_playbooks

    files = collect_playbooks([REPO / "playbooks"])
    problems = [d.render() for f in files for d in validate_path(f, default_registry())[1] if d.severity == "error"]
    assert problems == []


def test_the_docs_example_validates(tmp_path: Path) -> None:
    text = (REPO / "docs" / "playbook-language.md").read_text(encoding="utf-8")
    match = re.search(r"```yaml\n(# yaml-language-server.*?)```", text, re.DOTALL)
    assert match is not None
    path = tmp_path / "example.yaml"
    path.write_text(match.group(1), encoding="utf-8")
    _, found = validate_path(path, default_registry())
    assert [d.render() for d in found] == []


def test_a_crashing_params_validator_is_a_finding_not_a_crash(tmp_path: Path) -> None:
    reg = Registry()
    reg.register(Touchy)
    path = tmp_path / "t.yaml"
    path.write_text(HEAD + "steps:\n  - id: a\n    action: test.touchy.run\n    with: {value: boom}\n")
    _, found = validate_path(path, reg)
    assert [d.render() for d in found] == [
        f"{path}:7:11: error[E304] steps[0].with: parameters of 'test.touchy.run' could not be checked: "
        "TypeError: validator bug"
    ]


def _messages(tmp_path: Path, body: str) -> list[str]:
    path = tmp_path / "t.yaml"
    path.write_text(HEAD + body, encoding="utf-8")
    return [f"{d.code} {d.message} ({d.hint})" for d in validate_path(path, default_registry())[1]]


def test_a_step_output_field_the_result_lacks_is_an_error_with_did_you_mean(tmp_path: Path) -> None:
    body = """\
steps:
  - id: approve
    action: approval
    with: {approvers: [group:sec]}
  - id: block
    action: aws.s3.block_public_access
    with: {bucket: ml-data}
  - id: note
    action: log
    with: {message: "{{ steps.block.output.previus }} {{ steps.approve.output.decison }} {{ steps.block.output }}"}
  - id: known
    action: log
    with: {message: "{{ steps.block.output.previous }} {{ steps.block.output.get('x') }} {{ steps.block.status }}"}
"""
    found = [m for m in _messages(tmp_path, body) if m.startswith("E416")]
    assert found == [
        "E416 step 'approve' (approval) has no output field 'decison' (did you mean 'decision'?)",
        "E416 step 'block' (aws.s3.block_public_access) has no output field 'previus' (did you mean 'previous'?)",
    ]


def test_an_output_field_far_from_any_name_lists_the_fields(tmp_path: Path) -> None:
    body = """\
steps:
  - id: block
    action: aws.s3.block_public_access
    with: {bucket: ml-data}
  - id: note
    action: log
    with: {message: "{{ steps.block.output.zzzzq }}"}
"""
    (found,) = [m for m in _messages(tmp_path, body) if m.startswith("E416")]
    assert "its fields: bucket, changed, previous" in found


def test_an_unknown_with_key_far_from_any_name_lists_the_valid_ones(tmp_path: Path) -> None:
    body = """\
steps:
  - id: approve
    action: approval
    with: {approvers: [group:sec], zzzzzzzz: 1, timout: 5m}
"""
    found = [m for m in _messages(tmp_path, body) if m.startswith("E303")]
    assert found == [
        "E303 unknown key 'zzzzzzzz' (valid keys: approvers, min_approvals, on_timeout, reason, timeout)",
        "E303 unknown key 'timout' (did you mean 'timeout'?)",
    ]


def test_schema_errors_do_not_hide_graph_and_template_errors(tmp_path: Path) -> None:
    body = """\
inputs:
  hosts: {type: "list[string]", required: true}
steps:
  - id: first
    action: log
    with: {message: x}
    retires: 2
  - id: second
    action: log
    needs: [frist]
    with: {message: "{{ inputs.hots }}"}
"""
    codes = [m.split()[0] for m in _messages(tmp_path, body)]
    assert codes == ["E202", "E402", "E411"]

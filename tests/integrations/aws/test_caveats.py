"""Every containment action of the AWS and model catalogue names the guidance it follows and what
it leaves open, and ``fireline actions show NAME`` prints both."""

from __future__ import annotations

import json

import pytest

from flows.actions.registry import ActionKind, default_registry
from flows.cli import main

OURS = ("integrations.aws.", "integrations.models.")


def _containment() -> list[str]:
    return [
        a.name
        for a in default_registry().all()
        if a.kind == ActionKind.CONTAINMENT and type(a).__module__.startswith(OURS)
    ]


def test_the_catalogue_has_containment_actions_to_check() -> None:
    assert {"aws.ec2.isolate_instance", "aws.iam.disable_access_keys", "model.quarantine"} <= set(_containment())


@pytest.mark.parametrize("name", _containment())
def test_each_containment_action_names_its_guidance_and_caveats(name: str) -> None:
    action = default_registry().get(name)
    assert action.guidance, f"{name} names no guidance"
    assert action.caveats, f"{name} says nothing of what it does not cover"


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("aws.ec2.isolate_instance", "Automatically tracked connections"),
        ("aws.iam.disable_access_keys", "aws:TokenIssueTime"),
    ],
)
def test_actions_show_prints_the_caveats(name: str, expected: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["actions", "show", name]) == 0
    out = capsys.readouterr().out
    assert "caveats" in out
    assert expected in out
    assert main(["actions", "show", name, "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["caveats"]
    assert data["guidance"]

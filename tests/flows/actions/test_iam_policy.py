"""``fireline iam-policy``: merged, deduplicated, scoped least-privilege policies."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from flows.actions.iam_policy import actions_of, merge, playbook_policy
from flows.actions.registry import default_registry
from flows.cli import main
from flows.language.loader import load_playbook
from flows.language.spec import Playbook

PLAYBOOKS = Path(__file__).resolve().parents[3] / "playbooks"


def _book(*steps: dict[str, object]) -> Playbook:
    return Playbook.model_validate(
        {
            "apiVersion": "fireline/v1",
            "kind": "Playbook",
            "metadata": {"name": "p", "version": 1, "title": "t"},
            "steps": list(steps),
        }
    )


def test_templated_names_grant_on_any_resource_literal_names_are_scoped() -> None:
    templated = playbook_policy(
        _book({"id": "a", "action": "aws.s3.block_public_access", "with": {"bucket": "{{ inputs.bucket }}"}}),
        default_registry(),
    )
    assert templated["Statement"][0]["Resource"] == "*"
    literal = playbook_policy(
        _book(
            {
                "id": "a",
                "action": "aws.s3.preserve_objects",
                "with": {"bucket": "ml-training-data", "evidence_bucket": "ml-evidence"},
            }
        ),
        default_registry(),
    )
    resources = {json.dumps(s["Resource"]) for s in literal["Statement"]}
    assert json.dumps(["arn:aws:s3:::ml-evidence", "arn:aws:s3:::ml-evidence/*"]) in resources
    assert json.dumps(["arn:aws:s3:::ml-training-data", "arn:aws:s3:::ml-training-data/*"]) in resources


def test_optional_features_add_permissions_only_when_asked() -> None:
    plain = playbook_policy(
        _book({"id": "a", "action": "aws.ec2.isolate_instance", "with": {"instance_id": "{{ item }}"}}),
        default_registry(),
    )
    assert not any(a.startswith("autoscaling:") for a in actions_of(plain))
    asg = playbook_policy(
        _book(
            {
                "id": "a",
                "action": "aws.ec2.isolate_instance",
                "with": {"instance_id": "{{ item }}", "detach_from_asg": True},
            }
        ),
        default_registry(),
    )
    assert "autoscaling:DetachInstances" in actions_of(asg)
    user = playbook_policy(
        _book({"id": "a", "action": "aws.iam.quarantine_principal", "with": {"user_name": "{{ inputs.u }}"}}),
        default_registry(),
    )
    assert "iam:PutUserPolicy" in actions_of(user)
    assert "iam:PutRolePolicy" not in actions_of(user)


def test_statements_of_one_action_merge_with_unique_sids() -> None:
    merged = merge(
        [
            ("aws.a.x", {"Effect": "Allow", "Action": ["s3:GetObject"], "Resource": "*"}),
            ("aws.a.x", {"Effect": "Allow", "Action": ["s3:GetObject", "s3:PutObject"], "Resource": "*"}),
            ("aws.b.y", {"Effect": "Allow", "Action": "s3:GetObject", "Resource": "*"}),
            ("aws.b.y", {"Effect": "Allow", "Action": "iam:GetUser", "Resource": "arn:aws:iam::*:user/u"}),
        ]
    )
    assert [(s["Sid"], s["Action"], s["Resource"]) for s in merged] == [
        ("AwsAX", ["s3:GetObject", "s3:PutObject"], "*"),
        ("AwsBY", ["s3:GetObject"], "*"),
        ("AwsBY2", ["iam:GetUser"], "arn:aws:iam::*:user/u"),
    ]


@pytest.mark.parametrize("playbook", sorted(p.name for p in PLAYBOOKS.glob("*.yaml") if p.name != "people.yaml"))
def test_every_shipped_playbook_has_a_valid_policy(playbook: str) -> None:
    policy = playbook_policy(load_playbook(PLAYBOOKS / playbook).playbook, default_registry())
    assert policy["Version"] == "2012-10-17"
    sids = [s["Sid"] for s in policy["Statement"]]
    assert len(sids) == len(set(sids))
    assert all(re.fullmatch(r"[A-Za-z0-9]+", sid) for sid in sids)
    for statement in policy["Statement"]:
        assert statement["Action"] == sorted(set(statement["Action"]))
        assert all(re.fullmatch(r"[a-z0-9-]+:[A-Za-z0-9*]+", a) for a in statement["Action"])


def test_cli_prints_the_policy(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["iam-policy", str(PLAYBOOKS / "compromised-iam-credentials.yaml"), "--json"]) == 0
    policy = json.loads(capsys.readouterr().out)
    granted = actions_of(policy)
    for needed in ("iam:UpdateAccessKey", "iam:PutUserPolicy", "cloudtrail:LookupEvents", "iam:GetUser"):
        assert needed in granted
    assert not any(a.startswith(("ec2:", "s3:")) for a in granted)


def test_cli_refuses_a_missing_playbook(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["iam-policy", str(tmp_path / "nope.yaml")]) == 1
    assert "nope.yaml" in capsys.readouterr().err

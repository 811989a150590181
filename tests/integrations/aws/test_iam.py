"""IAM containment and capture against the moto server."""

from __future__ import annotations

import json

import pytest

from flows.errors import ActionError
from integrations.aws.iam import (
    DENY_ALL,
    QUARANTINE_POLICY,
    REVOKE_POLICY,
    DisableAccessKeys,
    DisableKeysParams,
    QuarantinePrincipal,
)
from integrations.aws.iam_capture import CaptureParams, CapturePrincipal
from integrations.aws.iam_principal import PrincipalParams
from integrations.aws.sandbox import seed_iam
from tests.fixtures.moto import AwsEnv

pytestmark = pytest.mark.moto_server


def _status(aws: AwsEnv, user: str) -> dict[str, str]:
    keys = aws.client("iam").list_access_keys(UserName=user)["AccessKeyMetadata"]
    return {k["AccessKeyId"]: k["Status"] for k in keys}


def test_disable_every_key_then_no_op_then_undo_keeps_them_inactive(aws: AwsEnv) -> None:
    world = aws.seed(seed_iam)
    keys = world.data["access_keys"]["ml-pipeline"]
    action, params = DisableAccessKeys(), DisableKeysParams(user_name="ml-pipeline")
    ctx = aws.context()  # one incident: a retry of it keeps the session cutoff it set
    result = action.apply(params, ctx)
    assert sorted(result.disabled) == sorted(keys)
    assert set(_status(aws, "ml-pipeline").values()) == {"Inactive"}
    again = action.apply(params, ctx)
    assert not again.changed
    assert sorted(again.already_inactive) == sorted(keys)
    undone = action.undo(result, aws.context())
    # A key that may have been stolen never comes back by an undo.
    assert not undone.changed
    assert set(_status(aws, "ml-pipeline").values()) == {"Inactive"}
    assert REVOKE_POLICY in aws.client("iam").list_user_policies(UserName="ml-pipeline")["PolicyNames"]


def test_disable_only_the_named_key(aws: AwsEnv) -> None:
    world = aws.seed(seed_iam)
    leaked, other = world.data["access_keys"]["ml-pipeline"]
    DisableAccessKeys().apply(DisableKeysParams(user_name="ml-pipeline", access_key_ids=[leaked]), aws.context())
    assert _status(aws, "ml-pipeline") == {leaked: "Inactive", other: "Active"}


def test_bad_input_is_a_clear_error(aws: AwsEnv) -> None:
    aws.seed(seed_iam)
    with pytest.raises(ActionError, match="user no-keys-user has no access keys"):
        DisableAccessKeys().apply(DisableKeysParams(user_name="no-keys-user"), aws.context())
    with pytest.raises(ActionError, match="has no access key AKIA0000000000000000"):
        DisableAccessKeys().apply(
            DisableKeysParams(user_name="ml-pipeline", access_key_ids=["AKIA0000000000000000"]), aws.context()
        )
    with pytest.raises(ActionError, match="NoSuchEntity"):
        DisableAccessKeys().apply(DisableKeysParams(user_name="ghost"), aws.context())
    with pytest.raises(ValueError, match="exactly one of user_name and role_name"):
        PrincipalParams(user_name="a", role_name="b")


def test_quarantine_user_attaches_deny_all_once_and_undo_removes_it(aws: AwsEnv) -> None:
    aws.seed(seed_iam)
    iam = aws.client("iam")
    action, params = QuarantinePrincipal(), PrincipalParams(user_name="data-scientist")
    ctx = aws.context()
    result = action.apply(params, ctx)
    assert result.policies_added == [QUARANTINE_POLICY]
    assert result.sessions_revoked_before is not None
    assert iam.get_user_policy(UserName="data-scientist", PolicyName=QUARANTINE_POLICY)["PolicyDocument"] == DENY_ALL
    tags = {t["Key"]: t["Value"] for t in iam.list_user_tags(UserName="data-scientist")["Tags"]}
    assert tags["fireline:quarantined"] == aws.context().incident.id
    assert not action.apply(params, ctx).changed
    # Its keys from before the quarantine are still active: the deny-all is all that stops them.
    kept = action.undo(result, ctx)
    assert not kept.changed
    assert "still active" in kept.summary
    assert sorted(iam.list_user_policies(UserName="data-scientist")["PolicyNames"]) == sorted(
        [QUARANTINE_POLICY, REVOKE_POLICY]
    )
    for key in iam.list_access_keys(UserName="data-scientist")["AccessKeyMetadata"]:
        iam.update_access_key(UserName="data-scientist", AccessKeyId=key["AccessKeyId"], Status="Inactive")
    action.undo(result, ctx)
    # Keys deactivated: the deny-all is lifted; sessions issued before the quarantine stay denied.
    assert iam.list_user_policies(UserName="data-scientist")["PolicyNames"] == [REVOKE_POLICY]


def test_quarantine_role_also_revokes_older_sessions(aws: AwsEnv) -> None:
    aws.seed(seed_iam)
    iam = aws.client("iam")
    result = QuarantinePrincipal().apply(PrincipalParams(role_name="inference-role"), aws.context())
    assert sorted(iam.list_role_policies(RoleName="inference-role")["PolicyNames"]) == sorted(
        [QUARANTINE_POLICY, REVOKE_POLICY]
    )
    revoke = iam.get_role_policy(RoleName="inference-role", PolicyName=REVOKE_POLICY)["PolicyDocument"]
    condition = revoke["Statement"][0]["Condition"]["DateLessThan"]["aws:TokenIssueTime"]
    assert condition == result.sessions_revoked_before
    assert condition.endswith("Z")
    assert revoke["Statement"][0]["Effect"] == "Deny"


def test_capture_user_preserves_keys_policies_and_groups(aws: AwsEnv) -> None:
    world = aws.seed(seed_iam)
    iam = aws.client("iam")
    iam.create_group(GroupName="trainers")
    iam.add_user_to_group(GroupName="trainers", UserName="ml-pipeline")
    arn = iam.create_policy(PolicyName="read-models", PolicyDocument=json.dumps(DENY_ALL))["Policy"]["Arn"]
    iam.attach_user_policy(UserName="ml-pipeline", PolicyArn=arn)
    ctx = aws.context()
    result = CapturePrincipal().apply(CaptureParams(user_name="ml-pipeline"), ctx)
    assert sorted(result.access_keys) == sorted(world.data["access_keys"]["ml-pipeline"])
    item = next(i for i in ctx.record.evidence.items if i.id == result.evidence_id)
    doc = json.loads((ctx.record.dir / item.location).read_text())
    assert doc["groups"] == ["trainers"]
    assert "training-data-read" in doc["inline_policies"]
    assert doc["attached_policies"][0]["document"] == DENY_ALL
    assert item.source_arn == doc["user"]["Arn"]


def test_capture_plan_declares_the_principal_but_does_not_mutate(aws: AwsEnv) -> None:
    aws.seed(seed_iam)
    plan = CapturePrincipal().plan(CaptureParams(role_name="inference-role"), aws.context(mode="dry-run"))
    assert not plan.mutating
    assert plan.targets[0].type == "aws:iam:role"
    assert plan.targets[0].tags == {"env": "ml-prod", "team": "ml-platform"}

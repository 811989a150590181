"""Containment of a principal revokes the sessions issued before it (case 07), read back from moto.

moto authenticates neither session tokens nor key status, so a stolen token cannot be shown to
fail here: the tests read back the policy that AWS documents as decisive (AWS IAM User Guide,
"Disabling permissions for temporary security credentials"): an explicit Deny of everything with
``DateLessThan aws:TokenIssueTime`` at the containment time, on the user or role itself.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from flows.errors import ActionError
from integrations.aws.iam import REVOKE_POLICY, DisableAccessKeys, DisableKeysParams, QuarantinePrincipal
from integrations.aws.iam_principal import QUARANTINE_POLICY, PrincipalParams
from integrations.aws.iam_restore import RestoreParams, RestorePrincipal
from integrations.aws.sandbox import seed_iam
from tests.fixtures.moto import AwsEnv

pytestmark = pytest.mark.moto_server

CASES = Path(__file__).resolve().parents[1] / "cases_data"
PLAYBOOKS = Path(__file__).resolve().parents[3] / "playbooks"


def _revocation(aws: AwsEnv, kind: str, name: str) -> dict[str, Any]:
    iam = aws.client("iam")
    doc: dict[str, Any] = (
        iam.get_user_policy(UserName=name, PolicyName=REVOKE_POLICY)
        if kind == "user"
        else iam.get_role_policy(RoleName=name, PolicyName=REVOKE_POLICY)
    )["PolicyDocument"]
    return doc


def _assert_revokes_before(doc: dict[str, Any], moment: datetime) -> None:
    statement = doc["Statement"][0]
    assert statement["Effect"] == "Deny"
    assert statement["Action"] == "*"
    assert statement["Resource"] == "*"
    cutoff = datetime.strptime(statement["Condition"]["DateLessThan"]["aws:TokenIssueTime"], "%Y-%m-%dT%H:%M:%SZ")
    assert cutoff.replace(tzinfo=UTC) >= moment.replace(microsecond=0)


def _seed_case_07(aws: AwsEnv) -> dict[str, str]:
    """The case's world: the exposed bucket, the evidence bucket, the actor and a token minted from its key."""
    import boto3

    kw: dict[str, Any] = {"endpoint_url": aws.endpoint, "region_name": "us-east-1"}
    s3, iam = aws.client("s3"), aws.client("iam")
    s3.create_bucket(Bucket="ml-training-data")
    s3.put_bucket_versioning(Bucket="ml-training-data", VersioningConfiguration={"Status": "Enabled"})
    s3.put_bucket_tagging(Bucket="ml-training-data", Tagging={"TagSet": [{"Key": "env", "Value": "ml-prod"}]})
    s3.put_object(Bucket="ml-training-data", Key="datasets/fraud/train.csv", Body=b"a,b\n1,2\n")
    s3.create_bucket(Bucket="ml-evidence", ObjectLockEnabledForBucket=True)
    iam.create_user(UserName="data-scientist", Tags=[{"Key": "env", "Value": "ml-prod"}])
    allow = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]}
    iam.put_user_policy(UserName="data-scientist", PolicyName="s3-admin", PolicyDocument=json.dumps(allow))
    key = iam.create_access_key(UserName="data-scientist")["AccessKey"]
    sts = boto3.client("sts", aws_access_key_id=key["AccessKeyId"], aws_secret_access_key=key["SecretAccessKey"], **kw)
    token = sts.get_session_token(DurationSeconds=129600)["Credentials"]
    return {"key": key["AccessKeyId"], "session_key": token["AccessKeyId"]}


@pytest.mark.e2e
def test_case_07_shipped_playbook_revokes_the_sessions_minted_before_containment(aws: AwsEnv) -> None:
    from flows.engine import Answer, Responders, run_playbook

    seeded = _seed_case_07(aws)
    approvers = aws.tmp_path / "approvers.yaml"
    approvers.write_text("groups:\n  security-oncall: [responder]\n")
    settings = aws.settings.model_copy(update={"approvers_file": approvers})
    alert = json.loads((CASES / "07-alert.json").read_text())
    started = datetime.now(UTC)
    summary = run_playbook(
        PLAYBOOKS / "s3-training-data-exposure.yaml",
        alert=alert,
        mode="live",
        settings=settings,
        responders=Responders(
            approvals={"approve-key-disable": [Answer(by="user:responder", decision="approve", reason="case 07")]},
            acks={"page-on-call": [("alice", 0.0)]},
        ),
    )
    assert summary.steps["disable-actor-keys"].status == "succeeded", summary.steps["disable-actor-keys"].error
    iam = aws.client("iam")
    keys = iam.list_access_keys(UserName="data-scientist")["AccessKeyMetadata"]
    assert {k["AccessKeyId"]: k["Status"] for k in keys} == {seeded["key"]: "Inactive"}
    # The decisive state: a Deny on the user for every session issued before the containment.
    assert REVOKE_POLICY in iam.list_user_policies(UserName="data-scientist")["PolicyNames"]
    _assert_revokes_before(_revocation(aws, "user", "data-scientist"), started)
    output = summary.steps["disable-actor-keys"].output
    assert output["sessions_revoked_before"]
    assert "sessions issued before" in output["summary"]


def test_disable_keys_without_revocation_says_sessions_stay_valid(aws: AwsEnv) -> None:
    aws.seed(seed_iam)
    params = DisableKeysParams(user_name="ml-pipeline", revoke_sessions=False)
    plan = DisableAccessKeys().plan(params, aws.context())
    assert any("stay valid" in w for w in plan.warnings)
    result = DisableAccessKeys().apply(params, aws.context())
    assert "NOT revoked" in result.summary
    assert REVOKE_POLICY not in aws.client("iam").list_user_policies(UserName="ml-pipeline")["PolicyNames"]


@pytest.mark.parametrize(("kind", "name"), [("user", "data-scientist"), ("role", "inference-role")])
def test_quarantine_revokes_older_sessions_of_users_and_roles_and_undo_keeps_that(
    aws: AwsEnv, kind: str, name: str
) -> None:
    aws.seed(seed_iam)
    started = datetime.now(UTC)
    params = PrincipalParams(**{f"{kind}_name": name})
    result = QuarantinePrincipal().apply(params, aws.context())
    _assert_revokes_before(_revocation(aws, kind, name), started)
    iam = aws.client("iam")
    if kind == "user":  # as disable_access_keys leaves them: the keys are no longer held open by the deny-all
        for key in iam.list_access_keys(UserName=name)["AccessKeyMetadata"]:
            iam.update_access_key(UserName=name, AccessKeyId=key["AccessKeyId"], Status="Inactive")
    QuarantinePrincipal().undo(result, aws.context())
    names = (iam.list_user_policies(UserName=name) if kind == "user" else iam.list_role_policies(RoleName=name))[
        "PolicyNames"
    ]
    assert names == [REVOKE_POLICY]  # deny-all lifted, older sessions still denied


def test_undo_keeps_the_deny_all_while_a_key_from_before_is_active(aws: AwsEnv) -> None:
    """Undo of a quarantine never hands a possibly stolen long-term key its access back."""
    world = aws.seed(seed_iam)
    iam = aws.client("iam")
    leaked, other = world.data["access_keys"]["ml-pipeline"]
    iam.update_access_key(UserName="ml-pipeline", AccessKeyId=other, Status="Inactive")
    ctx = aws.context()
    result = QuarantinePrincipal().apply(PrincipalParams(user_name="ml-pipeline"), ctx)
    undone = QuarantinePrincipal().undo(result, ctx)
    assert not undone.changed
    assert leaked in undone.summary
    assert other not in undone.summary
    policies = set(iam.list_user_policies(UserName="ml-pipeline")["PolicyNames"])
    assert {QUARANTINE_POLICY, REVOKE_POLICY} <= policies
    tags = {t["Key"] for t in iam.list_user_tags(UserName="ml-pipeline")["Tags"]}
    assert "fireline:quarantined" in tags  # still quarantined, and still marked so
    # The explicit, reasoned way lifts it.
    RestorePrincipal().apply(RestoreParams(user_name="ml-pipeline", reason="key rotated by its owner today"), ctx)
    policies = set(iam.list_user_policies(UserName="ml-pipeline")["PolicyNames"])
    assert REVOKE_POLICY in policies
    assert QUARANTINE_POLICY not in policies


def test_an_earlier_incidents_cutoff_is_moved_forward(aws: AwsEnv) -> None:
    aws.seed(seed_iam)
    iam = aws.client("iam")
    old = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Deny",
                "Action": "*",
                "Resource": "*",
                "Condition": {"DateLessThan": {"aws:TokenIssueTime": "2020-01-01T00:00:00Z"}},
            }
        ],
    }
    iam.put_user_policy(UserName="data-scientist", PolicyName=REVOKE_POLICY, PolicyDocument=json.dumps(old))
    started = datetime.now(UTC)
    QuarantinePrincipal().apply(PrincipalParams(user_name="data-scientist"), aws.context())
    _assert_revokes_before(_revocation(aws, "user", "data-scientist"), started)


def test_restore_is_explicit_reasoned_and_recorded(aws: AwsEnv) -> None:
    world = aws.seed(seed_iam)
    key = world.data["access_keys"]["data-scientist"][0]
    DisableAccessKeys().apply(DisableKeysParams(user_name="data-scientist"), aws.context())
    QuarantinePrincipal().apply(PrincipalParams(user_name="data-scientist"), aws.context())
    iam = aws.client("iam")
    with pytest.raises(ValueError, match="at least 10"):
        RestoreParams(user_name="data-scientist", reason="ok")
    # By default only the deny-all goes: keys and the session revocation need naming.
    ctx = aws.context()
    plain = RestorePrincipal().apply(RestoreParams(user_name="data-scientist", reason="keys rotated, INC closed"), ctx)
    assert plain.policies_removed == [QUARANTINE_POLICY]
    assert iam.list_user_policies(UserName="data-scientist")["PolicyNames"] == [REVOKE_POLICY]
    assert iam.list_access_keys(UserName="data-scientist")["AccessKeyMetadata"][0]["Status"] == "Inactive"
    full = RestoreParams(
        user_name="data-scientist",
        reason="forensics showed the key was never used by anyone else",
        lift_session_revocation=True,
        reactivate_access_keys=[key],
    )
    RestorePrincipal().apply(full, ctx)
    assert iam.list_user_policies(UserName="data-scientist")["PolicyNames"] == []
    assert iam.list_access_keys(UserName="data-scientist")["AccessKeyMetadata"][0]["Status"] == "Active"
    tags = {t["Key"]: t["Value"] for t in iam.list_user_tags(UserName="data-scientist")["Tags"]}
    assert "never used" in tags["fireline:access-restored"]
    events = [json.loads(line) for line in (ctx.record.dir / "events.jsonl").read_text().splitlines()]
    restored = [e for e in events if e["type"] == "iam.access_restored"]
    assert restored[-1]["detail"]["keys_reactivated"] == [key]
    with pytest.raises(ActionError, match="users only"):
        RestorePrincipal().apply(
            RestoreParams(role_name="inference-role", reason="a role has no keys", reactivate_access_keys=[key]), ctx
        )

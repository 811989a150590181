"""Each AWS action runs with exactly the policy ``fireline iam-policy`` emits, and fails without any part of it.

moto enforces IAM when ``INITIAL_NO_AUTH_ACTION_COUNT`` is reached (here: at once, in-process with
``mock_aws``). It evaluates actions for every service, but resources only for S3 (bucket and object
ARNs) and IAM roles; and it names some S3 operations differently from AWS, listed below.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import moto.settings
import pytest
from moto import mock_aws

from flows.actions.context import ActionContext, make_context
from flows.actions.iam_policy import actions_of, playbook_policy
from flows.actions.registry import default_registry
from flows.config import AwsSettings, Settings
from flows.errors import ActionError, IntegrationError
from flows.language.spec import Playbook
from integrations.aws import sandbox
from integrations.aws.sandbox import World

# moto decides the IAM action of an S3 request from its query string, and for these operations
# lands on another name than AWS uses (e.g. ``?publicAccessBlock`` is not in its table, so a GET
# is checked as s3:ListBucket and a PUT as s3:CreateBucket).
MOTO_S3_NAMES: dict[str, tuple[str, ...]] = {
    "s3:GetBucketPublicAccessBlock": ("s3:ListBucket",),
    "s3:PutBucketPublicAccessBlock": ("s3:CreateBucket", "s3:DeleteBucket"),
    "s3:GetBucketObjectLockConfiguration": ("s3:ListBucket",),
    "s3:GetObjectVersionTagging": ("s3:GetObjectVersion",),
    "s3:PutObjectRetention": ("s3:PutObject",),
    "s3:PutObjectLegalHold": ("s3:PutObject",),
    "s3:PutObjectVersionTagging": ("s3:PutObjectTagging",),
    "s3:DeleteObjectVersionTagging": ("s3:DeleteObjectVersion",),  # moto: any DELETE with ?versionId
}
# Emitted permissions whose removal a case cannot notice, and why. The test asserts exactly these.
GAPS = {
    "s3:GetBucketTagging": "only read by plan()",
    "s3:AbortMultipartUpload": "only called when an upload fails",
    "s3:PutObjectRetention": "moto checks it as s3:PutObject, which the copy needs anyway",
    "s3:PutObjectLegalHold": "moto checks it as s3:PutObject, which the copy needs anyway",
    "s3:GetObjectVersionTagging": "moto checks it as s3:GetObjectVersion, which the copy needs anyway",
    "s3:PutObjectVersionTagging": "moto checks it as s3:PutObjectTagging, which the copy needs anyway",
    "s3:GetObjectTagging": "moto checks a versioned tagging read as s3:GetObjectVersion",
    "iam:ListRoleTags": "only read by plan(); the case is a user",
    "iam:GetRole": "the case captures a user",
    "iam:ListRolePolicies": "the case captures a user",
    "iam:GetRolePolicy": "the case captures a user",
    "iam:PutRolePolicy": "the case quarantines a user",
    "iam:TagRole": "the case quarantines a user",
    "iam:UntagRole": "the case quarantines a user",
    "iam:DeleteRolePolicy": "the case quarantines a user",
    "iam:ListAttachedRolePolicies": "the case captures a user",
    "iam:ListInstanceProfilesForRole": "the case captures a user",
    "iam:GetPolicy": "the captured user has no managed policy attached",
    "iam:GetPolicyVersion": "the captured user has no managed policy attached",
    "logs:DescribeLogGroups": "only read by plan()",
    "ec2:RevokeSecurityGroupIngress": "only when someone added a rule to an existing quarantine group",
}
DENIED_CODES = ("AccessDenied", "UnauthorizedOperation", "AccessDeniedException")


def _denied(error: IntegrationError | ActionError) -> bool:
    # moto answers JSON-protocol services (SageMaker, Logs) with an XML 403 that botocore cannot
    # parse, so the code is "403"; the message still says what was refused.
    code = error.details.get("code")
    return code in DENIED_CODES or (code == "403" and "is not authorized to perform" in str(error))


@dataclass
class Case:
    action: str
    with_: dict[str, Any]
    seeders: tuple[sandbox.Seeder, ...]
    params: Callable[[World], dict[str, Any]]
    undo: bool = True
    twice: bool = False
    gaps: tuple[tuple[str, str], ...] = ()  # (permission, why) for this case only
    moto_broken: str | None = None  # moto cannot run this service under IAM enforcement at all
    fresh: bool = True  # a new moto per attempt; EC2 cases share one (resetting EC2 costs ~1 s) and seed anew


NET = (sandbox.seed_network, sandbox.seed_inference_hosts)


def _contained_user(world: World) -> None:
    """ml-pipeline after containment: quarantined, older sessions revoked, its first key inactive."""
    from integrations.aws.iam_inline import DENY_ALL, revoke_sessions_policy

    iam = world.client("iam")
    iam.put_user_policy(UserName="ml-pipeline", PolicyName="fireline-quarantine", PolicyDocument=json.dumps(DENY_ALL))
    revoke = json.dumps(revoke_sessions_policy("2026-01-01T00:00:00Z"))
    iam.put_user_policy(UserName="ml-pipeline", PolicyName="fireline-revoke-older-sessions", PolicyDocument=revoke)
    key = world.data["access_keys"]["ml-pipeline"][0]
    iam.update_access_key(UserName="ml-pipeline", AccessKeyId=key, Status="Inactive")


def _keys_inactive(world: World) -> None:
    """ml-pipeline's keys deactivated (as the shipped playbooks do first): undo of a quarantine lifts it."""
    iam = world.client("iam")
    for key in world.data["access_keys"]["ml-pipeline"]:
        iam.update_access_key(UserName="ml-pipeline", AccessKeyId=key, Status="Inactive")


CASES = [
    Case(
        "aws.ec2.isolate_instance",
        {"instance_id": "{{ item }}"},
        NET,
        lambda w: {"instance_id": w.data["inference_instances"][0]},
        twice=True,
        fresh=False,
    ),
    Case(
        "aws.ec2.snapshot_volumes",
        {"instance_id": "{{ item }}"},
        NET,
        lambda w: {"instance_id": w.data["inference_instances"][0]},
        undo=False,
        twice=True,
        fresh=False,
        gaps=(("ec2:CreateTags", "moto does not require it for tags given at creation (TagSpecifications); AWS does"),),
    ),
    Case(
        "aws.iam.disable_access_keys",
        {"user_name": "{{ inputs.user }}"},
        (sandbox.seed_iam,),
        lambda w: {"user_name": "ml-pipeline"},
        gaps=(("iam:ListUserTags", "only read by plan()"),),
    ),
    Case(
        "aws.iam.quarantine_principal",
        {"user_name": "{{ inputs.user }}"},
        (sandbox.seed_iam, _keys_inactive),
        lambda w: {"user_name": "ml-pipeline"},
    ),
    Case(
        "aws.iam.restore_principal",
        {"user_name": "{{ inputs.user }}", "reason": "keys rotated, forensics closed"},
        (sandbox.seed_iam, _contained_user),
        lambda w: {
            "user_name": "ml-pipeline",
            "reason": "keys rotated, forensics closed",
            "lift_session_revocation": True,
            "reactivate_access_keys": w.data["access_keys"]["ml-pipeline"][:1],
        },
        undo=False,
    ),
    Case(
        "aws.iam.capture_principal",
        {"user_name": "{{ inputs.user }}"},
        (sandbox.seed_iam,),
        lambda w: {"user_name": "ml-pipeline"},
        undo=False,
    ),
    Case(
        "aws.s3.block_public_access",
        {"bucket": "ml-training-data"},
        (sandbox.seed_buckets,),
        lambda w: {"bucket": "ml-training-data"},
    ),
    Case(
        "aws.s3.preserve_objects",
        {"bucket": "ml-training-data", "evidence_bucket": "ml-evidence"},
        (sandbox.seed_buckets,),
        lambda w: {"bucket": "ml-training-data", "evidence_bucket": "ml-evidence"},
        undo=False,
        twice=True,
    ),
    Case(
        "aws.lambda.throttle",
        {"function_name": "{{ inputs.fn }}"},
        (sandbox.seed_iam, sandbox.seed_lambda),
        lambda w: {"function_name": "feature-transform"},
        moto_broken="moto 5.2.5 answers every Lambda request with SignatureDoesNotMatch once IAM is enforced",
    ),
    Case(
        "aws.sagemaker.capture_endpoint",
        {"endpoint_name": "{{ inputs.e }}"},
        (sandbox.seed_iam, sandbox.seed_sagemaker),
        lambda w: {"endpoint_name": "fraud-detector"},
        undo=False,
        gaps=(("sagemaker:DescribeModelPackage", "the sandbox model has no model package"),),
    ),
    Case(
        "aws.sagemaker.isolate_endpoint",
        {"endpoint_name": "{{ inputs.e }}"},
        (sandbox.seed_iam, sandbox.seed_sagemaker),
        lambda w: {"endpoint_name": "fraud-detector"},
        gaps=(
            ("sagemaker:ListTags", "only read by plan() in mode: drain"),
            ("sagemaker:DeleteEndpoint", "only used in mode: delete"),
            ("sagemaker:CreateEndpoint", "only used by undo of mode: delete"),
            ("sagemaker:DescribeEndpointConfig", "only read in mode: delete (capture before deleting)"),
            ("sagemaker:DescribeModel", "only read in mode: delete (capture before deleting)"),
            ("sagemaker:DescribeModelPackage", "only read in mode: delete (capture before deleting)"),
        ),
    ),
    Case(
        "aws.logs.collect",
        {"log_group": "{{ inputs.g }}"},
        (sandbox.seed_iam, sandbox.seed_sagemaker),
        lambda w: {"log_group": w.data["log_group"]},
        undo=False,
    ),
]


def _seed_training_data(world: World) -> None:
    from integrations.data.seed import seed_training_data

    seed_training_data(world)


POISONED = "s3://ml-training-data/datasets/fraud/shards/2026-11-02/"
CREDIT_RISK = {"registry": "sagemaker", "endpoint": "credit-risk", "model_package_group": "credit-risk-models"}
CASES += [
    Case(
        "data.quarantine",
        {"uri": POISONED, "reason": "poisoned", "deny_roles": ["{{ inputs.role }}"]},
        (sandbox.seed_buckets, _seed_training_data),
        lambda w: {"uri": POISONED, "reason": "poisoned", "deny_roles": [w.data["training_role_arn"]]},
        # moto applies a bucket policy's Deny to every caller (it ignores Principal): once the
        # quarantine statement is in place, a second apply's tag reads are refused to the runner too.
        twice=False,
    ),
    Case(
        "data.blast_radius",
        {"datasets": [POISONED], "registries": [CREDIT_RISK]},
        (sandbox.seed_buckets, _seed_training_data),
        lambda w: {"datasets": [POISONED], "registries": [CREDIT_RISK]},
        undo=False,
    ),
    Case(
        "pipeline.trigger",
        {"engine": "sagemaker", "pipeline": "{{ inputs.p }}"},  # moto checks SageMaker calls against Resource "*"
        (sandbox.seed_buckets, _seed_training_data),
        lambda w: {"engine": "sagemaker", "pipeline": "fraud-reprocess", "parameters": {"Incident": "inc-1"}},
        undo=False,
        twice=True,
        gaps=(("sagemaker:DescribePipeline", "only read by plan()"), ("sagemaker:ListTags", "only read by plan()")),
    ),
]


def _policy(case: Case) -> dict[str, Any]:
    book = Playbook.model_validate(
        {
            "apiVersion": "fireline/v1",
            "kind": "Playbook",
            "metadata": {"name": "p", "version": 1, "title": "t"},
            "steps": [{"id": "s", "action": case.action, "with": case.with_}],
        }
    )
    return playbook_policy(book, default_registry())


def _for_moto(policy: dict[str, Any], without: str | None) -> dict[str, Any]:
    """The policy minus ``without``, plus the names moto checks S3 operations under."""
    statements = []
    for statement in policy["Statement"]:
        actions = [a for a in statement["Action"] if a != without]
        aliases = {alias for a in actions for alias in MOTO_S3_NAMES.get(a, ())} - {without}
        if actions:
            statements.append({**statement, "Action": sorted({*actions, *aliases})})
    return {"Version": policy["Version"], "Statement": statements}


def _attempt(case: Case, policy: dict[str, Any], tmp: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Seed the case and a runner user holding ``policy``; apply (twice) and undo as that user."""
    if case.fresh:
        with mock_aws():
            _attempt_in_mock(case, policy, tmp, monkeypatch)
    else:
        _attempt_in_mock(case, policy, tmp, monkeypatch)


def _attempt_in_mock(case: Case, policy: dict[str, Any], tmp: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    run_dir = tmp / f"attempt-{len(list(tmp.iterdir()))}"
    runner = f"runner-{run_dir.name}"
    monkeypatch.setattr(moto.settings, "INITIAL_NO_AUTH_ACTION_COUNT", float("inf"))
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    world = World(endpoint_url=None)
    for seeder in case.seeders:
        seeder(world)
    iam = world.client("iam")
    iam.create_user(UserName=runner)
    iam.put_user_policy(UserName=runner, PolicyName="fireline", PolicyDocument=json.dumps(policy))
    key = iam.create_access_key(UserName=runner)["AccessKey"]
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", key["AccessKeyId"])
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", key["SecretAccessKey"])
    monkeypatch.delenv("AWS_SESSION_TOKEN", raising=False)
    action = default_registry().get(case.action)
    params = action.Params.model_validate(case.params(world))
    settings = Settings(runs_dir=tmp, aws=AwsSettings(max_attempts=1))
    ctx: ActionContext = make_context(run_dir, settings=settings)
    monkeypatch.setattr(moto.settings, "INITIAL_NO_AUTH_ACTION_COUNT", 0)
    try:
        result = action.apply(params, ctx)
        if case.twice:
            action.apply(params, make_context(run_dir.with_name(run_dir.name + "-again"), settings=settings))
        if case.undo:
            action.undo(result, ctx)
    finally:
        monkeypatch.setattr(moto.settings, "INITIAL_NO_AUTH_ACTION_COUNT", float("inf"))


@pytest.mark.parametrize("case", CASES, ids=[c.action for c in CASES])
def test_runs_with_exactly_the_emitted_policy(case: Case, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    if not case.fresh:
        with mock_aws():
            _check(case, tmp_path, monkeypatch)
    else:
        _check(case, tmp_path, monkeypatch)


def _check(case: Case, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    policy = _policy(case)
    if case.moto_broken:
        with pytest.raises(IntegrationError, match="SignatureDoesNotMatch"):
            _attempt(case, _for_moto(policy, None), tmp_path, monkeypatch)
        pytest.xfail(case.moto_broken)
    _attempt(case, _for_moto(policy, None), tmp_path, monkeypatch)
    expected = {p for p in actions_of(policy) if p in GAPS} | {p for p, _ in case.gaps}
    undetected, wrong_error = [], []
    # Each permission outside the known gaps must be needed: without it, the action is denied.
    for permission in sorted(set(actions_of(policy)) - expected):
        try:
            _attempt(case, _for_moto(policy, permission), tmp_path, monkeypatch)
        except (IntegrationError, ActionError) as e:  # a denied read of input data is bad input: ActionError
            if not _denied(e):
                wrong_error.append(f"{permission}: {e}")
        else:
            undetected.append(permission)
    assert wrong_error == []
    assert undetected == [], "the action ran without these emitted permissions"
    # Spot-check that a gap is real and not a typo: the action still runs without it.
    if expected:
        _attempt(case, _for_moto(policy, sorted(expected)[0]), tmp_path, monkeypatch)


@pytest.mark.skip(reason="moto 5.2.5 does not implement cloudtrail LookupEvents, so it cannot enforce its permission")
def test_cloudtrail_collect_events_permission() -> None:
    raise AssertionError("unreachable")

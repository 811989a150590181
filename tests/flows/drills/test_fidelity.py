"""Fidelity: for every shipped playbook, the drill and a live run against the loopback moto server,
with the same alert, world and responder script, take the same step path; only the drill leaves
the world as it was (read back from moto)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from flows.drills.load import load_scenario
from flows.drills.run import prepare_world, run_scenario
from tests.fixtures.moto import AwsEnv
from tests.fixtures.slack_fake import SlackEnv

pytestmark = [pytest.mark.moto_server, pytest.mark.e2e]

SCENARIOS = sorted((Path(__file__).resolve().parents[3] / "playbooks" / "scenarios").glob("*.yaml"))
# Where a live run on this world takes another path than the drill predicts, and why: each is a
# plan() that does not read what apply() depends on, so no drill can see it (strict: when the
# plan learns to read it, the test says so). None left: the model plans read their registry.
KNOWN_DIVERGENCES: dict[str, str] = {}


def _params() -> list[Any]:
    return [
        pytest.param(p, id=p.stem, marks=[pytest.mark.xfail(strict=True, reason=KNOWN_DIVERGENCES[p.stem])]
                     if p.stem in KNOWN_DIVERGENCES else [])
        for p in SCENARIOS
    ]  # fmt: skip


def _safe(call: Any) -> Any:
    try:
        return call()
    except Exception as e:
        return type(e).__name__


def world_state(aws: AwsEnv) -> dict[str, Any]:
    """What a containment, evidence or recovery step could change, read from moto."""
    ec2, iam, s3, sm = aws.client("ec2"), aws.client("iam"), aws.client("s3"), aws.client("sagemaker")
    state: dict[str, Any] = {}
    reservations = ec2.describe_instances()["Reservations"]
    state["instances"] = sorted(
        (i["InstanceId"], i["State"]["Name"], sorted(g["GroupId"] for g in i.get("SecurityGroups", [])),
         sorted((t["Key"], t["Value"]) for t in i.get("Tags", [])))
        for r in reservations for i in r["Instances"]
    )  # fmt: skip
    state["snapshots"] = len(ec2.describe_snapshots(OwnerIds=["self"])["Snapshots"])
    state["groups"] = sorted(g["GroupName"] for g in ec2.describe_security_groups()["SecurityGroups"])
    users = [u["UserName"] for u in iam.list_users()["Users"]]
    state["keys"] = sorted(
        (u, k["AccessKeyId"], k["Status"]) for u in users for k in iam.list_access_keys(UserName=u)["AccessKeyMetadata"]
    )
    state["inline"] = sorted((u, tuple(iam.list_user_policies(UserName=u)["PolicyNames"])) for u in users)
    buckets = [b["Name"] for b in s3.list_buckets().get("Buckets", [])]
    state["buckets"] = sorted(buckets)
    block = s3.get_public_access_block
    state["public_access"] = {b: _safe(lambda b=b: block(Bucket=b)["PublicAccessBlockConfiguration"]) for b in buckets}
    state["objects"] = {b: len(s3.list_object_versions(Bucket=b).get("Versions", [])) for b in buckets}
    endpoints = _safe(lambda: sm.list_endpoints()["Endpoints"])
    state["endpoints"] = (
        sorted(
            (e["EndpointName"], str(_safe(lambda e=e: sm.describe_endpoint(EndpointName=e["EndpointName"])
                                          .get("ProductionVariants"))))
            for e in endpoints
        )
        if isinstance(endpoints, list)
        else endpoints
    )  # fmt: skip
    return state


@pytest.mark.parametrize("path", _params())
def test_drill_and_live_take_the_same_path(aws: AwsEnv, slack: SlackEnv, path: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")  # no MLflow in the world: fail at once, not in 15 s
    drills = slack.workspace.add_channel("drills")
    settings = aws.settings.model_copy(
        update={"slack": slack.slack_settings(channel="incidents", drill_channel="drills")}
    )
    slack.workspace.add_channel("incidents")
    loaded = load_scenario(path, settings)
    world = prepare_world(loaded, aws.endpoint)
    before = world_state(aws)
    drill = run_scenario(path, settings, endpoint_url=aws.endpoint, world=world, write_report=False)
    assert world_state(aws) == before, "the drill changed the world"
    sent = slack.workspace.posted("chat.postMessage")
    assert sent, "the drill paged nobody in the drill channel"
    assert all(r.params.get("channel") in (drills, "drills") for r in sent), [r.params for r in sent]
    assert all("[DRILL]" in str(r.params.get("text")) for r in sent)
    assert drill.ok, list(drill.unmet)
    live = run_scenario(path, settings, mode="live", endpoint_url=aws.endpoint, world=world, write_report=False)
    assert live.observed.steps == drill.observed.steps
    assert live.observed.approvals == drill.observed.approvals
    assert live.observed.outcome == drill.observed.outcome
    # A drill plans an on_failure contacts.page handler without paging the drill channel, so the
    # escalation such a handler reaches is seen only live (a known gap of the drill engine, asserted
    # so that it is noticed when closed); every other escalation level must match.
    handled = _paging_handlers(loaded, live.observed.steps)
    assert {k: v for k, v in live.observed.escalation.items() if k not in handled} == drill.observed.escalation
    assert not handled & set(drill.observed.escalation), "drills now page on_failure handlers: compare them too"
    changed = any(status == "run" and kind in ("containment", "recovery", "evidence")
                  for sid, status in live.observed.steps.items()
                  for kind in [_kind(loaded, sid)])  # fmt: skip
    if changed:
        assert world_state(aws) != before, "the live run changed nothing at the target"


def _paging_handlers(loaded: Any, steps: dict[str, str]) -> set[str]:
    """Failed steps whose on_failure handlers page (their escalation comes from the handler)."""
    return {s.id for s in loaded.playbook.steps
            if steps.get(s.id) == "failed" and any(h.action == "contacts.page" for h in s.on_failure)}  # fmt: skip


def _kind(loaded: Any, step_id: str) -> str:
    from flows.actions.registry import default_registry

    action = next(s.action for s in loaded.playbook.steps if s.id == step_id)
    registry = default_registry()
    return registry.get(action).kind.value if action in registry else ""

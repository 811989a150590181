"""The s3 registry adapter and model.rollback on in-process moto."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from flows.actions.context import make_context
from flows.errors import ActionError
from integrations.models.actions import ModelRollback, RollbackParams
from integrations.models.base import KEY_QUARANTINED, KEY_SHA256, decode_tag_value, encode_tag_value
from integrations.models.policy import KnownGoodPolicy
from integrations.models.s3 import S3Adapter
from tests.integrations.models.helpers import attest_s3, ctx_at, cutoff_now, events, put_version, versioned_bucket

BUCKET, KEY = "models", "fraud/model.bin"


@pytest.fixture
def s3() -> Iterator[Any]:
    with versioned_bucket(BUCKET) as client:
        yield client


def forge(s3: Any, source_version: str, data: bytes) -> str:
    """An attacker uploads new bytes and copies a good version's attestation tags onto them."""
    vid = put_version(s3, BUCKET, KEY, data)
    tags = s3.get_object_tagging(Bucket=BUCKET, Key=KEY, VersionId=source_version)["TagSet"]
    s3.put_object_tagging(Bucket=BUCKET, Key=KEY, VersionId=vid, Tagging={"TagSet": tags})
    return vid


@pytest.fixture
def history(s3: Any, tmp_path: Path) -> dict[str, Any]:
    """v1, v2 good and attested; v3 newer but unattested; v4 forged; the incident; v5 poisoned, serving."""
    admin = ctx_at(tmp_path, name="attest", step="attest")
    v1 = put_version(s3, BUCKET, KEY, b"good-1" * 1000)
    attest_s3(admin, BUCKET, KEY, v1)
    v2 = put_version(s3, BUCKET, KEY, b"good-2" * 1000)
    attest_s3(admin, BUCKET, KEY, v2)
    v3 = put_version(s3, BUCKET, KEY, b"unattested" * 1000)
    s3.put_object_tagging(
        Bucket=BUCKET, Key=KEY, VersionId=v3, Tagging={"TagSet": [{"Key": "fireline.approved", "Value": "true"}]}
    )
    v4 = forge(s3, v2, b"poisoned-tampered" * 1000)
    started = cutoff_now(whole_seconds=True)
    v5 = put_version(s3, BUCKET, KEY, b"poisoned-latest" * 1000)
    attest_s3(admin, BUCKET, KEY, v5)
    return {"v1": v1, "v2": v2, "v3": v3, "v4": v4, "v5": v5, "started": started}


def latest_bytes(s3: Any) -> bytes:
    data: bytes = s3.get_object(Bucket=BUCKET, Key=KEY)["Body"].read()
    return data


def params(**known_good: Any) -> RollbackParams:
    return RollbackParams(registry="s3", bucket=BUCKET, key=KEY, known_good=KnownGoodPolicy(**known_good))


def test_rollback_chooses_newest_verified_version(s3: Any, history: dict[str, Any], tmp_path: Path) -> None:
    ctx = ctx_at(tmp_path, history["started"])
    result = ModelRollback().apply(params(), ctx)

    assert result.changed
    assert result.chosen["id"] == history["v2"]
    assert latest_bytes(s3) == b"good-2" * 1000
    reasons = {r.version: r.reason for r in result.rejections}
    assert reasons == {
        history["v5"]: "created_after_cutoff",
        history["v4"]: "digest_mismatch",
        history["v3"]: "not_attested",
    }
    # v1 is older than the winner: never read.
    assert history["v1"] not in reasons
    # The replaced (poisoned) version and the tampered one are quarantined with the incident id.
    adapter = S3Adapter(params(), ctx)
    assert adapter.tags(history["v5"])[KEY_QUARANTINED].startswith("inc-42: ")
    assert adapter.tags(history["v4"])[KEY_QUARANTINED].startswith("inc-42: ")
    assert KEY_QUARANTINED not in adapter.tags(history["v3"])  # unattested, not served: left alone
    assert result.quarantined == [history["v5"], history["v4"]]
    # Every bad version stays readable for forensics.
    assert s3.get_object(Bucket=BUCKET, Key=KEY, VersionId=history["v4"])["Body"].read() == b"poisoned-tampered" * 1000


def test_tampering_is_recorded_as_evidence_and_event(s3: Any, history: dict[str, Any], tmp_path: Path) -> None:
    ctx = ctx_at(tmp_path, history["started"])
    ModelRollback().apply(params(), ctx)

    found = events(ctx, "model.tampering_detected")
    assert [e["detail"]["version"] for e in found] == [history["v4"]]
    assert found[0]["detail"]["attested_sha256"] != found[0]["detail"]["recomputed_sha256"]
    names = [i.name for i in ctx.record.evidence.items]
    assert f"tampering-{history['v4']}.json" in names
    assert "known-good-selection.json" in names
    assert "pre-rollback-serving.json" in names


def test_rerun_is_idempotent(s3: Any, history: dict[str, Any], tmp_path: Path) -> None:
    ctx = ctx_at(tmp_path, history["started"])
    first = ModelRollback().apply(params(), ctx)
    count = len(s3.list_object_versions(Bucket=BUCKET, Prefix=KEY)["Versions"])

    again = ModelRollback().apply(params(), ctx)

    assert not again.changed
    assert again.chosen["id"] == first.chosen["id"]
    assert again.previous == first.previous  # the snapshot taken before the first change
    assert len(s3.list_object_versions(Bucket=BUCKET, Prefix=KEY)["Versions"]) == count


def test_undo_rolls_forward_and_lifts_quarantine(s3: Any, history: dict[str, Any], tmp_path: Path) -> None:
    ctx = ctx_at(tmp_path, history["started"])
    result = ModelRollback().apply(params(), ctx)

    undone = ModelRollback().undo(result, ctx)

    assert undone.changed
    assert latest_bytes(s3) == b"poisoned-latest" * 1000
    assert KEY_QUARANTINED not in S3Adapter(params(), ctx).tags(history["v5"])


def test_no_qualifying_version_refuses_and_drains(s3: Any, tmp_path: Path) -> None:
    admin = ctx_at(tmp_path, name="attest", step="attest")
    good = put_version(s3, BUCKET, KEY, b"good" * 100)
    attest_s3(admin, BUCKET, KEY, good)
    bad = forge(s3, good, b"bad" * 100)
    # The one genuine version was quarantined by an earlier incident; the other carries a forged attestation.
    S3Adapter(params(), admin).write_metadata(
        S3Adapter(params(), admin).version(good), {KEY_QUARANTINED: "inc-1: earlier"}
    )
    ctx = ctx_at(tmp_path, cutoff_now(whole_seconds=True))

    with pytest.raises(ActionError) as caught:
        ModelRollback().apply(params(), ctx)

    message = str(caught.value)
    assert "digest mismatch" in message
    assert "quarantined" in message
    assert "drained" in message
    rejections = caught.value.details["rejections"]
    assert isinstance(rejections, list)
    assert {r["reason"] for r in rejections} == {"digest_mismatch", "quarantined"}
    with pytest.raises(s3.exceptions.ClientError):
        s3.head_object(Bucket=BUCKET, Key=KEY)  # a delete marker: nothing is served
    assert s3.get_object(Bucket=BUCKET, Key=KEY, VersionId=bad)["Body"].read() == b"bad" * 100
    assert events(ctx, "model.rollback_refused")


def test_refusal_can_leave_the_target(s3: Any, tmp_path: Path) -> None:
    put_version(s3, BUCKET, KEY, b"unattested")
    ctx = ctx_at(tmp_path, cutoff_now(whole_seconds=True))
    with pytest.raises(ActionError, match="not approved in the registry"):
        ModelRollback().apply(RollbackParams(registry="s3", bucket=BUCKET, key=KEY, on_refusal="leave"), ctx)
    assert latest_bytes(s3) == b"unattested"


def test_policy_attesters_allowlist(s3: Any, history: dict[str, Any], tmp_path: Path) -> None:
    ctx = ctx_at(tmp_path, history["started"])
    with pytest.raises(ActionError, match="not one of"):
        ModelRollback().apply(
            RollbackParams(
                registry="s3", bucket=BUCKET, key=KEY, on_refusal="leave", known_good=KnownGoodPolicy(attesters=["x"])
            ),
            ctx,
        )


def test_dry_run_refuses_apply_and_plans_without_calls(tmp_path: Path) -> None:
    ctx = ctx_at(tmp_path)
    dry = ctx.for_step("rollback")
    object.__setattr__(
        dry, "incident", type(ctx.incident)(id="inc-42", started_at=ctx.incident.started_at, mode="dry-run")
    )
    plan = ModelRollback().plan(params(), dry)
    assert any("quarantine" in c for c in plan.changes)
    assert plan.targets[0].id == f"{BUCKET}/{KEY}"
    with pytest.raises(ActionError, match="refused in dry-run"):
        ModelRollback().apply(params(), dry)


def test_tag_values_round_trip() -> None:
    encoded = encode_tag_value("fireline.eval", '{"auc":0.9,"f1":0.8}')
    assert set(encoded) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=:") | {
        "b",
        "a",
        "s",
        "e",
        "6",
        "4",
    }
    assert decode_tag_value(encoded) == '{"auc":0.9,"f1":0.8}'
    assert encode_tag_value("fireline.quarantined", "inc-1: poisoned (see #12)") == "inc-1: poisoned _see _12_"
    assert encode_tag_value(KEY_SHA256, "ab" * 32) == "ab" * 32


def test_second_incident_keeps_the_restored_copy(s3: Any, history: dict[str, Any], tmp_path: Path) -> None:
    first = ModelRollback().apply(params(), ctx_at(tmp_path, history["started"]))
    copy = S3Adapter(params(), ctx_at(tmp_path)).serving().versions[0]

    second_ctx = make_context(
        tmp_path / "second", step_id="rollback", incident_id="inc-43", started_at=history["started"]
    )
    second = ModelRollback().apply(params(), second_ctx)

    assert second.chosen["id"] == first.chosen["id"]
    assert not second.changed
    assert second.quarantined == []
    assert KEY_QUARANTINED not in S3Adapter(params(), second_ctx).tags(copy)  # the restored copy is the good bytes


def test_listing_ignores_keys_that_share_the_prefix(s3: Any, tmp_path: Path) -> None:
    ctx = ctx_at(tmp_path)
    mine = [put_version(s3, BUCKET, KEY, b"a"), put_version(s3, BUCKET, KEY, b"b")]
    put_version(s3, BUCKET, KEY + ".bak", b"other")
    put_version(s3, BUCKET, "fraud/model.bim", b"sorts before")
    assert [v.id for v in S3Adapter(params(), ctx).versions()] == list(reversed(mine))


def test_dry_run_plan_previews_the_choice_by_metadata(s3: Any, history: dict[str, Any], tmp_path: Path) -> None:
    dry = make_context(
        tmp_path / "dry", mode="dry-run", step_id="rollback", incident_id="inc-42", started_at=history["started"]
    )

    plan = ModelRollback().plan(params(), dry)

    # Metadata alone cannot tell the forged v4 from a good version: the digest check at apply time does.
    label = S3Adapter(params(), dry).version(history["v4"]).label
    assert plan.reads == [f"by its metadata {label} would be chosen now (its digest is verified at apply time)"]
    assert dry.services.refused_calls == []

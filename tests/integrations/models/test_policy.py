"""The known-good policy on an in-memory registry: each rule, the order of reads, the digest budget."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from flows.actions.context import ActionContext
from flows.errors import IntegrationError, StepTimeoutError
from integrations.models.base import (
    KEY_QUARANTINED,
    ModelVersion,
    RegistryAdapter,
    ServingState,
    TargetParams,
    attestation,
)
from integrations.models.policy import KnownGoodPolicy, select_known_good
from tests.integrations.models.helpers import ctx_at

NOW = datetime(2026, 1, 10, tzinfo=UTC)


class MemoryRegistry(RegistryAdapter):
    """Versions and artifacts in memory; records which artifacts were read."""

    registry = "s3"

    def __init__(self, ctx: ActionContext, versions: list[ModelVersion], blobs: dict[str, bytes]) -> None:
        super().__init__(TargetParams(registry="s3", bucket="b", key="k"), ctx)
        self.listed = versions
        self.blobs = blobs
        self.read: list[str] = []
        self.loaded: list[str] = []

    def versions(self) -> Iterator[ModelVersion]:
        return iter(self.listed)

    def load(self, version: ModelVersion) -> ModelVersion:
        self.loaded.append(version.id)
        return version

    def version(self, version_id: str) -> ModelVersion:
        return next(v for v in self.listed if v.id == version_id)

    def compute_digest(self, version: ModelVersion) -> str:
        self.read.append(version.id)
        if version.id not in self.blobs:
            raise IntegrationError("NoSuchKey")
        return hashlib.sha256(self.blobs[version.id]).hexdigest()

    def serving(self) -> ServingState:
        return ServingState()

    def deploy(self, version: ModelVersion) -> list[str]:
        return []

    def restore(self, state: ServingState) -> list[str]:
        return []

    def drain(self) -> list[str]:
        return []

    def write_metadata(self, version: ModelVersion, updates: Mapping[str, str], remove: Iterable[str] = ()) -> None:
        raise NotImplementedError


def version(
    vid: str,
    hours_ago: float,
    data: bytes | None,
    *,
    approved: bool = True,
    by: str = "ci",
    auc: float = 0.9,
    extra: dict[str, str] | None = None,
    precision: timedelta = timedelta(0),
) -> ModelVersion:
    meta = attestation(hashlib.sha256(data).hexdigest(), by, {"auc": auc}) if data is not None else {}
    return ModelVersion(
        id=vid,
        label=vid,
        created_at=NOW - timedelta(hours=hours_ago),
        artifact=f"mem://{vid}",
        approved=approved,
        metadata={**meta, **(extra or {})},
        precision=precision,
    )


def registry(
    tmp_path: Path, versions: list[ModelVersion], blobs: dict[str, bytes]
) -> tuple[MemoryRegistry, ActionContext]:
    ctx = ctx_at(tmp_path, NOW)
    return MemoryRegistry(ctx, versions, blobs), ctx


def test_each_rule_rejects_and_only_the_winner_is_read(tmp_path: Path) -> None:
    versions = [
        version("after", -1, b"a"),
        version("excluded", 1, b"e"),
        version("quarantined", 2, b"q", extra={KEY_QUARANTINED: "inc-1: bad"}),
        version("unapproved", 3, b"u", approved=False),
        version("unattested", 4, None),
        version("stranger", 5, b"s", by="mallory"),
        version("weak", 6, b"w", auc=0.5),
        version("good", 7, b"g"),
        version("older", 8, b"o"),
    ]
    adapter, ctx = registry(tmp_path, versions, {v.id: v.id[0].encode() for v in versions})
    policy = KnownGoodPolicy(exclude=["excluded"], attesters=["ci"], min_eval={"auc": 0.8})

    selection, chosen = select_known_good(adapter, policy, ctx)

    assert chosen is not None
    assert chosen.id == "good"
    assert [(r.version, r.reason) for r in selection.rejections] == [
        ("after", "created_after_cutoff"),
        ("excluded", "excluded"),
        ("quarantined", "quarantined"),
        ("unapproved", "not_approved"),
        ("unattested", "not_attested"),
        ("stranger", "attester_not_allowed"),
        ("weak", "eval_below_minimum"),
    ]
    assert adapter.read == ["good"]
    assert "older" not in adapter.loaded
    assert "after" not in adapter.loaded  # rejected from the listing alone


def test_coarse_timestamps_are_trusted_only_to_their_precision(tmp_path: Path) -> None:
    same_second = version("same-second", 0.0001, b"x", precision=timedelta(seconds=1))
    adapter, ctx = registry(tmp_path, [same_second], {"same-second": b"x"})
    selection, chosen = select_known_good(adapter, KnownGoodPolicy(), ctx)
    assert chosen is None
    assert selection.rejections[0].reason == "created_after_cutoff"


def test_explicit_cutoff_overrides_the_incident_start(tmp_path: Path) -> None:
    versions = [version("v2", 1, b"2"), version("v1", 48, b"1")]
    adapter, ctx = registry(tmp_path, versions, {"v2": b"2", "v1": b"1"})
    _, chosen = select_known_good(adapter, KnownGoodPolicy(before=NOW - timedelta(days=1)), ctx)
    assert chosen is not None
    assert chosen.id == "v1"


def test_mismatch_unreadable_and_budget(tmp_path: Path) -> None:
    versions = [
        version("t1", 1, b"attested"),
        version("gone", 2, b"g"),
        version("t2", 3, b"attested"),
        version("ok", 4, b"ok"),
    ]
    blobs = {"t1": b"changed", "t2": b"changed", "ok": b"ok"}
    adapter, ctx = registry(tmp_path, versions, blobs)

    selection, chosen = select_known_good(adapter, KnownGoodPolicy(max_digest_checks=2), ctx)

    assert chosen is None
    assert [r.reason for r in selection.rejections] == [
        "digest_mismatch",
        "artifact_unreadable",
        "digest_mismatch",
        "digest_budget_spent",
    ]
    assert "(tampering)" in selection.refusal("target")
    assert len([i for i in ctx.record.evidence.items if i.name.startswith("tampering-")]) == 2


def test_a_step_timeout_is_not_a_rejection(tmp_path: Path) -> None:
    adapter, ctx = registry(tmp_path, [version("v", 1, b"v")], {"v": b"v"})
    ctx.cancel_event.set()
    with pytest.raises(StepTimeoutError):
        select_known_good(adapter, KnownGoodPolicy(), ctx)


def test_policy_needs_attestation_to_verify_digests() -> None:
    with pytest.raises(ValueError, match="verify_digest needs require_attestation"):
        KnownGoodPolicy(require_attestation=False)
    assert KnownGoodPolicy(require_attestation=False, verify_digest=False).approved

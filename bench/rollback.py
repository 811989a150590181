"""Benchmark: choose and verify a known-good version among 500 registry versions with 20 MB artifacts.

Prints the time :func:`integrations.models.policy.select_known_good` takes against the raw time of
hashing the artifacts it had to read. The policy filters by metadata first, newest first, and stops
at the first version whose digest verifies, so only a handful of the 500 artifacts are read.

Registries:
- ``local`` (default): versions in memory, artifacts as files in a temporary directory. Only the
  artifacts the policy can reach are written (3 x 20 MB); every older one is absent, so reading
  one would fail the run -- proof that the selection never touches them.
- ``s3``: the real s3 adapter on in-process moto (one versioned key with 500 versions; the 20 MB
  bodies only where the policy can reach, 1 KB elsewhere). Here the figure is dominated by moto's
  own cost per call (listing a page of versions, one tagging read per examined version), not by
  fireline: it shows the number of calls stays small, not what S3 itself would take.

The selection time includes writing the two tampering findings durably (file, manifest and event
log, each fsynced), as a real rollback does.

Blast radius (``--blast-radius``): :func:`integrations.data.radius.search` over the same 500
versions, each attested with the dataset it was trained on (every 10th one on the tainted shard),
against listing the registry alone (the versions, and on S3 also each version's tags, which is
where the lineage lives). No artifact is written in the local registry and only 1 KB bodies on
S3, so a blast radius that hashed anything would fail or show in the figures.

Usage: ``python bench/rollback.py [--registry local|s3] [--versions 500] [--size-mb 20] [--repeat 3]
[--blast-radius]``
"""

from __future__ import annotations

import argparse
import hashlib
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Iterable, Iterator, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from flows.actions.context import ActionContext, make_context
from integrations.models.base import (
    CHUNK,
    KEY_QUARANTINED,
    ModelVersion,
    RegistryAdapter,
    ServingState,
    TargetParams,
    attestation,
)
from integrations.models.policy import KnownGoodPolicy, Selection, select_known_good

# Newest first: what sits above the known-good version in the registry.
NEWER = ["after"] * 5 + ["unattested"] * 10 + ["quarantined"] * 3 + ["tampered"] * 2


def chunks(seed: int, size: int) -> Iterable[bytes]:
    """Deterministic pseudo-random bytes, generated a megabyte at a time."""
    block = hashlib.sha256(str(seed).encode()).digest() * (CHUNK // 32)
    for offset in range(0, size, CHUNK):
        yield block[: min(CHUNK, size - offset)]


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while block := fh.read(CHUNK):
            digest.update(block)
    return digest.hexdigest()


class LocalAdapter(RegistryAdapter):
    """Versions in memory, artifacts as files; a missing file means 'never to be read'."""

    registry = "s3"

    def __init__(self, ctx: ActionContext, versions: list[ModelVersion]) -> None:
        super().__init__(TargetParams(registry="s3", bucket="bench", key="model"), ctx)
        self._versions = versions

    def versions(self) -> Iterator[ModelVersion]:
        return iter(self._versions)

    def load(self, version: ModelVersion) -> ModelVersion:
        return version

    def version(self, version_id: str) -> ModelVersion:
        return next(v for v in self._versions if v.id == version_id)

    def compute_digest(self, version: ModelVersion) -> str:
        digest = hashlib.sha256()
        with Path(version.artifact).open("rb") as fh:
            while block := fh.read(CHUNK):
                self.ctx.check_cancelled()
                digest.update(block)
                self.bytes_read += len(block)
        return digest.hexdigest()

    def serving(self) -> ServingState:
        return ServingState(versions=[self._versions[0].id])

    def deploy(self, version: ModelVersion) -> list[str]:
        return []

    def restore(self, state: ServingState) -> list[str]:
        return []

    def drain(self) -> list[str]:
        return []

    def write_metadata(self, version: ModelVersion, updates: Mapping[str, str], remove: Iterable[str] = ()) -> None:
        raise NotImplementedError


def _selection_figures(chosen: ModelVersion | None, selection: Selection) -> dict[str, Any]:
    """What a selection chose and how much it had to read."""
    return {
        "chosen": chosen.label if chosen else None,
        "examined": selection.examined,
        "hashed": selection.digests_computed,
        "bytes": selection.hashed_bytes,
    }


def build_local(root: Path, count: int, size: int) -> tuple[list[ModelVersion], datetime, list[Path]]:
    cutoff = datetime.now(UTC)
    kinds = NEWER + ["good"] + ["old-good"] * (count - len(NEWER) - 1)
    versions: list[ModelVersion] = []
    readable: list[Path] = []
    for index, kind in enumerate(kinds):
        created = cutoff + timedelta(minutes=10) if kind == "after" else cutoff - timedelta(hours=index + 1)
        path = root / f"v{count - index}.bin"
        real = hashlib.sha256()
        for block in chunks(index, size):
            real.update(block)
        meta: dict[str, str] = {}
        if kind != "unattested":
            meta = attestation(real.hexdigest(), "ci:train-pipeline", {"auc": 0.9})
        if kind == "quarantined":
            meta[KEY_QUARANTINED] = "inc-0: earlier incident"
        if kind in ("tampered", "good"):
            with path.open("wb") as fh:
                for block in chunks(index + 100_000 if kind == "tampered" else index, size):
                    fh.write(block)
            readable.append(path)
        versions.append(
            ModelVersion(
                id=f"v{count - index}",
                label=f"bench v{count - index}",
                created_at=created,
                artifact=str(path),
                approved=True,
                metadata=meta,
            )
        )
    return versions, cutoff, readable


def bench_local(args: argparse.Namespace) -> dict[str, Any]:
    size = args.size_mb << 20
    with tempfile.TemporaryDirectory(prefix="fireline-bench-") as scratch:
        root = Path(scratch)
        versions, cutoff, readable = build_local(root, args.versions, size)
        policy_times, raw_times = [], []
        result: dict[str, Any] = {}
        for attempt in range(args.repeat):
            ctx = make_context(root / "runs" / f"run-{attempt}", started_at=cutoff, step_id="rollback")
            adapter = LocalAdapter(ctx, versions)
            start = time.perf_counter()
            selection, chosen = select_known_good(adapter, KnownGoodPolicy(), ctx)
            policy_times.append(time.perf_counter() - start)
            start = time.perf_counter()
            for path in readable:
                sha256_file(path)
            raw_times.append(time.perf_counter() - start)
            result = _selection_figures(chosen, selection)
        return {
            "registry": "local adapter (files on disk, only reachable artifacts written)",
            **result,
            "policy_s": statistics.median(policy_times),
            "raw_hash_s": statistics.median(raw_times),
        }


def bench_s3(args: argparse.Namespace) -> dict[str, Any]:
    import os

    import boto3
    from moto import mock_aws

    from integrations.models.s3 import S3Adapter

    os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
    size = args.size_mb << 20
    with mock_aws(), tempfile.TemporaryDirectory(prefix="fireline-bench-") as scratch:
        s3 = boto3.client("s3", region_name="us-east-1")
        s3.create_bucket(Bucket="bench")
        s3.put_bucket_versioning(Bucket="bench", VersioningConfiguration={"Status": "Enabled"})
        kinds = list(
            reversed(
                ["unattested"] * 10
                + ["quarantined"] * 3
                + ["tampered"] * 2
                + ["good"]
                + ["old-good"] * (args.versions - 16)
            )
        )
        reachable: list[str] = []
        for index, kind in enumerate(kinds):
            big = kind in ("good", "tampered")
            body = b"".join(chunks(index, size)) if big else hashlib.sha256(str(index).encode()).digest() * 32
            vid = s3.put_object(Bucket="bench", Key="model", Body=body)["VersionId"]
            tags: dict[str, str] = {}
            if kind != "unattested":
                attested = hashlib.sha256(b"x" if kind == "tampered" else body).hexdigest()
                tags = attestation(attested, "ci:train-pipeline") | {"fireline.approved": "true"}
                tags.pop("fireline.attested_at")
            if kind == "quarantined":
                tags[KEY_QUARANTINED] = "inc-0: earlier"
            if tags:
                s3.put_object_tagging(
                    Bucket="bench",
                    Key="model",
                    VersionId=vid,
                    Tagging={"TagSet": [{"Key": k, "Value": v} for k, v in tags.items()]},
                )
            if big:
                reachable.append(vid)
        cutoff = datetime.now(UTC) + timedelta(seconds=2)
        policy_times, raw_times = [], []
        result: dict[str, Any] = {}
        for attempt in range(args.repeat):
            ctx = make_context(Path(scratch) / f"run-{attempt}", started_at=cutoff, step_id="rollback")
            adapter = S3Adapter(TargetParams(registry="s3", bucket="bench", key="model"), ctx)
            adapter.s3  # noqa: B018 - the run's client exists before the step (earlier steps made it)
            start = time.perf_counter()
            selection, chosen = select_known_good(adapter, KnownGoodPolicy(), ctx)
            policy_times.append(time.perf_counter() - start)
            start = time.perf_counter()
            for vid in reachable:
                digest = hashlib.sha256()
                for block in s3.get_object(Bucket="bench", Key="model", VersionId=vid)["Body"].iter_chunks(CHUNK):
                    digest.update(block)
            raw_times.append(time.perf_counter() - start)
            result = _selection_figures(chosen, selection)
        return {
            "registry": "s3 adapter on in-process moto",
            **result,
            "policy_s": statistics.median(policy_times),
            "raw_hash_s": statistics.median(raw_times),
        }


TAINTED = "s3://ml-training-data/shards/2026-11-02/"


def _trained_on(index: int) -> dict[str, str]:
    from integrations.data.lineage import encode_training_data

    uri = TAINTED if index % 10 == 0 else f"s3://ml-training-data/shards/2026-10-{index % 28 + 1:02d}/"
    return encode_training_data({uri: hashlib.sha256(uri.encode()).hexdigest()})


def _radius(ctx: ActionContext, target: TargetParams, adapter: RegistryAdapter) -> Any:
    from integrations.data.lineage import TaintedDataset
    from integrations.data.radius import BlastRadiusParams, search

    params = BlastRadiusParams(datasets=[TaintedDataset(uri=TAINTED)], registries=[target])
    result, _ = search(params, ctx, params.datasets, adapters=lambda t, c: adapter)
    return result


def bench_radius_local(args: argparse.Namespace) -> dict[str, Any]:
    now = datetime.now(UTC)
    versions = [
        ModelVersion(
            id=f"v{args.versions - i}",
            label=f"bench v{args.versions - i}",
            created_at=now - timedelta(hours=i),
            artifact=f"/nonexistent/v{args.versions - i}.bin",  # reading one would fail the bench
            approved=True,
            metadata=attestation("0" * 64, "ci:train-pipeline") | _trained_on(i),
        )
        for i in range(args.versions)
    ]
    radius_times, list_times, found = [], [], 0
    with tempfile.TemporaryDirectory(prefix="fireline-bench-") as scratch:
        for attempt in range(args.repeat):
            ctx = make_context(Path(scratch) / f"run-{attempt}", step_id="radius")
            adapter = LocalAdapter(ctx, versions)
            start = time.perf_counter()
            listed = [adapter.load(v) for v in adapter.versions()]
            list_times.append(time.perf_counter() - start)
            start = time.perf_counter()
            found = len(_radius(ctx, adapter.target, adapter).models)
            radius_times.append(time.perf_counter() - start)
            assert len(listed) == args.versions
            assert adapter.bytes_read == 0
    return {
        "registry": "local adapter (metadata in memory, no artifact on disk)",
        "found": found,
        "radius_s": statistics.median(radius_times),
        "listing_s": statistics.median(list_times),
    }


def bench_radius_s3(args: argparse.Namespace) -> dict[str, Any]:
    import os

    import boto3
    from moto import mock_aws

    from integrations.models.base import encode_tag_value
    from integrations.models.s3 import S3Adapter

    os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
    with mock_aws(), tempfile.TemporaryDirectory(prefix="fireline-bench-") as scratch:
        s3 = boto3.client("s3", region_name="us-east-1")
        s3.create_bucket(Bucket="bench")
        s3.put_bucket_versioning(Bucket="bench", VersioningConfiguration={"Status": "Enabled"})
        for index in range(args.versions):
            vid = s3.put_object(Bucket="bench", Key="model", Body=b"w" * 1024)["VersionId"]
            tags = attestation("0" * 64, "ci:train-pipeline") | _trained_on(args.versions - 1 - index)
            tag_set = [{"Key": k, "Value": encode_tag_value(k, v)} for k, v in tags.items()]
            s3.put_object_tagging(Bucket="bench", Key="model", VersionId=vid, Tagging={"TagSet": tag_set})
        target = TargetParams(registry="s3", bucket="bench", key="model")
        radius_times, list_times, tag_times, found = [], [], [], 0
        for attempt in range(args.repeat):
            ctx = make_context(Path(scratch) / f"run-{attempt}", step_id="radius")
            adapter = S3Adapter(target, ctx)
            adapter.s3  # noqa: B018 - the run's client exists before the step
            start = time.perf_counter()
            listed = list(adapter.versions())
            list_times.append(time.perf_counter() - start)
            start = time.perf_counter()
            for version in listed:
                adapter.load(version)
            tag_times.append(time.perf_counter() - start + list_times[-1])
            start = time.perf_counter()
            found = len(_radius(ctx, target, adapter).models)
            radius_times.append(time.perf_counter() - start)
            assert adapter.bytes_read == 0
    return {
        "registry": "s3 adapter on in-process moto (1 KB bodies, never read)",
        "found": found,
        "radius_s": statistics.median(radius_times),
        "listing_s": statistics.median(list_times),
        "listing_tags_s": statistics.median(tag_times),
    }


def radius_main(args: argparse.Namespace) -> None:
    figures = bench_radius_local(args) if args.registry == "local" else bench_radius_s3(args)
    figures["ratio"] = figures["radius_s"] / figures["listing_s"]
    if args.json:
        print(json.dumps(figures, indent=2))
        return
    print(f"registry:        {figures['registry']}")
    print(f"versions:        {args.versions}; reached by the tainted shard: {figures['found']} (expected every 10th)")
    print(f"blast radius:    {figures['radius_s']:.3f} s (median of {args.repeat}); artifacts read: 0 bytes")
    print(f"listing alone:   {figures['listing_s']:.4f} s")
    if "listing_tags_s" in figures:
        print(f"listing + tags:  {figures['listing_tags_s']:.3f} s (the metadata the radius must read anyway)")
        print(f"ratio:           {figures['radius_s'] / figures['listing_tags_s']:.2f}x of listing + tags")
    print(f"ratio:           {figures['ratio']:.2f}x of listing alone")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--registry", choices=["local", "s3"], default="local")
    parser.add_argument("--versions", type=int, default=500)
    parser.add_argument("--size-mb", type=int, default=20)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--blast-radius", action="store_true", help="Time data.blast_radius against listing alone.")
    args = parser.parse_args()
    if args.blast_radius:
        radius_main(args)
        return
    figures = bench_local(args) if args.registry == "local" else bench_s3(args)
    figures["ratio"] = figures["policy_s"] / figures["raw_hash_s"]
    if args.json:
        print(json.dumps(figures, indent=2))
        return
    print(f"registry:        {figures['registry']}")
    print(f"versions:        {args.versions}, artifacts {args.size_mb} MB")
    print(f"chosen:          {figures['chosen']} after examining {figures['examined']} version(s)")
    print(f"artifacts read:  {figures['hashed']} ({figures['bytes'] / (1 << 20):.0f} MB)")
    print(f"select+verify:   {figures['policy_s']:.3f} s (median of {args.repeat})")
    print(f"raw sha256:      {figures['raw_hash_s']:.3f} s of the same artifacts")
    print(f"ratio:           {figures['ratio']:.2f}x (goal: within 1.3x)")


if __name__ == "__main__":
    main()

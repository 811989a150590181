"""Evidence benchmark: preserve a 1 GiB object (stream, SHA-256, multipart copy, Object Lock) from a
local moto server, against ``hashlib`` on the same bytes.

Prints figures, never asserts. Goals: streaming hash throughput >= 0.7 of hashlib's; peak RSS of
this process < 200 MB. The object is built with a multipart upload of generated parts, so neither
building nor preserving it ever holds it whole in memory.

Run: ``.venv/bin/python bench/evidence.py [--size-mib 1024]``.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import random
import resource
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
os.environ.pop("AWS_SESSION_TOKEN", None)
os.environ.setdefault("AWS_EC2_METADATA_DISABLED", "true")

PART = 16 * 1024 * 1024


def parts(size: int) -> Iterator[bytes]:
    """The object's bytes, part by part: a random block varied per part (cheap to regenerate, not compressible)."""
    block = random.Random(42).randbytes(PART)  # the same bytes every time, so hashlib can redo them
    number = 0
    while size > 0:
        chunk = block[: min(PART, size)]
        yield number.to_bytes(8, "big") + chunk[8:] if len(chunk) > 8 else chunk
        size -= len(chunk)
        number += 1


def build_object(endpoint: str, size: int) -> None:
    """Upload the object part by part from a child process (its memory is not this process's)."""
    import subprocess

    code = (
        "import sys; sys.path.insert(0, sys.argv[3]); from bench.evidence import upload; "
        "upload(sys.argv[1], int(sys.argv[2]))"
    )
    subprocess.run([sys.executable, "-c", code, endpoint, str(size), str(REPO)], check=True)


def upload(endpoint: str, size: int) -> None:
    from integrations.aws.sandbox import World

    s3 = World(endpoint).client("s3")
    upload_id = s3.create_multipart_upload(Bucket="big-data", Key="model.bin")["UploadId"]
    etags = []
    for number, chunk in enumerate(parts(size), start=1):
        part = s3.upload_part(Bucket="big-data", Key="model.bin", UploadId=upload_id, PartNumber=number, Body=chunk)
        etags.append({"PartNumber": number, "ETag": part["ETag"]})
    s3.complete_multipart_upload(
        Bucket="big-data", Key="model.bin", UploadId=upload_id, MultipartUpload={"Parts": etags}
    )


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size-mib", type=int, default=1024)
    args = parser.parse_args()
    size = args.size_mib * 1024 * 1024

    from flows.config import AwsSettings, Settings
    from flows.context import make_context
    from integrations.aws import moto_server
    from integrations.aws.s3 import PreserveObjects, PreserveParams
    from integrations.aws.s3_stream import sha256_stream
    from integrations.aws.sandbox import World

    rss_start = rss_mb()
    workdir = Path(tempfile.mkdtemp(prefix="fireline-bench-evidence-"))
    with moto_server.start(workdir=workdir / "moto") as server:
        s3 = World(server.endpoint).client("s3")
        s3.create_bucket(Bucket="big-data")
        s3.create_bucket(Bucket="bench-evidence", ObjectLockEnabledForBucket=True)
        # Built in a child process, so the peak RSS printed below is the hashing and the preserving alone.
        start = time.perf_counter()
        build_object(server.endpoint, size)
        build = time.perf_counter() - start
        reference = hashlib.sha256()
        for chunk in parts(size):
            reference.update(chunk)
        rss_after_build = rss_mb()

        # hashlib alone, on the same bytes regenerated in memory part by part.
        digest, start = hashlib.sha256(), time.perf_counter()
        for chunk in parts(size):
            digest.update(chunk)
        hashlib_s = time.perf_counter() - start
        same_bytes = digest.hexdigest() == reference.hexdigest()

        # Streaming hash of the object as fireline reads it (GET body, 16 MiB reads).
        start = time.perf_counter()
        streamed, streamed_size = sha256_stream(s3.get_object(Bucket="big-data", Key="model.bin")["Body"])
        stream_s = time.perf_counter() - start

        # The whole action: stream, hash, multipart copy, tag, COMPLIANCE retention, legal hold.
        settings = Settings(runs_dir=workdir / "runs", aws=AwsSettings(endpoint_url=server.endpoint))
        ctx = make_context(workdir / "runs" / "run-1", settings=settings)
        start = time.perf_counter()
        result = PreserveObjects().apply(PreserveParams(bucket="big-data", evidence_bucket="bench-evidence"), ctx)
        preserve_s = time.perf_counter() - start

    mib = size / (1024 * 1024)
    ok = same_bytes and streamed == result.objects[0].sha256 == reference.hexdigest() and streamed_size == size
    print(f"object: {mib:.0f} MiB, built by multipart upload in {build:.1f} s; hashes agree: {ok}")
    print(f"hashlib sha256 in memory : {mib / hashlib_s:8.1f} MiB/s")
    ratio = hashlib_s / stream_s
    print(f"streamed GET + sha256    : {mib / stream_s:8.1f} MiB/s  ratio to hashlib {ratio:5.2f} (goal >= 0.7)")
    print(f"preserve_objects (copy)  : {mib / preserve_s:8.1f} MiB/s  ratio to hashlib {hashlib_s / preserve_s:5.2f}")
    print(f"peak RSS of this process : {rss_mb():8.1f} MB (goal < 200)")
    print(f"  before any I/O         : {rss_start:8.1f} MB (Python, fireline)")
    print(f"  after the reference    : {rss_after_build:8.1f} MB (boto3 loaded, hashlib pass over generated parts)")
    print(f"machine load (1 min)     : {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")


if __name__ == "__main__":
    main()

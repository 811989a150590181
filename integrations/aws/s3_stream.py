"""Copy one S3 object version to another bucket, hashing it with SHA-256 on the way.

Never loads an object whole: a reader thread pulls fixed-size chunks from the source body into a
small bounded queue, the caller's thread hashes each chunk and hands it to a pool that uploads
parts in parallel. Memory stays near ``chunk_size * (queue_depth + upload_workers + 1)``.
"""

from __future__ import annotations

import hashlib
import queue
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from flows.actions.context import ActionContext

CHUNK_SIZE = 8 * 1024 * 1024  # S3 parts must be >= 5 MiB except the last
QUEUE_DEPTH = 2
UPLOAD_WORKERS = 2
_END = object()


@dataclass
class Copied:
    """What the copy produced."""

    version_id: str | None
    size: int
    sha256: str
    etag: str


def sha256_stream(body: Any, chunk_size: int = CHUNK_SIZE) -> tuple[str, int]:
    """Hash a readable stream chunk by chunk; return (hex digest, size).

    A reader thread fetches the next chunk while this one is hashed (hashlib releases the GIL on
    large buffers), so throughput approaches the slower of the two instead of their sum.
    """
    digest = hashlib.sha256()
    size = 0
    chunks: queue.Queue[Any] = queue.Queue(maxsize=QUEUE_DEPTH)
    stop = threading.Event()
    reader = threading.Thread(target=_reader, args=(body, chunks, chunk_size, stop), daemon=True)
    reader.start()
    try:
        while (chunk := chunks.get()) is not _END:
            if isinstance(chunk, Exception):
                raise chunk
            digest.update(chunk)
            size += len(chunk)
    finally:
        _drain(reader, chunks, stop)
    return digest.hexdigest(), size


def _drain(reader: threading.Thread, chunks: queue.Queue[Any], stop: threading.Event) -> None:
    """Stop the reader, unblocking it if it waits on a full queue."""
    stop.set()
    while reader.is_alive():
        try:
            chunks.get_nowait()
        except queue.Empty:
            reader.join(0.05)


def _reader(body: Any, chunks: queue.Queue[Any], chunk_size: int, stop: threading.Event) -> None:
    try:
        while not stop.is_set():
            chunk = body.read(chunk_size)
            if not chunk:
                break
            chunks.put(chunk)
    except Exception as e:
        chunks.put(e)
    finally:
        chunks.put(_END)


def stream_copy(
    ctx: ActionContext,
    s3: Any,
    source: dict[str, str],
    bucket: str,
    key: str,
    *,
    extra: dict[str, Any] | None = None,
    chunk_size: int = CHUNK_SIZE,
) -> Copied:
    """Copy ``source`` ({"Bucket","Key","VersionId"}) to ``bucket``/``key``; return its new version and sha256."""
    extra = extra or {}
    obj = s3.get_object(**source)
    body = obj["Body"]
    first = body.read(chunk_size)
    if len(first) < chunk_size:
        # Small object: one request, nothing left to stream.
        put = s3.put_object(Bucket=bucket, Key=key, Body=first, **extra)
        return Copied(put.get("VersionId"), len(first), hashlib.sha256(first).hexdigest(), put.get("ETag", ""))
    upload = s3.create_multipart_upload(Bucket=bucket, Key=key, **extra)
    try:
        return _multipart(ctx, s3, body, first, bucket, key, upload["UploadId"], chunk_size)
    except BaseException:
        s3.abort_multipart_upload(Bucket=bucket, Key=key, UploadId=upload["UploadId"])
        raise


def _multipart(
    ctx: ActionContext, s3: Any, body: Any, first: bytes, bucket: str, key: str, upload_id: str, chunk_size: int
) -> Copied:
    digest = hashlib.sha256()
    chunks: queue.Queue[Any] = queue.Queue(maxsize=QUEUE_DEPTH)
    stop = threading.Event()
    reader = threading.Thread(target=_reader, args=(body, chunks, chunk_size, stop), daemon=True)
    reader.start()
    futures: list[Future[Any]] = []
    size = 0
    with ThreadPoolExecutor(max_workers=UPLOAD_WORKERS, thread_name_prefix="fireline-s3-part") as pool:
        slots = threading.Semaphore(UPLOAD_WORKERS + 1)  # bounds chunks held by queued uploads
        chunk: Any = first
        number = 1
        try:
            while chunk is not _END:
                if isinstance(chunk, Exception):
                    raise chunk
                ctx.check_cancelled()
                digest.update(chunk)
                size += len(chunk)
                slots.acquire()
                future = pool.submit(
                    s3.upload_part, Bucket=bucket, Key=key, UploadId=upload_id, PartNumber=number, Body=chunk
                )
                future.add_done_callback(lambda _f: slots.release())
                futures.append(future)
                number += 1
                chunk = chunks.get()
        finally:
            _drain(reader, chunks, stop)
        parts = [{"PartNumber": i + 1, "ETag": f.result()["ETag"]} for i, f in enumerate(futures)]
    done = s3.complete_multipart_upload(Bucket=bucket, Key=key, UploadId=upload_id, MultipartUpload={"Parts": parts})
    return Copied(done.get("VersionId"), size, digest.hexdigest(), done.get("ETag", ""))

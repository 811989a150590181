"""A local moto server on 127.0.0.1: start, wait until ready, reset, record, stop.

Used by ``fireline sandbox`` and by the test fixtures. The server is a child process on a free
loopback port; :meth:`MotoServer.stop` (also run on Ctrl-C and at interpreter exit) ends it.
"""

from __future__ import annotations

import atexit
import base64
import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

from flows.errors import ConfigError
from integrations.aws.session import is_read_only

SANDBOX_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}


@contextmanager
def sandbox_credentials() -> Iterator[None]:
    """Point this process's AWS credentials at the sandbox for the duration (restored after).

    moto accepts any key; setting them explicitly keeps a developer's real credentials (or
    their absence) out of the sandbox run.
    """
    saved = {k: os.environ.get(k) for k in (*SANDBOX_CREDENTIALS, "AWS_SESSION_TOKEN", "AWS_PROFILE")}
    os.environ.update(SANDBOX_CREDENTIALS)
    os.environ.pop("AWS_SESSION_TOKEN", None)
    os.environ.pop("AWS_PROFILE", None)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class MotoServer:
    """A running moto server process."""

    endpoint: str
    process: subprocess.Popen[bytes]
    recording: Path
    log: Path
    _stopped: bool = field(default=False, repr=False)

    def _post(self, path: str, data: bytes = b"") -> bytes:
        request = urllib.request.Request(f"{self.endpoint}{path}", data=data, method="POST")
        with urllib.request.urlopen(request, timeout=30) as response:
            body: bytes = response.read()
            return body

    def reset(self) -> None:
        """Forget every resource (POST /moto-api/reset)."""
        self._post("/moto-api/reset")

    def set_auth(self, initial_no_auth_action_count: float) -> None:
        """Enforce IAM after that many requests (``inf`` switches enforcement off again)."""
        self._post("/moto-api/reset-auth", str(initial_no_auth_action_count).encode())

    def start_recording(self) -> None:
        self._post("/moto-api/recorder/reset-recording")
        self._post("/moto-api/recorder/start-recording")

    def stop_recording(self) -> None:
        self._post("/moto-api/recorder/stop-recording")

    def recorded(self) -> list[dict[str, Any]]:
        """Every request the server received while recording, in order."""
        if not self.recording.exists():
            return []
        return [json.loads(line) for line in self.recording.read_text(encoding="utf-8").splitlines() if line.strip()]

    def mutating_requests(self) -> list[str]:
        """The recorded requests that could change state, as ``METHOD path operation`` lines."""
        return [describe for entry in self.recorded() if (describe := _mutating(entry)) is not None]

    def stop(self) -> None:
        if self._stopped:
            return
        self._stopped = True
        # moto keeps everything in memory and has nothing to flush: no need for a graceful shutdown.
        self.process.kill()
        self.process.wait(timeout=10)

    def __enter__(self) -> MotoServer:
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()


def start(*, port: int | None = None, workdir: Path | None = None, timeout: float = 60.0) -> MotoServer:
    """Start ``moto_server`` on 127.0.0.1 and return once it answers."""
    try:
        import moto  # noqa: F401 - only to give a clear message when the extra is missing
    except ImportError as e:
        raise ConfigError("the sandbox needs moto: pip install 'fireline[sandbox]'") from e
    import tempfile

    workdir = workdir or Path(tempfile.mkdtemp(prefix="fireline-moto-"))
    workdir.mkdir(parents=True, exist_ok=True)
    port = port or free_port()
    recording, log = workdir / "recording.jsonl", workdir / "moto.log"
    env = {**os.environ, "MOTO_RECORDER_FILEPATH": str(recording)}
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=workdir,
        )
    server = MotoServer(endpoint=f"http://127.0.0.1:{port}", process=process, recording=recording, log=log)
    atexit.register(server.stop)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise ConfigError(f"moto server exited with {process.returncode}: {log.read_text(errors='replace')[-500:]}")
        try:
            with urllib.request.urlopen(f"{server.endpoint}/moto-api/data.json", timeout=2):
                return server
        except OSError:
            time.sleep(0.1)
    server.stop()
    raise ConfigError(f"moto server did not answer on {server.endpoint} within {timeout:g}s")


def _mutating(entry: dict[str, Any]) -> str | None:
    """None for a read-only request; otherwise a short description of it."""
    url = urlparse(entry.get("url", ""))
    if url.path.startswith("/moto-api"):
        return None
    method = entry.get("method", "GET")
    headers = {k.lower(): v for k, v in entry.get("headers", {}).items()}
    target = headers.get("x-amz-target")
    operation: str | None = None
    if target:
        operation = target.rsplit(".", 1)[-1]
    else:
        body = entry.get("body") or ""
        if entry.get("body_encoded"):
            body = base64.b64decode(body).decode("utf-8", errors="replace")
        form = parse_qs(body) if isinstance(body, str) else {}
        action = form.get("Action") or parse_qs(url.query).get("Action")
        if action:
            operation = action[0]
    if operation is not None:
        return None if is_read_only(operation) else f"{method} {url.path} {operation}"
    # REST services (S3, Lambda): reads are GET and HEAD.
    return None if method in ("GET", "HEAD") else f"{method} {url.path}?{url.query}"

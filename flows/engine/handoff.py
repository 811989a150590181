"""Client side of the warm runtime: hand a run to a live ``fireline serve``, or say there is none.

:func:`try_handoff` must cost nothing when no server is up (it is on the path of every ``fireline
run``): it reads ``<home>/serve.json`` and checks the pid with ``/proc`` only, so it answers None in
well under a millisecond for a missing or stale file, and imports nothing heavy (``http.client``,
not httpx). When a server is up it posts the request and returns the server's answer: ``run_id``,
``run_dir`` (absolute; the caller follows ``<run_dir>/events.jsonl``), ``mode``, ``status``.

A run is handed over only when the caller's effective settings are the server's
(:func:`effective_settings`: AWS endpoint, region, profile, role and credential source, runs
directory, and an in-process dispatch): otherwise the server would act on another account or
endpoint than the caller meant. The comparison happens before any request (``serve.json`` carries
the server's settings), and the server checks again (HTTP 409). The credential source is compared
by a digest of what the AWS SDK would read (key id, profile, config files), not by an STS call,
which would cost a network round trip on every ``fireline run``.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import ssl
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from flows.config import Settings, load_settings
from flows.engine.prefect_server import process_alive
from flows.errors import RunError

STATE_FILE = "serve.json"
CONNECT_TIMEOUT = 0.5
READ_TIMEOUT = 10.0


def state_path(settings: Settings) -> Path:
    return settings.home / STATE_FILE


def write_state(path: Path, doc: Mapping[str, Any]) -> None:
    """Write the state file readable by its owner only (it holds the token)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        json.dump(dict(doc), fh)
    os.replace(tmp, path)


def read_live_state(path: Path) -> dict[str, Any] | None:
    """The state of a ``fireline serve`` that is still running, or None (no file, stale, corrupt)."""
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if (
        not isinstance(doc, dict)
        or not isinstance(doc.get("pid"), int)
        or not process_alive(doc["pid"], doc.get("start"))
    ):
        return None
    return doc


_CREDENTIAL_ENV = (
    "AWS_ACCESS_KEY_ID",
    "AWS_PROFILE",
    "AWS_DEFAULT_PROFILE",
    "AWS_SHARED_CREDENTIALS_FILE",
    "AWS_CONFIG_FILE",
    "AWS_ROLE_ARN",
    "AWS_WEB_IDENTITY_TOKEN_FILE",
    "AWS_CONTAINER_CREDENTIALS_FULL_URI",
)


def effective_settings(settings: Settings, *, dispatch: str = "embedded") -> dict[str, Any]:
    """What decides where a run acts: compared between a caller and ``fireline serve``."""
    identity = hashlib.sha256(json.dumps([os.environ.get(k, "") for k in _CREDENTIAL_ENV]).encode()).hexdigest()[:16]
    return {
        "aws.endpoint_url": settings.aws.endpoint_url or os.environ.get("AWS_ENDPOINT_URL") or None,
        "aws.region": settings.aws.region,
        "aws.profile": settings.aws.profile,
        "aws.role_arn": settings.aws.role_arn,
        "aws.credentials": identity,
        "runs_dir": str(settings.runs_dir.resolve()),
        "dispatch": dispatch,
    }


def settings_mismatch(caller: dict[str, Any], server: dict[str, Any]) -> str | None:
    """One line naming the first setting that differs, or None when the run can be handed over."""
    for key in ("aws.endpoint_url", "aws.region", "aws.profile", "aws.role_arn", "aws.credentials", "runs_dir",
                "dispatch"):  # fmt: skip
        if caller.get(key) != server.get(key):
            if key == "aws.credentials":
                return "the AWS credentials differ from the server's"
            if key == "dispatch":
                return f"the server hands runs to Prefect workers ({server.get(key)}), not this machine"
            return f"{key} differs (yours {caller.get(key)!r}, the server's {server.get(key)!r})"
    return None


def _state(settings: Settings) -> dict[str, Any] | None:
    return read_live_state(state_path(settings))


def serve_status(settings: Settings | None = None) -> dict[str, Any] | None:
    """The live ``fireline serve`` (pid, port, prefect_api_url, started_at) without its token, or None."""
    state = _state(settings or load_settings())
    if state is None:
        return None
    return {k: v for k, v in state.items() if k != "token"}


def _absolute_playbook(ref: str) -> str:
    # The server's working directory is not ours: send files as absolute paths, names as names.
    path = Path(ref)
    if path.suffix in (".yaml", ".yml") or path.exists():
        return str(path.resolve())
    return ref


def try_handoff(
    request: dict[str, Any], settings: Settings | None = None, why: list[str] | None = None
) -> dict[str, Any] | None:
    """Hand ``request`` (playbook, alert, mode, inputs, run_id, trigger) to a live ``fireline serve``.

    Returns None when no server is running (or it vanished between the check and the call), or when
    its settings are not the caller's (the reason is appended to ``why``), so the caller runs the
    playbook itself. Raises :class:`~flows.errors.RunError` when a server is up but refuses the run
    (bad request, shutting down, wrong token).
    """
    settings = settings or load_settings()
    state = _state(settings)
    if state is None:
        return None
    mine = effective_settings(settings)
    differs = settings_mismatch(mine, state.get("settings") or {})
    if differs is not None:
        if why is not None:
            why.append(f"fireline serve (pid {state['pid']}) not used: {differs}")
        return None
    body = json.dumps(
        {**request, "playbook": _absolute_playbook(str(request.get("playbook", ""))), "settings": mine}, default=str
    )
    conn = _connection(state)
    try:
        conn.connect()
        assert conn.sock is not None  # connect() succeeded
        conn.sock.settimeout(READ_TIMEOUT)
        conn.request(
            "POST",
            "/runs",
            body=body.encode(),
            headers={"Content-Type": "application/json", "Authorization": f"Bearer {state['token']}"},
        )
        response = conn.getresponse()
        raw = response.read()
    except (ConnectionRefusedError, TimeoutError, OSError):
        return None  # the server died or is not accepting: run in-process
    finally:
        conn.close()
    try:
        answer: dict[str, Any] = json.loads(raw)
    except ValueError as e:
        raise RunError(f"fireline serve (pid {state['pid']}) answered {response.status} with a non-JSON body") from e
    if response.status == 409 and answer.get("mismatch"):
        if why is not None:
            why.append(f"fireline serve (pid {state['pid']}) not used: {answer.get('error')}")
        return None
    if response.status != 202:
        raise RunError(f"fireline serve (pid {state['pid']}) refused the run: {answer.get('error', response.status)}")
    answer["server"] = {"pid": state["pid"], "start": state.get("start")}
    return answer


def _connection(state: dict[str, Any]) -> http.client.HTTPConnection:
    port = int(state["port"])
    if not state.get("tls"):
        return http.client.HTTPConnection("127.0.0.1", port, timeout=CONNECT_TIMEOUT)
    # The server's own certificate is the trust anchor on loopback; its name is rarely 127.0.0.1.
    context = ssl.create_default_context(cafile=state.get("tls_cert"))
    context.check_hostname = False
    return http.client.HTTPSConnection("127.0.0.1", port, timeout=CONNECT_TIMEOUT, context=context)


def follow_run(
    run_dir: Path, *, timeout: float, poll: float = 0.1, server: dict[str, Any] | None = None
) -> Iterator[dict[str, Any]]:
    """Yield the run's events as they are appended, until run.json says it is no longer running.

    For a CLI that shows the progress of a handed-over run; :func:`wait_for_run` returns run.json after.
    With ``server`` (``{"pid", "start"}`` of the ``fireline serve`` running it), a server that dies
    while the run is going on raises :class:`RunError` at once instead of waiting for ``timeout``.
    """
    deadline = time.monotonic() + timeout
    events, run_json, offset = run_dir / "events.jsonl", run_dir / "run.json", 0
    while True:
        finished = _status(run_json) not in (None, "running")  # read before the log: no last event is missed
        try:
            with events.open("rb") as fh:
                fh.seek(offset)
                chunk = fh.read()
        except OSError:
            chunk = b""
        complete = chunk[: chunk.rfind(b"\n") + 1]  # a line being written is read next time
        offset += len(complete)
        for line in complete.splitlines():
            if line.strip():
                yield json.loads(line)
        if finished:
            return
        if server is not None and not process_alive(int(server["pid"]), server.get("start")):
            if _status(run_json) in (None, "running"):
                raise RunError(
                    f"fireline serve (pid {server['pid']}) died while run {run_dir.name} was going on; "
                    f"continue it with: fireline resume {run_dir.name}"
                )
            continue  # it finished just before the server went: read the last events
        if time.monotonic() > deadline:
            raise RunError(f"run in {run_dir} did not finish within {timeout:g}s")
        time.sleep(poll)


def _status(run_json: Path) -> str | None:
    try:
        doc = json.loads(run_json.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    status = doc.get("status") if isinstance(doc, dict) else None
    return str(status) if status is not None else None


def wait_for_run(run_dir: Path, *, timeout: float, poll: float = 0.1) -> dict[str, Any]:
    """Follow a handed-over run until it is no longer running; return its run.json."""
    for _ in follow_run(run_dir, timeout=timeout, poll=poll):
        pass
    doc: dict[str, Any] = json.loads((run_dir / "run.json").read_text(encoding="utf-8"))
    return doc

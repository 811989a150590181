"""Client side of the warm runtime: hand a run to a live ``fireline serve``, or say there is none.

:func:`try_handoff` must cost nothing when no server is up (it is on the path of every ``fireline
run``): it reads ``<home>/serve.json`` and checks the pid with ``/proc`` only, so it answers None in
well under a millisecond for a missing or stale file, and imports nothing heavy (``http.client``,
not httpx). When a server is up it posts the request and returns the server's answer: ``run_id``,
``run_dir`` (absolute; the caller follows ``<run_dir>/events.jsonl``), ``mode``, ``status``.
"""

from __future__ import annotations

import http.client
import json
import os
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


def try_handoff(request: dict[str, Any], settings: Settings | None = None) -> dict[str, Any] | None:
    """Hand ``request`` (playbook, alert, mode, inputs, run_id, trigger) to a live ``fireline serve``.

    Returns None when no server is running (or it vanished between the check and the call), so the
    caller runs the playbook itself. Raises :class:`~flows.errors.RunError` when a server is up but
    refuses the run (bad request, shutting down, wrong token).
    """
    state = _state(settings or load_settings())
    if state is None:
        return None
    body = json.dumps({**request, "playbook": _absolute_playbook(str(request.get("playbook", "")))}, default=str)
    conn = http.client.HTTPConnection("127.0.0.1", int(state["port"]), timeout=CONNECT_TIMEOUT)
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
    if response.status != 202:
        raise RunError(f"fireline serve (pid {state['pid']}) refused the run: {answer.get('error', response.status)}")
    return answer


def follow_run(run_dir: Path, *, timeout: float, poll: float = 0.1) -> Iterator[dict[str, Any]]:
    """Yield the run's events as they are appended, until run.json says it is no longer running.

    For a CLI that shows the progress of a handed-over run; :func:`wait_for_run` returns run.json after.
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

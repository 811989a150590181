"""The Prefect API server fireline starts for itself: a migrated database, a tuned process, no orphans.

fireline starts Prefect's API server (the same uvicorn app Prefect's ephemeral mode starts) rather
than letting Prefect spawn one on first use, because it must control the process: the database is
migrated once and reused (migrations cost 10-25 s on a fresh home), the server dies with its owner
(``PR_SET_PDEATHSIG`` on Linux, so even a SIGKILL of the CLI leaves no server behind), and every
server is recorded under ``<PREFECT_HOME>/servers/`` so that the next start-up stops one whose
owner is gone (:func:`cleanup_orphans`).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from flows.errors import RunError
from flows.record.store import write_atomic

DEFAULT_STARTUP_TIMEOUT = 90.0

# Server-side tuning (DESIGN.md section 5): SQLite "database is locked" becomes HTTP 503 and 2/4/8 s
# client back-off unless the task run recorder writes in batches.
SERVER_TUNING: dict[str, str] = {
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "PREFECT_SERVER_SERVICES_TASK_RUN_RECORDER_BATCH_SIZE": "100",
    "PREFECT_SERVER_SERVICES_TASK_RUN_RECORDER_READ_BATCH_SIZE": "100",
    # A batch that is not full is written after this many seconds (default 5): task runs show up promptly.
    # Whole seconds only: the recorder reads it with int(), and 0 makes its flush loop
    # ``asyncio.sleep(0)`` forever, a core burnt by an idle server (task_run_recorder.py, Prefect 3.9).
    "PREFECT_SERVER_SERVICES_TASK_RUN_RECORDER_FLUSH_INTERVAL": "1",
    "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": str(int(DEFAULT_STARTUP_TIMEOUT)),
    "PREFECT_SERVER_DATABASE_MIGRATE_ON_START": "false",
    "PREFECT_API_BLOCKS_REGISTER_ON_START": "false",
    "PREFECT_LOGGING_SERVER_LEVEL": "WARNING",
    # Only the services an embedded server needs (no scheduler, no late-runs loop), and of those not
    # the event persister and automations: they write every event to SQLite and were the other
    # writer in most "database is locked" back-offs (runs started back to back waited 2-6 s). The
    # UI keeps flow runs, task runs, logs and artifacts; it loses its event feed.
    "PREFECT__SERVER_EPHEMERAL": "1",
    "PREFECT_SERVER_SERVICES_EVENT_PERSISTER_ENABLED": "false",
    "PREFECT_SERVER_SERVICES_TRIGGERS_ENABLED": "false",
}

# Services a UI-serving (non-ephemeral) embedded server does without.
UI_SERVER_OFF = ("SCHEDULER", "LATE_RUNS", "FOREMAN", "CANCELLATION_CLEANUP", "REPOSSESSOR", "DB_VACUUM")

_MIGRATE_SCRIPT = """
import asyncio
from prefect.server.database import provide_database_interface
from prefect.server.models.block_registration import run_block_auto_registration

async def main():
    db = provide_database_interface()
    await db.create_db()
    async with await db.session() as session:
        await run_block_auto_registration(session=session)
        await session.commit()

asyncio.run(main())
"""


def prefect_version() -> str:
    from importlib.metadata import version

    return version("prefect")


def _marker(home: Path) -> Path:
    return home / f".fireline-migrated-{prefect_version()}"


def default_template_dir() -> Path:
    """A per-user cache of one migrated database, copied into fresh homes (tests, new machines)."""
    import tempfile

    return Path(tempfile.gettempdir()) / f"fireline-prefect-template-{os.getuid()}-{prefect_version()}"


def prepare_database(home: Path, *, template: Path | None = None, timeout: float = 180.0) -> float:
    """Make sure ``home`` holds a migrated Prefect database; return the seconds it took.

    The database is migrated once (in a subprocess, under a file lock so two processes never
    migrate together) and reused afterwards. With ``template`` (itself prepared by this function),
    the migrated file is copied instead, which takes milliseconds.
    """
    import fcntl

    started = time.monotonic()
    home.mkdir(parents=True, exist_ok=True)
    with (home / ".migrate.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if _marker(home).exists():
            return time.monotonic() - started
        if template is not None and template.resolve() != home.resolve():
            prepare_database(template, timeout=timeout)
            for part in template.glob("prefect.db*"):  # with a -wal file if SQLite left one
                shutil.copy2(part, home / part.name)
        else:
            env = {**os.environ, "PREFECT_HOME": str(home), **_server_env(home)}
            env.pop("PREFECT_API_URL", None)
            done = subprocess.run(
                [sys.executable, "-c", _MIGRATE_SCRIPT],
                env=env,
                capture_output=True,
                text=True,
                timeout=timeout,
                check=False,
            )
            if done.returncode != 0:
                tail = done.stderr.strip().splitlines()[-1:] or ["no output"]
                raise RunError(f"cannot migrate the Prefect database in {home}: {tail[0]}")
        _marker(home).write_text(prefect_version() + "\n", encoding="utf-8")
    return time.monotonic() - started


def _server_env(home: Path) -> dict[str, str]:
    return {
        "PREFECT_HOME": str(home),
        "PREFECT_SERVER_DATABASE_CONNECTION_URL": f"sqlite+aiosqlite:///{home / 'prefect.db'}",
        **SERVER_TUNING,
    }


# -- processes ---------------------------------------------------------------------------------------
def process_start_time(pid: int) -> str | None:
    """The kernel's start time of ``pid`` (tells a reused pid apart), or None when it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text(encoding="ascii", errors="replace")
    except OSError:
        return None
    fields = stat[stat.rfind(")") + 2 :].split()
    if not fields or fields[0] == "Z":  # a zombie runs nothing any more
        return None
    return fields[19] if len(fields) > 19 else None


def process_alive(pid: int, start_time: str | None) -> bool:
    """Whether the process ``pid`` that started at ``start_time`` still runs."""
    current = process_start_time(pid)
    return current is not None and (start_time is None or current == start_time)


def _die_with_parent(parent: int) -> None:  # pragma: no cover - runs in the forked child
    # PR_SET_PDEATHSIG: the kernel sends SIGTERM when the thread that forked us exits, so even a
    # SIGKILL of the owner cannot orphan the server. Callers fork from a long-lived thread.
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)
    except (OSError, AttributeError):
        return
    if os.getppid() != parent:
        os._exit(1)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class ServerProcess:
    """A Prefect API server this process started."""

    home: Path
    port: int
    process: subprocess.Popen[bytes]
    record: Path

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/api"

    @property
    def pid(self) -> int:
        return self.process.pid

    def stop(self, grace: float = 5.0) -> None:
        """Terminate the server (SIGTERM, then SIGKILL after ``grace`` seconds) and forget it."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.record.unlink(missing_ok=True)


def start_server(
    home: Path, *, port: int | None = None, ui: bool = False, timeout: float = DEFAULT_STARTUP_TIMEOUT
) -> ServerProcess:
    """Start a Prefect API server on 127.0.0.1 for ``home`` and wait until it answers."""
    import prefect

    port = port or _free_port()
    env = {**os.environ, **_server_env(home), "PREFECT_UI_ENABLED": "true" if ui else "false"}
    env.pop("PREFECT_API_URL", None)
    if ui:
        # Prefect serves no UI from an "ephemeral" server: run a regular one without the services
        # that only matter for deployments and schedules.
        env.pop("PREFECT__SERVER_EPHEMERAL", None)
        env.update({f"PREFECT_SERVER_SERVICES_{name}_ENABLED": "false" for name in UI_SERVER_OFF})
        env["PREFECT_UI_API_URL"] = f"http://127.0.0.1:{port}/api"  # the UI's default assumes port 4200
    (home / "servers").mkdir(parents=True, exist_ok=True)
    log = (home / "server.log").open("ab")
    parent = os.getpid()
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "--app-dir",
            str(Path(prefect.__file__).parent.parent),
            "--factory",
            "prefect.server.api.server:create_app",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--log-level",
            "error",
            "--lifespan",
            "on",
        ],
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=log,
        start_new_session=True,
        preexec_fn=lambda: _die_with_parent(parent),
    )
    log.close()
    record = home / "servers" / f"{process.pid}.json"
    doc = {
        "pid": process.pid,
        "start": None,
        "port": port,
        "owner_pid": parent,
        "owner_start": process_start_time(parent),
    }
    server = ServerProcess(home=home, port=port, process=process, record=record)
    try:
        doc["start"] = process_start_time(process.pid)
        write_atomic(record, json.dumps(doc).encode())
        wait_healthy(server.api_url, timeout=timeout, process=process)
    except BaseException:
        server.stop(grace=2.0)
        raise
    return server


def wait_healthy(api_url: str, *, timeout: float, process: subprocess.Popen[bytes] | None = None) -> None:
    """Poll ``<api_url>/health`` until it answers 200; raise :class:`RunError` after ``timeout``."""
    import httpx

    deadline = time.monotonic() + timeout
    with httpx.Client(timeout=2.0) as client:
        while time.monotonic() < deadline:
            if process is not None and process.poll() is not None:
                raise RunError(f"the Prefect server exited with code {process.returncode} (see its server.log)")
            with contextlib.suppress(httpx.HTTPError):
                if client.get(f"{api_url}/health").status_code == 200:
                    return
            time.sleep(0.05)
    raise RunError(f"the Prefect server at {api_url} did not answer within {timeout:g}s")


def cleanup_orphans(home: Path) -> list[int]:
    """Stop servers under ``home`` whose owner process is gone; return their pids."""
    stopped: list[int] = []
    for record in sorted((home / "servers").glob("*.json")):
        try:
            doc = json.loads(record.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError):
            record.unlink(missing_ok=True)
            continue
        if process_alive(int(doc["owner_pid"]), doc.get("owner_start")):
            continue
        pid = int(doc["pid"])
        if process_alive(pid, doc.get("start")):
            _terminate(pid)
            stopped.append(pid)
        record.unlink(missing_ok=True)
    return stopped


def _terminate(pid: int, grace: float = 5.0) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline and process_start_time(pid) is not None:
            time.sleep(0.05)
        if process_start_time(pid) is not None:
            os.kill(pid, signal.SIGKILL)

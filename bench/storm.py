"""Alert storm: 5,000 alerts over 50 fingerprints against a warm ``fireline serve``, from a separate process.

Prints (never asserts): runs started (goal: exactly 50), alerts accepted per second (goal: >= 1,000/s),
lost alerts (accepted but not spooled, or refused; goal: 0), and the latency from the request that
carried a fingerprint's first alert to its run's first containment ``apply()`` (goal: p50 <= 0.5 s,
p95 <= 1 s), next to the same figures for a bare Starlette handler (the floor: HTTP on loopback and
this client, nothing else).

The server is ``fireline serve`` in its own process (embedded Prefect, warm runtime, receiver,
spool, dispatcher) with one extra containment action (``bench/storm_actions.py``) whose ``apply()``
writes the time it ran. Run: ``.venv/bin/python bench/storm.py [--alerts 5000] [--fingerprints 50]``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

SERVER = """
import json, sys
sys.path.insert(0, sys.argv[1])
from flows.actions.registry import default_registry
default_registry().register_module("bench.storm_actions")
from flows.config import load_settings
from flows.engine.serve import serve
serve(load_settings(), port=0, on_ready=lambda doc: print(json.dumps({"port": doc["port"]}), flush=True))
"""

BARE = """
import json, sys, time
import uvicorn
from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Route
first = {}
async def alert(request):
    body = await request.json()
    first.setdefault(body["fingerprint"], time.time())
    return JSONResponse({"ok": True}, status_code=202)
async def stats(request):
    return JSONResponse(first)
app = Starlette(routes=[Route("/alerts/generic", alert, methods=["POST"]), Route("/stats", stats)])
config = uvicorn.Config(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning", lifespan="off")
uvicorn.Server(config).run()
"""

BOOK = """\
apiVersion: fireline/v1
kind: Playbook
metadata: {{name: storm, version: 1, title: Storm}}
triggers:
  - source: generic
    match: {{alertname: Storm}}
    dedup_window: 1h
steps:
  - id: contain
    action: bench.storm.contain
    with: {{folder: "{folder}", host: "{{{{ alert.labels.host }}}}"}}
"""


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


async def storm(
    port: int, alerts: int, fingerprints: int, concurrency: int
) -> tuple[dict[int, float], dict[int, int], float]:
    """Send the alerts; return the first send time per fingerprint, the answers by status, and the duration.

    A minimal HTTP/1.1 keep-alive client on asyncio streams, ``concurrency`` connections each with
    one request in flight: httpx's async pool spent ~85% of this process's CPU on its own
    bookkeeping (py-spy), which capped even the bare Starlette floor near 450 requests/s.
    """
    first: dict[int, float] = {}
    statuses: dict[int, int] = {}
    counter = iter(range(alerts))

    async def connection() -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            for i in counter:
                fp = i % fingerprints
                body = json.dumps({"labels": {"alertname": "Storm", "host": f"h{fp}"}, "fingerprint": f"fp{fp}"})
                head = (f"POST /alerts/generic HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                        f"Content-Length: {len(body)}\r\n\r\n")  # fmt: skip
                first.setdefault(fp, time.time())
                header = b""
                try:
                    writer.write(head.encode() + body.encode())
                    header = await reader.readuntil(b"\r\n\r\n")
                    status = int(header.split(b" ", 2)[1])
                    length = re.search(rb"(?i)content-length: *(\d+)", header)
                    await reader.readexactly(int(length.group(1)) if length else 0)
                except (OSError, asyncio.IncompleteReadError, ValueError):
                    status = 0
                statuses[status] = statuses.get(status, 0) + 1
                if status == 0 or b"connection: close" in header.lower():
                    writer.close()
                    reader, writer = await asyncio.open_connection("127.0.0.1", port)
        finally:
            writer.close()

    started = time.perf_counter()
    await asyncio.gather(*(connection() for _ in range(concurrency)))
    return first, statuses, time.perf_counter() - started


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def bare_floor(args: argparse.Namespace) -> float:
    import urllib.request

    port = _free_port()
    proc = subprocess.Popen([sys.executable, "-c", BARE, str(port)], stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/stats", timeout=1).read()
                break
            except OSError:
                time.sleep(0.1)
        first, statuses, seconds = asyncio.run(storm(port, args.alerts, args.fingerprints, args.concurrency))
        seen = json.loads(urllib.request.urlopen(f"http://127.0.0.1:{port}/stats", timeout=5).read())
        latencies = [seen[f"fp{fp}"] - sent for fp, sent in first.items() if f"fp{fp}" in seen]
        print(f"bare Starlette floor: {statuses.get(202, 0) / seconds:8.0f} requests/s accepted; request to handler "
              f"p50 {pct(latencies, 0.5) * 1000:.0f} ms, p95 {pct(latencies, 0.95) * 1000:.0f} ms")  # fmt: skip
        return statuses.get(202, 0) / seconds
    finally:
        proc.terminate()
        proc.wait(10)


def breakdown(root: Path, first: dict[int, float], applied: dict[str, float]) -> dict[str, list[float]]:
    """Where each run's latency went: request to spooled, spooled to run.started, run.started to apply()."""
    from datetime import datetime

    spooled: dict[str, float] = {}
    with sqlite3.connect(root / "home" / "triggers" / "spool.db") as db:
        for received, doc in db.execute("SELECT received_at, doc FROM batches ORDER BY id"):
            spooled.setdefault(json.loads(doc)["alerts"][0]["labels"]["host"], received)
    legs: dict[str, list[float]] = {"to spool": [], "spool to run.started": [], "run.started to apply()": []}
    for run_dir in (root / "runs").iterdir() if (root / "runs").exists() else []:
        try:
            host = json.loads((run_dir / "run.json").read_text())["alert"]["labels"]["host"]
            with (run_dir / "events.jsonl").open() as events:
                started = datetime.fromisoformat(json.loads(events.readline())["at"].replace("Z", "+00:00"))
        except (OSError, ValueError, KeyError):
            continue
        fp = int(host[1:])
        if host in spooled and host in applied and fp in first:
            legs["to spool"].append(spooled[host] - first[fp])
            legs["spool to run.started"].append(started.timestamp() - spooled[host])
            legs["run.started to apply()"].append(applied[host] - started.timestamp())
    return legs


def fireline_storm(args: argparse.Namespace, root: Path, floor: float) -> None:
    marks = root / "marks"
    marks.mkdir()
    library = root / "library"
    library.mkdir()
    (library / "storm.yaml").write_text(BOOK.format(folder=marks))
    config = root / "fireline.toml"
    config.write_text('[triggers]\nmode = "live"\n[triggers.sources.generic]\nrate = 1000000.0\nburst = 1000000\n')
    env = {**os.environ, "FIRELINE_HOME": str(root / "home"), "FIRELINE_RUNS_DIR": str(root / "runs"),
           "FIRELINE_PLAYBOOKS_DIR": str(library), "FIRELINE_CONFIG": str(config), "PYTHONPATH": str(REPO)}  # fmt: skip
    started = time.monotonic()
    server = subprocess.Popen([sys.executable, "-c", SERVER, str(REPO)], env=env, stdout=subprocess.PIPE)
    try:
        assert server.stdout is not None
        line = server.stdout.readline()
        if not line:
            print("fireline serve did not start")
            return
        port = int(json.loads(line)["port"])
        print(f"fireline serve ready after {time.monotonic() - started:.1f}s (paid once)")
        first, statuses, seconds = asyncio.run(storm(port, args.alerts, args.fingerprints, args.concurrency))
        accepted = statuses.get(202, 0)
        deadline = time.monotonic() + args.wait
        while len(list(marks.iterdir())) < args.fingerprints and time.monotonic() < deadline:
            time.sleep(0.2)
        applied: dict[str, float] = {}
        for path in marks.iterdir():
            doc = json.loads(path.read_text())
            applied.setdefault(doc["host"], doc["at"])
        latencies = [applied[f"h{fp}"] - sent for fp, sent in first.items() if f"h{fp}" in applied]
        runs = [p for p in (root / "runs").iterdir() if p.is_dir()] if (root / "runs").exists() else []
        with sqlite3.connect(root / "home" / "triggers" / "spool.db") as db:
            spooled = db.execute("SELECT count(*) FROM batches").fetchone()[0]
        lost = (args.alerts - accepted) + (accepted - spooled)
        print(f"alerts: {args.alerts} sent, answers {dict(sorted(statuses.items()))}, {spooled} spooled, lost {lost}")
        print(f"accepted: {accepted / seconds:8.0f} alerts/s ({seconds:.2f}s for {args.alerts}, {args.concurrency} "
              f"concurrent requests); {accepted / seconds / floor:.2f}x the bare floor")  # fmt: skip
        print(f"runs started: {len(runs)} (goal {args.fingerprints}); containment applied in {len(applied)}")
        print(f"request to first containment apply(), warm: p50 {pct(latencies, 0.5):.2f}s, "
              f"p95 {pct(latencies, 0.95):.2f}s, max {max(latencies, default=float('nan')):.2f}s")  # fmt: skip
        legs = breakdown(root, first, applied)
        print("  of which (median, max): " + "; ".join(f"{k} {pct(v, 0.5):.2f}s, {max(v, default=0):.2f}s"
                                                    for k, v in legs.items()))  # fmt: skip
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(90)
        except subprocess.TimeoutExpired:
            server.kill()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--alerts", type=int, default=5000)
    parser.add_argument("--fingerprints", type=int, default=50)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--wait", type=float, default=300.0, help="Seconds to wait for every run's containment.")
    parser.add_argument("--keep", type=Path, help="Run in this new folder and keep it (records, spool, marks).")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))  # run the clean-up of the server processes
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    floor = bare_floor(args)
    if args.keep is not None:  # for a look at the run records and the spool afterwards
        args.keep.mkdir(parents=True, exist_ok=False)
        fireline_storm(args, args.keep, floor)
    else:
        with tempfile.TemporaryDirectory(prefix="fireline-storm-") as tmp:
            fireline_storm(args, Path(tmp), floor)
    print(f"load average {os.getloadavg()[0]:.1f} at the end")


if __name__ == "__main__":
    main()

"""Fan-out benchmark: isolate N instances through a playbook (for_each, concurrency C) against a local
threaded moto server, next to a plain sequential boto3 loop making the same calls.

Two conditions, each on a freshly reset moto server with 3 x N new instances: the sequential loop
(the old one-step swap), and the playbook on the old path (``untrack_first: false``, a swap onto the
rule-less group) and on the new one (the two-step isolation: an all-traffic group first, so that
tracked connections are cut, then the rule-less group). The new path makes two more calls per
interface and one group more per VPC; both paths are printed, with their ratio.

- **raw**: both talk to moto directly. moto answers every request in one Python process under the
  GIL, a few ms of CPU per call, so on a 2-core machine that one process, not the client, bounds
  the speed-up (the output prints the ceiling it implies).
- **latency**: both talk to moto through a loopback proxy (a child process started from this file)
  that forwards each request unchanged and holds each answer back by ``--latency-ms`` (30 ms by
  default). Real AWS answers in roughly 20-100 ms and that wait costs the caller no CPU, which is
  where a concurrent fan-out wins; a sleeping proxy models it without loading the moto server.

A two-instance playbook run first warms the engine up (imports, action registry), so neither
condition pays for it. Prints figures and speed-ups, never asserts (goal: >= 6x at N=200, C=16).
The run stops itself after ``--time-limit`` seconds whatever happens.

Run: ``.venv/bin/python bench/fanout.py [--instances 200] [--concurrency 16] [--latency-ms 30]``.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import resource
import select
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
os.environ.pop("AWS_SESSION_TOKEN", None)
os.environ.setdefault("AWS_EC2_METADATA_DISABLED", "true")

PLAYBOOK = """apiVersion: fireline/v1
kind: Playbook
metadata: {{name: fanout-bench, version: 1, title: Fan-out benchmark}}
inputs:
  ids: {{type: "list[string]", required: true}}
guards:
  max_targets: {n}
steps:
  - id: isolate
    action: aws.ec2.isolate_instance
    for_each: "{{{{ inputs.ids }}}}"
    concurrency: {c}
    with: {{instance_id: "{{{{ item }}}}", untrack_first: {u}}}
"""

HOP_BY_HOP = {"connection", "keep-alive", "proxy-connection", "te", "trailer", "transfer-encoding", "upgrade"}


class _Delayed(BaseHTTPRequestHandler):
    """Forwards one client connection's requests to the upstream, each answer held back by ``delay``."""

    protocol_version = "HTTP/1.1"  # keep-alive, as botocore's connection pool expects
    # Headers and body leave in two writes: with Nagle on, the body waits for a delayed ACK (~40 ms).
    disable_nagle_algorithm = True
    upstream: tuple[str, int] = ("127.0.0.1", 0)
    delay = 0.0
    _conn: http.client.HTTPConnection | None = None

    def _send(self, body: bytes | None, headers: dict[str, str]) -> tuple[http.client.HTTPResponse, bytes]:
        if self._conn is None:
            self._conn = http.client.HTTPConnection(*self.upstream, timeout=60)
            self._conn.connect()
            self._conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._conn.request(self.command, self.path, body=body, headers=headers)
        response = self._conn.getresponse()
        return response, response.read()

    def _exchange(self, body: bytes | None) -> tuple[http.client.HTTPResponse, bytes]:
        headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP}
        try:
            return self._send(body, headers)
        except (OSError, http.client.HTTPException):
            # The upstream may have closed an idle keep-alive connection: one more try on a new one.
            if self._conn is not None:
                self._conn.close()
            self._conn = None
            return self._send(body, headers)

    def _forward(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else None
        try:
            response, payload = self._exchange(body)
        except (OSError, http.client.HTTPException) as e:
            self.send_error(502, f"upstream: {e}")
            return
        time.sleep(self.delay)  # the network round trip: the moto server is idle meanwhile
        self.send_response_only(response.status, response.reason)
        for key, value in response.getheaders():
            if key.lower() not in HOP_BY_HOP and key.lower() != "content-length":
                self.send_header(key, value)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(payload)

    do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = do_PATCH = _forward

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: one line per request would cost the proxy more than it forwards."""


def serve_proxy(upstream: str, latency_ms: float) -> None:
    """Run the delaying proxy until stdin closes (the parent ended); prints its port once listening."""
    host, port = upstream.removeprefix("http://").rsplit(":", 1)
    handler = type("Handler", (_Delayed,), {"upstream": (host, int(port)), "delay": latency_ms / 1000})
    # A listen backlog above the client's concurrency: an overflowing one costs a 1 s SYN retry.
    server_class = type("Server", (ThreadingHTTPServer,), {"request_queue_size": 128, "daemon_threads": True})
    server = server_class(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    print(server.server_address[1], flush=True)
    sys.stdin.read()  # EOF when the parent exits or closes the pipe, even after a SIGKILL
    server.shutdown()


@dataclass
class Proxy:
    """The proxy child process."""

    endpoint: str
    process: subprocess.Popen[str]

    @classmethod
    def start(cls, upstream: str, latency_ms: float) -> Proxy:
        cmd = [sys.executable, __file__, "--serve-proxy", upstream, "--latency-ms", str(latency_ms)]
        process = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        out = process.stdout
        ready, _, _ = select.select([out], [], [], 30) if out is not None else ([], [], [])
        line = out.readline().strip() if out is not None and ready else ""
        if not line.isdigit():
            process.kill()
            process.wait(timeout=10)
            raise RuntimeError(f"the latency proxy did not start (exit code {process.poll()})")
        return cls(f"http://127.0.0.1:{line}", process)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(timeout=10)


def phases(summary: Any) -> tuple[float, float]:
    """Seconds from the run's start to its first item (plan phase) and from there to the last item's end."""
    from datetime import datetime

    events = [json.loads(line) for line in (summary.run_dir / "events.jsonl").read_text().splitlines() if line]
    items = [e for e in events if e["item"] is not None and e["type"] in ("step.started", "step.succeeded")]
    if not events or not items:
        return 0.0, 0.0
    at = [datetime.fromisoformat(e["at"].replace("Z", "+00:00")) for e in (events[0], items[0], items[-1])]
    return (at[1] - at[0]).total_seconds(), (at[2] - at[1]).total_seconds()


def cpu_of(pid: int) -> float:
    """User + system CPU seconds of a process, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def requests(server: Any) -> int:
    """Requests the server has answered so far (werkzeug logs one line per request)."""
    return sum(1 for line in server.log.read_text(errors="replace").splitlines() if '"' in line and " HTTP/1.1" in line)


def own_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def launch(world: Any, count: int) -> list[str]:
    ec2 = world.client("ec2")
    if "bench_subnet" not in world.data:  # the sandbox's /24 holds 251 addresses; the bench needs more
        subnet = ec2.create_subnet(VpcId=world.data["vpc_id"], CidrBlock="10.20.16.0/20")["Subnet"]["SubnetId"]
        world.data["bench_subnet"] = subnet
    ids: list[str] = []
    while len(ids) < count:
        batch = min(100, count - len(ids))
        made = ec2.run_instances(
            ImageId="ami-12c6146b",
            MinCount=batch,
            MaxCount=batch,
            SubnetId=world.data["bench_subnet"],
            SecurityGroupIds=world.data["security_groups"],
        )
        ids += [i["InstanceId"] for i in made["Instances"]]
    return ids


def sequential(world: Any, ids: list[str]) -> None:
    """What isolate_instance does per instance, one call after another, with a plain boto3 client."""
    ec2 = world.client("ec2")
    vpc = world.data["vpc_id"]
    group = ec2.create_security_group(GroupName="seq-quarantine", Description="q", VpcId=vpc)["GroupId"]
    ec2.revoke_security_group_egress(
        GroupId=group, IpPermissions=[{"IpProtocol": "-1", "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}]
    )
    for instance_id in ids:
        found = ec2.describe_instances(InstanceIds=[instance_id])["Reservations"][0]["Instances"][0]
        for eni in found["NetworkInterfaces"]:
            current = ",".join(g["GroupId"] for g in eni["Groups"])
            ec2.create_tags(
                Resources=[eni["NetworkInterfaceId"]], Tags=[{"Key": "fireline:previous-groups", "Value": current}]
            )
            ec2.modify_network_interface_attribute(NetworkInterfaceId=eni["NetworkInterfaceId"], Groups=[group])
            ec2.modify_instance_attribute(InstanceId=instance_id, Groups=[group])
        ec2.create_tags(Resources=[instance_id], Tags=[{"Key": "fireline:isolated-by", "Value": "bench"}])
        ec2.describe_instance_attribute(InstanceId=instance_id, Attribute="disableApiTermination")
        ec2.modify_instance_attribute(InstanceId=instance_id, DisableApiTermination={"Value": True})


def through_playbook(endpoint: str, ids: list[str], concurrency: int, workdir: Path, *, untrack: bool = True) -> Any:
    """Isolate ``ids`` through a playbook: the two-step path (``untrack``) or the old one-step swap."""
    from flows.config import AwsSettings, Settings
    from flows.engine import run_playbook

    workdir.mkdir(parents=True, exist_ok=True)
    path = workdir / "fanout-bench.yaml"
    path.write_text(PLAYBOOK.format(n=len(ids), c=concurrency, u="true" if untrack else "false"), encoding="utf-8")
    settings = Settings(runs_dir=workdir / "runs", home=workdir / "home", aws=AwsSettings(endpoint_url=endpoint))
    return run_playbook(path, inputs={"ids": ids}, settings=settings)


@dataclass
class Leg:
    """One measured run: wall time, requests moto answered, CPU seconds per process."""

    wall: float
    calls: int
    server_cpu: float
    client_cpu: float
    proxy_cpu: float

    def line(self, name: str) -> str:
        proxy = f", proxy {self.proxy_cpu:5.2f} s" if self.proxy_cpu else ""
        return (
            f"  {name:<22}: {self.wall:7.2f} s  ({self.calls} calls, {self.calls / self.wall:4.0f}/s)"
            f"  cpu: moto server {self.server_cpu:5.2f} s, client {self.client_cpu:5.2f} s{proxy}"
        )


def timed(server: Any, proxy: Proxy | None, work: Any) -> tuple[Leg, Any]:
    """Run ``work()`` and measure it from outside: wall clock, moto's request log, /proc CPU counters."""
    pids = [server.process.pid] + ([proxy.process.pid] if proxy else [])
    cpu0, own0, log0, start = [cpu_of(p) for p in pids], own_cpu(), requests(server), time.perf_counter()
    result = work()
    wall = time.perf_counter() - start
    cpu1 = [cpu_of(p) for p in pids]
    proxy_cpu = cpu1[1] - cpu0[1] if proxy else 0.0
    return Leg(wall, requests(server) - log0, cpu1[0] - cpu0[0], own_cpu() - own0, proxy_cpu), result


@dataclass
class Outcome:
    """The legs of one condition: the sequential loop, and the playbook on the old and the new path."""

    seq: Leg
    old: Leg
    new: Leg
    outcome_old: str
    outcome_new: str
    split: tuple[float, float]


def _isolated(summary: Any, ids: list[str]) -> str:
    done = sum(1 for r in summary.steps["isolate"].output or [] if r and r.get("changed"))
    return f"outcome={summary.outcome}, isolated={done}/{len(ids)}"


def condition(server: Any, proxy: Proxy | None, args: argparse.Namespace, workdir: Path) -> Outcome:
    """Reset moto, launch 3 x N instances, then time the sequential loop and the playbook's two paths on them.

    old: the one-step swap onto the rule-less group (``untrack_first: false``), which leaves tracked
    connections open; new: the two-step isolation (all-traffic group, then the rule-less one).
    """
    from integrations.aws import sandbox

    server.reset()
    world = sandbox.seed(server.endpoint, seeders=[sandbox.seed_network])
    first, second, third = (launch(world, args.instances) for _ in range(3))
    endpoint = proxy.endpoint if proxy else server.endpoint
    client_world = sandbox.World(endpoint_url=endpoint, data=dict(world.data))
    seq, _ = timed(server, proxy, lambda: sequential(client_world, first))
    old, s_old = timed(
        server, proxy, lambda: through_playbook(endpoint, second, args.concurrency, workdir / "old", untrack=False)
    )
    new, s_new = timed(server, proxy, lambda: through_playbook(endpoint, third, args.concurrency, workdir / "new"))
    return Outcome(seq, old, new, _isolated(s_old, second), _isolated(s_new, third), phases(s_new))


def report(result: Outcome, *, items: int, latency_ms: float, concurrency: int) -> None:
    seq, pb, split = result.seq, result.new, result.split
    print(seq.line("sequential boto3 loop"))
    print(result.old.line("playbook, old path"))
    print(f"    one-step swap (untrack_first: false): {result.outcome_old}")
    print(pb.line("playbook, new path"))
    print(f"    two-step isolation (all-traffic group, then rule-less): {result.outcome_new}")
    print(
        f"  new path vs old       : {pb.wall / result.old.wall:5.2f}x the wall time, "
        f"{pb.calls / max(result.old.calls, 1):4.2f}x the calls ({pb.calls - result.old.calls:+d})"
    )
    print(
        f"    engine phases: plan {split[0]:5.2f} s (each item's plan() reads its instance, {concurrency} items "
        f"at a time), apply {split[1]:5.2f} s ({concurrency} items at a time)"
    )
    print(
        f"  speed-up              : new path {seq.wall / pb.wall:5.2f}x, old path {seq.wall / result.old.wall:5.2f}x"
        " over the sequential one-step loop (goal >= 6x)"
    )
    # moto serves every request in one Python process under the GIL: one core is its ceiling.
    per_call = seq.server_cpu / seq.calls
    server_floor = pb.calls * per_call
    print(
        f"  moto cpu per call     : {per_call * 1000:5.1f} ms (measured from /proc during the sequential loop), "
        f"so at most {1 / per_call:4.0f} calls/s on one core"
    )
    print(
        f"  moto ceiling          : the playbook's {pb.calls} calls need >= {server_floor:5.2f} s of moto cpu, "
        f"so at most {seq.wall / server_floor:5.2f}x; moto was busy {pb.server_cpu / pb.wall:4.0%} of the "
        "playbook's wall time (100% = one core)"
    )
    if latency_ms:
        # Each item's calls run one after another; items (their plan() reads too) run C at a time.
        waves, per_item = -(-items // concurrency), pb.calls / items
        latency_floor = waves * per_item * latency_ms / 1000
        print(
            f"  latency ceiling       : with an idle server, {waves} rounds x {per_item:.1f} calls x {latency_ms:g} ms"
            f" >= {latency_floor:5.2f} s: at most {seq.wall / latency_floor:5.2f}x"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--instances", type=int, default=200, help="instances per run (default 200)")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--latency-ms", type=float, default=30.0, help="added to every answer in the second condition")
    parser.add_argument("--time-limit", type=float, default=420.0, help="seconds before the bench gives up")
    parser.add_argument("--serve-proxy", metavar="UPSTREAM", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_proxy:
        serve_proxy(args.serve_proxy, args.latency_ms)
        return
    if args.instances < 1 or args.latency_ms < 0:
        parser.error("--instances must be >= 1 and --latency-ms >= 0")

    from integrations.aws import moto_server, sandbox

    children: list[Any] = []

    def give_up(*_: object) -> None:
        print(f"fanout: stopped after the {args.time_limit:g} s time limit", file=sys.stderr, flush=True)
        for child in children:
            child.stop()
        os._exit(3)  # the playbook's worker threads may still be waiting on a request

    signal.signal(signal.SIGALRM, give_up)
    signal.setitimer(signal.ITIMER_REAL, args.time_limit)
    workdir = Path(tempfile.mkdtemp(prefix="fireline-bench-fanout-"))
    with moto_server.start(workdir=workdir / "moto") as server:
        children.append(server)
        # A first run pays for imports and the action registry; neither condition should.
        warm = sandbox.seed(server.endpoint, seeders=[sandbox.seed_network])
        through_playbook(server.endpoint, launch(warm, 2), args.concurrency, workdir / "warm-up")
        raw = condition(server, None, args, workdir / "raw")
        proxy = Proxy.start(server.endpoint, args.latency_ms)
        children.append(proxy)
        try:
            delayed = condition(server, proxy, args, workdir / "latency")
        finally:
            proxy.stop()
    signal.setitimer(signal.ITIMER_REAL, 0)

    print(f"instances: {args.instances}, concurrency: {args.concurrency}, cores: {os.cpu_count()}")
    print("\n[raw] client -> moto server on loopback, no added latency")
    print("  (capped by the moto server: one Python process under the GIL answers every call)")
    report(raw, items=args.instances, latency_ms=0, concurrency=args.concurrency)
    print(f"\n[latency] client -> proxy holding each answer {args.latency_ms:g} ms -> the same moto server")
    print("  (models AWS's network round trip: waiting costs no CPU on either side)")
    report(delayed, items=args.instances, latency_ms=args.latency_ms, concurrency=args.concurrency)
    print(f"\nmachine load (1 min)  : {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")


if __name__ == "__main__":
    main()

"""Fan-out benchmark: isolate N instances through a playbook (for_each, concurrency C) against a local
threaded moto server, next to a plain sequential boto3 loop making the same calls.

Prints figures and the speed-up, never asserts (goal: >= 6x at N=200, C=16). Also prints where the
CPU went (this process vs the moto server process), because on a 2-core machine the single moto
server process, not the client, bounds how much concurrency can help.

Run: ``.venv/bin/python bench/fanout.py [--instances 200] [--concurrency 16]``.
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import tempfile
import time
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
    with: {{instance_id: "{{{{ item }}}}"}}
"""


def server_cpu(pid: int) -> float:
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


def through_playbook(endpoint: str, ids: list[str], concurrency: int, workdir: Path) -> Any:
    from flows.config import AwsSettings, Settings
    from flows.engine import run_playbook

    path = workdir / "fanout-bench.yaml"
    path.write_text(PLAYBOOK.format(n=len(ids), c=concurrency), encoding="utf-8")
    settings = Settings(runs_dir=workdir / "runs", home=workdir / "home", aws=AwsSettings(endpoint_url=endpoint))
    return run_playbook(path, inputs={"ids": ids}, settings=settings)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--instances", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=16)
    args = parser.parse_args()

    from integrations.aws import moto_server, sandbox

    workdir = Path(tempfile.mkdtemp(prefix="fireline-bench-fanout-"))
    with moto_server.start(workdir=workdir / "moto") as server:
        world = sandbox.seed(server.endpoint, seeders=[sandbox.seed_network])
        first, second = launch(world, args.instances), launch(world, args.instances)
        pid = server.process.pid

        cpu_s, cpu_c, log0, start = server_cpu(pid), own_cpu(), requests(server), time.perf_counter()
        sequential(world, first)
        seq_wall = time.perf_counter() - start
        seq_server, seq_client, log1 = server_cpu(pid) - cpu_s, own_cpu() - cpu_c, requests(server)

        cpu_s, cpu_c, start = server_cpu(pid), own_cpu(), time.perf_counter()
        summary = through_playbook(server.endpoint, second, args.concurrency, workdir)
        pb_wall = time.perf_counter() - start
        pb_server, pb_client, log2 = server_cpu(pid) - cpu_s, own_cpu() - cpu_c, requests(server)

    isolated = sum(1 for r in summary.steps["isolate"].output or [] if r and r.get("changed"))
    seq_calls, pb_calls = log1 - log0, log2 - log1
    print(f"instances: {args.instances}, concurrency: {args.concurrency}, cores: {os.cpu_count()}")
    print(
        f"sequential boto3 loop : {seq_wall:7.2f} s  ({seq_calls} calls, {seq_calls / seq_wall:4.0f}/s)"
        f"  cpu: moto server {seq_server:6.2f} s, client {seq_client:6.2f} s"
    )
    print(
        f"playbook (for_each)   : {pb_wall:7.2f} s  ({pb_calls} calls, {pb_calls / pb_wall:4.0f}/s)"
        f"  cpu: moto server {pb_server:6.2f} s, client {pb_client:6.2f} s"
    )
    print(f"  outcome={summary.outcome}, isolated={isolated}")
    print(f"speed-up              : {seq_wall / pb_wall:5.2f}x (goal >= 6x)")
    print(
        f"moto server busy      : {seq_server / seq_wall:5.0%} of the sequential wall time, "
        f"{pb_server / pb_wall:5.0%} of the playbook's (100% = one core)"
    )
    # moto serves every request in one Python process under the GIL: one core is its ceiling.
    per_call = seq_server / seq_calls
    print(
        f"moto cpu per call     : {per_call * 1000:5.1f} ms, so at most {1 / per_call:4.0f} calls/s on one core: "
        f"the playbook's "
        f"{pb_calls} calls need >= {pb_calls * per_call:5.2f} s, a ceiling of {seq_wall / (pb_calls * per_call):4.2f}x"
    )
    print(f"machine load (1 min)  : {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")


if __name__ == "__main__":
    main()

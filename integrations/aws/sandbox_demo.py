"""The AWS side of ``fireline sandbox``: start and seed a local moto server, and the inference-host demo.

Implements the sandbox backend that :mod:`flows.sandbox` loads by name (``sandbox.aws`` in
:mod:`flows.plugins`): :func:`start_server`, :func:`credentials`, :func:`seed`, :func:`env`, and
:func:`demo_steps` (keyword arguments of the demo's steps; the demo runner lives in ``flows``).
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

from integrations.aws import moto_server, sandbox
from integrations.aws.sandbox import World


def start_server(*, port: int | None, workdir: Path) -> moto_server.MotoServer:
    """A moto server on 127.0.0.1, ready; use it as a context manager to stop it."""
    return moto_server.start(port=port, workdir=workdir)


def credentials() -> AbstractContextManager[None]:
    return moto_server.sandbox_credentials()


def seed(endpoint_url: str) -> World:
    return sandbox.seed(endpoint_url)


def env(endpoint_url: str, region: str) -> dict[str, str]:
    return sandbox.sandbox_env(endpoint_url, region)


def _groups_by_instance(world: World) -> dict[str, list[str]]:
    ec2 = world.client("ec2")
    found = ec2.describe_instances(InstanceIds=world.data["inference_instances"])["Reservations"]
    return {
        i["InstanceId"]: sorted(f"{g['GroupId']} ({g['GroupName']})" for g in i["SecurityGroups"])
        for r in found
        for i in r["Instances"]
    }


def _show_inference_host(world: World, summary: Any, before: Any) -> dict[str, Any]:
    after = _groups_by_instance(world)
    snapshots = world.client("ec2").describe_snapshots(
        OwnerIds=["self"], Filters=[{"Name": "tag:fireline:run", "Values": [summary.run_id]}]
    )["Snapshots"]
    endpoint = world.client("sagemaker").describe_endpoint(EndpointName=world.data["endpoint_name"])
    return {
        "security_groups": {i: {"before": before.get(i, []), "after": after.get(i, [])} for i in after},
        "snapshots": sorted(f"{s['SnapshotId']} of {s['VolumeId']}" for s in snapshots),
        "endpoint_weights": {v["VariantName"]: v.get("CurrentWeight") for v in endpoint["ProductionVariants"]},
    }


def demo_steps() -> list[dict[str, Any]]:
    """Keyword arguments of the demo's ``DemoStep`` for the compromised inference host."""
    return [
        {
            "name": "compromised inference host",
            "playbook": "compromised-inference-host",
            "alert": lambda world: {
                "source": "alertmanager",
                "status": "firing",
                "labels": {
                    "alertname": "InferenceHostSuspiciousEgress",
                    "severity": "critical",
                    "instance_ids": ",".join(world.data["inference_instances"]),
                    "endpoint": world.data["endpoint_name"],
                },
                "annotations": {"summary": "Inference hosts opened outbound connections to 203.0.113.7:4444"},
            },
            "approvals": ("approve-isolation",),
            "before": _groups_by_instance,
            "show": _show_inference_host,
        }
    ]

"""The sandbox demo: run shipped playbooks live against a seeded local moto server.

:data:`DEMO_STEPS` lists what the demo runs, in order; other parts append theirs (a playbook,
how to build its alert from the seeded :class:`~integrations.aws.sandbox.World`, scripted
approvals, and what to show afterwards). Seeding lives in :mod:`integrations.aws.sandbox`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from flows.config import AwsSettings, Settings

if TYPE_CHECKING:
    from flows.engine import RunSummary
    from integrations.aws.sandbox import World

RESPONDER = "sandbox-responder"
APPROVER_GROUPS = ("ml-security", "ml-platform-oncall", "security-oncall", "ml-platform")


@dataclass
class DemoStep:
    """One playbook the demo runs, and how to read what it did."""

    name: str
    playbook: str
    alert: Callable[[World], dict[str, Any]]
    approvals: tuple[str, ...] = ()
    before: Callable[[World], Any] = field(default=lambda world: None)
    show: Callable[[World, RunSummary, Any], dict[str, Any]] = field(default=lambda world, summary, before: {})


def _groups_by_instance(world: World) -> dict[str, list[str]]:
    ec2 = world.client("ec2")
    found = ec2.describe_instances(InstanceIds=world.data["inference_instances"])["Reservations"]
    return {
        i["InstanceId"]: sorted(f"{g['GroupId']} ({g['GroupName']})" for g in i["SecurityGroups"])
        for r in found
        for i in r["Instances"]
    }


def _show_inference_host(world: World, summary: RunSummary, before: Any) -> dict[str, Any]:
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


DEMO_STEPS: list[DemoStep] = [
    DemoStep(
        name="compromised inference host",
        playbook="compromised-inference-host",
        alert=lambda world: {
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
        approvals=("approve-isolation",),
        before=_groups_by_instance,
        show=_show_inference_host,
    )
]


def demo_settings(endpoint_url: str, workdir: Path, runs_dir: Path, playbooks_dir: Path) -> Settings:
    """Settings that point every action at the sandbox and let the scripted responder approve."""
    approvers = workdir / "approvers.yaml"
    groups = "\n".join(f"  {group}: [{RESPONDER}]" for group in APPROVER_GROUPS)
    approvers.write_text(f"groups:\n{groups}\n", encoding="utf-8")
    return Settings(
        runs_dir=runs_dir,
        playbooks_dir=playbooks_dir,
        approvers_file=approvers,
        home=workdir / "home",
        aws=AwsSettings(endpoint_url=endpoint_url, region="us-east-1"),
    )


def run_demo(world: World, settings: Settings, steps: list[DemoStep] | None = None) -> list[dict[str, Any]]:
    """Run each demo step live against the sandbox; return what each did."""
    from flows.engine import Answer, Responders, run_playbook

    results: list[dict[str, Any]] = []
    for step in DEMO_STEPS if steps is None else steps:
        before = step.before(world)
        responders = Responders(
            approvals={
                s: [Answer(by=f"user:{RESPONDER}", decision="approve", reason="sandbox demo")] for s in step.approvals
            }
        )
        summary = run_playbook(
            step.playbook, alert=step.alert(world), mode="live", settings=settings, responders=responders
        )
        evidence = summary.run_dir / "evidence" / "manifest.json"
        report = next((p for p in (summary.run_dir / "report.md", summary.run_dir / "report.html") if p.exists()), None)
        results.append(
            {
                "name": step.name,
                "playbook": step.playbook,
                "run_id": summary.run_id,
                "run_dir": str(summary.run_dir),
                "report": str(report) if report else None,
                "outcome": summary.outcome,
                "steps": {k: v.status for k, v in summary.steps.items()},
                "evidence_items": _evidence_count(evidence),
                **step.show(world, summary, before),
            }
        )
    return results


def _evidence_count(manifest: Path) -> int:
    import json

    if not manifest.exists():
        return 0
    return len(json.loads(manifest.read_text(encoding="utf-8")).get("items", []))

from integrations.models.seed import model_demo_steps  # noqa: E402 - the model rollback demo, after the AWS ones

DEMO_STEPS += [DemoStep(**step) for step in model_demo_steps()]

"""The sandbox demo: run shipped playbooks live against a seeded local AWS (moto) and show what changed.

The sandbox itself (the moto server, the seeded platform, what each demo step shows) belongs to
the integrations; this module only runs the demo through the engine. It reaches the integrations by
name, never by import: :data:`BACKEND` names the module that starts and seeds the sandbox (see
:class:`SandboxBackend`), and :data:`DEMO_STEP_SOURCES` names functions returning the keyword
arguments of each :class:`DemoStep`, in the order the demo runs them. Another part adds its demo by
appending a ``"module:function"`` string there.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, cast

from flows.config import AwsSettings, Settings

if TYPE_CHECKING:
    from flows.engine import RunSummary

RESPONDER = "sandbox-responder"
APPROVER_GROUPS = ("ml-security", "ml-platform-oncall", "security-oncall", "ml-platform")

BACKEND = "sandbox.aws"  # a name in flows.plugins.PROVIDERS
DEMO_STEP_SOURCES: list[str] = [
    "integrations.aws.sandbox_demo:demo_steps",
    "integrations.models.seed:model_demo_steps",
    "integrations.data.seed:data_demo_steps",
]

World = Any  # the backend's record of what it seeded: ``.region``, ``.data`` (ids by name), ``.client(service)``


class Server(Protocol):
    endpoint: str


class SandboxBackend(Protocol):
    """What the integration behind the sandbox provides."""

    def start_server(self, *, port: int | None, workdir: Path) -> AbstractContextManager[Server]:
        """Start a local AWS on 127.0.0.1 and stop it when the context exits."""

    def credentials(self) -> AbstractContextManager[None]:
        """Point this process's AWS credentials at the sandbox for the duration."""

    def seed(self, endpoint_url: str) -> World:
        """Create the small ML platform on the server; return what was made."""

    def env(self, endpoint_url: str, region: str) -> dict[str, str]:
        """The environment variables that point fireline and the AWS CLI at the sandbox."""


@dataclass
class DemoStep:
    """One playbook the demo runs, and how to read what it did."""

    name: str
    playbook: str
    alert: Callable[[World], dict[str, Any]]
    approvals: tuple[str, ...] = ()
    before: Callable[[World], Any] = field(default=lambda world: None)
    show: Callable[[World, RunSummary, Any], dict[str, Any]] = field(default=lambda world, summary, before: {})


def backend() -> SandboxBackend:
    """The sandbox's integration (raises ConfigError with the install hint when moto is missing)."""
    from flows.plugins import load

    return cast("SandboxBackend", load(BACKEND))


def demo_steps() -> list[DemoStep]:
    """Every demo step, in order, from :data:`DEMO_STEP_SOURCES`."""
    steps: list[DemoStep] = []
    for source in DEMO_STEP_SOURCES:
        module, _, function = source.partition(":")
        steps += [DemoStep(**kwargs) for kwargs in getattr(importlib.import_module(module), function)()]
    return steps


def __getattr__(name: str) -> Any:
    # ``DEMO_STEPS`` is computed on first use: building it imports the integrations.
    if name == "DEMO_STEPS":
        return demo_steps()
    raise AttributeError(name)


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


def run_demo(
    world: World,
    settings: Settings,
    steps: list[DemoStep] | None = None,
    progress: Callable[[str, str, dict[str, Any]], None] | None = None,
) -> list[dict[str, Any]]:
    """Run each demo step live against the sandbox; return what each did.

    ``progress(step, status, detail)`` hears every step's changes, as ``fireline run`` shows them.
    """
    from flows.engine import Answer, Responders, run_playbook

    results: list[dict[str, Any]] = []
    for step in demo_steps() if steps is None else steps:
        before = step.before(world)
        responders = Responders(
            approvals={
                s: [Answer(by=f"user:{RESPONDER}", decision="approve", reason="sandbox demo")] for s in step.approvals
            },
            acks={"page-on-call": [("alice", 0.0)]},  # the on-call (playbooks/people.yaml) acknowledges the page
        )
        summary = run_playbook(
            step.playbook,
            alert=step.alert(world),
            mode="live",
            settings=settings,
            responders=responders,
            progress=progress,
        )
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
                "evidence_items": _evidence_count(summary.run_dir / "evidence" / "manifest.json"),
                **step.show(world, summary, before),
            }
        )
    return results


def _evidence_count(manifest: Path) -> int:
    import json

    if not manifest.exists():
        return 0
    return len(json.loads(manifest.read_text(encoding="utf-8")).get("items", []))

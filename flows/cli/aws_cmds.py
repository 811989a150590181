"""AWS commands: ``iam-policy``, ``evidence verify``, ``sandbox demo`` and ``sandbox up``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from flows.cli import app
from flows.cli.output import JSON_OPTION_HELP, console, err_console, print_json
from flows.errors import RecordError

JsonOpt = Annotated[bool, typer.Option("--json", help=JSON_OPTION_HELP)]

evidence_app = typer.Typer(help="Check preserved evidence.", no_args_is_help=True)
app.add_typer(evidence_app, name="evidence")
sandbox_app = typer.Typer(
    help="A local AWS (moto) with a small ML platform, for demos and drills.", no_args_is_help=True
)
app.add_typer(sandbox_app, name="sandbox")


@app.command("iam-policy")
def iam_policy_command(
    playbook: Annotated[Path, typer.Argument(help="A playbook file.")],
    as_json: JsonOpt = False,
) -> None:
    """Print the least-privilege IAM policy the playbook needs (a JSON policy document)."""
    from flows.actions.iam_policy import playbook_policy
    from flows.actions.registry import default_registry
    from flows.language.loader import load_playbook

    policy = playbook_policy(load_playbook(playbook).playbook, default_registry())
    # The policy document is JSON either way; --json is accepted for uniformity.
    del as_json
    print_json(policy)


def _resolve_run(run: str) -> tuple[Path, Any]:
    from flows.config import load_settings

    settings = load_settings()
    path = Path(run)
    run_dir = path if path.is_dir() else settings.runs_dir / run
    if not run_dir.is_dir():
        raise RecordError(f"unknown run {run!r}: not a directory, and not a run id in {settings.runs_dir}/")
    return run_dir, settings


@evidence_app.command("verify")
def evidence_verify_command(
    run: Annotated[str, typer.Argument(help="A run id (under the runs directory) or a run directory.")],
    as_json: JsonOpt = False,
) -> None:
    """Re-hash every evidence item of a run (local files and S3 objects) and name any mismatch."""
    from flows.record.evidence_verify import verify_run

    run_dir, settings = _resolve_run(run)
    checks = verify_run(run_dir, settings)
    bad = [c for c in checks if c.status != "ok"]
    if as_json:
        print_json({"run_dir": str(run_dir), "items": [c.as_dict() for c in checks], "ok": not bad})
    else:
        for check in checks:
            (err_console if check.status != "ok" else console).print(check.line(), markup=False)
        console.print(f"{len(checks)} item(s), {len(bad)} problem(s)", markup=False)
    if bad:
        raise typer.Exit(1)


def _print_demo(results: list[dict[str, Any]]) -> None:
    for result in results:
        console.print(f"\n[bold]{result['name']}[/]: {result['playbook']} -> {result['outcome']}")
        for instance, groups in result.get("security_groups", {}).items():
            console.print(f"  {instance}: {', '.join(groups['before'])} -> {', '.join(groups['after'])}", markup=False)
        for snapshot in result.get("snapshots", []):
            console.print(f"  snapshot {snapshot}", markup=False)
        if "endpoint_weights" in result:
            console.print(f"  endpoint variant weights: {json.dumps(result['endpoint_weights'])}", markup=False)
        for line in result.get("lines", []):
            console.print(f"  {line}", markup=False)
        console.print(f"  evidence items: {result['evidence_items']}", markup=False)
        console.print(f"  run record: {result['run_dir']}", markup=False)
        if result.get("report"):
            console.print(f"  report: {result['report']}", markup=False)


@sandbox_app.command("demo")
def sandbox_demo_command(
    runs_dir: Annotated[
        Path | None, typer.Option(help="Where run records go (default: the configured runs dir).")
    ] = None,
    playbook: Annotated[
        list[str] | None, typer.Option(help="Only the demo steps running this playbook (repeatable; default: all).")
    ] = None,
    endpoint: Annotated[
        str | None, typer.Option(help="Seed and use this running moto server instead of starting one.")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Start a seeded local AWS, run the demo playbooks live against it, show what changed."""
    import contextlib
    import tempfile

    from flows.config import load_settings
    from flows.errors import UsageError
    from flows.sandbox import DEMO_STEPS, demo_settings, run_demo
    from integrations.aws import moto_server, sandbox

    steps = [s for s in DEMO_STEPS if not playbook or s.playbook in playbook]
    if not steps:
        raise UsageError(
            f"no demo step runs {', '.join(playbook or [])}; known: {', '.join(s.playbook for s in DEMO_STEPS)}"
        )
    configured = load_settings()
    workdir = Path(tempfile.mkdtemp(prefix="fireline-sandbox-"))
    if not as_json:
        err_console.print(
            "starting the sandbox (moto server on 127.0.0.1) ..." if endpoint is None else f"using {endpoint}"
        )
    with contextlib.ExitStack() as stack:
        if endpoint is None:
            endpoint = stack.enter_context(moto_server.start(workdir=workdir / "moto")).endpoint
        stack.enter_context(moto_server.sandbox_credentials())
        world = sandbox.seed(endpoint)
        settings = demo_settings(endpoint, workdir, runs_dir or configured.runs_dir, configured.playbooks_dir)
        results = run_demo(world, settings, steps)
    if as_json:
        print_json({"endpoint": endpoint, "runs": results})
    else:
        _print_demo(results)
    if any(r["outcome"] != "succeeded" for r in results):
        raise typer.Exit(1)


@sandbox_app.command("up")
def sandbox_up_command(
    port: Annotated[int | None, typer.Option(help="Port on 127.0.0.1 (default: a free one).")] = None,
    seconds: Annotated[float | None, typer.Option(help="Stop after this long (default: at Ctrl-C).")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Start and seed the sandbox, print how to use it, and keep it up until Ctrl-C."""
    import tempfile
    import time

    from integrations.aws import moto_server, sandbox

    workdir = Path(tempfile.mkdtemp(prefix="fireline-sandbox-"))
    with moto_server.start(port=port, workdir=workdir) as server:
        world = sandbox.seed(server.endpoint)
        env = sandbox.sandbox_env(server.endpoint, world.region)
        if as_json:
            print_json({"endpoint": server.endpoint, "env": env, "resources": world.data})
        else:
            console.print(f"sandbox up at {server.endpoint} (Ctrl-C stops it)", markup=False)
            for key, value in env.items():
                console.print(f"export {key}={value}", markup=False)
            console.print(f"inference hosts: {', '.join(world.data['inference_instances'])}", markup=False)
        deadline = None if seconds is None else time.monotonic() + seconds
        try:
            while deadline is None or time.monotonic() < deadline:
                time.sleep(0.2)
        except KeyboardInterrupt:
            err_console.print("stopping the sandbox")

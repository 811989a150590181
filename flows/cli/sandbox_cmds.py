"""``fireline sandbox demo`` and ``fireline sandbox up``: a seeded local AWS (moto) for demos and live tries.

The sandbox comes from the AWS integration through :func:`flows.sandbox.backend`; this module only
shows progress, the results and what to try next. SIGTERM stops the sandbox like Ctrl-C does, so
the moto server never outlives the command.
"""

from __future__ import annotations

import json
import signal
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer

from flows.cli import app
from flows.cli.output import JSON_OPTION_HELP, console, err_console, print_json

JsonOpt = Annotated[bool, typer.Option("--json", help=JSON_OPTION_HELP)]

sandbox_app = typer.Typer(
    help="A local AWS (moto) with a small ML platform, for demos and drills.", no_args_is_help=True
)
app.add_typer(sandbox_app, name="sandbox")


@contextmanager
def terminate_as_interrupt() -> Iterator[None]:
    """Within the block, SIGTERM raises KeyboardInterrupt, so ``with`` blocks (the server) clean up."""

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


class _Phases:
    """One line per start-up phase on stderr, with its duration, so a 15 s start is never silent."""

    def __init__(self, quiet: bool) -> None:
        self.quiet = quiet
        self.started = time.monotonic()

    @contextmanager
    def phase(self, text: str) -> Iterator[None]:
        begun = time.monotonic()
        if not self.quiet:
            err_console.print(f"{text} ...", markup=False)
        yield
        if not self.quiet:
            err_console.print(
                f"  done in {time.monotonic() - begun:.1f}s (+{time.monotonic() - self.started:.1f}s)", markup=False
            )


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


def next_steps(results: list[dict[str, Any]]) -> list[str]:
    """Commands worth trying after the demo, on the runs it made, each with what it shows."""
    if not results:
        return []
    run_dir = results[0]["run_dir"]
    pairs = [
        (f"fireline runs show {run_dir}", "the steps and their outcomes"),
        (f"fireline audit verify {run_dir}", "the run record is intact"),
        (f"fireline evidence verify {run_dir}", "re-hash every preserved evidence item"),
    ]
    if results[0].get("report"):
        pairs.append((f"less {results[0]['report']}", "the post-mortem report"))
    pairs += [
        ("fireline sandbox up", "keep a sandbox running and try your own live runs"),
        ("fireline validate playbooks/", "then write a playbook: docs/playbook-language.md"),
    ]
    width = max(len(command) for command, _ in pairs)
    return [f"{command.ljust(width)}  # {why}" for command, why in pairs]


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

    from flows.cli.progress import StepProgress
    from flows.config import load_settings
    from flows.errors import UsageError
    from flows.plugins import load
    from flows.sandbox import backend, demo_settings, demo_steps, run_demo

    steps = [s for s in demo_steps() if not playbook or s.playbook in playbook]
    if not steps:
        known = ", ".join(s.playbook for s in demo_steps())
        raise UsageError(f"no demo step runs {', '.join(playbook or [])}; known: {known}")
    configured = load_settings()
    sandbox = backend()
    workdir = Path(tempfile.mkdtemp(prefix="fireline-sandbox-"))
    phases = _Phases(quiet=as_json)
    with terminate_as_interrupt(), contextlib.ExitStack() as stack:
        if endpoint is None:
            with phases.phase("starting the sandbox: a moto server on 127.0.0.1"):
                endpoint = stack.enter_context(sandbox.start_server(port=None, workdir=workdir / "moto")).endpoint
        stack.enter_context(sandbox.credentials())
        with phases.phase(f"seeding a small ML platform at {endpoint} (EC2, IAM, S3, Lambda, SageMaker, models)"):
            world = sandbox.seed(endpoint)
        settings = demo_settings(endpoint, workdir, runs_dir or configured.runs_dir, configured.playbooks_dir)
        slack = load("sandbox.slack").attach(stack, settings)  # a loopback Slack: channels and timelines, offline
        settings = slack.settings
        results = []
        for step in steps:
            with phases.phase(f"running {step.playbook} live against the sandbox"):
                progress = None if as_json else StepProgress(step.playbook)
                for result in run_demo(world, settings, [step], progress=progress):
                    result["lines"] = [*result.get("lines", []), *slack.show(Path(result["run_dir"]))]
                    results.append(result)
    if as_json:
        print_json({"endpoint": endpoint, "runs": results, "next": next_steps(results)})
    else:
        _print_demo(results)
        console.print("\n[bold]next[/]")
        for line in next_steps(results):
            console.print(f"  {line}", markup=False)
    if any(r["outcome"] != "succeeded" for r in results):
        raise typer.Exit(1)


@sandbox_app.command("up")
def sandbox_up_command(
    port: Annotated[int | None, typer.Option(help="Port on 127.0.0.1 (default: a free one).")] = None,
    seconds: Annotated[float | None, typer.Option(help="Stop after this long (default: at Ctrl-C).")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Start and seed the sandbox, print how to use it, and keep it up until Ctrl-C (or SIGTERM)."""
    import tempfile
    import threading

    from flows.sandbox import backend

    sandbox = backend()
    workdir = Path(tempfile.mkdtemp(prefix="fireline-sandbox-"))
    phases = _Phases(quiet=as_json)
    stop = threading.Event()
    with terminate_as_interrupt():
        try:
            with phases.phase("starting the sandbox: a moto server on 127.0.0.1"):
                started = sandbox.start_server(port=port, workdir=workdir)
            with started as server:
                with phases.phase(f"seeding a small ML platform at {server.endpoint}"):
                    world = sandbox.seed(server.endpoint)
                _print_up(server.endpoint, sandbox.env(server.endpoint, world.region), world.data, as_json)
                stop.wait(seconds)  # returns at the deadline; Ctrl-C or SIGTERM interrupts it
        except KeyboardInterrupt:
            err_console.print("stopping the sandbox", markup=False)


def _print_up(endpoint: str, env: dict[str, str], resources: dict[str, Any], as_json: bool) -> None:
    if as_json:
        print_json({"endpoint": endpoint, "env": env, "resources": resources})
        return
    console.print(f"sandbox up at {endpoint} (Ctrl-C stops it)", markup=False)
    for key, value in env.items():
        console.print(f"export {key}={value}", markup=False)
    console.print(f"inference hosts: {', '.join(resources['inference_instances'])}", markup=False)
    console.print(
        "then, in the shell with these exports: fireline run compromised-inference-host "
        f"--input instance_ids={resources['inference_instances'][0]}",
        markup=False,
    )

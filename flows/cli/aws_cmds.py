"""AWS-facing commands: ``iam-policy`` and ``evidence verify``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from flows.cli import app
from flows.cli.output import JSON_OPTION_HELP, console, err_console, print_json

JsonOpt = Annotated[bool, typer.Option("--json", help=JSON_OPTION_HELP)]

evidence_app = typer.Typer(help="Check preserved evidence.", no_args_is_help=True)
app.add_typer(evidence_app, name="evidence")


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
    from flows.engine.runs import find_run

    settings = load_settings()
    path = Path(run)  # a run directory, or any directory with an evidence folder, even one without run.json
    is_dir = (path / "evidence").is_dir() or (path / "run.json").is_file()
    return (path if is_dir else find_run(run, settings)), settings


@evidence_app.command("verify")
def evidence_verify_command(
    run: Annotated[str, typer.Argument(help="A run id, a run directory, or latest.")],
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
        if not checks:
            console.print(f"{run_dir.name}: no evidence was collected (a dry-run collects none)", markup=False)
        console.print(f"{len(checks)} item(s), {len(bad)} problem(s)", markup=False)
    if bad:
        raise typer.Exit(1)

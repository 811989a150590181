"""Commands that read runs: ``runs list``, ``runs show`` and ``audit verify``."""

from __future__ import annotations

from typing import TYPE_CHECKING

import typer

from flows.cli import app
from flows.cli.output import console, print_json
from flows.cli.run_cmds import JsonOpt, RunArg
from flows.errors import RecordError

if TYPE_CHECKING:
    from flows.config import Settings

runs_app = typer.Typer(help="List and inspect runs.", no_args_is_help=True)
app.add_typer(runs_app, name="runs")
audit_app = typer.Typer(help="Check run records.", no_args_is_help=True)
app.add_typer(audit_app, name="audit")


def _settings() -> Settings:
    from flows.config import load_settings

    return load_settings()


@runs_app.command("list")
def runs_list(as_json: JsonOpt = False) -> None:
    """List runs, newest first (runs whose process died are marked crashed); ids are printed whole."""
    import sys

    from flows.cli.run_lookup import runs_table
    from flows.engine.runs import list_runs

    rows = list_runs(_settings())
    if as_json:
        print_json(rows)
        return
    sys.stdout.write("".join(line + "\n" for line in runs_table(rows)))


@runs_app.command("show")
def runs_show(run: RunArg, as_json: JsonOpt = False) -> None:
    """Show one run: its record summary and steps."""
    from flows.engine.runs import detect_crash, find_run, read_run_json

    run_dir = find_run(run, _settings())
    detect_crash(run_dir)
    data = read_run_json(run_dir)
    if as_json:
        print_json(data)
        return
    from flows.cli.run_lookup import show_lines

    for line in show_lines(data):
        console.print(line, markup=False)


@audit_app.command("verify")
def audit_verify(run: RunArg, as_json: JsonOpt = False) -> None:
    """Verify a run record: the event chain, run.json's seal, the evidence manifest, the anchored heads."""
    from flows.engine.runs import find_run, read_run_json
    from flows.record.verify import verify_record

    settings = _settings()
    run_dir = find_run(run, settings)
    head = read_run_json(run_dir).get("events")
    expected = (int(head["count"]), str(head["head_sha256"])) if isinstance(head, dict) else None
    problems = verify_record(run_dir, settings)
    if as_json:
        print_json({"run_id": run_dir.name, "ok": not problems, "problems": problems})
        if problems:
            raise typer.Exit(1)
        return
    if problems:
        raise RecordError(f"{run_dir.name}: the run record fails verification:\n" + "\n".join(problems))
    count = expected[0] if expected else "?"
    console.print(f"{run_dir.name}: {count} events, chain intact, run.json sealed, evidence consistent", markup=False)

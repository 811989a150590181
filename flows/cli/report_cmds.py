"""``fireline report`` (the post-mortem of a run) and ``fireline metrics`` (MTTA/MTTC/MTTR per playbook)."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path
from typing import Annotated

import typer

from flows.cli import app
from flows.cli.output import JSON_OPTION_HELP, console, print_json, write_output
from flows.errors import BadInputError, UsageError

JsonOpt = Annotated[bool, typer.Option("--json", help=JSON_OPTION_HELP)]
_SINCE = re.compile(r"^\s*(\d+)\s*([hdw])\s*$")
_UNIT = {"h": "hours", "d": "days", "w": "weeks"}


def _formats(chosen: list[str] | None) -> list[str] | None:
    from flows.report import normalise_formats

    if not chosen:
        return None
    try:
        return normalise_formats(chosen)
    except BadInputError as e:
        raise UsageError(f"--format: {e}") from e


@app.command("report")
def report_cmd(
    run: Annotated[str, typer.Argument(help="A run id (under the runs directory) or a run directory.")],
    fmt: Annotated[
        list[str] | None, typer.Option("--format", "-f", help="md, html or json (repeatable); default: the playbook's.")
    ] = None,
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Write one format to this file.")] = None,
    open_: Annotated[bool, typer.Option("--open", help="Open the report (HTML when written) in a browser.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Render a run's post-mortem from its record: report.md / .html / .json in the run directory, or --output."""
    from flows.config import load_settings
    from flows.engine.runs import find_run
    from flows.report import FORMATS, build, render, run_formats, write_reports

    settings = load_settings()
    run_dir = find_run(run, settings)
    formats = _formats(fmt)
    if output is not None:
        chosen = formats or run_formats(run_dir)[:1]
        if len(chosen) != 1:
            raise UsageError("--output takes one --format")
        write_output(output, render(build(run_dir, settings=settings), chosen[0]))
        paths = [output]
    else:
        paths = write_reports(run_dir, formats, settings=settings)
    if as_json:
        print_json({"run_id": run_dir.name, "reports": [str(p) for p in paths]})
    else:
        for path in paths:
            console.print(str(path), markup=False)
    if open_:
        import webbrowser

        html = [p for p in paths if p.name.endswith(".html") or p.name == FORMATS["html"]]
        webbrowser.open((html or paths)[0].resolve().as_uri())


def parse_since(text: str) -> timedelta:
    """``30d``, ``12h``, ``2w`` as a timedelta; UsageError otherwise."""
    match = _SINCE.match(text)
    if match is None:
        raise UsageError(f"--since {text!r}: expected a period such as 30d, 12h or 2w")
    return timedelta(**{_UNIT[match.group(2)]: int(match.group(1))})


@app.command("metrics")
def metrics_cmd(
    since: Annotated[str, typer.Option("--since", help="The period: 30d, 12h, 2w.")] = "30d",
    playbook: Annotated[str | None, typer.Option("--playbook", help="Only this playbook (its name).")] = None,
    as_json: JsonOpt = False,
) -> None:
    """MTTA, MTTC and MTTR per playbook over live runs; dry-runs and drills are listed apart, never averaged."""
    from rich.table import Table

    from flows.config import load_settings
    from flows.record.store import utcnow
    from flows.report.aggregate import collect_metrics

    period = parse_since(since)
    result = collect_metrics(load_settings().runs_dir, since=period, now=utcnow(), playbook=playbook)
    if as_json:
        print_json(result)
        return
    table = Table("playbook", "live runs", "MTTA", "MTTC", "MTTR", title=f"Live runs since {result['since']}")
    for row in result["playbooks"]:
        cells = [f"{row[k]['display']} (n={row[k]['n']})" for k in ("mtta", "mttc", "mttr")]
        table.add_row(row["playbook"], str(row["runs"]), *cells)
    console.print(table)
    console.print(
        "MTTA: run start to first page ack; MTTC: to the end of the last containment step; "
        "MTTR: to the end of the last recovery step. Means over the runs where the milestone happened.",
        markup=False,
    )
    if result["excluded"]:
        console.print(f"Excluded (dry-runs and drills): {len(result['excluded'])}", markup=False)
        for row in result["excluded"]:
            console.print(f"  {row['run_id']} {row['playbook']} [{row['mode']}] {row['outcome']}", markup=False)
    for row in result["skipped"]:
        console.print(f"Skipped {row['run_id']}: {row['reason']}", markup=False)

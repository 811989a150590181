"""``fireline drill SCENARIO|DIR [--junit FILE]``: tabletop drills scored against their expectations."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from flows.cli import app
from flows.cli.output import JSON_OPTION_HELP, print_json, write_output
from flows.errors import BadInputError


def _scenarios(target: Path) -> list[Path]:
    from flows.drills.load import scenario_files

    if not target.exists():
        raise BadInputError(f"{target}: no such file or directory", where=str(target))
    found = scenario_files([target])
    if not found:
        raise BadInputError(f"{target}: no scenario files (*.yaml)", where=str(target))
    return found


def _line(result: Any) -> str:
    from flows.drills.expect import format_duration

    held = sum(c.ok for c in result.checks)
    verdict = "PASS" if result.ok else "FAIL"
    took = f"simulated {format_duration(result.virtual_seconds)} in {result.wall_seconds:.2f}s"
    head = f"{verdict} {result.scenario}: {held}/{len(result.checks)} expectation(s) held, {took}"
    lines = [f"{head}; report {result.reports[0]}"]
    lines += [f"  unmet: {c.kind} {c.name}: expected {c.expected}, observed {c.observed}" for c in result.unmet]
    return "\n".join(lines)


@app.command("drill")
def drill_cmd(
    target: Annotated[Path, typer.Argument(help="A scenario file, or a folder of them (a library's scenarios/).")],
    junit: Annotated[
        Path | None, typer.Option("--junit", help="Write JUnit XML here (one case per expectation).")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help=JSON_OPTION_HELP)] = False,
) -> None:
    """Run scenarios in drill mode on a simulated clock; exit 0 when every expectation holds, else 1.

    Nothing is changed: the world is an in-process moto, every step only plans, and notifications
    go only to the drill channel, marked [DRILL], and only to drill_ok people.
    """
    from flows.config import load_settings
    from flows.drills.load import load_scenario
    from flows.drills.report import junit_xml
    from flows.drills.run import run_scenario

    settings = load_settings()
    files = _scenarios(target)
    for path in files:  # every scenario is checked before any runs: a typo never half-runs a suite
        load_scenario(path, settings)
    results = []
    for path in files:
        result = run_scenario(path, settings)
        results.append(result)
        if not as_json:
            sys.stdout.write(_line(result) + "\n")
            sys.stdout.flush()
    if junit is not None:
        write_output(junit, junit_xml(results, []))
    if as_json:
        drills = [
            {"scenario": r.scenario, "ok": r.ok, "run_id": r.run_id, "run_dir": str(r.run_dir),
             "unmet": [c.as_dict() for c in r.unmet], "reports": [str(p) for p in r.reports]}
            for r in results
        ]  # fmt: skip
        print_json({"ok": all(r.ok for r in results), "drills": drills})
    passed = sum(r.ok for r in results)
    sys.stderr.write(f"drill: {len(results)} scenario(s), {passed} passed, {len(results) - passed} failed\n")
    if passed != len(results):
        raise typer.Exit(1)

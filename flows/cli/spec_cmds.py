"""Commands about playbooks as documents: validate, lint, schema, actions, plan.

None of them runs anything; they import neither Prefect nor any cloud SDK.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from flows.cli import app
from flows.cli.output import JSON_OPTION_HELP, print_json, write_output
from flows.errors import BadInputError, Diagnostic

# Subfolders of a playbook library that hold other YAML documents.
NOT_PLAYBOOKS = frozenset({"contact-trees", "scenarios", "alerts"})
# Files of a playbook library that are other YAML documents (the people directory).
NOT_PLAYBOOK_FILES = frozenset({"people.yaml", "people.yml"})

JsonOpt = Annotated[bool, typer.Option("--json", help=JSON_OPTION_HELP)]
StrictOpt = Annotated[bool, typer.Option("--strict", help="Treat warnings as errors.")]
PathsArg = Annotated[list[Path], typer.Argument(help="Playbook files or directories (searched recursively).")]


def collect_playbooks(paths: list[Path]) -> list[Path]:
    """Expand directories into their playbook files, skipping contact trees, scenarios and alerts."""
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            found = [
                f
                for f in path.rglob("*")
                if f.suffix in (".yaml", ".yml")
                and f.is_file()
                and f.name not in NOT_PLAYBOOK_FILES
                and not any(p in NOT_PLAYBOOKS or p.startswith(".") for p in f.relative_to(path).parts[:-1])
            ]
            files.extend(sorted(found))
        elif path.is_file():
            files.append(path)
        else:
            raise BadInputError(f"{path}: no such file or directory", where=str(path))
    return list(dict.fromkeys(files))


def diagnostic_json(d: Diagnostic) -> dict[str, Any]:
    """One finding as JSON."""
    return {
        "file": d.pos.file,
        "line": d.pos.line,
        "col": d.pos.col,
        "severity": d.severity,
        "code": d.code,
        "path": d.path,
        "message": d.message,
        "hint": d.hint,
    }


def _library_names(results: list[tuple[Path, Any, list[Diagnostic]]]) -> None:
    """Report playbook names used by more than one file (names are unique in a library)."""
    seen: dict[str, Path] = {}
    for _, loaded, found in results:
        if loaded is None:
            continue
        name = loaded.playbook.metadata.name
        if name in seen:
            pos = loaded.position(("metadata", "name"))
            found.append(
                Diagnostic("E420", f"playbook name {name!r} is also used by {seen[name]}", pos, "metadata.name")
            )
        else:
            seen[name] = loaded.path


def _check(paths: list[Path], strict: bool, as_json: bool, command: str) -> None:
    import sys

    from flows.people.lint import people_files, validate_file  # directories and contact trees too

    files = collect_playbooks(paths)
    if not files:
        raise BadInputError("no playbook files (*.yaml, *.yml) found in " + ", ".join(map(str, paths)))
    files += people_files(paths)
    from flows.drills.load import is_scenario, library_scenarios, validate_scenario  # drill scenarios too

    files += library_scenarios(paths)
    results = [(f, *(validate_scenario(f) if is_scenario(f) else validate_file(f, strict=strict))) for f in files]
    _library_names(results)
    from flows.triggers.overlap import lint_library

    lint_library(results)  # W520: one alert would start two playbooks
    errors = sum(d.severity == "error" for _, _, found in results for d in found)
    warnings = sum(d.severity == "warning" for _, _, found in results for d in found)
    if as_json:
        print_json(
            {
                "command": command,
                "ok": errors == 0,
                "errors": errors,
                "warnings": warnings,
                "files": [
                    {
                        "path": str(f),
                        "ok": not any(d.severity == "error" for d in found),
                        "playbook": loaded.playbook.ref if loaded else None,
                        "sha256": loaded.sha256 if loaded else None,
                        "diagnostics": [diagnostic_json(d) for d in found],
                    }
                    for f, loaded, found in results
                ],
            }
        )
    else:
        for _, _, found in results:
            for d in found:
                sys.stdout.write(d.render() + "\n")
    # The verdict goes to stderr with --json too: a failure is always a line there.
    verdict = "ok" if errors == 0 else "failed"
    sys.stderr.write(f"{command}: {len(files)} file(s), {errors} error(s), {warnings} warning(s): {verdict}\n")
    if errors:
        raise typer.Exit(1)


@app.command()
def validate(paths: PathsArg, strict: StrictOpt = False, as_json: JsonOpt = False) -> None:
    """Check playbooks against the language, their actions' parameters and the semantic rules."""
    _check(paths, strict, as_json, "validate")


@app.command()
def lint(paths: PathsArg, strict: StrictOpt = False, as_json: JsonOpt = False) -> None:
    """Report errors and warnings (unreachable steps, containment without evidence or approval, ...)."""
    _check(paths, strict, as_json, "lint")


@app.command()
def schema(
    as_json: JsonOpt = False,
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Write to this file.")] = None,
) -> None:
    """Print the JSON Schema of playbooks, for editors (see docs/playbook-language.md)."""
    import json

    from flows.actions.registry import default_registry
    from flows.language.schema import playbook_schema

    document = playbook_schema(default_registry())
    from flows.drills.schema import with_scenario  # kind: Scenario, for editors of drill files

    document = with_scenario(document)
    from flows.people.schema import with_people  # kind: ContactTree and kind: Directory

    document = with_people(document)
    if output is not None:
        write_output(output, json.dumps(document, indent=2) + "\n")
        if as_json:
            print_json({"written": str(output)})
        return
    print_json(document)


actions_app = typer.Typer(help="The action catalogue: every registered action.", no_args_is_help=False)
app.add_typer(actions_app, name="actions")


@actions_app.callback(invoke_without_command=True)
def actions(ctx: typer.Context, as_json: JsonOpt = False) -> None:
    """List actions: name, kind, undoable, description (`fireline actions show NAME` for one)."""
    if ctx.invoked_subcommand is not None:
        return
    from flows.actions.catalogue import summary
    from flows.actions.registry import default_registry

    rows = [summary(a) for a in default_registry().all()]
    if as_json:
        print_json({"actions": rows})
        return
    import sys

    from flows.cli.run_lookup import text_table

    cells = [[r["name"], r["kind"], "yes" if r["undoable"] else "no", r["description"]] for r in rows]
    sys.stdout.write("".join(line + "\n" for line in text_table(("action", "kind", "undoable", "description"), cells)))


@actions_app.command("show")
def actions_show(
    name: Annotated[str, typer.Argument(help="An action name, e.g. aws.ec2.isolate_instance.")],
    as_json: JsonOpt = False,
) -> None:
    """Show one action: parameters (type, default, required), result fields, kind, permissions."""
    from flows.actions.catalogue import detail
    from flows.actions.registry import default_registry
    from flows.errors import UnknownActionError
    from flows.language.diagnose import suggest

    registry = default_registry()
    if name not in registry:
        hint = suggest(name, registry.names())
        raise UnknownActionError(f"unknown action {name!r}" + (f" ({hint})" if hint else ""))
    info = detail(registry.get(name))
    if as_json:
        print_json(info)
        return
    from flows.cli.output import console

    console.print(f"[bold]{info['name']}[/bold]  kind={info['kind']}  undoable={'yes' if info['undoable'] else 'no'}")
    console.print(info["description"], markup=False)
    for title, fields in (("params (with:)", info["params"]), ("result (steps.<id>.output)", info["result"])):
        console.print(f"\n[bold]{title}[/bold]")
        for f in fields:
            need = "required" if f["required"] else f"default {f['default']!r}"
            line = f"  {f['name']}: {f['type']}  ({need})" + (f"  {f['description']}" if f["description"] else "")
            console.print(line, markup=False)
    console.print("\n[bold]permissions[/bold]")
    console.print("  " + (", ".join(info["permissions"]) or "none"), markup=False)
    if info["undo_permissions"]:
        console.print("  undo: " + ", ".join(info["undo_permissions"]), markup=False)
    for title, lines in (("follows", info.get("guidance", [])), ("caveats", info.get("caveats", []))):
        if lines:
            console.print(f"\n[bold]{title}[/bold]")
            for line in lines:
                console.print(f"  - {line}", markup=False)


def _resolve_playbook(ref: str) -> Path:
    """A path, or a playbook name looked up in the configured playbooks directory."""
    path = Path(ref)
    if path.is_file():
        return path
    if path.is_dir():
        raise BadInputError(f"{ref}: is a directory; give one playbook file or a playbook name", where=ref)
    from flows.config import load_settings

    folder = load_settings().playbooks_dir
    for candidate in (folder / f"{ref}.yaml", folder / f"{ref}.yml"):
        if candidate.is_file():
            return candidate
    names = sorted(p.stem for p in folder.glob("*.y*ml")) if folder.is_dir() else []
    from flows.language.diagnose import suggest

    hint = suggest(ref, names)
    raise BadInputError(
        f"{ref}: no such playbook file, and no playbook named {ref!r} in {folder}/" + (f" ({hint})" if hint else ""),
        where=ref,
    )


@app.command()
def plan(
    playbook: Annotated[str, typer.Argument(help="A playbook file, or a name in the playbooks directory.")],
    as_json: JsonOpt = False,
) -> None:
    """Show the DAG without running it: waves of parallel steps, their order and dependencies."""
    import sys

    from flows.actions.registry import default_registry
    from flows.language.lint import validate_path
    from flows.language.static_plan import render_marker, static_plan

    registry = default_registry()
    loaded, found = validate_path(_resolve_playbook(playbook), registry)
    errors = [d for d in found if d.severity == "error"]
    if loaded is None or errors:
        if as_json:
            print_json({"ok": False, "diagnostics": [diagnostic_json(d) for d in found]})
        sys.stderr.write("".join(d.render() + "\n" for d in found))
        raise typer.Exit(1)
    result = static_plan(loaded.playbook, registry)
    if as_json:
        print_json(
            {
                "ok": True,
                "path": str(loaded.path),
                "sha256": loaded.sha256,
                **result,
                "warnings": [diagnostic_json(d) for d in found],
            }
        )
        return
    out = [f"{result['playbook']}: {result['title']} ({result['steps']} steps in {len(result['waves'])} waves)"]
    for wave in result["waves"]:
        parallel = " (in parallel)" if len(wave["steps"]) > 1 else ""
        out.append(f"wave {wave['wave']}{parallel}")
        for s in wave["steps"]:
            after = f"  after {', '.join(s['needs'])}" if s["needs"] else ""
            out.append(f"  {s['id']}: {s['action']} [{s['kind'] or '?'}]{after}")
            out.extend(
                f"      {render_marker(k, v)}"
                for k, v in s["markers"].items()
                if k != "concurrency" or "for_each" in s["markers"]
            )
    sys.stdout.write("\n".join(out) + "\n")
    sys.stderr.write("".join(d.render() + "\n" for d in found))

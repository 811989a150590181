"""The ``fireline`` command line.

Commands live in topic modules that each add themselves to :data:`app`; heavy libraries are
imported inside commands, so ``fireline validate`` never pays for Prefect, boto3 or slack_sdk.
Human output goes to the terminal through rich; ``--json`` prints one JSON document to stdout.
Exit codes: 0 success, 1 the input or the run failed, 2 usage. Every error reaches the user through
:mod:`flows.cli.failures` (one line on stderr; with ``--json`` also a JSON error on stdout), so a
command only raises.
"""

from __future__ import annotations

import sys
from typing import Annotated

import typer

app = typer.Typer(
    name="fireline",
    help="Incident response playbooks for ML platforms: validate, plan, run, approve, audit.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

# Topic modules, imported for their commands. Each must keep its heavy imports inside functions.
COMMAND_MODULES: tuple[str, ...] = (
    "flows.cli.spec_cmds",
    "flows.cli.run_cmds",
    "flows.cli.runs_cmds",
    "flows.cli.report_cmds",
    "flows.cli.aws_cmds",
    "flows.cli.sandbox_cmds",
    "flows.cli.model_cmds",
    "flows.cli.serve_cmds",
    "flows.cli.trigger_cmds",
    "flows.cli.config_cmds",
    "flows.cli.people_cmds",
    "flows.cli.drill_cmds",
)


def _load_commands() -> None:
    import importlib

    for name in COMMAND_MODULES:
        try:
            importlib.import_module(name)
        except ModuleNotFoundError as e:
            if e.name != name:
                raise


def _version(value: bool) -> None:
    if value:
        from importlib.metadata import PackageNotFoundError, version

        try:
            number = version("fireline")
        except PackageNotFoundError:  # running from a source tree that was never installed
            number = "unknown"
        sys.stdout.write(f"fireline {number}\n")
        raise typer.Exit(0)


@app.callback()
def _root(
    _version_flag: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = False,
) -> None:
    """Incident response playbooks for ML platforms: validate, plan, run, approve, audit."""


def main(argv: list[str] | None = None) -> int:
    """Entry point of the console script: one clear line per error, no traceback unless --debug."""
    args = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in args
    if debug:
        args.remove("--debug")
    _load_commands()
    try:
        result = app(args=args, prog_name="fireline", standalone_mode=False)
        # Without standalone mode, typer hands a command's typer.Exit code back as the return value.
        if isinstance(result, int) and not isinstance(result, bool):
            return result
    except SystemExit as e:
        return e.code if isinstance(e.code, int) else 1
    except KeyboardInterrupt:
        print("fireline: interrupted", file=sys.stderr)
        return 130
    except Exception as e:  # the one place errors are shown: one line, never a traceback
        exit_code = getattr(e, "exit_code", None)
        if type(e).__name__ == "Exit" and isinstance(exit_code, int):  # click's Exit (typer's comes back as a value)
            return exit_code
        if debug:
            raise
        from flows.cli.failures import report

        return report(e, as_json="--json" in args)
    return 0


def run() -> None:
    sys.exit(main())

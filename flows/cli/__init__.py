"""The ``fireline`` command line.

Commands live in topic modules that each add themselves to :data:`app`; heavy libraries are
imported inside commands, so ``fireline validate`` never pays for Prefect, boto3 or slack_sdk.
Human output goes to the terminal through rich; ``--json`` prints one JSON document to stdout.
Exit codes: 0 success, 1 the input or the run failed, 2 usage.
"""

from __future__ import annotations

import sys

import typer

from flows.errors import FirelineError, UsageError

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
    "flows.cli.aws_cmds",
    "flows.cli.model_cmds",
    "flows.cli.serve_cmds",
)


def _load_commands() -> None:
    import importlib

    for name in COMMAND_MODULES:
        try:
            importlib.import_module(name)
        except ModuleNotFoundError as e:
            if e.name != name:
                raise


def _report(e: BaseException) -> int:
    """Print one line for an exception and return the exit code."""
    import click

    if isinstance(e, UsageError):
        print(f"fireline: error: {e}", file=sys.stderr)
        return 2
    if isinstance(e, FirelineError):
        text = str(e)
        print(text if "\n" in text else f"fireline: error: {text}", file=sys.stderr)
        return 1
    usage: tuple[type[Exception], ...] = (click.UsageError,)
    abort: tuple[type[BaseException], ...] = (click.exceptions.Abort, typer.Abort)
    try:  # typer 0.2x raises its own vendored copies of click's exceptions
        from typer._click.exceptions import UsageError as VendoredUsageError

        usage = (*usage, VendoredUsageError)
    except ImportError:
        pass
    if isinstance(e, usage):
        print(f"fireline: usage: {e.format_message()}", file=sys.stderr)  # type: ignore[attr-defined]
        return 2
    if isinstance(e, abort):
        print("fireline: aborted", file=sys.stderr)
        return 1
    print(f"fireline: internal error: {type(e).__name__}: {e} (run with --debug for a traceback)", file=sys.stderr)
    return 1


def main(argv: list[str] | None = None) -> int:
    """Entry point of the console script: one clear line per error, no traceback unless --debug."""
    import click

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
    except click.exceptions.Exit as e:
        return int(e.exit_code)
    except SystemExit as e:
        return e.code if isinstance(e.code, int) else 1
    except KeyboardInterrupt:
        print("fireline: interrupted", file=sys.stderr)
        return 130
    except Exception as e:  # the last line of defence: one line, never a traceback
        if debug:
            raise
        return _report(e)
    return 0


def run() -> None:
    sys.exit(main())

"""Commands of the Prefect layer: ``fireline serve`` (the warm runtime) and ``fireline deploy``.

Prefect, uvicorn and starlette are imported inside the commands only.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from flows.cli import app
from flows.cli.output import JSON_OPTION_HELP, err_console, print_json
from flows.errors import UsageError

JsonOpt = Annotated[bool, typer.Option("--json", help=JSON_OPTION_HELP)]


@app.command("serve")
def serve_command(
    port: Annotated[
        int | None, typer.Option("--port", help="Port (default: prefect.serve_port; 0 picks a free one).")
    ] = None,
    host: Annotated[
        str, typer.Option("--host", help="Address to listen on; other than loopback needs auth on every source.")
    ] = "127.0.0.1",
    tls_cert: Annotated[Path | None, typer.Option("--tls-cert", help="PEM certificate: serve HTTPS.")] = None,
    tls_key: Annotated[Path | None, typer.Option("--tls-key", help="PEM private key of --tls-cert.")] = None,
    no_receiver: Annotated[
        bool, typer.Option("--no-receiver", help="Do not mount the alert receiver (POST /alerts/<source>).")
    ] = False,
    ui: Annotated[bool, typer.Option("--ui", help="Serve the Prefect UI from the embedded server too.")] = False,
    grace: Annotated[float, typer.Option("--grace", help="Seconds in-flight runs get to finish on SIGTERM.")] = 30.0,
    status: Annotated[bool, typer.Option("--status", help="Say whether a server is running, then exit.")] = False,
    deployment: Annotated[
        str | None,
        typer.Option(
            "--deployment", help="Start runs as flow runs of this deployment (e.g. respond/fireline-respond)."
        ),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Keep a warm Prefect runtime, receive alerts, and run the playbooks handed over (Ctrl-C stops it)."""
    from flows.config import load_settings
    from flows.engine.handoff import serve_status
    from flows.engine.serve import serve

    settings = load_settings()
    if (tls_cert is None) != (tls_key is None):
        raise UsageError("--tls-cert and --tls-key go together")
    if status:
        _print_status(serve_status(settings), as_json)
        return

    def ready(doc: dict[str, Any]) -> None:
        if as_json:
            print_json({k: v for k, v in doc.items() if k != "token"})
        else:
            where = "embedded" if doc["embedded"] else "external"
            err_console.print(
                f"fireline serve: listening on {'https' if doc['tls'] else 'http'}://{doc['host']}:{doc['port']} "
                f"(pid {doc['pid']}), alerts at /alerts/<source>, Prefect API "
                f"{doc['prefect_api_url']} ({where}); warm-up took {doc['warm_up_seconds']:.1f}s",
                markup=False,
            )

    tls = (str(tls_cert), str(tls_key)) if tls_cert is not None and tls_key is not None else None
    result = serve(
        settings, port=port, host=host, ui=ui, grace=grace, on_ready=ready, deployment=deployment, tls=tls,
        receiver=not no_receiver,
    )  # fmt: skip
    left = result["interrupted_runs"]
    note = f"; {len(left)} run(s) interrupted, resume them with fireline resume: {' '.join(left)}" if left else ""
    err_console.print(f"fireline serve: stopped{note}", markup=False)
    if left:
        # Threads of abandoned runs cannot be stopped and would block the interpreter's exit; their
        # durable state is on disk and their flow runs are marked Crashed, so leave at once.
        import os
        import sys

        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)


def _print_status(state: dict[str, Any] | None, as_json: bool) -> None:
    if as_json:
        print_json({"running": state is not None, **(state or {})})
    elif state is None:
        err_console.print("fireline serve: not running", markup=False)
    else:
        err_console.print(
            f"fireline serve: running, pid {state['pid']}, 127.0.0.1:{state['port']}, "
            f"Prefect API {state['prefect_api_url']}, since {state['started_at']}",
            markup=False,
        )
    if state is None:
        raise typer.Exit(1)


@app.command("deploy")
def deploy_command(
    name: Annotated[str, typer.Option("--name", help="Deployment name.")] = "fireline-respond",
    work_pool: Annotated[
        str | None, typer.Option("--work-pool", help="Work pool (default: prefect.work_pool).")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Register the `respond` flow as a deployment on a work pool of the configured Prefect server."""
    from flows.config import load_settings
    from flows.errors import ConfigError

    settings = load_settings()
    if not settings.prefect.api_url:  # checked before Prefect is imported: the answer is immediate
        raise ConfigError(
            "fireline deploy needs a Prefect server: set prefect.api_url in fireline.toml or FIRELINE_PREFECT_API_URL"
        )
    from flows.engine.prefect_deploy import register_deployment

    result = register_deployment(settings, name=name, work_pool=work_pool)
    if as_json:
        print_json(result)
        return
    created = " (created as a process pool)" if result["work_pool_created"] else ""
    err_console.print(
        f"deployed {result['deployment']} on work pool {result['work_pool']}{created} at {result['api_url']}\n"
        f"start workers with: prefect worker start --pool {result['work_pool']}\n"
        f"start a run with:   prefect deployment run {result['deployment']} -p playbook=NAME",
        markup=False,
    )

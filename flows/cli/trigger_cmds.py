"""``fireline triggers test``: which playbook an alert starts, and why the others do not.

Also the alert-file side of ``fireline run --alert``: :func:`alert_groups` splits a payload into
its incidents (one run each) through the receiver's adapters and routing.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from flows.cli import app
from flows.cli.output import JSON_OPTION_HELP, console, err_console, print_json

if TYPE_CHECKING:
    from flows.config import Settings
    from flows.language.spec import Playbook

triggers_app = typer.Typer(help="Alert triggers: check routing without a server.", no_args_is_help=True)
app.add_typer(triggers_app, name="triggers")


def _playbook(ref: str, settings: Settings) -> Playbook:
    from flows.errors import RunError
    from flows.language.loader import load_playbook

    path = Path(ref)
    if not path.is_file():
        found = [
            p for p in (settings.playbooks_dir / f"{ref}.yaml", settings.playbooks_dir / f"{ref}.yml") if p.is_file()
        ]
        if not found:
            raise RunError(
                f"unknown playbook {ref!r}: not a file, and not a playbook name in {settings.playbooks_dir}/"
            )
        path = found[0]
    return load_playbook(path).playbook


def alert_groups(
    playbook: str, path: Path, source: str | None, settings: Settings
) -> list[tuple[dict[str, Any], list[dict[str, Any]]]]:
    """The incidents of an alert file for ``playbook``: (first alert, every alert of the incident) each.

    Alerts are grouped as the receiver would (the matching trigger's ``group_by``, else the
    fingerprint). Raises a one-line error for a file of resolved alerts only.
    """
    from flows.engine.alerts import load_alert_batch
    from flows.triggers.model import AlertError
    from flows.triggers.routing import incident_key, why_not

    batch = load_alert_batch(path, source)
    if batch.truncated:
        err_console.print(f"warning: {path}: the sender left {batch.truncated} alert(s) out of this payload",
                          markup=False)  # fmt: skip
    if not batch.firing:
        raise AlertError(
            f"{path}: no firing alert ({len(batch.resolved)} resolved): a resolved alert never starts a run"
        )
    book = _playbook(playbook, settings)
    groups: dict[str, list[Any]] = {}
    for alert in batch.firing:
        trigger = next((t for t in book.triggers if not why_not(t, alert)), None)
        key = incident_key(book, trigger, alert) if trigger is not None else alert.fingerprint
        groups.setdefault(key, []).append(alert)
    return [(alerts[0].model_dump(mode="json"), [a.brief() for a in alerts]) for alerts in groups.values()]


@triggers_app.command("test")
def triggers_test(
    alert_file: Annotated[
        Path, typer.Argument(help="An alert file: a raw payload of a source, or the normalised form.")
    ],
    source: Annotated[str | None, typer.Option("--source", help="The payload's source (default: recognised).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help=JSON_OPTION_HELP)] = False,
) -> None:
    """Print which playbooks each alert of the file starts, and why each other playbook does not."""
    from flows.config import load_settings
    from flows.engine.alerts import load_alert_batch
    from flows.triggers.routing import explain, load_library

    settings = load_settings()
    batch = load_alert_batch(alert_file, source)
    library = load_library(settings.playbooks_dir)
    report: list[dict[str, Any]] = []
    for alert in batch.alerts:
        verdicts = explain(alert, library)
        report.append({
            "fingerprint": alert.fingerprint,
            "status": alert.status,
            "labels": alert.labels,
            "matches": [{"playbook": v.playbook, "incident_key": v.route.key} for v in verdicts if v.route],
            "others": [{"playbook": v.playbook, "reasons": v.reasons} for v in verdicts if not v.route],
        })  # fmt: skip
    if as_json:
        print_json({"source": batch.source, "truncated": batch.truncated, "alerts": report})
    else:
        _print_report(report)
    if not any(e["matches"] for e in report):
        raise typer.Exit(1)


def _print_report(report: list[dict[str, Any]]) -> None:
    for entry in report:
        console.print(f"alert {entry['fingerprint']} ({entry['status']}) {entry['labels']}", markup=False)
        if entry["status"] == "resolved":
            console.print("  resolved: recorded against its incident's run, never starts one", markup=False)
        for match in entry["matches"]:
            console.print(f"  starts {match['playbook']} (incident {match['incident_key']})", markup=False)
        if not entry["matches"]:
            console.print("  starts no playbook", markup=False)
        for other in entry["others"]:
            console.print(f"  not {other['playbook']}: {'; '.join(other['reasons'])}", markup=False)

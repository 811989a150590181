"""Commands about people: ``fireline ack`` and ``fireline contacts show``; the answer behind approve/reject.

Who answers at a terminal is the OS login, mapped to a person by the run's directory snapshot
(``unix_logins``); ``--as NAME`` is a claim, accepted only when the directory lets this login act
for NAME, and recorded as such. A refused answer or ack exits 1 with the reason, and is still
recorded in the run (``approval.refused`` / ``page.ack_refused``).
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from flows.cli import app
from flows.cli.output import JSON_OPTION_HELP, console, print_json
from flows.errors import ApprovalError, UsageError

if TYPE_CHECKING:
    from flows.config import Settings

JsonOpt = Annotated[bool, typer.Option("--json", help=JSON_OPTION_HELP)]
AsOpt = Annotated[str | None, typer.Option("--as", help="Act for this person (the directory must allow your login).")]

contacts_app = typer.Typer(help="Contact trees: who is paged, and when.", no_args_is_help=True)
app.add_typer(contacts_app, name="contacts")


def _settings() -> Settings:
    from flows.config import load_settings

    return load_settings()


def _identity(run_dir: Path, claim: str | None, settings: Any, refuse: Any) -> Any:
    """The terminal's identity for this run; a refused claim is recorded through ``refuse`` and raised."""
    from flows.people.snapshot import cli_identity, os_user, run_directory

    try:
        return cli_identity(claim, run_directory(run_dir, settings))
    except ApprovalError as e:
        refuse(claim or os_user(), os_user(), str(e))
        raise


def give_answer(run_dir: Path, step: str, claim: str | None, decision: str, reason: str, as_json: bool,
                settings: Any) -> None:  # fmt: skip
    """``fireline approve``/``reject``: submit the answer and tell the truth about what the run will do."""
    from flows.engine.approvals import Answer, write_answer
    from flows.people.answers import submit_answer

    def refuse(who: str, login: str, why: str) -> None:
        answer = Answer(by=who, decision=decision, reason=reason, how="cli", authenticated_as=login, claim=claim)
        write_answer(run_dir, step, answer, refused=why)

    identity = _identity(run_dir, claim, settings, refuse)
    receipt = submit_answer(run_dir, step, decision, identity, reason or None, settings)
    if not receipt.accepted:
        raise ApprovalError(f"refused: {receipt.reason}")
    if as_json:
        print_json({**receipt.as_json(), "claim": identity.claim, "authenticated_as": identity.authenticated_as})
        return
    how = f" (claimed with --as by OS user {identity.authenticated_as})" if identity.claim else ""
    again = "; it counted already, so it counts once" if receipt.duplicate else ""
    console.print(f"{receipt.decision} from {receipt.person_id}{how} recorded for {run_dir.name} step {step}{again}",
                  markup=False)  # fmt: skip


@app.command("ack")
def ack_cmd(
    run: Annotated[str, typer.Argument(help="A run id (under the runs directory) or a run directory.")],
    as_user: AsOpt = None,
    step: Annotated[str | None, typer.Option("--step", help="Only this paging step (default: every page).")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Acknowledge a run's page: escalation stops at the level it reached."""
    from flows.engine.runs import find_run
    from flows.people.answers import ack_dir, submit_ack

    settings = _settings()
    run_dir = find_run(run, settings)

    def refuse(who: str, login: str, why: str) -> None:
        import json
        import time

        from flows.record.store import iso, utcnow, write_atomic

        doc = {"by": who, "step": step, "via": "cli", "authenticated_as": login, "claim": as_user, "at": iso(utcnow()),
               "refused": why}  # fmt: skip
        write_atomic(ack_dir(run_dir) / f"{time.time_ns():020d}-refused.json", json.dumps(doc).encode())

    identity = _identity(run_dir, as_user, settings, refuse)
    receipt = submit_ack(run_dir, identity, settings, step)
    if not receipt.accepted:
        raise ApprovalError(f"ack refused: {receipt.reason}")
    if as_json:
        print_json(receipt.as_json())
        return
    console.print(f"ack from {receipt.person_id} recorded for {run_dir.name}" + (f" step {step}" if step else ""),
                  markup=False)  # fmt: skip


def _parse_at(at: str | None) -> datetime:
    if at is None:
        return datetime.now(UTC)
    try:
        moment = datetime.fromisoformat(at.replace("Z", "+00:00"))
    except ValueError as e:
        raise UsageError(f"--at {at!r}: expected an ISO-8601 time such as 2026-11-30T22:00:00Z") from e
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


@contacts_app.command("show")
def contacts_show(
    tree: Annotated[str, typer.Argument(help="A contact tree name (in the library's contact-trees/) or file.")],
    at: Annotated[str | None, typer.Option("--at", help="When the page starts (ISO-8601; default now).")] = None,
    severity: Annotated[str, typer.Option("--severity", help="The incident's severity.")] = "critical",
    label: Annotated[list[str] | None, typer.Option("--label", help="An alert label NAME=VALUE, repeatable.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Who is paged at each level if nobody acknowledges, and when (levels skipped say why)."""
    from flows.people.schedule import escalation_schedule

    labels: dict[str, str] = {}
    for pair in label or []:
        name, sep, value = pair.partition("=")
        if not sep:
            raise UsageError(f"--label {pair!r}: expected NAME=VALUE")
        labels[name] = value
    rows = escalation_schedule(tree, _settings(), _parse_at(at), severity=severity, labels=labels)
    if as_json:
        print_json(rows)
        return
    for row in rows["entries"]:
        when = row["at"].replace("+00:00", "Z")
        who = ", ".join(row["who"]) or "-"
        note = f"  ({row['note']})" if row.get("note") else ""
        console.print(f"+{row['offset']:>6}  {when}  {row['what']:<26} {who}{note}", markup=False)

"""``fireline attest``: record that a model version is known-good, with the sha256 of its artifact.

Run by whoever produced and evaluated the version (usually the training pipeline's CI). Each
attestation leaves a small record under ``<home>/attestations/`` with the event log of what was
read and written.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, Literal

import typer

from flows.cli import app
from flows.cli.output import JSON_OPTION_HELP, console, print_json
from flows.errors import BadInputError, UsageError

RegistryOpt = Annotated[
    Literal["sagemaker", "mlflow", "s3"], typer.Option("--registry", help="Where the version is registered.")
]


def _eval_metrics(path: Path | None) -> dict[str, Any] | None:
    if path is None:
        return None
    from flows.cli.files import read_json_file

    data = read_json_file(path, "--eval")
    if not isinstance(data, dict):
        raise BadInputError(f"--eval {path}: expected a JSON object of metrics", where=str(path))
    return data


def _drop_if_nothing_recorded(folder: Path) -> None:
    """Remove an attestation record that failed before it recorded anything (no half-written record)."""
    import shutil

    events = folder / "events.jsonl"
    files = [p for p in folder.rglob("*") if p.is_file()] if folder.is_dir() else []
    if not files or (files == [events] and not events.read_bytes().strip()):
        shutil.rmtree(folder, ignore_errors=True)


@app.command("attest")
def attest_command(
    target: Annotated[
        str,
        typer.Argument(
            help="sagemaker: a model package ARN; mlflow: NAME/VERSION; s3: s3://bucket/key[?versionId=ID]."
        ),
    ],
    registry: RegistryOpt,
    by: Annotated[str, typer.Option("--by", help="Who attests (a person or a pipeline id).")],
    eval_file: Annotated[
        Path | None, typer.Option("--eval", help="A JSON file of evaluation metrics to attest with the digest.")
    ] = None,
    approve: Annotated[bool, typer.Option("--approve", help="Also mark the version approved in the registry.")] = False,
    tracking_uri: Annotated[str | None, typer.Option("--tracking-uri", help="mlflow: the tracking server.")] = None,
    training_data: Annotated[
        list[str] | None,
        typer.Option(
            "--training-data",
            help="A dataset the version was trained on: URI[@sha256] (an S3 prefix is digested now). Repeatable.",
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help=JSON_OPTION_HELP)] = False,
) -> None:
    """Hash a model version's artifact and write the known-good attestation into the registry."""
    from flows.actions.context import make_context
    from flows.config import load_settings
    from flows.plugins import load

    attestation = load("models.attest")
    attest, parse_target = attestation.attest, attestation.parse_target

    if not by.strip():
        raise UsageError("--by must name who attests")
    metrics = _eval_metrics(eval_file)
    params, version = parse_target(registry, target)
    if tracking_uri:
        params = params.model_copy(update={"tracking_uri": tracking_uri})
    settings = load_settings()
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
    folder = settings.home / "attestations" / f"attest-{stamp}"
    ctx = make_context(folder, settings=settings, step_id="attest", incident_id=f"attest-{stamp}")
    try:
        outcome = attest(
            ctx, params, version, by=by, eval_metrics=metrics, approve=approve, training_data=training_data or ()
        )
    except BaseException:
        _drop_if_nothing_recorded(folder)
        raise
    ctx.emit("model.attested", outcome.model_dump(mode="json"))
    if as_json:
        print_json(outcome.model_dump(mode="json"))
        return
    console.print(f"attested {outcome.label}", markup=False)
    console.print(f"  sha256 {outcome.sha256} ({outcome.size_read} bytes read)", markup=False)
    console.print(f"  by {by}" + (", approved" if approve else ""), markup=False)
    for uri, digest in outcome.training_data.items():
        console.print(f"  trained on {uri} (sha256 {digest})", markup=False)

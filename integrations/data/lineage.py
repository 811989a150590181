"""Training-data lineage: which datasets a model version was trained on, and whether they are tainted.

A version's training data comes from up to three sources, read in this order:

- ``attestation``: the key ``fireline.training_data`` that ``fireline attest --training-data`` writes,
  a compact JSON object ``{uri: sha256}``. It is split into pieces of :data:`PIECE` characters over
  ``fireline.training_data``, ``fireline.training_data.1``, … because S3 tag values and SageMaker
  metadata values hold at most 256 characters (each piece is stored ``base64:``-encoded there);
- ``mlflow_dataset_input``: the dataset inputs of the version's MLflow run (``log_input``): the
  dataset's source URI and MLflow's own digest;
- ``sagemaker_training_job``: a model package whose ``MetadataProperties.GeneratedBy`` names a
  training job: the S3 URIs of that job's input channels (``DescribeTrainingJob``).

URIs are compared with S3 prefix semantics: a tainted ``s3://b/shards/`` reaches a model trained on
``s3://b/shards/2026-11/`` and one trained on the whole ``s3://b/``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from flows.errors import ActionError
from integrations.models.base import KEY_TRAINING_DATA

PIECE = 180  # JSON characters per key: base64 of 180 bytes plus "base64:" stays under 256
MAX_PIECES = 4
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


class LineageError(ActionError):
    """A version's recorded training data cannot be read (malformed tag, unreadable run)."""


@dataclass(frozen=True)
class DatasetRef:
    """One dataset a version was trained on, and where fireline learnt it."""

    uri: str
    sha256: str | None = None
    source: str = "attestation"

    def as_json(self) -> dict[str, Any]:
        return {"uri": self.uri, "sha256": self.sha256, "source": self.source}


def split_dataset_arg(text: str) -> tuple[str, str | None]:
    """``URI[@sha256]`` as (uri, sha256 or None); an ``@`` not followed by 64 hex digits is part of the URI."""
    uri, at, digest = text.rpartition("@")
    if at and _SHA256.match(digest.lower()):
        return uri, digest.lower()
    return text, None


def encode_training_data(datasets: Mapping[str, str | None]) -> dict[str, str]:
    """The metadata keys holding ``datasets`` ({uri: sha256}); raises ActionError past 4 pieces."""
    text = json.dumps(dict(sorted(datasets.items())), separators=(",", ":"))
    pieces = [text[i : i + PIECE] for i in range(0, len(text), PIECE)]
    if len(pieces) > MAX_PIECES:
        raise ActionError(
            f"training data of {len(datasets)} dataset(s) needs {len(text)} characters; at most "
            f"{PIECE * MAX_PIECES} fit in the registry's metadata: attest a common prefix instead"
        )
    return {_piece_key(i): piece for i, piece in enumerate(pieces)}


def _piece_key(index: int) -> str:
    return KEY_TRAINING_DATA if index == 0 else f"{KEY_TRAINING_DATA}.{index}"


def training_data_keys(meta: Mapping[str, str]) -> list[str]:
    """Every piece key present in ``meta`` (to replace them all on a new attestation)."""
    return [k for k in meta if k == KEY_TRAINING_DATA or k.startswith(KEY_TRAINING_DATA + ".")]


def decode_training_data(meta: Mapping[str, str]) -> list[DatasetRef]:
    """The attested datasets of a version's metadata; :class:`LineageError` when the key is malformed."""
    if KEY_TRAINING_DATA not in meta:
        return []
    text = "".join(meta.get(_piece_key(i), "") for i in range(MAX_PIECES))
    try:
        value = json.loads(text)
    except json.JSONDecodeError as e:
        raise LineageError(f"{KEY_TRAINING_DATA} is malformed ({e.msg} at character {e.pos})") from e
    if not isinstance(value, dict) or not all(
        isinstance(k, str) and (v is None or isinstance(v, str)) for k, v in value.items()
    ):
        raise LineageError(f"{KEY_TRAINING_DATA} is malformed (expected a JSON object of URI to sha256)")
    return [DatasetRef(uri=k, sha256=v) for k, v in value.items()]


def uri_overlaps(a: str, b: str) -> bool:
    """Whether one URI is a prefix of the other (S3 prefix semantics; ``s3a://`` counts as ``s3://``)."""
    x, y = _normal(a), _normal(b)
    return x.startswith(y) or y.startswith(x)


def _normal(uri: str) -> str:
    uri = uri.strip()
    for scheme in ("s3a://", "s3n://"):
        if uri.startswith(scheme):
            return "s3://" + uri[len(scheme) :]
    return uri


class TaintedDataset(BaseModel):
    """A dataset declared tainted: a URI (prefix), optionally its digest, since when, or which versions."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    uri: str = Field(min_length=1, description="s3://bucket/prefix (or any URI a lineage source records).")
    sha256: str | None = Field(default=None, description="Only versions attested with this exact digest.")
    since: datetime | None = Field(
        default=None, description="The taint was written then: versions created before cannot carry it."
    )
    version_ids: list[str] = Field(
        default_factory=list, description="S3 object versions that are tainted; their earliest write is `since`."
    )

    @field_validator("since")
    @classmethod
    def _utc(cls, value: datetime | None) -> datetime | None:
        return value.replace(tzinfo=UTC) if value is not None and value.tzinfo is None else value

    def reaches(self, ref: DatasetRef, created_at: datetime) -> bool:
        """Whether a version created at ``created_at`` and trained on ``ref`` may carry this taint."""
        if not uri_overlaps(self.uri, ref.uri):
            return False
        if self.sha256 and ref.sha256 and self.sha256 != ref.sha256:
            return False
        return self.since is None or created_at >= self.since


# What a playbook may write for a list of tainted datasets (normalised by :func:`tainted_list`).
TAINTED_SCHEMA: dict[str, Any] = {
    "anyOf": [
        {"type": "string"},
        {"type": "object"},
        {"type": "array", "items": {"anyOf": [{"type": "string"}, {"type": "object"}]}},
    ]
}


def tainted_list(value: Any) -> list[TaintedDataset]:
    """Tainted datasets from a playbook value: URIs (``uri[@sha256]``), objects, or a blast radius output."""
    if isinstance(value, Mapping) and "datasets" in value:
        value = value["datasets"]
    if isinstance(value, str | Mapping):
        value = [value]
    found: list[TaintedDataset] = []
    for entry in value or []:
        if isinstance(entry, str):
            uri, digest = split_dataset_arg(entry)
            found.append(TaintedDataset(uri=uri, sha256=digest))
        elif isinstance(entry, TaintedDataset):
            found.append(entry)
        else:
            found.append(TaintedDataset.model_validate(entry))
    return found


def taint_of(
    refs: list[DatasetRef], created_at: datetime, tainted: list[TaintedDataset]
) -> tuple[DatasetRef, str] | None:
    """The first (training dataset, tainted URI) pair that disqualifies a version, or None."""
    for ref in refs:
        for bad in tainted:
            if bad.reaches(ref, created_at):
                return ref, bad.uri
    return None

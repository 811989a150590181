"""``model.verify``: the target serves the known-good digest, answers its smoke inputs, and has not drifted.

Every check is recorded with its figures; any failed check fails the step with those figures in
the message, and the whole report is kept as evidence.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from flows.actions.context import ActionContext
from flows.actions.registry import ActionResult, Plan, Target
from flows.errors import ActionError
from integrations.models.base import (
    KEY_KNOWN_GOOD,
    KEY_QUARANTINED,
    KEY_SHA256,
    RegistryAdapter,
    TargetParams,
    load_adapter,
)
from integrations.models.drift import compare, parse_sample


class SmokeCase(BaseModel):
    """One request to the serving model and the answer it must give."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    input: Any = Field(description="The request body; anything but a string is sent as JSON.")
    expected: Any = Field(description="The answer: a string compared exactly, or JSON compared with tolerance.")
    content_type: str = "application/json"
    tolerance: float = Field(default=0.0, ge=0, description="Allowed absolute difference of numbers.")


class DriftCheck(BaseModel):
    """A reference sample against a current one, per feature; samples are s3:// URIs or files."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    reference: str
    current: str
    features: list[str] | None = None
    bins: int = Field(default=10, ge=2, le=100)
    psi_max: float | None = Field(default=0.2, ge=0)
    ks_p_value_min: float | None = Field(default=0.01, ge=0, le=1)
    ks_statistic_max: float | None = Field(default=None, ge=0, le=1)


class VerifyParams(TargetParams):
    expected_sha256: str | None = Field(
        default=None, description="Default: the attested digest of the serving version."
    )
    require_attested: bool = Field(default=True, description="The serving version must carry a known-good attestation.")
    smoke: list[SmokeCase] = Field(default_factory=list)
    drift: DriftCheck | None = None

    @model_validator(mode="after")
    def _serving_target(self) -> VerifyParams:
        self.require_endpoint()
        return self


class Check(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str
    ok: bool
    detail: str
    figures: dict[str, Any] = Field(default_factory=dict)


class VerifyResult(ActionResult):
    target: str
    serving: list[str] = Field(default_factory=list)
    sha256: str | None = None
    checks: list[Check] = Field(default_factory=list)


def plan_verify(name: str, params: VerifyParams, ctx: ActionContext, target: Target) -> Plan:
    reads = [f"status and serving version of {params.label}", "the serving artifact (sha256 recomputed)"]
    if params.smoke:
        reads.append(f"{len(params.smoke)} smoke request(s)")
    if params.drift:
        reads.append(f"drift of {params.drift.current} against {params.drift.reference}")
    return Plan(
        action=name,
        summary=f"verify {params.label} serves its known-good digest",
        targets=[target],
        reads=reads,
        mutating=False,
    )


def _same(expected: Any, got: Any, tolerance: float) -> bool:
    if isinstance(expected, bool) or isinstance(got, bool):
        return bool(expected == got)
    if isinstance(expected, int | float) and isinstance(got, int | float):
        return math.isclose(float(expected), float(got), abs_tol=tolerance)
    if isinstance(expected, list) and isinstance(got, list):
        return len(expected) == len(got) and all(_same(e, g, tolerance) for e, g in zip(expected, got, strict=True))
    if isinstance(expected, dict) and isinstance(got, dict):
        return expected.keys() == got.keys() and all(_same(expected[k], got[k], tolerance) for k in expected)
    return bool(expected == got)


def _other_pointer_checks(adapter: RegistryAdapter, result: VerifyResult) -> None:
    """A quarantined version that another pointer (an MLflow alias the target does not name) still
    resolves to may still serve whoever loads that pointer: not recovered."""
    for pointer, vid in adapter.other_pointers().items():
        meta = adapter.version(vid).metadata or {}
        if meta.get(KEY_QUARANTINED):
            detail = f"{pointer} still resolves to quarantined v{vid} ({meta[KEY_QUARANTINED]})"
            result.checks.append(Check(name="rejected", ok=False, detail=detail, figures={"pointer": pointer}))


def _digest_checks(adapter: RegistryAdapter, params: VerifyParams, result: VerifyResult) -> None:
    state = adapter.serving()
    result.serving = state.versions
    _other_pointer_checks(adapter, result)
    if len(state.versions) != 1:
        # Every pointer that serves is checked (an alias and a stage may serve different versions):
        # a rejected version behind any of them means the target is not recovered.
        for label, why in _rejected(adapter, state.versions, params.require_attested):
            result.checks.append(Check(name="rejected", ok=False, detail=f"{label} still serves: {why}"))
        result.checks.append(
            Check(
                name="serving",
                ok=False,
                detail=f"serves {len(state.versions)} versions, expected exactly one",
                figures={"versions": state.versions, "detail": state.detail},
            )
        )
        return
    version = adapter.version(state.versions[0])
    meta = version.metadata or {}
    if meta.get(KEY_QUARANTINED):
        result.checks.append(
            Check(name="quarantine", ok=False, detail=f"{version.label} is quarantined: {meta[KEY_QUARANTINED]}")
        )
    attested = meta.get(KEY_SHA256) if meta.get(KEY_KNOWN_GOOD) == "true" else None
    if params.require_attested and attested is None:
        result.checks.append(
            Check(name="attestation", ok=False, detail=f"{version.label} carries no known-good attestation")
        )
    expected = params.expected_sha256 or attested
    actual = adapter.compute_digest(version)
    result.sha256 = actual
    if expected is None:
        result.checks.append(
            Check(
                name="digest",
                ok=not params.require_attested,
                detail=f"sha256 {actual}, nothing to compare it with",
                figures={"sha256": actual},
            )
        )
        return
    ok = actual == expected
    detail = f"serves sha256 {actual}" + ("" if ok else f", expected {expected}")
    result.checks.append(
        Check(
            name="digest", ok=ok, detail=detail, figures={"sha256": actual, "expected": expected, "version": version.id}
        )
    )


def _rejected(adapter: RegistryAdapter, versions: list[str], require_attested: bool) -> list[tuple[str, str]]:
    """(label, why) of each serving version that is quarantined or, when required, not attested known-good."""
    out = []
    for vid in versions:
        version = adapter.version(vid)
        meta = version.metadata or {}
        if meta.get(KEY_QUARANTINED):
            out.append((version.label, f"quarantined ({meta[KEY_QUARANTINED]})"))
        elif require_attested and not (meta.get(KEY_KNOWN_GOOD) == "true" and meta.get(KEY_SHA256)):
            out.append((version.label, "no known-good attestation"))
    return out


def _smoke_checks(adapter: RegistryAdapter, params: VerifyParams, result: VerifyResult) -> None:
    for number, case in enumerate(params.smoke, start=1):
        body = case.input if isinstance(case.input, str) else json.dumps(case.input)
        answer = adapter.invoke(body, case.content_type)
        try:
            got: Any = json.loads(answer)
        except json.JSONDecodeError:
            got = answer.strip()
        ok = _same(case.expected, got, case.tolerance)
        result.checks.append(
            Check(
                name=f"smoke[{number}]",
                ok=ok,
                detail=f"answered {answer[:200]!r}" + ("" if ok else f", expected {case.expected!r}"),
                figures={"expected": case.expected, "got": got},
            )
        )


def read_source(ctx: ActionContext, uri: str) -> bytes:
    """The bytes of an ``s3://bucket/key[?versionId=...]`` object or of a local file."""
    if uri.startswith("s3://"):
        from integrations.aws.session import client

        bucket, _, rest = uri[5:].partition("/")
        key, _, query = rest.partition("?versionId=")
        extra = {"VersionId": query} if query else {}
        try:
            body = client(ctx, "s3").get_object(Bucket=bucket, Key=key, **extra)["Body"]
            with body:
                data: bytes = body.read()
                return data
        except Exception as e:
            raise ActionError(f"cannot read {uri}: {e}") from e
    try:
        return Path(uri).read_bytes()
    except OSError as e:
        raise ActionError(f"cannot read {uri}: {e}") from e


def _drift_checks(ctx: ActionContext, check: DriftCheck, result: VerifyResult) -> None:
    reference = parse_sample(read_source(ctx, check.reference), check.reference)
    current = parse_sample(read_source(ctx, check.current), check.current)
    for row in compare(reference, current, check.features, bins=check.bins):
        problems = []
        if check.psi_max is not None and row.psi > check.psi_max:
            problems.append(f"PSI {row.psi:.4f} > {check.psi_max}")
        if check.ks_p_value_min is not None and row.ks_p_value < check.ks_p_value_min:
            problems.append(f"KS p-value {row.ks_p_value:.4g} < {check.ks_p_value_min}")
        if check.ks_statistic_max is not None and row.ks_statistic > check.ks_statistic_max:
            problems.append(f"KS statistic {row.ks_statistic:.4f} > {check.ks_statistic_max}")
        figures = f"PSI {row.psi:.4f}, KS D {row.ks_statistic:.4f} (p {row.ks_p_value:.4g})"
        result.checks.append(
            Check(
                name=f"drift[{row.feature}]",
                ok=not problems,
                detail="; ".join(problems) or figures,
                figures=row.as_json(),
            )
        )


def run_verify(params: VerifyParams, ctx: ActionContext) -> VerifyResult:
    """Run every check, keep the report as evidence, fail with the figures when a check fails."""
    adapter = load_adapter(params, ctx)
    result = VerifyResult(changed=False, target=params.label)
    up, why = adapter.status()
    result.checks.append(Check(name="status", ok=up, detail=why))
    if up:
        _digest_checks(adapter, params, result)
        _smoke_checks(adapter, params, result)
    if params.drift is not None:
        _drift_checks(ctx, params.drift, result)
    ctx.store_evidence_bytes(
        "verify-report.json", result.model_dump_json(indent=2).encode(), description=f"model.verify of {params.label}"
    )
    failed = [c for c in result.checks if not c.ok]
    if failed:
        raise ActionError(
            f"{params.label} failed verification: " + "; ".join(f"{c.name}: {c.detail}" for c in failed),
            details={"checks": [c.model_dump(mode="json") for c in result.checks]},
        )
    result.summary = f"{params.label} verified: " + ", ".join(c.name for c in result.checks)
    return result

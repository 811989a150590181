"""Drift statistics in pure Python: population stability index and the two-sample Kolmogorov–Smirnov test.

numpy and scipy are not dependencies of fireline; samples of a few hundred thousand values are
handled comfortably with sorting and bisection.
"""

from __future__ import annotations

import csv
import io
import json
import math
from bisect import bisect_right
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from flows.errors import ActionError

PSI_EPSILON = 1e-4  # floor of a bin's share, so an empty bin does not make the index infinite


def quantile_edges(reference: Sequence[float], bins: int) -> list[float]:
    """Inner bin edges at the reference sample's quantiles (duplicates merged)."""
    ordered = sorted(reference)
    n = len(ordered)
    edges: list[float] = []
    for i in range(1, bins):
        value = ordered[min(n - 1, int(i * n / bins))]
        if not edges or value > edges[-1]:
            edges.append(value)
    return edges


def _shares(sample: Sequence[float], edges: Sequence[float]) -> list[float]:
    counts = [0] * (len(edges) + 1)
    for value in sample:
        counts[bisect_right(edges, value)] += 1
    total = len(sample)
    return [max(c / total, PSI_EPSILON) for c in counts]


def psi(
    reference: Sequence[float], current: Sequence[float], bins: int = 10, edges: Sequence[float] | None = None
) -> float:
    """Population stability index of ``current`` against ``reference``.

    Bins are the reference's deciles unless ``edges`` (inner edges) are given. Common reading:
    below 0.1 stable, 0.1–0.25 moderate shift, above 0.25 major shift.
    """
    if not reference or not current:
        raise ValueError("psi needs two non-empty samples")
    inner = list(edges) if edges is not None else quantile_edges(reference, bins)
    ref = _shares(reference, inner)
    cur = _shares(current, inner)
    return sum((c - r) * math.log(c / r) for r, c in zip(ref, cur, strict=True))


def ks_statistic(a: Sequence[float], b: Sequence[float]) -> float:
    """The largest distance between the two empirical distribution functions."""
    if not a or not b:
        raise ValueError("the KS test needs two non-empty samples")
    xa, xb = sorted(a), sorted(b)
    na, nb = len(xa), len(xb)
    best = 0.0
    for x in (*xa, *xb):
        # Evaluating both CDFs right after every observed value finds the supremum.
        d = abs(bisect_right(xa, x) / na - bisect_right(xb, x) / nb)
        best = max(best, d)
    return best


def kolmogorov_sf(x: float) -> float:
    """Survival function of the Kolmogorov distribution, Q(x) = 2 Σ (-1)^(k-1) exp(-2 k² x²)."""
    if x <= 0:
        return 1.0
    if x < 0.3:
        return 1.0  # the series converges slowly there and the value is 1 to double precision
    total = 0.0
    for k in range(1, 101):
        term = 2 * (-1) ** (k - 1) * math.exp(-2 * k * k * x * x)
        total += term
        if abs(term) < 1e-16:
            break
    return min(1.0, max(0.0, total))


def ks_2samp(a: Sequence[float], b: Sequence[float]) -> tuple[float, float]:
    """Two-sided two-sample KS test: (statistic, asymptotic p-value).

    The p-value uses the asymptotic distribution with Stephens' small-sample correction, which is
    close to scipy's ``method="asymp"`` for samples of a few dozen values and more.
    """
    d = ks_statistic(a, b)
    en = math.sqrt(len(a) * len(b) / (len(a) + len(b)))
    return d, kolmogorov_sf((en + 0.12 + 0.11 / en) * d)


@dataclass(frozen=True)
class FeatureDrift:
    feature: str
    psi: float
    ks_statistic: float
    ks_p_value: float
    reference_n: int
    current_n: int

    def as_json(self) -> dict[str, Any]:
        return {
            "feature": self.feature,
            "psi": round(self.psi, 6),
            "ks_statistic": round(self.ks_statistic, 6),
            "ks_p_value": round(self.ks_p_value, 6),
            "reference_n": self.reference_n,
            "current_n": self.current_n,
        }


def compare(
    reference: Mapping[str, Sequence[float]],
    current: Mapping[str, Sequence[float]],
    features: Sequence[str] | None = None,
    bins: int = 10,
) -> list[FeatureDrift]:
    """PSI and KS for each feature present in both samples (or the ones named)."""
    names = list(features) if features else [f for f in reference if f in current]
    out = []
    for name in names:
        if name not in reference or name not in current:
            which = "reference" if name not in reference else "current"
            raise ActionError(f"drift: feature {name!r} is missing from the {which} sample")
        ref, cur = reference[name], current[name]
        d, p = ks_2samp(ref, cur)
        out.append(FeatureDrift(name, psi(ref, cur, bins=bins), d, p, len(ref), len(cur)))
    return out


def parse_sample(data: bytes, name: str) -> dict[str, list[float]]:
    """Read a sample: CSV with a header, a JSON list of records, or a JSON object of columns."""
    text = data.decode("utf-8-sig")
    stripped = text.lstrip()
    columns: dict[str, list[float]] = {}
    try:
        if stripped.startswith("{"):
            doc = json.loads(text)
            return {k: [float(x) for x in v] for k, v in doc.items()}
        rows: list[dict[str, Any]] = (
            json.loads(text) if stripped.startswith("[") else list(csv.DictReader(io.StringIO(text)))
        )
        for row in rows:
            for key, value in row.items():
                if value in (None, ""):
                    continue  # a missing value is not a zero
                columns.setdefault(key, []).append(float(value))
    except (ValueError, TypeError, AttributeError) as e:
        raise ActionError(f"drift: sample {name} is not numeric CSV or JSON: {e}") from e
    return columns

"""PSI and the two-sample KS test, against hand-computed values and scipy where it is installed."""

from __future__ import annotations

import math
import random

import pytest

from flows.errors import ActionError
from integrations.models.drift import compare, kolmogorov_sf, ks_2samp, ks_statistic, parse_sample, psi, quantile_edges


def test_psi_known_value() -> None:
    reference = [0.0] * 50 + [1.0] * 50
    current = [0.0] * 25 + [1.0] * 75
    expected = (0.25 - 0.5) * math.log(0.25 / 0.5) + (0.75 - 0.5) * math.log(0.75 / 0.5)
    assert psi(reference, current, edges=[0.5]) == pytest.approx(expected, abs=1e-12)
    assert expected == pytest.approx(0.2747, abs=1e-4)


def test_psi_is_zero_for_the_same_distribution_and_grows_with_shift() -> None:
    rng = random.Random(7)
    reference = [rng.gauss(0, 1) for _ in range(4000)]
    assert psi(reference, reference) == pytest.approx(0.0, abs=1e-12)
    small = psi(reference, [x + 0.1 for x in reference])
    large = psi(reference, [x + 1.0 for x in reference])
    assert 0 < small < 0.1 < 0.25 < large


def test_psi_empty_bin_stays_finite() -> None:
    assert math.isfinite(psi([1.0, 2.0, 3.0, 4.0], [10.0, 11.0], edges=[2.5]))


def test_quantile_edges_merge_duplicates() -> None:
    assert quantile_edges([1.0] * 10 + [2.0] * 10, 10) == [1.0, 2.0]


def test_ks_statistic_known_value() -> None:
    assert ks_statistic([1, 2, 3, 4, 5], [3, 4, 5, 6, 7]) == pytest.approx(0.4)
    assert ks_statistic([1, 2, 3], [1, 2, 3]) == 0.0
    assert ks_statistic([1, 2], [5, 6]) == 1.0


def test_kolmogorov_sf_known_values() -> None:
    assert kolmogorov_sf(1.0) == pytest.approx(0.26999967, abs=1e-7)
    assert kolmogorov_sf(1.3581) == pytest.approx(0.05, abs=1e-3)  # the 5 % critical value
    assert kolmogorov_sf(0.1) == 1.0


def test_ks_against_scipy() -> None:
    stats = pytest.importorskip("scipy.stats")
    rng = random.Random(11)
    for shift, n, m in ((0.0, 300, 200), (0.3, 500, 400), (1.0, 80, 120)):
        a = [rng.gauss(0, 1) for _ in range(n)]
        b = [rng.gauss(shift, 1) for _ in range(m)]
        d, p = ks_2samp(a, b)
        ref = stats.ks_2samp(a, b, method="asymp")
        assert d == pytest.approx(ref.statistic, abs=1e-12)
        assert p == pytest.approx(ref.pvalue, abs=0.02)


def test_compare_and_samples() -> None:
    reference = parse_sample(b"age,income\n30,100\n40,200\n50,\n", "ref.csv")
    assert reference == {"age": [30.0, 40.0, 50.0], "income": [100.0, 200.0]}
    current = parse_sample(b'[{"age": 31, "income": 150}, {"age": 90, "income": 900}]', "cur.json")
    rows = compare(reference, current)
    assert [r.feature for r in rows] == ["age", "income"]
    assert parse_sample(b'{"age": [1, 2]}', "cols.json") == {"age": [1.0, 2.0]}
    with pytest.raises(ActionError, match="missing from the reference sample"):
        compare(reference, current, features=["age", "zip"])
    with pytest.raises(ActionError, match="not numeric"):
        parse_sample(b"a\nx\n", "bad.csv")

"""The regression gate's statistics: the computed bootstrap of a percentile is the bootstrap."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from bench.decisions import compare


def test_order_statistic_distribution_equals_enumerating_every_resample():
    v = np.array([3.0, 7.0, 7.5, 11.0, 20.0])
    m = v.size
    for q in (0, 50, 90, 100):
        k = int(round(q / 100 * (m - 1)))
        every = [np.sort(v[list(idx)])[k] for idx in itertools.product(range(m), repeat=m)]  # all 5^5 resamples
        values, counts = np.unique(every, return_counts=True)
        draws = compare.order_stat_draws(v, q, 200_000, np.random.default_rng(0))
        for x, c in zip(values, counts):
            assert np.mean(draws == x) == pytest.approx(c / len(every), abs=0.005), (q, x)


@pytest.mark.parametrize("stat", ["p50", "p95", "p99"])
def test_computed_interval_matches_resampling(stat, monkeypatch):
    rng = np.random.default_rng(1)
    a, b = rng.lognormal(5.0, 0.5, 4000), rng.lognormal(5.05, 0.5, 4000)
    exact = compare.bootstrap_diff(a, b, stat, seed=3)
    monkeypatch.setattr(compare, "EXACT_FROM", 10**9)  # force the resampling path on the same data
    resampled = compare.bootstrap_diff(a, b, stat, n=3000, seed=3)
    width = resampled[1] - resampled[0]
    assert exact[0] == pytest.approx(resampled[0], abs=0.15 * width)
    assert exact[1] == pytest.approx(resampled[1], abs=0.15 * width)

"""The gate's intervals: exact where they claim to be, with the coverage they claim."""

from __future__ import annotations

import math

import numpy as np
import pytest

from bench import intervals as iv


def test_a_p99_upper_bound_exists_from_367_samples_and_not_before():
    """1 - 0.99^n >= 0.975 first holds at n = 368: below that the sample's maximum is not a 97.5 % bound."""
    x = np.arange(1, 368, dtype=float)
    assert math.isinf(iv.quantile_interval(x, 99).high)
    assert math.isfinite(iv.quantile_interval(np.arange(1, 369, dtype=float), 99).high)
    assert math.isfinite(iv.quantile_interval(x, 99).low)  # a lower bound exists far earlier
    assert math.isinf(iv.quantile_interval(np.arange(1, 72, dtype=float), 95).high)
    assert math.isfinite(iv.quantile_interval(np.arange(1, 74, dtype=float), 95).high)


@pytest.mark.parametrize("n,q", [(50, 50), (400, 99), (120, 90), (2000, 95)])
def test_one_percentile_covers_at_least_95_percent(n, q):
    """2,000 samples of n from a known distribution: the interval holds the true percentile >= 95 % of the time."""
    rng = np.random.default_rng(n + q)
    true = -math.log(1 - q / 100)  # exponential(1)
    hits = 0
    for _ in range(2000):
        i = iv.quantile_interval(rng.exponential(1.0, n), q)
        hits += i.low <= true <= i.high
    assert hits / 2000 >= 0.94, hits  # nominal 0.95; the binomial interval is conservative (discrete ranks)


def test_difference_of_two_percentiles_covers_the_true_difference():
    rng = np.random.default_rng(7)
    q99 = lambda s: math.exp(2.3263 * s)  # noqa: E731  lognormal(0, s)
    hits = 0
    for _ in range(1000):
        a = iv.quantile_interval(rng.lognormal(0, 0.5, 1500), 99)
        b = iv.quantile_interval(rng.lognormal(0, 0.6, 1500), 99)
        _, lo, hi = iv.mover(a, b)
        hits += lo <= q99(0.6) - q99(0.5) <= hi
    assert hits / 1000 >= 0.93, hits


def test_wilson_interval_of_zero_errors_is_not_zero():
    """0 errors in 100 requests: the error rate is below ~3.7 % (95 %), not exactly 0 (the old normal interval)."""
    i = iv.proportion_interval(0, 100)
    assert i.low == 0 and 0.03 < i.high < 0.04


def test_design_effect_of_independent_and_of_clustered_samples():
    rng = np.random.default_rng(3)
    hit = rng.random(10_000) < 0.3
    assert iv.design_effect(hit, np.arange(10_000) // 50) == pytest.approx(1.0, abs=0.3)
    same = np.repeat(rng.random(200) < 0.3, 50)  # every member of a cluster alike: 50 samples worth one
    assert iv.design_effect(same, np.arange(10_000) // 50) == pytest.approx(50, rel=0.1)
    assert iv.design_effect(hit, np.zeros(10_000)) == 1.0  # one cluster: nothing to estimate, treated as independent


def test_alpha_spent_over_any_number_of_looks_sums_to_alpha():
    assert sum(iv.spending_alpha(k) for k in range(1, 100_000)) == pytest.approx(iv.ALPHA, rel=1e-4)
    assert sum(iv.spending_alpha(k, 7) for k in range(1, 8)) == pytest.approx(iv.ALPHA)


def test_binomial_quantiles_without_scipy_stats_are_scipys():
    """The interval's order-statistic ranks come from scipy.special's binomial CDF by bisection (scipy.stats
    cost every report 0.8 s of import); they are scipy.stats.binom's ppf and isf, case for case."""
    from scipy import stats as sst

    from bench.intervals import binom_isf, binom_ppf

    cases = 0
    for m in [*range(1, 60), 99, 100, 101, 368, 500, 1000, 2047, 10**4, 10**6]:
        for q in (0.5, 0.9, 0.95, 0.99, 0.999):
            for a in (0.0005, 0.005, 0.0125, 0.025, 0.05):
                assert binom_ppf(a, m, q) == sst.binom.ppf(a, m, q), (m, q, a)
                assert binom_isf(a, m, q) == sst.binom.isf(a, m, q), (m, q, a)
                cases += 1
    assert cases == 68 * 25


def test_the_report_does_not_import_scipy_stats():
    import subprocess
    import sys

    code = "import sys, bench.analysis.report, bench.intervals as iv; iv.quantile_interval(__import__('numpy').arange(500.0), 0.99); print('scipy.stats' in sys.modules)"
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and r.stdout.strip() == "False", r.stderr[-800:]


def test_the_gate_reading_only_its_columns_decides_as_with_every_column(tmp_path):
    """bench compare loads the columns its tolerances name (read_columns); the verdicts are those of a full read."""
    from synth import lognormal, row, write_run

    from bench.decisions.compare import compare_runs, load_tolerances, measured_runs, read_columns

    def run(name, median, seed):
        v = lognormal(300, median, seed=seed)
        rows = [
            row("m/a", float(x), t=i * 0.1, conversation=f"c{i % 30}", turn=i // 30, gap_ms=10 + i % 7) for i, x in enumerate(v)
        ]
        rows += [row("m/a", None, t=31.0 + i, error="server_error", status=500) for i in range(3)]
        return write_run(tmp_path / name, rows)

    base, cand = run("base", 100.0, 1), run("cand", 130.0, 2)
    tols = load_tolerances(["ttfc_ms:p50:+10%", "gaps_ms:p99:+20%", "error_rate:+1pp", "tpot_ms:p50:+10%"], None)
    cols = read_columns(tols)
    assert cols is not None and {"ttfc_ms", "tpot_ms", "gaps_us", "error"} <= set(cols) and len(cols) < 15
    full = compare_runs(base, cand, tols)
    narrow = compare_runs(base, cand, tols, runs=measured_runs(base, cand, columns=cols))

    def strip(r):
        return [(x["model"], x["tolerance"], x["verdict"], x["diff"], x["ci_low"], x["ci_high"], x["n_base"]) for x in r["rows"]]

    assert strip(narrow) == strip(full) and full["regressions"] >= 1
    assert read_columns(load_tolerances(["route_overhead_ms:p50:+5ms"], None)) is None  # paired turns: every column

"""Run-to-run noise (bench/decisions/noise.py), on runs with a known between-run spread: each run's
whole TTFC distribution scaled by its own factor (a machine faster or slower that day)."""

from __future__ import annotations

import json
import math
import subprocess

import numpy as np
from conftest import bench_cmd, bench_env
from synth import lognormal, row, write_run

from bench.decisions.compare import compare_runs, load_tolerances
from bench.decisions.noise import Z, between_run_sd, widen

TOL = ["ttfc_ms:p50:+5%"]


def _runs(root, factors, n=3000):
    out = []
    for k, f in enumerate(factors):
        v = lognormal(n, 100 * f, 0.3, seed=k)
        out.append(write_run(root / f"run-{k:02d}", [row("m/a", float(x), t=i * 0.01) for i, x in enumerate(v)]))
    return out


def test_widen_adds_two_runs_of_between_run_variance():
    lo, hi = widen(5.0, 3.0, 7.0, 1.0)
    extra = Z * math.sqrt(2)
    assert math.isclose(5.0 - lo, math.hypot(2.0, extra)) and math.isclose(hi - 5.0, math.hypot(2.0, extra))
    assert widen(5.0, 3.0, 7.0, 0.0) == (3.0, 7.0)


def test_between_run_spread_is_found_and_keeps_the_same_build_from_failing(tmp_path):
    rng = np.random.default_rng(7)
    factors = list(np.exp(rng.normal(0, 0.06, 8)))  # 6 % between-run spread of every percentile
    factors[0], factors[1] = 1.0, 1.08  # the two compared: the same build, on a slower afternoon
    runs = _runs(tmp_path / "r", factors)
    sds, n = between_run_sd(tmp_path / "r", "x", {"run-00", "run-01"})
    assert n == 6
    assert 2.0 < sds[("m/a", "ttfc_ms", "p50")] < 15.0, sds  # about 6 ms on a 100 ms median
    tols = load_tolerances(TOL, None)
    plain = compare_runs(runs[0], runs[1], tols)
    widened = compare_runs(runs[0], runs[1], tols, noise_from=tmp_path / "r")
    p = next(r for r in plain["rows"] if r["metric"] == "ttfc_ms")
    w = next(r for r in widened["rows"] if r["metric"] == "ttfc_ms")
    assert p["verdict"] == "regression", p  # the within-run interval calls an 8 % slower machine a change
    assert w["verdict"] != "regression" and w["ci_high"] - w["ci_low"] > p["ci_high"] - p["ci_low"], w
    assert "run-to-run" in w["reason"] and any("run-to-run noise from 6 runs" in x for x in widened["warnings"])


def test_too_few_runs_widen_nothing_and_say_so(tmp_path):
    runs = _runs(tmp_path / "r", [1.0, 1.0, 1.0, 1.0], n=500)
    r = subprocess.run(
        bench_cmd("compare", str(runs[0]), str(runs[1]), "--tolerance", TOL[0], "--noise-from", str(tmp_path / "r")),
        capture_output=True,
        text=True,
        timeout=120,
        env=bench_env(),
    )
    assert r.returncode in (0, 1, 3), r.stderr[-2000:]
    result = json.loads((runs[1] / "compare" / "compare.json").read_text())
    assert "2 earlier run(s)" in result["noise"]["note"] and "not widened" in result["noise"]["note"]
    assert "not widened" in r.stdout


def test_gap_statistics_get_their_own_run_to_run_spread(tmp_path):
    """Gaps too: each run's pooled gap p99 with its whole-stream interval; a same build on a 9 % slower
    afternoon is a gap regression within the run, and not once the spread of 6 earlier runs is added."""
    from bench.decisions.noise import between_run_gap_sd

    rng = np.random.default_rng(11)
    factors = list(np.exp(rng.normal(0, 0.06, 8)))
    factors[0], factors[1] = 1.0, 1.09
    runs = []
    for k, f in enumerate(factors):
        gaps = lognormal(4000, 20 * f, 0.25, seed=100 + k)
        rows = [row("m/a", 100.0, t=i * 0.01, gap_ms=float(g), chunks=12) for i, g in enumerate(gaps)]
        runs.append(write_run(tmp_path / "r" / f"run-{k:02d}", rows))
    sds = between_run_gap_sd(tmp_path / "r", "x", {"run-00", "run-01"}, ["p99"])
    assert 0.5 < sds[("m/a", "gaps_ms", "p99")] < 8.0, sds  # about 6 % of a ~36 ms p99
    tols = load_tolerances(["gaps_ms:p99:+5%"], None)
    plain = next(r for r in compare_runs(runs[0], runs[1], tols)["rows"] if r["metric"] == "gaps_ms")
    widened = compare_runs(runs[0], runs[1], tols, noise_from=tmp_path / "r")
    w = next(r for r in widened["rows"] if r["metric"] == "gaps_ms")
    assert plain["verdict"] == "regression", {k: plain[k] for k in ("baseline", "diff", "ci_low", "ci_high", "verdict")}
    assert w["verdict"] != "regression" and "run-to-run" in w["reason"], w
    assert json.dumps(widened["noise"]["sd"])  # the spreads used are in compare.json, gaps among them
    assert "m/a|gaps_ms|p99" in widened["noise"]["sd"]

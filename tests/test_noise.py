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

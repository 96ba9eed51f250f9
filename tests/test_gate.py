"""The regression gate catches tail-only and median regressions and keeps quiet when nothing changed."""

from __future__ import annotations

import json
import subprocess

import pytest

from bench.decisions.gate_power import simulate
from conftest import bench_cmd, bench_env
from synth import lognormal, row, write_run


@pytest.mark.parametrize("case,at_least,at_most", [("tail", 95, 100), ("median", 75, 100), ("none-3000", 0, 5), ("none-200", 0, 5)])
def test_gate_power_and_false_alarms(case, at_least, at_most):
    """100 simulated trials per case (fixed seed): the rates of benchmarks/gate_power.py.

    The old rule (rank test and the whole interval past the tolerance) caught the tail case in
    about 4 of 100 and the median case in about 30: counted beside, so the test shows what changed.
    """
    r = simulate(case, trials=100, seed=0)
    assert at_least <= r["caught"] <= at_most, r
    if case in ("tail", "median"):
        assert r["caught_old_rule"] < at_least, r  # the old rule failed this case: the test can tell them apart


def test_one_model_short_of_samples_does_not_hide_anothers_regression(tmp_path):
    """gemma has 17 successes (< 20): listed as not compared; mistral's 3x slowdown still fails the gate."""
    base = [row("m/mistral", v, t=i * 0.01) for i, v in enumerate(lognormal(300, 100, seed=1))]
    base += [row("g/gemma", v, t=i * 0.01) for i, v in enumerate(lognormal(17, 100, seed=2))]
    cand = [row("m/mistral", v, t=i * 0.01) for i, v in enumerate(lognormal(300, 300, seed=3))]
    cand += [row("g/gemma", v, t=i * 0.01) for i, v in enumerate(lognormal(17, 100, seed=4))]
    b, c = write_run(tmp_path / "base", base), write_run(tmp_path / "cand", cand)
    r = subprocess.run(bench_cmd("compare", str(b), str(c), "--tolerance", "ttfc_ms:p50:+10%"), capture_output=True, text=True,
                       timeout=120, env=bench_env())
    assert r.returncode == 1, r.stdout + r.stderr
    result = json.loads((c / "compare" / "compare.json").read_text())
    assert [x["model"] for x in result["skipped"]] == ["g/gemma"]
    assert "gemma: 17 < 20" in (c / "compare" / "compare.md").read_text()
    assert {x["model"] for x in result["rows"]} == {"m/mistral"}


def test_no_model_with_enough_samples_cannot_be_compared(tmp_path):
    b = write_run(tmp_path / "base", [row("g/gemma", v) for v in lognormal(5, 100)])
    c = write_run(tmp_path / "cand", [row("g/gemma", v) for v in lognormal(5, 300)])
    r = subprocess.run(bench_cmd("compare", str(b), str(c)), capture_output=True, text=True, timeout=120, env=bench_env())
    assert r.returncode == 2 and "5 < 20" in r.stderr, r.stderr


def test_p99_not_judged_on_too_few_samples(tmp_path):
    """200 samples a side put two beyond p99: its row says so instead of raising an alarm on noise."""
    b = write_run(tmp_path / "base", [row("m/m", v) for v in lognormal(200, 100, seed=5)])
    c = write_run(tmp_path / "cand", [row("m/m", v) for v in lognormal(200, 100, seed=6) * 3])
    r = subprocess.run(bench_cmd("compare", str(b), str(c), "--tolerance", "ttfc_ms:p99:+15%", "--tolerance", "ttfc_ms:p50:+10%"),
                       capture_output=True, text=True, timeout=120, env=bench_env())
    rows = {x["stat"]: x for x in json.loads((c / "compare" / "compare.json").read_text())["rows"]}
    assert rows["p99"]["verdict"].startswith("too few samples for p99") and rows["p50"]["verdict"] == "regression"
    assert r.returncode == 1

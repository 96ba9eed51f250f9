"""How often the regression gate is right, simulated: false alarms, power, coverage, sequential looks.

Each trial draws a baseline and a candidate from known distributions and runs the gate's own row
judgement (``bench.decisions.compare.judge_row``, the same intervals ``bench compare`` uses):

- distributions: ``lognormal`` (TTFC-like: median 400 ms, sigma 0.5) and ``bimodal`` (90 % around
  300 ms, a 10 % slow mode around 1,500 ms: a cold path or a second replica);
- ``aa``: the same distribution both sides, judged on p50, p95 and p99 with the default
  tolerances: a regression verdict is a false alarm, an equivalent one the power to pass;
- ``tail``: the slowest 3 % stretched so the true p99 is 50 % worse, p97 and below unchanged
  (tolerance ``p99:+15%``): a regression verdict is power;
- ``median``: every request 20 % slower (tolerance ``p50:+10%``);
- ``clustered``: gaps of streams, each stream with its own speed (sigma 0.3 between streams,
  50 gaps a stream), A/A on the pooled p99 gap: with the streams ignored (``clusters=False``)
  the interval is too narrow and A/A pairs come out "changed";
- ``sequential``: the candidate checked at 10 looks of growing size (alpha / 10 each, as
  ``--until-decided`` spends it),
  stopping at the first decided verdict.

Coverage is the share of trials whose 95 % interval holds the true difference of the statistic.
Used by ``benchmarks/gate_power.py`` (the README's table) and the tests.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from bench import intervals as iv
from bench.decisions.compare import Sample, judge_row, parse_tolerance

MEDIAN, SIGMA = 400.0, 0.5


def _lognormal(rng: np.random.Generator, n: int) -> np.ndarray:
    return rng.lognormal(math.log(MEDIAN), SIGMA, n)


def _bimodal(rng: np.random.Generator, n: int) -> np.ndarray:
    slow = rng.random(n) < 0.10
    return np.where(slow, rng.lognormal(math.log(1500), 0.3, n), rng.lognormal(math.log(300), 0.3, n))


DISTS: dict[str, Callable[[np.random.Generator, int], np.ndarray]] = {"lognormal": _lognormal, "bimodal": _bimodal}
_TRUE: dict[str, np.ndarray] = {}


def true_quantiles(dist: str) -> np.ndarray:
    """The distribution's percentiles 0..100 in steps of 0.01 (from 4 million draws, computed once)."""
    if dist not in _TRUE:
        _TRUE[dist] = np.percentile(DISTS[dist](np.random.default_rng(12345), 4_000_000), np.linspace(0, 100, 10001))
    return _TRUE[dist]


def _q(dist: str, p: float) -> float:
    return float(true_quantiles(dist)[int(round(p * 100))])


def tail_change(dist: str) -> Callable[[np.ndarray], np.ndarray]:
    q97, q99 = _q(dist, 97), _q(dist, 99)
    stretch = (1.5 * q99 - q97) / (q99 - q97)  # maps the true p99 to 1.5x, leaves everything under p97 alone
    return lambda v: np.where(v > q97, q97 + (v - q97) * stretch, v)


@dataclass(frozen=True)
class Case:
    tolerances: tuple[str, ...]
    change: str  # "none", "tail", "median"


CASES = {
    "aa": Case(("ttfc_ms:p50:+10%", "ttfc_ms:p95:+10%", "ttfc_ms:p99:+15%"), "none"),
    "tail": Case(("ttfc_ms:p99:+15%",), "tail"),
    "median": Case(("ttfc_ms:p50:+10%",), "median"),
}


def _changed(dist: str, change: str) -> Callable[[np.ndarray], np.ndarray]:
    if change == "tail":
        return tail_change(dist)
    if change == "median":
        return lambda v: v * 1.2
    return lambda v: v


def _true_diff(dist: str, change: str, stat: str) -> float:
    q = float(stat[1:])
    base = _q(dist, q)
    return float(_changed(dist, change)(np.array([base]))[0] - base)


def simulate(case: str, n: int, dist: str = "lognormal", trials: int = 200, seed: int = 0) -> dict:
    """Per tolerance of the case: shares of trials with each verdict, and the interval's coverage."""
    c = CASES[case]
    tols = [parse_tolerance(t) for t in c.tolerances]
    change = _changed(dist, c.change)
    rng = np.random.default_rng(seed)
    counts = {t.stat: {"regression": 0, "equivalent": 0, "improvement": 0, "undecided": 0, "covered": 0} for t in tols}
    any_alarm = 0
    for _ in range(trials):
        a = DISTS[dist](rng, n)
        b = change(DISTS[dist](rng, n))
        alarm = False
        for tol in tols:
            j = judge_row(Sample(a), Sample(b), tol, rank_test=False)
            cnt = counts[tol.stat]
            cnt[j["verdict"]] += 1
            truth = _true_diff(dist, c.change, tol.stat)
            cnt["covered"] += j["ci_low"] <= truth <= j["ci_high"]
            alarm |= j["verdict"] == "regression"
        any_alarm += alarm
    return {
        "case": case,
        "dist": dist,
        "n": n,
        "trials": trials,
        "any_regression": any_alarm / trials,
        "stats": {s: {k: v / trials for k, v in d.items()} for s, d in counts.items()},
    }


def simulate_clustered(streams: int, trials: int = 200, seed: int = 0, clusters: bool = True, per_stream: int = 50) -> dict:
    """A/A on the pooled p99 of gaps that cluster by stream: false 'changes' and coverage of 0."""
    tol = parse_tolerance("gaps_ms:p99:+15%")
    rng = np.random.default_rng(seed)
    changed = covered = alarms = 0

    def draw() -> Sample:
        speed = rng.lognormal(0.0, 0.3, streams)
        owner = np.repeat(np.arange(streams), per_stream)
        v = rng.lognormal(math.log(20.0), 0.4, streams * per_stream) * speed[owner]
        return Sample(v, (owner,) if clusters else (), requests=streams)

    for _ in range(trials):
        j = judge_row(draw(), draw(), tol, rank_test=False)
        changed += j["ci_low"] > 0 or j["ci_high"] < 0
        covered += j["ci_low"] <= 0 <= j["ci_high"]
        alarms += j["verdict"] == "regression"
    return {
        "streams": streams,
        "gaps": streams * per_stream,
        "clusters": clusters,
        "trials": trials,
        "changed": changed / trials,
        "coverage": covered / trials,
        "regression": alarms / trials,
    }


def simulate_sequential(
    case: str, n_max: int, looks: int = 10, dist: str = "lognormal", trials: int = 200, seed: int = 0
) -> dict:
    """The candidate judged at ``looks`` growing sizes (n_max / looks each), alpha spent per look,
    stopped at the first look where every row is decided. Shares of trials by final verdict."""
    c = CASES[case]
    tols = [parse_tolerance(t) for t in c.tolerances]
    change = _changed(dist, c.change)
    rng = np.random.default_rng(seed)
    regress = passed = undecided = 0
    stop_at = []
    for _ in range(trials):
        a = DISTS[dist](rng, n_max)
        b = change(DISTS[dist](rng, n_max))
        final = "undecided"
        for k in range(1, looks + 1):
            m = n_max * k // looks
            alpha = iv.spending_alpha(k, looks)
            verdicts = [judge_row(Sample(a[:m]), Sample(b[:m]), tol, alpha, rank_test=False)["verdict"] for tol in tols]
            if "regression" in verdicts:
                final = "regression"
                break
            if "undecided" not in verdicts:
                final = "pass"
                break
        stop_at.append(k)
        regress += final == "regression"
        passed += final == "pass"
        undecided += final == "undecided"
    return {
        "case": case,
        "dist": dist,
        "n_max": n_max,
        "looks": looks,
        "trials": trials,
        "regression": regress / trials,
        "pass": passed / trials,
        "undecided": undecided / trials,
        "mean_stop_fraction": float(np.mean(stop_at)) / looks,
    }

"""How often the regression gate catches a regression, and how often it cries wolf: simulated.

Each trial draws a baseline and a candidate from known distributions (TTFC-like: lognormal,
median 400 ms, sigma 0.5), runs the gate's own row judgement (``bench.decisions.compare.judge``) and
counts verdicts. Three cases, the ones a gate is for:

- ``tail``: the candidate's slowest 3 % are stretched so the true p99 is 50 % worse while the
  true p50 does not move (3,000 samples a side, tolerance ``ttfc_ms:p99:+15%``);
- ``median``: every request 20 % slower (200 a side, tolerance ``ttfc_ms:p50:+10%``);
- ``none``: the same distribution (3,000 and 200 a side), judged on p50, p95 and p99 with the
  default tolerances: any regression verdict is a false alarm.

The old rule (Mann-Whitney p < 0.05 *and* the whole interval beyond the tolerance) is counted
beside the new one, from the same draws. Used by ``benchmarks/gate_power.py`` and the tests.
"""

from __future__ import annotations

import math

import numpy as np

from bench.decisions.compare import LOWER_IS_BETTER, ALPHA, judge, parse_tolerance

MEDIAN, SIGMA = 400.0, 0.5
Q97 = MEDIAN * math.exp(SIGMA * 1.8808)  # the true 97th and 99th percentiles of the baseline
Q99 = MEDIAN * math.exp(SIGMA * 2.3263)
STRETCH = (1.5 * Q99 - Q97) / (Q99 - Q97)  # maps the true p99 to 1.5x, leaves everything under p97 alone


def _tail(v: np.ndarray) -> np.ndarray:
    return np.where(v > Q97, Q97 + (v - Q97) * STRETCH, v)


def _old_rule(tol, va: float, lo: float, hi: float, p: float) -> bool:
    """The rule before: rank test significant and the whole interval beyond the tolerance."""
    worse_lo = lo if tol.metric in LOWER_IS_BETTER else -hi
    allowed = tol.value * abs(va) if tol.unit == "%" else tol.value
    return p < ALPHA and worse_lo > allowed


CASES = {
    "tail": (3000, lambda v: _tail(v), ["ttfc_ms:p99:+15%"]),
    "median": (200, lambda v: v * 1.2, ["ttfc_ms:p50:+10%"]),
    "none-3000": (3000, lambda v: v, ["ttfc_ms:p50:+10%", "ttfc_ms:p95:+10%", "ttfc_ms:p99:+15%"]),
    "none-200": (200, lambda v: v, ["ttfc_ms:p50:+10%", "ttfc_ms:p95:+10%", "ttfc_ms:p99:+15%"]),
}


def simulate(case: str, trials: int = 100, seed: int = 0) -> dict:
    """Share of trials with a regression verdict on any row, under the gate's rule and the old one."""
    n, change, tols = CASES[case]
    tols = [parse_tolerance(t) for t in tols]
    rng = np.random.default_rng(seed)
    new = old = 0
    for t in range(trials):
        a = rng.lognormal(math.log(MEDIAN), SIGMA, n)
        b = change(rng.lognormal(math.log(MEDIAN), SIGMA, n))
        hit_new = hit_old = False
        for tol in tols:
            va, vb, lo, hi, p, verdict = judge(a, b, tol, seed=t)
            hit_new |= verdict == "regression"
            hit_old |= _old_rule(tol, va, lo, hi, p)
        new += hit_new
        old += hit_old
    return {"case": case, "samples": n, "trials": trials, "caught": new, "caught_old_rule": old}

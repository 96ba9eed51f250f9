"""Confidence intervals the gate, the plan and the capacity bounds share, with measured coverage.

Why not the bootstrap: a percentile bootstrap of p99 over 1,113 samples (11 beyond it) gave a
95 % interval 7 ms wide around a 144 ms change that was real, and over 200 samples it raised false
alarms, which is why the old gate refused p99 below 2,000 samples. These intervals are
distribution-free instead:

- **one percentile**: the order-statistic interval. Of n independent samples, the number below
  the true q-quantile is Binomial(n, q), so the l-th and u-th smallest bracket it with a known
  probability whatever the distribution. An upper bound for p99 exists from 368 samples
  (1 - 0.99^n >= 0.975 from n = 368), a lower one from 1; for p95 from 72; below that the bound is infinite
  and says so, it is not replaced by a guess.
- **clustered samples** (the gaps of one stream, the turns of one conversation, the requests of
  one busy second) are not independent: the binomial count is replaced by an effective one,
  n / deff, where deff is the design effect of the indicator "sample <= the estimate" over the
  clusters (the ratio-estimator variance of survey statistics, Woodruff's interval). Without it
  an A/A comparison of gaps called 0.5 ms changes "improvements" with intervals excluding 0.
- **the difference of two**: MOVER (Zou & Donner 2008, "method of variance estimates recovery"):
  each side's distance from its point estimate to its bounds is recovered as a variance and the
  two are combined, one side of the interval at a time. For proportions this is Newcombe's
  hybrid score interval (Wilson on each side), so 0 errors in 100 is not "exactly 0".
- **looking repeatedly** (``bench run --until-decided``): with K looks at most (``--max-duration``
  / ``--decide-every``), each uses alpha / K (Bonferroni: the errors of all looks sum to at most
  alpha whatever their dependence); open-ended, look k uses alpha / (k (k + 1)).

``benchmarks/gate_coverage.py`` simulates A/A pairs and known shifts (lognormal, bimodal tail,
clustered gaps, 200 to 20,000 samples a side, fixed and sequential) and prints coverage, false
alarms and power; the README's table is its output.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from statistics import NormalDist

import numpy as np

ALPHA = 0.05
# scipy.stats is imported where binomial and t quantiles are needed: at import it cost the report 0.8 s
Z = NormalDist().inv_cdf(1 - ALPHA / 2)
Z_POWER = NormalDist().inv_cdf(0.80)  # the plan's power
INF = math.inf


def spending_alpha(look: int, looks: int | None = None, alpha: float = ALPHA) -> float:
    """The error allowed at look ``look`` (1-based) of a sequential run, summing to alpha over all
    looks: alpha / looks each when their number is known (Bonferroni, valid whatever the looks'
    dependence), else alpha / (k (k + 1)) for an open-ended run."""
    if looks:
        return alpha / looks
    return alpha / (look * (look + 1))


def design_effect(hit: np.ndarray, clusters: np.ndarray | None) -> float:
    """deff of a 0/1 indicator over clusters (>= 1; 1 without clusters or with too few of them).

    Var of the ratio estimator sum(hits)/n over G clusters, against the binomial q(1-q)/n.
    """
    n = hit.size
    if clusters is None or n < 2:
        return 1.0
    _, inv, sizes = np.unique(clusters, return_inverse=True, return_counts=True)
    g = sizes.size
    if g < 10 or g == n:
        return 1.0  # one sample a cluster, or under 10 clusters: no variance between them to estimate
    p = hit.mean()
    if p <= 0 or p >= 1:
        return 1.0
    sums = np.bincount(inv, weights=hit.astype(float), minlength=g)
    resid = sums - p * sizes
    var = g / (g - 1) * float(np.sum(resid * resid)) / (n * n)
    return max(1.0, float(var / (p * (1 - p) / n)))


def binom_ppf(a: float, m: int, q: float) -> int:
    """The smallest k with P(B <= k) >= a, B ~ Binomial(m, q): ``scipy.stats.binom.ppf``, from
    ``scipy.special``'s CDF by bisection (importing scipy.stats cost every report 0.8 s; a test holds
    the two to each other)."""
    from scipy.special import bdtr

    return _smallest_k(lambda k: bool(bdtr(k, m, q) >= a), m)


def binom_isf(a: float, m: int, q: float) -> int:
    """The smallest k with P(B > k) <= a: ``scipy.stats.binom.isf``, from the complemented CDF."""
    from scipy.special import bdtrc

    return _smallest_k(lambda k: bool(bdtrc(k, m, q) <= a), m)


def _smallest_k(holds: Callable[[int], bool], m: int) -> int:
    """The smallest k in 0..m for which ``holds`` (monotone in k, true at m), by bisection."""
    lo, hi = -1, m  # holds(lo) is false by convention, holds(hi) true
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if holds(mid):
            hi = mid
        else:
            lo = mid
    return hi


def _ranks(n_eff: float, q: float, alpha: float) -> tuple[float, float]:
    """Fractional ranks (0-based, in [0, 1] of the sorted sample) of the lower and upper bound of the
    q-quantile at level 1 - alpha, for an effective sample of n_eff; -inf / inf where none exists."""
    m = max(1, int(math.floor(n_eff)))
    from scipy.special import bdtr

    lo_k = binom_ppf(alpha / 2, m, q)  # smallest k with P(B <= k) >= alpha/2
    if bdtr(lo_k, m, q) > alpha / 2:
        lo_k -= 1  # largest k with P(B <= k) <= alpha/2: X_(k+1) is below the quantile with prob >= 1 - alpha/2
    hi_k = binom_isf(alpha / 2, m, q)  # smallest k with P(B > k) <= alpha/2
    lo = lo_k / m if lo_k >= 0 else -INF  # rank k+1 of 1..m, as a fraction of the sample (0-based k / m)
    hi = hi_k / m if hi_k < m else INF
    return lo, hi


@dataclass(frozen=True)
class Interval:
    point: float
    low: float
    high: float
    n: int
    n_eff: float

    @property
    def finite(self) -> bool:
        return math.isfinite(self.low) and math.isfinite(self.high)


def quantile_interval(
    x: np.ndarray,
    q: float,
    clusters: np.ndarray | None = None,
    alpha: float = ALPHA,
    point: float | None = None,
    xs: np.ndarray | None = None,
) -> Interval:
    """Distribution-free interval of the q-th percentile (q in 0..100) of x's population.

    ``xs``: x already sorted (one sort shared by the statistic and its interval). ``point``: the
    estimate to report when it comes from elsewhere (the exact pooled gap percentile, the sample
    being a subset).
    """
    xs = np.sort(x) if xs is None else xs
    n = xs.size
    if n == 0:
        return Interval(math.nan, -INF, INF, 0, 0.0)
    est = float(np.percentile(xs, q)) if point is None else point
    deff = 1.0 if clusters is None else design_effect(x <= est, clusters)
    n_eff = n / deff
    lo_r, hi_r = _ranks(n_eff, q / 100.0, alpha)
    low = float(xs[min(n - 1, int(math.floor(lo_r * n + 1e-9)))]) if math.isfinite(lo_r) else -INF
    high = float(xs[min(n - 1, int(math.ceil(hi_r * n - 1e-9)))]) if math.isfinite(hi_r) else INF
    return Interval(est, min(low, est), max(high, est), n, n_eff)


def proportion_interval(k: int, n: int, alpha: float = ALPHA) -> Interval:
    """Wilson's score interval of k successes in n (what Newcombe's difference is built from)."""
    if n == 0:
        return Interval(math.nan, -INF, INF, 0, 0.0)
    z = NormalDist().inv_cdf(1 - alpha / 2)
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    low, high = (0.0 if k == 0 else max(0.0, centre - half)), (1.0 if k == n else min(1.0, centre + half))
    return Interval(p, low, high, n, float(n))


def mean_interval(x: np.ndarray, clusters: np.ndarray | None = None, alpha: float = ALPHA) -> Interval:
    """Student interval of a mean; with clusters, the variance of cluster sums (ratio estimator)."""
    n = x.size
    if n < 2:
        return Interval(float(x.mean()) if n else math.nan, -INF, INF, n, float(n))
    m = float(x.mean())
    var = float(x.var(ddof=1)) / n
    n_eff = float(n)
    if clusters is not None:
        _, inv, sizes = np.unique(clusters, return_inverse=True, return_counts=True)
        g = sizes.size
        if 10 <= g < n:
            resid = np.bincount(inv, weights=x - m, minlength=g)
            cvar = g / (g - 1) * float(np.sum(resid * resid)) / (n * n)
            if cvar > var:
                n_eff = n * var / cvar
                var = cvar
    from scipy import stats as sst

    t = float(sst.t.ppf(1 - alpha / 2, max(1.0, n_eff - 1)))
    h = t * math.sqrt(var)
    return Interval(m, m - h, m + h, n, n_eff)


def mover(a: Interval, b: Interval) -> tuple[float, float, float]:
    """(point, low, high) of b - a from the two intervals (MOVER). Infinite where a side has no bound."""
    d = b.point - a.point
    lo = d - math.hypot(b.point - b.low, a.high - a.point)
    hi = d + math.hypot(b.high - b.point, a.point - a.low)
    return d, lo, hi


def half_widths(iv: Interval) -> tuple[float, float]:
    return iv.point - iv.low, iv.high - iv.point


def min_n_for_bounds(q: float, alpha: float = ALPHA) -> int:
    """Fewest independent samples for which the q-th percentile (0..100) has both 95 % bounds."""
    p = q / 100.0
    if p <= 0 or p >= 1:
        return 1 << 62
    return int(math.ceil(max(math.log(alpha / 2) / math.log(p), math.log(alpha / 2) / math.log(1 - p)) + 1e-9))


def tail_density_width(x: np.ndarray, q: float) -> float:
    """A rough 1.96-sigma half-width of the q-th percentile when the order statistics cannot give one
    (too few samples beyond it): the spacing of the sample's quantiles just below q, scaled to
    the binomial sd. Only the plan uses it, and says it is an extrapolation."""
    n = x.size
    if n < 5:
        return INF
    p = q / 100.0
    d = min(0.05, p / 2, max(0.5 / n, (1 - p) * 2))
    qs = np.percentile(x, [max(0.0, (p - 2 * d)) * 100, p * 100])
    slope = (qs[1] - qs[0]) / (2 * d) if d > 0 else INF  # dQ/dp: 1 / density
    return Z * math.sqrt(p * (1 - p) / n) * slope


def needed_n_eff(h_base: float, n_eff_base: float, allowed: float, h_cand: float | None = None) -> float:
    """Effective samples a side for the worsening's upper bound to fall below ``allowed`` with 80 %
    power when nothing changed (the equivalence a passing gate needs); ``h_base``: the baseline's
    95 % half-width at its n_eff (the candidate is assumed to be as spread)."""
    if not (allowed > 0 and math.isfinite(h_base) and h_base > 0):
        return INF
    sigma_unit = h_base / Z * math.sqrt(n_eff_base)  # sigma * sqrt(n): one sample's worth
    # sd of the difference at n a side: sqrt(2) * sigma_unit / sqrt(n); need (Z + Z_POWER) * sd <= allowed
    return 2 * ((Z + Z_POWER) * sigma_unit / allowed) ** 2

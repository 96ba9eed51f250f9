"""The statistics catalogue: which statistics a metric is summarised by, and the one way a
percentile is computed from raw samples. The twin of the metric catalogue (``bench.metrics``).

Every percentile here is numpy's default: linear interpolation between the order statistics
around rank ``q / 100 * (n - 1)``. It is computed in three shapes, all through this module, so a
request's own p99 gap, a run's pooled p99 gap and a history's p99 TTFC mean the same thing:

* over one array: ``numpy.percentile`` itself (summaries, SLO verdicts);
* over many sorted segments at once (:func:`segmented`): each request's gap percentiles at
  finalize (``analysis/results.py``), each run and model of a history (``decisions/history.py``);
* from order statistics read off a histogram (:func:`from_order_stats`): the pooled gaps of 10^8
  parts, counted in one streamed pass and never sorted (``analysis/gapstats.py``).

``tests/test_stats.py`` holds the last two against ``numpy.percentile`` under Hypothesis, and the
names against ``docs/METRICS.md``.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import numpy.typing as npt

PERCENTILES: dict[str, float] = {"p50": 50.0, "p90": 90.0, "p95": 95.0, "p99": 99.0}
STATISTICS: tuple[str, ...] = (*PERCENTILES, "max", "mean")  # what an SLO or a tolerance may name


def _ranks(
    q: float | npt.NDArray[np.float64], n: npt.NDArray[np.int64]
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64], npt.NDArray[np.float64]]:
    pos = q / 100.0 * (n - 1)
    lo = np.floor(pos).astype(np.int64)
    return lo, np.minimum(lo + 1, n - 1), pos - lo


def segmented(
    values: npt.NDArray[np.float64], starts: npt.ArrayLike, lengths: npt.ArrayLike, q: float
) -> npt.NDArray[np.float64]:
    """The ``q``-th percentile of each segment ``values[starts[i] : starts[i] + lengths[i]]``, every
    segment already sorted and non-empty."""
    st, n = np.asarray(starts, dtype=np.int64), np.asarray(lengths, dtype=np.int64)
    lo, hi, frac = _ranks(q, n)
    a, b = values[st + lo], values[st + hi]
    return np.asarray(a + (b - a) * frac, dtype=np.float64)


def from_order_stats(
    order_stat: Callable[[npt.NDArray[np.int64]], npt.NDArray[np.float64]], n: int, qs: list[float]
) -> npt.NDArray[np.float64]:
    """Percentiles ``qs`` of ``n`` samples known only through ``order_stat(k)``, the k-th smallest (0-based)."""
    lo, hi, frac = _ranks(np.array(qs, dtype=np.float64), np.full(len(qs), n, dtype=np.int64))
    a = np.asarray(order_stat(lo), dtype=np.float64)
    b = np.asarray(order_stat(hi), dtype=np.float64)
    return np.asarray(a + (b - a) * frac, dtype=np.float64)

"""SLOs: ``ttfc_ms:p95<=1000``, ``gaps_ms:p99<=200``, ``error_rate<=1%``.

A latency SLO with a percentile is judged on the run (or load level); for goodput each request is
judged on its own value of the metric (for ``gaps_ms``, the request's own p99 gap).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from bench.errors import InputError
from bench.metrics import BY_NAME, HIGHER_IS_BETTER, LATENCY, RATES, SHARES  # noqa: F401  (the catalogue: which names exist)
from bench.stats import STATISTICS

METRICS = set(BY_NAME)
STATS = set(STATISTICS)  # the statistics catalogue's (bench.stats)
_RE = re.compile(
    r"^\s*(?P<metric>[a-z0-9_]+)(?::(?P<stat>[a-z0-9]+))?\s*(?P<op><=|>=|<|>)\s*(?P<value>[0-9.]+)\s*(?P<pct>%)?\s*$"
)


@dataclass(frozen=True)
class Slo:
    metric: str
    stat: str
    op: str
    value: float
    text: str

    def ok(self, observed: float | None) -> bool:
        if observed is None or observed != observed:
            return False
        return {
            "<=": observed <= self.value,
            "<": observed < self.value,
            ">=": observed >= self.value,
            ">": observed > self.value,
        }[self.op]

    def show(self, observed: float | None) -> str:
        """The observed value in the SLO's own terms: a rate as a percentage, a latency as a number."""
        if observed is None or observed != observed:
            return "–"
        if self.metric in SHARES or "%" in self.text:
            return f"{100 * observed:.2f}%"
        return f"{observed:,.1f}"


def parse_slo(text: str) -> Slo:
    m = _RE.match(text)
    if not m:
        raise InputError(f"SLO {text!r}: expected METRIC[:STAT]<=VALUE, e.g. ttfc_ms:p95<=1000 or error_rate<=1%")
    metric, stat, op, value = m["metric"], m["stat"], m["op"], float(m["value"])
    if metric not in METRICS:
        raise InputError(f"SLO {text!r}: unknown metric {metric!r} (known: {', '.join(sorted(METRICS))})")
    if stat is None:
        stat = "p95" if metric in LATENCY else "mean"
    if stat not in STATS:
        raise InputError(f"SLO {text!r}: unknown statistic {stat!r} (known: {', '.join(sorted(STATS))})")
    if m["pct"]:
        value /= 100.0
    return Slo(metric, stat, op, value, text.strip())

"""The metric catalogue: every metric's one home (name, label, unit, direction, where it lives).

Everything that names a metric reads it from here: the record schema (per-request columns and
their Parquet types), the SLO and tolerance parsers (which names exist, which way is better),
the report's and live tab's column labels, the gate's directions, the summaries' latency
columns. ``docs/METRICS.md`` holds the formulas; a test checks that every metric here has its row
there. Adding a metric: an entry here, and the code that computes it (``records.build_row`` for
a per-request metric, ``analysis.model_summary`` for a run-level one).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Metric:
    name: str
    label: str  # short, for table headers: "TTFC"
    unit: str  # ms | tok/s | req/s | share
    better: str  # lower | higher
    scope: str  # request: a column of requests.parquet | parts: samples per part (gaps) | run: over a run or window
    first_part: bool = False  # known at the first part: a stream cut off after it still has it
    parquet: str = "float64"  # the column's type (request scope)

    @property
    def header(self) -> str:
        return f"{self.label} {self.unit}" if self.unit not in ("share",) else self.label


CATALOGUE: tuple[Metric, ...] = (
    Metric("connect_ms", "connect", "ms", "lower", "request", first_part=True),
    Metric("ttfb_ms", "TTFB", "ms", "lower", "request", first_part=True),
    Metric("ttfc_ms", "TTFC", "ms", "lower", "request", first_part=True),
    Metric("ttsc_ms", "TTSC", "ms", "lower", "request"),
    Metric("ttfc_sched_ms", "TTFC (scheduled)", "ms", "lower", "request", first_part=True),
    Metric("ttfv_ms", "TTFV", "ms", "lower", "request", first_part=True),
    Metric("e2e_ms", "E2E", "ms", "lower", "request"),
    Metric("tpot_ms", "TPOT", "ms", "lower", "request"),
    Metric("icl_ms", "ICL", "ms", "lower", "request"),
    Metric("decode_tps", "decode", "tok/s", "higher", "request"),
    Metric("gaps_ms", "gap", "ms", "lower", "parts"),
    Metric("output_tps", "output", "tok/s", "higher", "run"),
    Metric("requests_per_s", "requests", "req/s", "higher", "run"),
    Metric("goodput", "goodput", "req/s", "higher", "run"),
    Metric("error_rate", "error rate", "share", "lower", "run"),
)
BY_NAME: dict[str, Metric] = {m.name: m for m in CATALOGUE}

REQUEST_METRICS: list[str] = [m.name for m in CATALOGUE if m.scope == "request"]  # requests.parquet columns, this order
LATENCY: set[str] = {m.name for m in CATALOGUE if m.unit == "ms"}
HIGHER_IS_BETTER: set[str] = {m.name for m in CATALOGUE if m.better == "higher"}
LOWER_IS_BETTER: set[str] = {m.name for m in CATALOGUE if m.better == "lower"}
RATES: set[str] = {m.name for m in CATALOGUE if m.unit == "share"}
FIRST_PART: set[str] = {m.name for m in CATALOGUE if m.first_part}
PER_REQUEST: set[str] = {m.name for m in CATALOGUE if m.scope in ("request", "parts")}  # a value (or samples) per request
GATED: set[str] = PER_REQUEST | RATES  # what the regression gate compares: samples per request, or a rate
LATENCY_COLUMNS: list[str] = [m for m in REQUEST_METRICS if m in LATENCY]  # per-request latencies summarized by percentile


def label(name: str, stat: str = "") -> str:
    """``label("ttfc_ms", "p95")`` -> "TTFC p95 ms": one way to title a metric everywhere."""
    m = BY_NAME[name]
    unit = "" if m.unit == "share" else f" {m.unit}"
    return f"{m.label}{' ' + stat if stat else ''}{unit}"

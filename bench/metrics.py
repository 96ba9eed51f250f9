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
    # | pair: a value per paired turn (route and backend, bench run --backend)
    # | reader: a value per request from a model of its reader, computed by the report from the gaps
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
    # --backend: the route's TTFC minus the model server's, per paired turn (what the app adds before the first part)
    Metric("route_overhead_ms", "route overhead", "ms", "lower", "pair"),
    # what a reader at 238 words a minute met (bench/analysis/reading.py), from each request's gaps at report time
    Metric("read_stall_share", "reader stalled", "share", "lower", "reader"),
    Metric("read_wait_ms", "reader's wait", "ms", "lower", "reader"),
)
BY_NAME: dict[str, Metric] = {m.name: m for m in CATALOGUE}

REQUEST_METRICS: list[str] = [m.name for m in CATALOGUE if m.scope == "request"]  # requests.parquet columns, this order
LATENCY: set[str] = {m.name for m in CATALOGUE if m.unit == "ms"}
HIGHER_IS_BETTER: set[str] = {m.name for m in CATALOGUE if m.better == "higher"}
LOWER_IS_BETTER: set[str] = {m.name for m in CATALOGUE if m.better == "lower"}
SHARES: set[str] = {m.name for m in CATALOGUE if m.unit == "share"}  # shown as percentages
RATES: set[str] = {m.name for m in CATALOGUE if m.unit == "share" and m.scope == "run"}  # a run's share (error rate)
READER: set[str] = {m.name for m in CATALOGUE if m.scope == "reader"}
FIRST_PART: set[str] = {m.name for m in CATALOGUE if m.first_part}
PER_REQUEST: set[str] = {m.name for m in CATALOGUE if m.scope in ("request", "parts")}  # a value (or samples) per request
PAIRED: set[str] = {m.name for m in CATALOGUE if m.scope == "pair"}  # judged from paired turns: needs --backend
GATED: set[str] = PER_REQUEST | RATES | PAIRED  # what the regression gate compares: samples per request or pair, or a rate
LATENCY_COLUMNS: list[str] = [m for m in REQUEST_METRICS if m in LATENCY]  # per-request latencies summarized by percentile


def label(name: str, stat: str = "") -> str:
    """``label("ttfc_ms", "p95")`` -> "TTFC p95 ms": one way to title a metric everywhere."""
    m = BY_NAME[name]
    unit = "" if m.unit == "share" else f" {m.unit}"
    return f"{m.label}{' ' + stat if stat else ''}{unit}"

"""Run-to-run noise: how much a statistic moves between runs of the same build, beyond what each
run's own sampling explains, and the gate's intervals widened by it.

A within-run interval assumes one stable machine. A CI runner slower this afternoon than this
morning shifts every percentile of the candidate by the same amount, and the within-run interval
calls that a change. Given a folder of earlier runs of the same scenario (``bench compare
--noise-from DIR``: repeats of the baseline build, or unchanged builds), for each model and
statistic ``bench history`` already computes each run's value and its 95 % interval; the
between-run variance is the variance of those values across runs minus the mean within-run
variance (each run's half-width over 1.96, squared), floored at 0, from at least ``MIN_RUNS``
runs. A difference of two runs carries it twice, so the gate's interval grows from half-width h to
sqrt(h^2 + (1.96 * sqrt(2) * sd)^2) on each side. ``benchmarks/run_to_run.py`` measures the
false-alarm rate of the same build with and without it.
"""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd

MIN_RUNS = 3
Z = 1.959963984540054


def between_run_sd(root: Path, digest: str | None, exclude: set[str]) -> tuple[dict[tuple[str, str, str], float], int]:
    """{(model, metric, stat): between-run SD} over the runs of ``digest`` under ``root`` (the
    compared runs left out), and the number of runs it came from."""
    from bench.decisions.history import METRICS, PCTS, history

    h, _ = history(root, digest)
    h = h[~h["run_id"].isin(exclude)]
    runs = int(h["run_id"].nunique())
    out: dict[tuple[str, str, str], float] = {}
    if runs < MIN_RUNS:
        return out, runs
    for model, g in h.groupby("model"):
        for m in METRICS:
            for q in PCTS:
                col = f"{m}_p{q}"
                v = g[[col, f"{col}_lo", f"{col}_hi"]].dropna()
                if len(v) < MIN_RUNS:
                    continue
                within = (((v[f"{col}_hi"] - v[f"{col}_lo"]) / (2 * Z)) ** 2).mean()
                between = float(v[col].var(ddof=1)) - float(within)
                out[(str(model), m, f"p{q}")] = math.sqrt(max(0.0, between))
    return out, runs


def between_run_gap_sd(root: Path, digest: str | None, exclude: set[str], stats: list[str]) -> dict[tuple[str, str, str], float]:
    """The same for the gap statistics (``gaps_ms`` p50/p99/...): each earlier run's pooled gap
    statistic and its within-run interval from whole streams (the gate's own ``gap_samples`` and
    ``interval``), so the gaps of one stream stay one cluster here too. Reads each run's gaps once."""
    from bench.analysis.runfolder import open_run
    from bench.decisions.compare import gap_samples, interval
    from bench.decisions.history import find_runs

    if not stats:
        return {}
    runs = [r for r in find_runs(root) if r["digest"] == digest and str(r["run_id"]) not in exclude]
    if len(runs) < MIN_RUNS:
        return {}
    values: dict[tuple[str, str], list[tuple[float, float]]] = {}
    for r in runs:
        run = open_run(Path(r["dir"]), r["warmup_s"]).on_wire
        for stat in stats:
            for model, sample in gap_samples(run, stat, 0).items():
                if sample.point is None or sample.values.size == 0:
                    continue
                i = interval(sample, stat)
                if math.isfinite(i.low) and math.isfinite(i.high):
                    values.setdefault((str(model), stat), []).append((float(sample.point), (i.high - i.low) / (2 * Z)))
    out: dict[tuple[str, str, str], float] = {}
    for (model, stat), v in values.items():
        if len(v) < MIN_RUNS:
            continue
        points = pd.Series([x for x, _ in v])
        within = float(pd.Series([h**2 for _, h in v]).mean())
        out[(model, "gaps_ms", stat)] = math.sqrt(max(0.0, float(points.var(ddof=1)) - within))
    return out


def widen(d: float, lo: float, hi: float, sd: float) -> tuple[float, float]:
    """The difference's interval with two runs' between-run variance added to each side."""
    extra = Z * math.sqrt(2.0) * sd
    return d - math.hypot(d - lo, extra), d + math.hypot(hi - d, extra)


def describe(sds: dict[tuple[str, str, str], float], runs: int, root: Path) -> str:
    if runs < MIN_RUNS:
        return f"run-to-run noise: {runs} earlier run(s) of this scenario in {root}, {MIN_RUNS} needed; intervals not widened"
    return f"run-to-run noise from {runs} runs in {root}: intervals widened by each statistic's between-run spread"


def frame(sds: dict[tuple[str, str, str], float]) -> pd.DataFrame:
    return pd.DataFrame([{"model": k[0], "metric": k[1], "stat": k[2], "sd": v} for k, v in sds.items()])

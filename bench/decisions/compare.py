"""``bench compare BASELINE CANDIDATE``: the latency regression gate.

For every model and metric: baseline and candidate percentiles, the difference with a bootstrap
confidence interval of *that statistic*, and a Mann-Whitney rank test as extra information. A
row is a regression when its interval excludes zero (the change is real) and its point estimate
is beyond the tolerance (the change matters). The rank test is not part of the verdict: it asks
whether the whole distribution moved, and a tail that doubles while the median stays put moves
it too little to notice (``benchmarks/gate_power.py`` measures how often each rule catches what).
Exit codes: 0 no regression, 1 regression, 2 the runs cannot be compared.
"""

from __future__ import annotations

import html
import json
import math
import re
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats as sst

from bench.analysis.summaries import MIN_SAMPLES, gap_summaries, group_rows, live_rows, metric_samples
from bench.errors import InputError
from bench.analysis.results import read_run_json

DEFAULT_TOLERANCES = [
    "ttfc_ms:p50:+10%", "ttfc_ms:p95:+10%", "ttfc_ms:p99:+15%", "ttfv_ms:p95:+10%", "e2e_ms:p95:+10%",
    "tpot_ms:p50:+10%", "gaps_ms:p99:+15%", "decode_tps:p50:-10%", "error_rate:+1pp",
]
from bench.metrics import GATED, LOWER_IS_BETTER  # noqa: E402  (the catalogue's names and directions)
_TOL = re.compile(r"^(?P<metric>[a-z0-9_]+)(?::(?P<stat>p50|p90|p95|p99|mean))?:(?P<sign>[+-])(?P<value>[0-9.]+)(?P<unit>%|pp|ms)$")
ALPHA = 0.05


class NotComparable(Exception):
    """The two runs differ in what they measured; the message says how."""


@dataclass(frozen=True)
class Tolerance:
    metric: str
    stat: str
    value: float  # allowed worsening, as a fraction (%), percentage points (pp) or ms
    unit: str
    text: str


def parse_tolerance(text: str) -> Tolerance:
    m = _TOL.match(text.strip())
    if not m:
        raise InputError(f"tolerance {text!r}: expected METRIC:STAT:+N% (e.g. ttfc_ms:p95:+10%), error_rate:+0.5pp or decode_tps:p50:-10%")
    metric = m["metric"]
    if metric not in GATED:
        raise InputError(f"tolerance {text!r}: unknown metric {metric!r} (the gate compares {', '.join(sorted(GATED))})")
    value = float(m["value"]) / (100.0 if m["unit"] in ("%", "pp") else 1.0)
    return Tolerance(metric, m["stat"] or ("mean" if metric == "error_rate" else "p95"), value, m["unit"], text.strip())


def load_tolerances(items: list[str], path: str | None) -> list[Tolerance]:
    texts = list(items)
    if path:
        p = Path(path)
        if not p.is_file():
            raise InputError(f"{p}: tolerance file not found")
        for i, line in enumerate(p.read_text().splitlines(), 1):
            line = line.split("#", 1)[0].strip()
            if line:
                try:
                    parse_tolerance(line)
                except InputError as exc:
                    raise InputError(f"{p}, line {i}: {exc}") from None
                texts.append(line)
    return [parse_tolerance(t) for t in (texts or DEFAULT_TOLERANCES)]


@dataclass
class Row:
    model: str
    metric: str
    stat: str
    baseline: float | None
    candidate: float | None
    diff: float | None
    ci_low: float | None
    ci_high: float | None
    rel_diff: float | None
    p_value: float | None
    tolerance: str
    verdict: str
    n_base: int
    n_cand: int


def _stat(v: np.ndarray, stat: str) -> float:
    return float(np.mean(v)) if stat == "mean" else float(np.percentile(v, float(stat[1:])))


EXACT_FROM = 2000  # samples from which a percentile's bootstrap distribution is computed, not resampled
EXACT_DRAWS = 20_000  # draws from each computed distribution: cheap, so 20x the resampling path's


def order_stat_draws(v: np.ndarray, q: float, n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` draws from the bootstrap distribution of v's q-th percentile, without resampling.

    The k-th smallest of a resample of m values is <= the j-th smallest of v exactly when at least
    k+1 of the m draws land at or below it: P = BinomialSF(k, m, (j+1)/m). Inverting that CDF
    costs one sort instead of n resamples of m values (a minute for two runs of 10^6 records),
    and carries no resampling noise. k is the percentile's rank rounded to the nearest order
    statistic; from EXACT_FROM samples up the interpolation's share of the interval is negligible.
    """
    x = np.sort(v)
    m = x.size
    k = int(round(q / 100 * (m - 1)))
    cdf = sst.binom.sf(k, m, np.arange(1, m + 1) / m)
    return x[np.minimum(np.searchsorted(cdf, rng.random(n)), m - 1)]


def bootstrap_diff(a: np.ndarray, b: np.ndarray, stat: str, n: int = 1000, seed: int = 0) -> tuple[float, float]:
    """95% percentile-bootstrap interval of stat(b) - stat(a), each run resampled independently."""
    rng = np.random.default_rng(seed)
    q = None if stat == "mean" else float(stat[1:])
    if q is not None and min(a.size, b.size) >= EXACT_FROM:
        d = order_stat_draws(b, q, EXACT_DRAWS, rng) - order_stat_draws(a, q, EXACT_DRAWS, rng)
        return float(np.percentile(d, 2.5)), float(np.percentile(d, 97.5))
    a, b = _cap(a, seed), _cap(b, seed + 1)
    # resample in blocks to bound memory on large runs
    diffs = []
    for _ in range(0, n, 100):
        ia = rng.integers(0, a.size, size=(100, a.size))
        ib = rng.integers(0, b.size, size=(100, b.size))
        if q is None:
            d = b[ib].mean(axis=1) - a[ia].mean(axis=1)
        else:
            d = np.percentile(b[ib], q, axis=1) - np.percentile(a[ia], q, axis=1)
        diffs.append(d)
    d = np.concatenate(diffs)
    return float(np.percentile(d, 2.5)), float(np.percentile(d, 97.5))


MAX_TEST_SAMPLES = 50_000  # rank test and mean bootstrap on a random subsample past this; percentiles use all


def _gaps(run: pd.DataFrame, seed: int) -> dict[str, tuple[dict, np.ndarray]]:
    """Per model: exact pooled gap stats (ms) of the successful requests, and a uniform sample of the gaps for the tests.

    A run can hold 10^8 gaps: the stats stream over all of them in one pass for every model
    (``bench.analysis.gapstats``); the bootstrap and rank test read MAX_TEST_SAMPLES of them, as they would
    for any other metric.
    """
    ok = run[run["error"].isna()]
    store = run.attrs.get("gaps")
    if store is None or ok.empty:
        return {}
    stats = gap_summaries(ok, "model")
    return {m: (stats[m].stats, store.sample(rows, MAX_TEST_SAMPLES, seed) / 1000.0) for m, rows in group_rows(ok, "model").items()}


def _cap(v: np.ndarray, seed: int = 0) -> np.ndarray:
    if v.size <= MAX_TEST_SAMPLES:
        return v
    return np.random.default_rng(seed).choice(v, MAX_TEST_SAMPLES, replace=False)


def _verdict(tol: Tolerance, base: float, diff: float, lo: float, hi: float) -> str:
    """The gate's rule: the statistic's own 95 % interval excludes 0, and the point estimate of the
    worsening is beyond the tolerance."""
    lower_better = tol.metric in LOWER_IS_BETTER
    worse = diff if lower_better else -diff
    worse_lo, better_hi = (lo, hi) if lower_better else (-hi, -lo)  # bounds of the worsening
    if worse_lo > 0:
        allowed = tol.value * abs(base) if tol.unit == "%" else tol.value
        return "regression" if worse > allowed else "worse, within tolerance"
    if better_hi < 0:
        return "improvement"
    return "no significant change"


TAIL_MIN = 20  # samples beyond a percentile that its interval needs: p95 from 400 samples a side, p99 from 2,000


def tail_short(n: int, stat: str) -> str | None:
    """Why a percentile cannot be judged on n samples: a bootstrap of p99 over 200 samples (two
    beyond it) is too narrow and raises false alarms; the row then says so instead of judging."""
    if stat.startswith("p") and n * (1 - float(stat[1:]) / 100) < TAIL_MIN:
        need = math.ceil(TAIL_MIN / (1 - float(stat[1:]) / 100))
        return f"too few samples for {stat} ({n} < {need})"
    return None


def judge(a: np.ndarray, b: np.ndarray, tol: Tolerance, seed: int = 0) -> tuple[float, float, float, float, float, str]:
    """One row of the gate from raw samples: (baseline, candidate, low, high, rank-test p, verdict)."""
    va, vb = _stat(a, tol.stat), _stat(b, tol.stat)
    lo, hi = bootstrap_diff(a, b, tol.stat, seed=seed)
    p = float(sst.mannwhitneyu(_cap(a), _cap(b, 1), alternative="two-sided").pvalue)
    short = tail_short(min(a.size, b.size), tol.stat)
    return va, vb, lo, hi, p, short or _verdict(tol, va, vb - va, lo, hi)


def measured_runs(base_dir: Path, cand_dir: Path, warmup: float | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Both runs' measured requests: warm-up and requests cut off by the run's end left out.

    Refuses runs of different scenarios (by the scenario file's hash) before loading them.
    """
    from bench.analysis.results import ensure_records
    from bench.analysis.runfolder import open_run

    for d in (base_dir, cand_dir):
        ensure_records(d)
    mb, mc = read_run_json(base_dir), read_run_json(cand_dir)
    sb, sc = (mb.get("scenario") or {}), (mc.get("scenario") or {})
    if sb.get("sha256") and sc.get("sha256") and sb["sha256"] != sc["sha256"]:
        raise NotComparable(f"different scenarios: {sb.get('name')} ({sb['sha256']}) vs {sc.get('name')} ({sc['sha256']})")
    return open_run(base_dir, warmup).on_wire, open_run(cand_dir, warmup).on_wire  # streams cut off at the end keep their TTFC


def compare_runs(base_dir: Path, cand_dir: Path, tolerances: list[Tolerance], warmup: float | None = None,
                 runs: tuple[pd.DataFrame, pd.DataFrame] | None = None) -> dict:
    """The gate's verdict per model and tolerance; ``runs``: ``measured_runs`` already loaded."""
    db, dc = runs if runs is not None else measured_runs(base_dir, cand_dir, warmup)
    models_b, models_c = set(db["model"]), set(dc["model"])
    if models_b != models_c:
        raise NotComparable(f"different models: only in baseline {sorted(models_b - models_c)}, only in candidate {sorted(models_c - models_b)}")
    rows: list[Row] = []
    skipped: list[dict] = []
    gaps_b, gaps_c = ({}, {}) if all(t.metric != "gaps_ms" for t in tolerances) else (_gaps(db, 0), _gaps(dc, 1))
    for model in sorted(models_b):
        gb, gc = db[db["model"] == model], dc[dc["model"] == model]
        nb, nc = int(gb["error"].isna().sum()), int(gc["error"].isna().sum())
        if min(nb, nc) < MIN_SAMPLES:
            skipped.append({"model": model, "baseline": nb, "candidate": nc,
                            "reason": f"{model.split('/')[-1]}: {min(nb, nc)} < {MIN_SAMPLES} successful requests; run longer or restrict --models"})
            continue
        for tol in tolerances:
            if tol.metric == "error_rate":
                rows.append(_error_row(model, tol, live_rows(gb), live_rows(gc)))
                continue
            if tol.metric == "gaps_ms":
                (stats_a, sa), (stats_b, sb_) = gaps_b.get(model, ({"n": 0}, None)), gaps_c.get(model, ({"n": 0}, None))
                na, nb_ = stats_a["n"], stats_b["n"]
                if min(na, nb_) < MIN_SAMPLES:
                    continue
                va, vb = stats_a[tol.stat], stats_b[tol.stat]  # exact over every gap; the interval from a uniform sample
                lo, hi = bootstrap_diff(sa, sb_, tol.stat)
                p = float(sst.mannwhitneyu(_cap(sa), _cap(sb_, 1), alternative="two-sided").pvalue)
                verdict = tail_short(min(na, nb_), tol.stat) or _verdict(tol, va, vb - va, lo, hi)
            else:
                a, b = metric_samples(gb, tol.metric), metric_samples(gc, tol.metric)
                na, nb_ = a.size, b.size
                if min(na, nb_) < MIN_SAMPLES:
                    continue  # e.g. TTFV for a model that does not reason
                va, vb, lo, hi, p, verdict = judge(a, b, tol)
            rows.append(Row(model, tol.metric, tol.stat, va, vb, vb - va, lo, hi, (vb - va) / va if va else None, p, tol.text,
                            verdict, int(na), int(nb_)))
    if not rows:
        raise NotComparable("no model has enough successful requests in both runs: " + "; ".join(x["reason"] for x in skipped))
    regressions = [r for r in rows if r.verdict == "regression"]
    return {"baseline": str(base_dir), "candidate": str(cand_dir), "rows": [asdict(r) for r in rows],
            "regressions": len(regressions), "verdict": "regression" if regressions else "ok", "skipped": skipped,
            "min_samples": MIN_SAMPLES, "tolerances": [t.text for t in tolerances]}


def _error_row(model: str, tol: Tolerance, gb: pd.DataFrame, gc: pd.DataFrame) -> Row:
    eb, ec = gb["error"].notna().to_numpy(float), gc["error"].notna().to_numpy(float)
    pb, pc = eb.mean(), ec.mean()
    se = np.sqrt(pb * (1 - pb) / eb.size + pc * (1 - pc) / ec.size)
    lo, hi = (pc - pb) - 1.96 * se, (pc - pb) + 1.96 * se
    if se > 0:
        pooled = (eb.sum() + ec.sum()) / (eb.size + ec.size)
        z = (pc - pb) / np.sqrt(pooled * (1 - pooled) * (1 / eb.size + 1 / ec.size))
        p = float(2 * sst.norm.sf(abs(z)))
    else:
        p = 1.0
    return Row(model, "error_rate", "mean", float(pb), float(pc), float(pc - pb), float(lo), float(hi), None, p, tol.text,
               _verdict(tol, pb, pc - pb, lo, hi), int(eb.size), int(ec.size))


def _f(v, pct=False) -> str:
    from bench.analysis.page import num

    return num(v, pct=True, signed=True) if pct else num(v, digits=2)


MARK = {"regression": "❌ regression", "improvement": "✅ improvement", "no significant change": "no significant change",
        "worse, within tolerance": "⚠️ worse, within tolerance"}


def markdown(result: dict) -> str:
    out = [f"### Latency comparison: {'❌ regression' if result['regressions'] else '✅ no regression'}", "",
           f"baseline `{Path(result['baseline']).name}` → candidate `{Path(result['candidate']).name}`", "",
           "| model | metric | baseline | candidate | diff [95% CI] | rel | p | tolerance | verdict |",
           "|---|---|---:|---:|---|---:|---:|---|---|"]
    for r in result["rows"]:
        unit = " pp" if r["metric"] == "error_rate" else ""
        scale = 100 if r["metric"] == "error_rate" else 1
        diff = f"{_f(r['diff'] * scale)}{unit} [{_f(r['ci_low'] * scale)}, {_f(r['ci_high'] * scale)}]"
        out.append(f"| {r['model'].split('/')[-1]} | {r['metric']} {r['stat']} | {_f(r['baseline'] * scale)} | {_f(r['candidate'] * scale)} | "
                   f"{diff} | {_f(r['rel_diff'], pct=True)} | {r['p_value']:.3g} | {r['tolerance']} | {MARK.get(r['verdict'], r['verdict'])} |")
    for sk in result.get("skipped", []):
        out.append(f"\nNot compared: {sk['reason']}")
    out += ["", "Times in ms. A regression is a change whose 95 % bootstrap interval (of that statistic) excludes 0 and whose "
            "point estimate is beyond its tolerance; p is a Mann-Whitney rank test, shown for information."]
    return "\n".join(out) + "\n"


def write_outputs(result: dict, out_dir: Path, runs: tuple[pd.DataFrame, pd.DataFrame] | None = None) -> dict[str, Path]:
    """compare.json, compare.md, compare.html; the chart shows the same measured requests as the numbers."""
    from bench.analysis.charts import compare_chart

    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {"json": out_dir / "compare.json", "md": out_dir / "compare.md", "html": out_dir / "compare.html"}
    paths["json"].write_text(json.dumps(result, indent=2))
    md = markdown(result)
    paths["md"].write_text(md)
    db, dc = runs if runs is not None else measured_runs(Path(result["baseline"]), Path(result["candidate"]))
    svg = compare_chart(db, dc, out_dir)
    rows = "".join(
        f"<tr><td>{r['model']}</td><td>{r['metric']} {r['stat']}</td><td>{_f(r['baseline'])}</td><td>{_f(r['candidate'])}</td>"
        f"<td>{_f(r['diff'])} [{_f(r['ci_low'])}, {_f(r['ci_high'])}]</td><td>{r['p_value']:.3g}</td><td>{r['tolerance']}</td>"
        f"<td class='{r['verdict'].split(',')[0].split(' (')[0].replace(' ', '-')}'>{r['verdict']}</td></tr>" for r in result["rows"])
    from bench.analysis.page import render_page

    title = "Regression" if result["regressions"] else "No regression"
    paths["html"].write_text(render_page(title,
        f"<h1>{title}</h1><p>baseline {html.escape(result['baseline'])} → candidate {html.escape(result['candidate'])}</p>"
        "<table><tr><th>model</th><th>metric</th><th>baseline</th><th>candidate</th><th>diff [95% CI]</th><th>p</th><th>tolerance</th><th>verdict</th></tr>"
        f"{rows}</table><h2>Distributions</h2>{svg}"))
    return paths

"""``bench compare BASELINE CANDIDATE``: the latency regression gate, with four outcomes.

For every model and metric: baseline and candidate statistics and a distribution-free 95 %
interval of their difference (``bench.intervals``: order statistics for percentiles,
Newcombe for error rates, MOVER to combine, clusters counted by their effective number). Each
row is one of

- ``regression``: the interval of the worsening lies beyond 0 and its point estimate beyond the tolerance;
- ``equivalent``: the whole interval lies below the tolerance ("no regression larger than +10 % p95, at 95 %");
- ``improvement``: the whole interval lies on the better side of 0;
- ``undecided``: anything else, with the reason and how much longer a run would need to decide it.

The old rule judged p99 only from 2,000 samples and called the rest "no regression"; an undecided
row is never a pass. A Mann-Whitney rank test is shown for information only: a tail that doubles
while the median stays put moves it too little to notice.

Exit codes: 0 every row equivalent or improved, 1 a regression, 3 undecided and nothing regressed
(``--undecided pass|fail`` maps it to 0 or 1), 2 the runs cannot be compared.
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

from bench import intervals as iv
from bench.analysis.results import read_run_json
from bench.analysis.summaries import MIN_SAMPLES, gap_summaries, group_rows, live_rows
from bench.errors import InputError
from bench.metrics import FIRST_PART
from bench.schema import ErrorClass
from bench.stats import PERCENTILES

DEFAULT_TOLERANCES = [
    "ttfc_ms:p50:+10%",
    "ttfc_ms:p95:+10%",
    "ttfc_ms:p99:+15%",
    "ttfv_ms:p95:+10%",
    "e2e_ms:p95:+10%",
    "tpot_ms:p50:+10%",
    "gaps_ms:p99:+15%",
    "decode_tps:p50:-10%",
    "error_rate:+1pp",
]
from bench.metrics import GATED, LOWER_IS_BETTER, PAIRED  # noqa: E402  (the catalogue's names and directions)

_TOL = re.compile(
    rf"^(?P<metric>[a-z0-9_]+)(?::(?P<stat>{'|'.join([*PERCENTILES, 'mean'])}))?:(?P<sign>[+-])(?P<value>[0-9.]+)(?P<unit>%|pp|ms)$"
)
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
        raise InputError(
            f"tolerance {text!r}: expected METRIC:STAT:+N% (e.g. ttfc_ms:p95:+10%), error_rate:+0.5pp or decode_tps:p50:-10%"
        )
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
    verdict: str  # one of VERDICTS
    n_base: int
    n_cand: int
    reason: str = ""  # why undecided, or the bound an equivalence was shown at
    allowed: float | None = None  # the tolerance as an absolute worsening (ms, tok/s or a fraction)
    n_eff_base: float | None = None  # effective samples after clustering (gaps of a stream, turns of a conversation)
    n_eff_cand: float | None = None
    more_requests: int | None = None  # undecided: more requests a model the candidate would need (80 % power)
    more_s: float | None = None  # ... and the run time that takes at the candidate's request rate


VERDICTS = ("regression", "improvement", "equivalent", "undecided")
EXIT = {"ok": 0, "regression": 1, "not comparable": 2, "undecided": 3}


def _stat(v: np.ndarray, stat: str) -> float:
    return float(np.mean(v)) if stat == "mean" else float(np.percentile(v, float(stat[1:])))


@dataclass(frozen=True)
class Sample:
    """One side of a row: raw values, and the clusterings they may be correlated within."""

    values: np.ndarray
    clusters: tuple[np.ndarray, ...] = ()
    point: float | None = None  # the exact statistic when ``values`` is a subset (pooled gaps)
    requests: int = 0  # requests behind the values (for the plan: values per request)


def interval(s: Sample, stat: str, alpha: float = iv.ALPHA) -> iv.Interval:
    """The statistic's distribution-free interval, with the most pessimistic of the clusterings."""
    if stat == "mean":
        cands = [iv.mean_interval(s.values, c, alpha) for c in (s.clusters or (None,))]
        return min(cands, key=lambda x: x.n_eff)
    q = float(stat[1:])
    xs = np.sort(s.values)
    best = None
    for c in s.clusters or (None,):
        one = iv.quantile_interval(s.values, q, c, alpha, point=s.point, xs=xs)
        if best is None or one.n_eff < best.n_eff:
            best = one
    assert best is not None
    return best


def _verdict(tol: Tolerance, base: float, diff: float, lo: float, hi: float) -> tuple[str, str, float]:
    """(verdict, reason, allowed worsening). ``regression``: the worsening's interval lies beyond 0
    and its point estimate beyond the tolerance; ``equivalent``: the whole interval lies below the
    tolerance (TOST-style: no regression larger than it, at 95 %); ``improvement``: the whole
    interval is on the better side of 0; ``undecided``: anything else, never counted as a pass."""
    lower_better = tol.metric in LOWER_IS_BETTER
    worse = diff if lower_better else -diff
    worse_lo, worse_hi = (lo, hi) if lower_better else (-hi, -lo)  # bounds of the worsening
    allowed = tol.value * abs(base) if tol.unit == "%" else tol.value
    if worse_lo > 0 and worse > allowed:
        return "regression", f"worse by at least {_f(worse_lo)} (95 %), beyond the tolerance {_f(allowed)}", allowed
    if worse_hi < 0:
        return "improvement", f"better by at least {_f(-worse_hi)} (95 %)", allowed
    if worse_hi < allowed:
        return "equivalent", f"no worsening larger than {_f(worse_hi)} (95 %; tolerance {_f(allowed)})", allowed
    if not math.isfinite(worse_hi) or not math.isfinite(worse_lo):
        return "undecided", "too few samples for a bound on this statistic", allowed
    if worse_lo > 0:
        return "undecided", f"worse (at least {_f(worse_lo)}), but the interval reaches past the tolerance {_f(allowed)}", allowed
    return "undecided", f"the interval [{_f(worse_lo)}, {_f(worse_hi)}] straddles the tolerance {_f(allowed)}", allowed


def judge(
    a: np.ndarray | Sample, b: np.ndarray | Sample, tol: Tolerance, seed: int = 0, alpha: float = iv.ALPHA
) -> tuple[float, float, float, float, float, str]:
    """One row of the gate from raw samples: (baseline, candidate, low, high, rank-test p, verdict)."""
    j = judge_row(a if isinstance(a, Sample) else Sample(a), b if isinstance(b, Sample) else Sample(b), tol, alpha)
    return j["baseline"], j["candidate"], j["ci_low"], j["ci_high"], j["p_value"], j["verdict"]


def judge_row(a: Sample, b: Sample, tol: Tolerance, alpha: float = iv.ALPHA, rank_test: bool = True) -> dict:
    ia, ib = interval(a, tol.stat, alpha), interval(b, tol.stat, alpha)
    d, lo, hi = iv.mover(ia, ib)
    p = float(sst.mannwhitneyu(_cap(a.values), _cap(b.values, 1), alternative="two-sided").pvalue) if rank_test else math.nan
    verdict, reason, allowed = _verdict(tol, ia.point, d, lo, hi)
    return {
        "baseline": ia.point,
        "candidate": ib.point,
        "diff": d,
        "ci_low": lo,
        "ci_high": hi,
        "p_value": p,
        "verdict": verdict,
        "reason": reason,
        "allowed": allowed,
        "ia": ia,
        "ib": ib,
    }


def more_needed(j: dict, tol: Tolerance, b: Sample, rate: float | None) -> tuple[int | None, float | None]:
    """An undecided row: requests a model (and seconds at ``rate`` requests/s) the candidate would
    need for the interval to narrow enough to decide, if the difference stays where it is. The
    interval narrows as 1/sqrt(n); a side without a bound is extrapolated from its quantile spacing."""
    if j["verdict"] != "undecided":
        return None, None
    ia, ib = j["ia"], j["ib"]
    lower_better = tol.metric in LOWER_IS_BETTER
    worse = j["diff"] if lower_better else -j["diff"]
    allowed = j["allowed"]
    target = (allowed - worse) if worse < allowed else worse
    if target <= 0:
        return None, None

    def h(x: iv.Interval, s: Sample) -> float:
        w = max(x.point - x.low, x.high - x.point)
        if not math.isfinite(w) and tol.stat != "mean":
            w = iv.tail_density_width(s.values, float(tol.stat[1:]))
        return w

    if math.isfinite(max(ia.point - ia.low, ia.high - ia.point)) and max(ia.point - ia.low, ia.high - ia.point) >= target:
        return -1, None  # the baseline's own interval is wider than the margin: no candidate length can decide it
    half = math.hypot(h(ia, b), h(ib, b))  # the candidate's spread stands in for a baseline side without bounds
    if not math.isfinite(half) or half <= 0:
        return None, None
    have = max(1, b.requests or ib.n)
    need = have * (half / target) ** 2
    if tol.stat != "mean" and not (ia.finite and ib.finite):
        per_request = ib.n_eff / have  # effective samples a request brings (gaps: many; clustered turns: under 1)
        need = max(need, iv.min_n_for_bounds(float(tol.stat[1:])) / max(per_request, 1e-9))
    more = max(1, int(math.ceil(need - have)))
    return more, (more / rate if rate else None)


MAX_TEST_SAMPLES = 50_000  # rank test on a random subsample past this; percentiles and their intervals use all
GAP_CLUSTER_ROWS = 3000  # gap intervals from every gap of up to this many random streams a model (clusters whole)


def _cap(v: np.ndarray, seed: int = 0) -> np.ndarray:
    if v.size <= MAX_TEST_SAMPLES:
        return v
    return np.random.default_rng(seed).choice(v, MAX_TEST_SAMPLES, replace=False)


def _windows(t: np.ndarray) -> np.ndarray:
    """Requests in the same stretch of the run (at least 1 s, 30 stretches a run) share a cluster:
    a busy second slows all of them."""
    if t.size == 0:
        return t.astype(np.int64)
    span = float(t.max() - t.min())
    return np.floor((t - t.min()) / max(1.0, span / 30)).astype(np.int64)


def request_sample(df: pd.DataFrame, metric: str) -> Sample:
    """A per-request metric's raw samples (as ``metric_samples`` reads them) with their clusters:
    the conversation a turn belongs to, and the stretch of the run it started in."""
    err = df["error"]
    rows = err.isna() | (err == ErrorClass.cancelled) if metric in FIRST_PART else err.isna()
    sel = df.loc[rows, [metric, "conversation_id", "t_wall_start"]].dropna(subset=[metric])
    # integer codes: np.unique over an object array of ids compares Python strings (seconds at 10^6 requests)
    conv = pd.factorize(sel["conversation_id"], use_na_sentinel=False)[0]
    clusters = (conv, _windows(sel["t_wall_start"].to_numpy(dtype=float)))
    return Sample(sel[metric].to_numpy(dtype=float), clusters, requests=len(sel))


def paired_samples(run_dir: Path, run: pd.DataFrame) -> dict[str, Sample]:
    """Per model: each paired turn's ``route_overhead_ms`` (``bench run --backend``), clustered by
    conversation and stretch of the run as request samples are; empty without a backend."""
    from bench.analysis.overhead import overhead_samples

    out = {}
    for model, g in overhead_samples(run_dir, run).items():
        conv = pd.factorize(g["conversation_id"], use_na_sentinel=False)[0]
        clusters = (conv, _windows(g["t_wall_start_route"].to_numpy(dtype=float)))
        out[model] = Sample(g["route_overhead_ms"].to_numpy(dtype=float), clusters, requests=len(g))
    return out


def gap_samples(run: pd.DataFrame, stat: str, seed: int) -> dict[str, Sample]:
    """Per model: the successful requests' gaps (ms), clustered by stream.

    The point estimate is the exact pooled statistic over every gap (``bench.analysis.gapstats``,
    one streamed pass); the interval comes from every gap of up to GAP_CLUSTER_ROWS random streams,
    whole streams, so that the correlation of one stream's gaps is in it.
    """
    ok = run.loc[run["error"].isna().to_numpy(), ["model"]]  # the model and the row positions: not every column
    store = run.attrs.get("gaps")
    if store is None or ok.empty:
        return {}
    stats = gap_summaries(ok, "model")
    rng = np.random.default_rng(seed)
    out = {}
    for m, rows in group_rows(ok, "model").items():
        pick = rows if rows.size <= GAP_CLUSTER_ROWS else np.sort(rng.choice(rows, GAP_CLUSTER_ROWS, replace=False))
        values, owner = store.sample(pick, 1 << 62, seed, owners=True)
        st = stats[m].stats
        out[m] = Sample(values / 1000.0, (owner,), point=st.get(stat) if st.get("n") else None, requests=int(rows.size))
    return out


def request_rate(df: pd.DataFrame) -> dict[str, float]:
    """Measured requests a second per model (what the plan turns samples into run time with)."""
    if df.empty:
        return {}
    t = df["t_wall_start"].to_numpy(dtype=float)
    span = max(1.0, float(t.max() - t.min()))
    return {m: n / span for m, n in df.groupby("model", observed=True).size().items()}


def read_columns(tolerances: list[Tolerance]) -> list[str] | None:
    """The record columns a gate with these tolerances reads (None: every one, for paired turns): the
    metrics, what clusters their samples (conversation, start time), the TTFC chart, and the gap file."""
    if any(t.metric in PAIRED for t in tolerances):
        return None
    from bench.analysis.summaries import READ_COLS

    cols = ["model", "error", "conversation_id", "t_wall_start", "connect_ms", "e2e_ms", "ttfc_ms"]
    cols += [t.metric for t in tolerances if t.metric in READ_COLS]
    if any(t.metric == "gaps_ms" for t in tolerances):
        cols.append("gaps_us")
    return list(dict.fromkeys(cols))


def measured_runs(
    base_dir: Path, cand_dir: Path, warmup: float | None = None, columns: list[str] | None = None
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Both runs' measured requests: warm-up and requests cut off by the run's end left out.
    ``columns``: only these (``read_columns``), else every column the report reads.

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
    return open_run(base_dir, warmup, columns).on_wire, open_run(
        cand_dir, warmup, columns
    ).on_wire  # streams cut off at the end keep their TTFC


def sequential_alpha(base_dir: Path, cand_dir: Path) -> tuple[float, str]:
    """The alpha to judge at: a candidate run by ``--until-decided`` against this same baseline has
    already looked k times and spent its errors; its final judgement uses the alpha it recorded."""
    seq = read_run_json(cand_dir).get("sequential") or {}
    if seq.get("baseline") and Path(seq["baseline"]).resolve() == Path(base_dir).resolve() and seq.get("final_alpha"):
        a = float(seq["final_alpha"])
        return a, f"sequential run: {len(seq.get('looks', []))} look(s) taken, judged at alpha {a:.4f} (errors spent per look)"
    return iv.ALPHA, ""


def compare_runs(
    base_dir: Path,
    cand_dir: Path,
    tolerances: list[Tolerance],
    warmup: float | None = None,
    runs: tuple[pd.DataFrame, pd.DataFrame] | None = None,
    alpha: float = iv.ALPHA,
    noise_from: Path | None = None,
) -> dict:
    """The gate's verdict per model and tolerance; ``runs``: ``measured_runs`` already loaded.

    ``alpha``: the error allowed for each bound's side pair (a sequential run's looks pass a spent one).
    """
    db, dc = runs if runs is not None else measured_runs(base_dir, cand_dir, warmup)
    models_b, models_c = set(db["model"]), set(dc["model"])
    if models_b != models_c:
        raise NotComparable(
            f"different models: only in baseline {sorted(models_b - models_c)}, only in candidate {sorted(models_c - models_b)}"
        )
    rows: list[Row] = []
    skipped: list[dict] = []
    sds: dict[tuple[str, str, str], float] = {}
    noise_note = ""
    if noise_from is not None:
        from bench.decisions import noise

        digest = (read_run_json(cand_dir).get("scenario") or {}).get("sha256")
        ids = {str(read_run_json(d).get("run_id", Path(d).name)) for d in (base_dir, cand_dir)}
        sds, n_runs = noise.between_run_sd(noise_from, digest, ids)
        gap_tols = sorted({t.stat for t in tolerances if t.metric == "gaps_ms"})
        sds.update(noise.between_run_gap_sd(noise_from, digest, ids, gap_tols) if n_runs >= noise.MIN_RUNS else {})
        noise_note = noise.describe(sds, n_runs, noise_from)
    gap_stats = sorted({t.stat for t in tolerances if t.metric == "gaps_ms"})
    gaps_b = {s: gap_samples(db, s, 0) for s in gap_stats}
    gaps_c = {s: gap_samples(dc, s, 1) for s in gap_stats}
    rate_c = request_rate(dc)
    paired = any(t.metric in PAIRED for t in tolerances)
    pairs_b = paired_samples(base_dir, db) if paired else {}
    pairs_c = paired_samples(cand_dir, dc) if paired else {}
    for model in sorted(models_b):
        gb, gc = db[(db["model"] == model).to_numpy()], dc[(dc["model"] == model).to_numpy()]
        nb, nc = int(gb["error"].isna().sum()), int(gc["error"].isna().sum())
        if min(nb, nc) < MIN_SAMPLES:
            skipped.append(
                {
                    "model": model,
                    "baseline": nb,
                    "candidate": nc,
                    "reason": f"{model.split('/')[-1]}: {min(nb, nc)} < {MIN_SAMPLES} successful requests; run longer or restrict --models",
                }
            )
            continue
        for tol in tolerances:
            if tol.metric == "error_rate":
                rows.append(_error_row(model, tol, live_rows(gb), live_rows(gc), alpha))
                continue
            if tol.metric == "gaps_ms":
                a, b = gaps_b[tol.stat].get(model), gaps_c[tol.stat].get(model)
                if a is None or b is None or a.point is None or b.point is None:
                    continue
            elif tol.metric in PAIRED:
                a, b = pairs_b.get(model, Sample(np.empty(0))), pairs_c.get(model, Sample(np.empty(0)))
                if min(a.values.size, b.values.size) < MIN_SAMPLES:  # never a silent pass: counted as undecided
                    skipped.append(
                        {
                            "model": model,
                            "tolerance": tol.text,
                            "baseline": int(a.values.size),
                            "candidate": int(b.values.size),
                            "reason": f"{model.split('/')[-1]} {tol.text}: {a.values.size} paired turns in the baseline, "
                            f"{b.values.size} in the candidate (< {MIN_SAMPLES}); run both with --backend URL",
                        }
                    )
                    continue
            else:
                a, b = request_sample(gb, tol.metric), request_sample(gc, tol.metric)
            if min(a.values.size, b.values.size) < MIN_SAMPLES:
                continue  # e.g. TTFV for a model that does not reason
            j = judge_row(a, b, tol, alpha)
            sd = sds.get((model, tol.metric, tol.stat))
            if sd:
                from bench.decisions.noise import widen

                j["ci_low"], j["ci_high"] = widen(j["diff"], j["ci_low"], j["ci_high"], sd)
                j["verdict"], j["reason"], j["allowed"] = _verdict(tol, j["baseline"], j["diff"], j["ci_low"], j["ci_high"])
                j["reason"] += f"; widened by run-to-run spread (sd {sd:.2f})"
            more, more_s = more_needed(j, tol, b, rate_c.get(model))
            if more == -1:
                j["reason"] += "; the baseline is too short to decide this (rerun it longer: bench plan BASELINE)"
                more = None
            va, vb = j["baseline"], j["candidate"]
            rows.append(
                Row(
                    model,
                    tol.metric,
                    tol.stat,
                    va,
                    vb,
                    vb - va,
                    j["ci_low"],
                    j["ci_high"],
                    (vb - va) / va if va else None,
                    j["p_value"],
                    tol.text,
                    j["verdict"],
                    int(a.requests or a.values.size),
                    int(b.requests or b.values.size),
                    j["reason"],
                    j["allowed"],
                    j["ia"].n_eff,
                    j["ib"].n_eff,
                    more,
                    more_s,
                )
            )
    if not rows and not any(x.get("tolerance") for x in skipped):  # a tolerance without its pairs is undecided, not this
        raise NotComparable("no model has enough successful requests in both runs: " + "; ".join(x["reason"] for x in skipped))
    out = summarize(rows, skipped, base_dir, cand_dir, tolerances)
    out["alpha"] = alpha
    out["prefix_cache"], out["warnings"] = cache_warnings(base_dir, cand_dir)
    out["noise"] = {"note": noise_note, "sd": {"|".join(k): v for k, v in sds.items()}} if noise_from is not None else None
    if noise_note:
        out["warnings"].append(noise_note)
    return out


CACHE_RATE_POINTS = 5.0  # hit rates this many points apart: the runs did not see the same cache


def cache_warnings(base_dir: Path, cand_dir: Path) -> tuple[dict, list[str]]:
    """What a server's prefix cache may have done to the comparison: both runs' hit rates (where the
    server publishes them) and whether the candidate replayed the baseline's exact prompts."""
    from bench.servermetrics import prefix_cache

    rates = {"baseline": prefix_cache(base_dir), "candidate": prefix_cache(cand_dir)}
    warnings = []
    pb, pc = rates["baseline"], rates["candidate"]
    rb, rc = (pb["hit_rate"] if pb else None), (pc["hit_rate"] if pc else None)
    if rb is not None and rc is not None and abs(rc - rb) * 100 > CACHE_RATE_POINTS:
        warnings.append(
            f"prefix cache hit rate {rb:.0%} in the baseline, {rc:.0%} in the candidate: the runs did not see the same "
            "cache, and TTFC differences may be the cache's, not the build's (--cache-salt run on both, or restart the server)"
        )
    metas = [read_run_json(d) for d in (base_dir, cand_dir)]
    modes = [((m.get("route") or {}).get("cache_salt") or {}).get("mode", "none") for m in metas]
    embedded = all((m.get("target") or {}).get("embedded") for m in metas)  # a fresh target each run: no cache carried over
    if modes == ["none", "none"] and not embedded and metas[0].get("host") == metas[1].get("host"):
        warnings.append(
            "both runs sent the scenario's exact prompts (--cache-salt none): against a server with a prefix cache "
            "the later run reads what the earlier one warmed; --cache-salt run gives each run prefixes of its own"
        )
    return rates, warnings


def summarize(rows: list[Row], skipped: list[dict], base_dir: Path, cand_dir: Path, tolerances: list[Tolerance]) -> dict:
    regressions = [r for r in rows if r.verdict == "regression"]
    undecided = [r for r in rows if r.verdict == "undecided"]
    verdict = "regression" if regressions else ("undecided" if undecided or skipped else "ok")
    waits = [r.more_s for r in undecided if r.more_s is not None]
    return {
        "baseline": str(base_dir),
        "candidate": str(cand_dir),
        "rows": [asdict(r) for r in rows],
        "regressions": len(regressions),
        "undecided": len(undecided) + len(skipped),
        "verdict": verdict,
        "decide_in_s": (max(waits) if waits and len(waits) == len(undecided) else None),
        "skipped": skipped,
        "min_samples": MIN_SAMPLES,
        "tolerances": [t.text for t in tolerances],
    }


def exit_code(result: dict, undecided: str = "exit3") -> int:
    """0: every row equivalent or improved; 1: a regression; 3: undecided, nothing regressed
    (``--undecided pass`` makes that 0, ``--undecided fail`` 1)."""
    v = result["verdict"]
    if v == "undecided":
        return {"pass": 0, "fail": 1}.get(undecided, 3)
    return EXIT[v]


def _error_row(model: str, tol: Tolerance, gb: pd.DataFrame, gc: pd.DataFrame, alpha: float = iv.ALPHA) -> Row:
    """Newcombe's interval for the difference of two error rates (Wilson on each side, MOVER)."""
    eb, ec = gb["error"].notna().to_numpy(bool), gc["error"].notna().to_numpy(bool)
    ia, ib = iv.proportion_interval(int(eb.sum()), eb.size, alpha), iv.proportion_interval(int(ec.sum()), ec.size, alpha)
    d, lo, hi = iv.mover(ia, ib)
    pb, pc = ia.point, ib.point
    pooled = (eb.sum() + ec.sum()) / max(1, eb.size + ec.size)
    se0 = np.sqrt(pooled * (1 - pooled) * (1 / max(1, eb.size) + 1 / max(1, ec.size)))
    p = float(2 * sst.norm.sf(abs((pc - pb) / se0))) if se0 > 0 else 1.0
    verdict, reason, allowed = _verdict(tol, pb, d, lo, hi)
    more = None
    if verdict == "undecided":
        target = (allowed - d) if d < allowed else d
        half = max(hi - d, d - lo)
        if max(ia.high - ia.point, ia.point - ia.low) >= target:
            reason += "; the baseline is too short to decide this (rerun it longer: bench plan BASELINE)"
        elif target > 0 and half > 0:
            more = max(1, int(math.ceil(ec.size * ((half / target) ** 2 - 1))))
    return Row(
        model,
        "error_rate",
        "mean",
        float(pb),
        float(pc),
        float(d),
        float(lo),
        float(hi),
        None,
        p,
        tol.text,
        verdict,
        int(eb.size),
        int(ec.size),
        reason,
        allowed,
        float(eb.size),
        float(ec.size),
        more,
        None,
    )


def _f(v, pct=False) -> str:
    from bench.analysis.page import num

    return num(v, pct=True, signed=True) if pct else num(v, digits=2)


MARK = {
    "regression": "❌ regression",
    "improvement": "✅ improvement",
    "equivalent": "✅ equivalent",
    "undecided": "❔ undecided",
}


def duration_text(s: float | None) -> str:
    if s is None or not math.isfinite(s):
        return "an unknown time"
    return f"{s:.0f} s" if s < 120 else f"{s / 60:.0f} min"


def headline(result: dict) -> str:
    n = len(result["rows"]) + len(result.get("skipped", []))
    if result["verdict"] == "regression":
        return f"❌ regression ({result['regressions']} of {n} rows)"
    if result["verdict"] == "undecided":
        more = f"; run about {duration_text(result['decide_in_s'])} more to decide" if result.get("decide_in_s") else ""
        return f"❔ undecided: {result['undecided']} of {n} rows could not be decided, none regressed{more}"
    return f"✅ no regression: every row equivalent within its tolerance or improved ({n} rows, 95 %)"


def markdown(result: dict) -> str:
    out = [
        f"### Latency comparison: {headline(result)}",
        "",
        f"baseline `{Path(result['baseline']).name}` → candidate `{Path(result['candidate']).name}`",
        "",
        *[f"> ⚠️ {w}\n" for w in result.get("warnings", [])],
        "| model | metric | baseline | candidate | diff [95% CI] | rel | n (eff.) | tolerance | verdict | why |",
        "|---|---|---:|---:|---|---:|---:|---|---|---|",
    ]
    for r in result["rows"]:
        unit = " pp" if r["metric"] == "error_rate" else ""
        scale = 100 if r["metric"] == "error_rate" else 1
        diff = f"{_f(r['diff'] * scale)}{unit} [{_f(r['ci_low'] * scale)}, {_f(r['ci_high'] * scale)}]"
        why = r.get("reason", "")
        if r.get("more_requests"):
            why += (
                f"; about {r['more_requests']:,} more requests"
                + (f" ({duration_text(r['more_s'])})" if r.get("more_s") else "")
                + " to decide"
            )
        neff = f"{r['n_base']} / {r['n_cand']}"
        if r.get("n_eff_base") is not None and r["metric"] != "error_rate":
            neff += f" ({r['n_eff_base']:.0f} / {r['n_eff_cand']:.0f})"
        out.append(
            f"| {r['model'].split('/')[-1]} | {r['metric']} {r['stat']} | {_f(r['baseline'] * scale)} | {_f(r['candidate'] * scale)} | "
            f"{diff} | {_f(r['rel_diff'], pct=True)} | {neff} | {r['tolerance']} | {MARK.get(r['verdict'], r['verdict'])} | {why} |"
        )
    for sk in result.get("skipped", []):
        out.append(f"\nNot compared (counted as undecided): {sk['reason']}")
    out += [
        "",
        "Times in ms. Each interval is distribution-free (order statistics for percentiles, Wilson/Newcombe for "
        "error rates), combined by MOVER, with samples that cluster (gaps of one stream, turns of one conversation, "
        "requests of one stretch of the run) counted by their effective number. regression: the interval excludes 0 and "
        "the estimate is beyond the tolerance; equivalent: the whole interval is below the tolerance; undecided: neither, "
        "never a pass (exit 3).",
    ]
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
        f"<td class='{r['verdict']}'>{r['verdict']}</td><td>{html.escape(r.get('reason', ''))}</td></tr>"
        for r in result["rows"]
    )
    from bench.analysis.page import render_page

    title = {"regression": "Regression", "undecided": "Undecided", "ok": "No regression"}[result["verdict"]]
    paths["html"].write_text(
        render_page(
            title,
            f"<h1>{title}</h1><p>{html.escape(headline(result))}</p><p>baseline {html.escape(result['baseline'])} → candidate {html.escape(result['candidate'])}</p>"
            "<table><tr><th>model</th><th>metric</th><th>baseline</th><th>candidate</th><th>diff [95% CI]</th><th>p</th><th>tolerance</th><th>verdict</th><th>why</th></tr>"
            f"{rows}</table><h2>Distributions</h2>{svg}",
        )
    )
    return paths

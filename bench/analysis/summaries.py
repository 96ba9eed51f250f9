"""Numbers from raw records, with the definitions of METRICS.md. No plotting, no I/O but reading.

Every percentile is computed exactly from raw samples (numpy's default linear interpolation),
never from buckets. Headline numbers exclude the warm-up and requests cut off by the run's end.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from bench.analysis.gapstats import PCTS, GapSummary, empty_stats, sample, summarize
from bench.analysis.results import GAP_COLUMNS
from bench.metrics import FIRST_PART, LATENCY_COLUMNS, PAIRED, PER_REQUEST, READER
from bench.schema import READ_COLUMNS, ErrorClass
from bench.slo import Slo

LAT_COLS = LATENCY_COLUMNS  # per-request latencies, summarized by percentile (the catalogue's order)
# what the report reads by default: the record's read columns (bench.schema.RequestRecord), then the per-request
# gap statistics finalize derives (bench.analysis.results.GAP_COLUMNS)
READ_COLS = [*READ_COLUMNS, *GAP_COLUMNS]
from bench.records import NOT_LIVE  # noqa: E402,F401  (cut off, never sent, lost with a worker: not failures of the target)

MIN_SAMPLES = 20  # fewer finished requests than this: a percentile is not judged met (nor compared)
GAP_STAT_COLUMN = {
    "p50": "gap_p50_ms",
    "p90": "gap_p90_ms",
    "p95": "gap_p95_ms",
    "p99": "gap_p99_ms",
    "max": "gap_max_ms",
    "mean": "icl_ms",
}  # a gaps_ms SLO judged per request by that request's own statistic


class GapStore:
    """Where a run's inter-chunk gaps are: ``gaps.u32`` (uint32 microseconds) and each row's slice.

    Kept out of the DataFrame: a million arrays of gaps would cost more than the gaps, and 10^8
    gaps never need to be in memory at once (``bench.analysis.gapstats`` streams them). pandas carries the
    store in ``df.attrs["gaps"]`` through filtering and grouping; rows are found by their original
    position (the DataFrame's index).
    """

    def __init__(self, path: Path, offsets: np.ndarray, counts: np.ndarray) -> None:
        self.path = path
        self.starts = offsets.astype(np.int64)
        self.lengths = counts.astype(np.int64)

    def __deepcopy__(self, memo) -> GapStore:
        return self  # read-only: pandas deep-copies attrs on every operation, which must not copy the gaps

    def summaries(self, groups: list[np.ndarray]) -> list[GapSummary]:
        """Exact gap stats of each group of row positions, in one streamed pass over the file."""
        labels = np.full(len(self.lengths), -1, dtype=np.int64)
        for g, rows in enumerate(groups):
            labels[rows] = g
        return summarize(self.path, self.starts, self.lengths, labels, len(groups))

    def sample(self, rows: np.ndarray, k: int, seed: int = 0, owners: bool = False):
        """A uniform sample of k of these rows' gaps (uint32 us; all of them if fewer); ``owners``:
        with the index (into sorted ``rows``) of the row each gap belongs to."""
        return sample(self.path, self.starts, self.lengths, rows, k, seed, owners=owners)


READ_BATCH = 8  # columns read and converted at a time (see load_records)


def load_records(run_dir: Path, columns: list[str] | None = None) -> pd.DataFrame:
    import pyarrow as pa
    import pyarrow.parquet as pq

    run_dir = Path(run_dir)
    present = set(pq.read_schema(run_dir / "requests.parquet").names)
    wanted = [c for c in (columns or READ_COLS) if c != "gaps_us"]
    cols = [c for c in wanted if c in present]  # a run folder of an older version lacks newer columns
    want_gaps = columns is None or "gaps_us" in columns
    file = pq.ParquetFile(run_dir / "requests.parquet")
    gaps = None
    if want_gaps:
        where = file.read(columns=["gaps_offset", "gaps_count"])
        gaps = GapStore(run_dir / "gaps.u32", where.column("gaps_offset").to_numpy(), where.column("gaps_count").to_numpy())
        del where
    # READ_BATCH columns at a time, each converted and its Arrow memory given back before the next: the
    # whole table at once peaked at 850 MB for 10^6 records (Arrow's table, its decode buffers and the
    # frame together), in batches 456 MB, and 0.75 s instead of 1.3-1.7 s (benchmarks/report_1m.py's folder).
    # Repeated strings (model, error class, conversation ids) become categoricals: a fraction of the memory.
    columns_read: dict[str, pd.Series] = {}
    for i in range(0, len(cols), READ_BATCH):
        part = file.read(columns=cols[i : i + READ_BATCH])
        frame = part.to_pandas(strings_to_categorical=True, split_blocks=True, self_destruct=True)
        del part
        columns_read.update((c, frame[c]) for c in frame.columns)
        del frame
        pa.default_memory_pool().release_unused()  # Arrow's allocator keeps the decoded pages otherwise
    df = pd.DataFrame(columns_read, copy=False) if columns_read else pd.DataFrame(index=pd.RangeIndex(file.metadata.num_rows))
    del columns_read
    df.attrs["gaps"] = gaps
    for c in wanted:
        if c not in df:
            df[c] = np.nan
    if "t_wall_start" in df and "e2e_ms" in df:  # the wall stamp is taken before any connection is opened
        connect = df["connect_ms"].fillna(0) if "connect_ms" in df else 0.0
        df["t_wall_end"] = df["t_wall_start"] + (connect + df["e2e_ms"].fillna(0)) / 1000.0
    return df


def stats(values: pd.Series | np.ndarray) -> dict[str, float | None]:
    v = np.asarray(values).astype(float, copy=False)
    v = v[~np.isnan(v)]
    if v.size == 0:
        return empty_stats()
    out: dict[str, float | None] = dict(zip(PCTS, map(float, np.percentile(v, list(PCTS.values())))))  # one partition
    out["max"], out["mean"], out["n"] = float(v.max()), float(v.mean()), int(v.size)
    return out


# what model_summary reads: each group is taken with these columns only (a record carries 40; a copy of all of
# them per model was 0.5 s and 230 MB at 10^6 records)
SUMMARY_COLS = [
    "error",
    "t_wall_start",
    "t_wall_end",
    "conversation_id",
    *LAT_COLS,
    "decode_tps",
    "output_tokens",
    "chunks",
    "intended_delay_ms",
    "token_source",
    "requested_tokens",
    "requested_input_tokens",
    "prompt_tokens",
    "prompt_chars",
    *GAP_STAT_COLUMN.values(),
]


def groups_of(df: pd.DataFrame, key: str, columns: list[str]):
    """(value of ``key``, its rows with ``columns`` only): one take per group of just those columns."""
    cols = [df.columns.get_loc(c) for c in dict.fromkeys(columns) if c in df.columns]
    for value, pos in df.groupby(key, observed=True).indices.items():
        yield value, df.iloc[pos, cols]


def group_rows(df: pd.DataFrame, key: str) -> dict:
    """Per value of ``key``: the original row positions (what ``GapStore`` reads gaps by)."""
    index = df.index.to_numpy()
    return {k: index[pos] for k, pos in df.groupby(key, observed=True).indices.items()}


def gap_summaries(df: pd.DataFrame, key: str) -> dict[str, GapSummary]:
    """Per value of ``key`` (e.g. model): exact pooled gap stats (ms) and CDF points, one pass."""
    store = df.attrs.get("gaps")
    parts = group_rows(df, key)
    if store is None:
        return {k: GapSummary.empty() for k in parts}
    return dict(zip(parts, store.summaries(list(parts.values()))))


def gap_stats_ms(df: pd.DataFrame) -> dict[str, float | None]:
    store = df.attrs.get("gaps")
    if store is None or df.empty:
        return empty_stats()
    return store.summaries([df.index.to_numpy()])[0].stats


def split_warmup(df: pd.DataFrame, warmup_s: float) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(measured, warm-up): requests that started in the first ``warmup_s`` seconds are warm-up."""
    if df.empty or not warmup_s:
        return df, df.iloc[0:0]
    t = df["t_wall_start"]
    t0 = t.min()
    if t.is_monotonic_increasing:  # records in start order (as finalize_records writes them): two views, no copy
        k = int(np.searchsorted(t.to_numpy(), t0 + warmup_s, side="left"))
        return df.iloc[k:], df.iloc[:k]
    mask = t < t0 + warmup_s
    return df[~mask], df[mask]


def live_rows(df: pd.DataFrame) -> pd.DataFrame:
    """Requests the target answered or failed: not cut off by the run's end, not left unsent."""
    return df[~df["error"].isin(NOT_LIVE)]


def metric_samples(df: pd.DataFrame, metric: str) -> np.ndarray:
    """The raw samples of a per-request metric, as every report, gate and plan reads them.

    Successful requests; for the moments known at the first part (TTFC, TTFB, TTFV), also streams
    the run's end cut off after their first part: leaving them out would drop the slowest.
    """
    err = df["error"]
    rows = err.isna() | (err == ErrorClass.cancelled) if metric in FIRST_PART else err.isna()
    return df.loc[rows, metric].dropna().to_numpy(dtype=float)


def waiting(df: pd.DataFrame, metric: str = "ttfc_ms") -> np.ndarray:
    """Censored observations of a first-part metric: how long each request had waited, without its
    first part, when the run ended. Its true value is at least that. Arrivals never sent count
    for ``ttfc_sched_ms`` (their wait began at their intended time)."""
    err = df["error"]
    cut = (err == ErrorClass.cancelled) & df["ttfc_ms"].isna()
    waits = df.loc[cut, "e2e_ms"].fillna(0.0)
    if metric == "ttfc_sched_ms":
        waits = waits + df.loc[cut, "intended_delay_ms"].fillna(0.0)
        waits = pd.concat([waits, df.loc[err == ErrorClass.not_sent, "intended_delay_ms"]])
    return waits.dropna().to_numpy(dtype=float)


def request_meets(df: pd.DataFrame, slos: list[Slo]) -> pd.Series:
    """Per request: succeeded and met every per-request SLO.

    A gaps SLO is judged by the request's own gap statistic of the SLO (``gaps_ms:max<=200``: its
    longest gap). A missing value that no reply could have (no TTFV without reasoning, no gap in a
    one-part reply, no decode speed for a one-token reply) is not a violation; a missing TTFC is.
    """
    ok = df["error"].isna()
    for s in slos:
        if s.metric in PER_REQUEST:
            col = GAP_STAT_COLUMN.get(s.stat, "gap_p99_ms") if s.metric == "gaps_ms" else s.metric
            if col in df:
                vals = df[col]
                cmp = {"<=": vals <= s.value, "<": vals < s.value, ">=": vals >= s.value, ">": vals > s.value}[s.op]
                ok &= cmp.where(vals.notna(), s.metric in ("ttfv_ms", "gaps_ms", "decode_tps"))
    return ok.astype(bool)


def token_source_mix(df: pd.DataFrame) -> dict[str, float]:
    """Share of requests per source of their output token count (usage, tokenizer, chunks)."""
    # on the column as read (a categorical's codes are counted; an astype(str) of 10^6 rows cost 0.1 s a call)
    vc = df["token_source"].value_counts(normalize=True, dropna=True)
    return {str(k): float(v) for k, v in vc.items() if v > 0}


def model_summary(df: pd.DataFrame, slos: list[Slo], window_s: float | None = None, gaps: bool | dict = True) -> dict:
    """Per-request and aggregate metrics of one set of requests (one model, one level, ...).

    ``gaps``: True computes the pooled gap stats, a dict passes them in (computed for several
    groups in one pass by ``gap_summaries``), False leaves them out where nobody reads them.
    """
    # masks and single columns, not row copies of the whole frame: a million records carry 40 columns
    err = df["error"]
    live_m = ~err.isin(NOT_LIVE).to_numpy()
    ok_m = err.isna().to_numpy()
    wire_m = (err != ErrorClass.not_sent).to_numpy()
    n_live, n_ok = int(live_m.sum()), int(ok_m.sum())
    if window_s is None:
        window_s = float(df.loc[wire_m, "t_wall_end"].max() - df.loc[wire_m, "t_wall_start"].min()) if wire_m.any() else 0.0
    window_s = max(window_s, 1e-9)
    errors = {k: v for k, v in err[live_m].value_counts().items() if v}
    if n_live:
        cols = [
            "error",
            "conversation_id",
            *{
                c
                for c in (
                    "ttfc_ms",
                    "ttfv_ms",
                    "ttfb_ms",
                    "ttsc_ms",
                    "ttfc_sched_ms",
                    "e2e_ms",
                    "tpot_ms",
                    "icl_ms",
                    "connect_ms",
                    "decode_tps",
                    *GAP_STAT_COLUMN.values(),
                )
                if c in df and any(x.metric in (c, "gaps_ms") for x in slos)
            },
        ]
        live = df.loc[live_m, cols]
        meets = request_meets(live, slos)
        conv = conversations_met(live["conversation_id"], meets)
    else:
        meets, conv = pd.Series(dtype=bool), np.empty(0, bool)
    waits = waiting(df)
    not_sent_wait = df.loc[(err == ErrorClass.not_sent).to_numpy(), "intended_delay_ms"]
    streamed = df.loc[wire_m & (df["chunks"].fillna(0) > 0).to_numpy(), "output_tokens"]
    out: dict[str, Any] = {
        "requests": n_live,
        "ok": n_ok,
        "errors": n_live - n_ok,
        "cancelled": int((err == ErrorClass.cancelled).sum()),
        "still_waiting": int(waits.size),
        "longest_wait_ms": float(waits.max()) if waits.size else None,
        "not_sent": int(len(not_sent_wait)),
        "longest_unsent_wait_ms": float(not_sent_wait.max()) if len(not_sent_wait) else None,
        "error_rate": float((n_live - n_ok) / n_live) if n_live else 0.0,
        "errors_by_class": {str(k): int(v) for k, v in errors.items()},
        "conversations": int(df.loc[live_m, "conversation_id"].nunique()),
        "window_s": float(window_s),
        "requests_per_s": n_ok / window_s,
        # every token that streamed in the window, also of streams that failed or were cut off later
        "output_tps": float(streamed.sum()) / window_s,
        "goodput": float(meets.sum()) / window_s if n_live else 0.0,
        "goodput_share": float(meets.mean()) if n_live else 0.0,
        "conversation_goodput": float(conv.mean()) if len(conv) else 0.0,
        "token_source": token_source_mix(df.loc[ok_m, ["token_source"]]),
    }
    for col in LAT_COLS:
        out[col] = stats(metric_samples(df, col))
    out["decode_tps"] = stats(df.loc[ok_m, "decode_tps"])
    out["output_tokens"] = stats(df.loc[ok_m, "output_tokens"])
    req = df["requested_tokens"].dropna() if "requested_tokens" in df else pd.Series(dtype=float)
    out["requested_tokens"] = int(req.max()) if len(req) else None  # the bound asked for, beside what came back
    asked = ("requested_input_tokens", "requested_tokens", "prompt_tokens", "output_tokens", "prompt_chars", "token_source")
    out["lengths"] = requested_lengths(df.loc[ok_m, [c for c in asked if c in df]])  # not a copy of every column
    out["gaps_ms"] = gaps if isinstance(gaps, dict) else gap_stats_ms(df[ok_m]) if gaps else empty_stats()
    out["prompt_chars"] = stats(df.loc[live_m, "prompt_chars"])
    judged = {m for m in FIRST_PART if any(x.metric == m for x in slos)}
    out["slo_verdicts"] = slo_verdicts(out, slos, {m: metric_samples(df, m) for m in judged}, {m: waiting(df, m) for m in judged})
    return out


def conversations_met(conversation: pd.Series, meets: pd.Series) -> np.ndarray:
    """Per conversation present: did every one of its requests meet the SLOs."""
    if isinstance(conversation.dtype, pd.CategoricalDtype):
        codes = conversation.cat.codes.to_numpy()  # a groupby over 10^5 categories costs a second; counting does not
    else:
        codes = pd.factorize(conversation)[0]
    seen = np.bincount(codes, minlength=1) > 0
    failed = np.bincount(codes[~meets.to_numpy(dtype=bool)], minlength=seen.size) > 0
    return ~failed[seen]


def _window(df: pd.DataFrame) -> float:
    if df.empty:
        return 0.0
    return float(df["t_wall_end"].max() - df["t_wall_start"].min())


def slo_verdicts(summary: dict, slos: list[Slo], samples: dict | None = None, censored: dict | None = None) -> list[dict]:
    """Each SLO: met, missed or not judged, with the value it was judged on.

    A percentile of a first-part metric counts the requests still waiting at the end: one that
    had waited longer than the SLO's bound is a violation whatever its true value (it enters the
    sample at its wait); one that had waited less is unknown and left out. A percentile met on
    fewer than MIN_SAMPLES finished requests is "too few", never "met".
    """
    out = []
    samples, censored = samples or {}, censored or {}
    for s in slos:
        entry: dict[str, Any] = {"slo": s.text, "censored": 0}
        if s.metric in summary and isinstance(summary[s.metric], dict):
            st = summary[s.metric]
            observed, n = st.get(s.stat), int(st.get("n") or 0)
            waits = censored.get(s.metric)
            if waits is not None and waits.size and s.stat in PCTS and s.op in ("<=", "<"):
                over = waits[waits > s.value]
                if over.size:
                    observed = float(np.percentile(np.concatenate([samples[s.metric], over]), PCTS[s.stat]))
                    entry["censored"] = int(over.size)
            entry.update(observed=observed, n=n)
            if observed is not None and not s.ok(observed):
                entry.update(ok=False, status="missed")
            elif n < MIN_SAMPLES and s.stat != "max":
                entry.update(ok=False, status="too few", note=f"{n} finished requests < {MIN_SAMPLES}")
            else:
                entry.update(ok=s.ok(observed), status="met" if s.ok(observed) else "missed")
        elif s.metric in PAIRED or s.metric in READER:  # figures the report adds; absent, nothing to judge
            why = (
                "no paired turns: route_overhead_ms needs bench run --backend URL"
                if s.metric in PAIRED
                else "no gaps to model a reader on (a run folder without gaps.u32)"
            )
            entry.update(observed=None, n=0, ok=False, status="not judged", note=why)
        else:
            observed = summary.get(s.metric)
            entry.update(
                observed=observed, n=summary.get("requests", 0), ok=s.ok(observed), status="met" if s.ok(observed) else "missed"
            )
        entry["observed_text"] = s.show(entry["observed"])
        out.append(entry)
    return out


def requested_lengths(ok: pd.DataFrame) -> dict | None:
    """Asked-for against achieved prompt and reply lengths (token-length mixes, traces): means over the
    successful requests that asked for one, with where the achieved counts came from."""
    if "requested_input_tokens" not in ok or "requested_tokens" not in ok:
        return None
    out: dict[str, Any] = {}
    for key, asked, got in (
        ("input", "requested_input_tokens", "prompt_tokens"),
        ("output", "requested_tokens", "output_tokens"),
    ):
        rows = ok[ok[asked].notna()]
        achieved = rows[got]
        if key == "input":  # no usage and no tokenizer: the records' own ratio of characters per token
            from bench.records import CHARS_PER_TOKEN

            achieved = achieved.astype(float).fillna(rows["prompt_chars"].astype(float) / CHARS_PER_TOKEN)
        achieved = achieved.dropna()
        if len(rows) and len(achieved):
            a, g = float(rows[asked].mean()), float(achieved.mean())
            out[key] = {"requested_mean": a, "achieved_mean": g, "ratio": g / a if a else None, "n": int(len(achieved))}
    if "output" in out and "token_source" in ok:
        out["output"]["counted_by"] = ", ".join(
            sorted(map(str, ok.loc[ok["requested_tokens"].notna(), "token_source"].dropna().unique()))
        )
    return out or None


def by_group(df: pd.DataFrame, key: str, name: str) -> pd.DataFrame:
    """Per model and ``key`` (turn, prompt bucket): counts, TTFC p50/p95, decode speed p50, prompt size."""
    live = live_rows(df[[c for c in ("model", key, "error", "prompt_chars", "ttfc_ms", "decode_tps") if c in df]])
    cols = ["model", name, "requests", "errors", "ttfc_p50_ms", "ttfc_p95_ms", "decode_tps_p50", "prompt_chars_mean"]
    if live.empty:
        return pd.DataFrame(columns=cols)
    keys = ["model", key]
    counts = live.groupby(keys, observed=True).agg(
        requests=("error", "size"), errors=("error", "count"), prompt_chars_mean=("prompt_chars", "mean")
    )
    ok = live[live["error"].isna()]
    if ok.empty:  # nothing succeeded: counts only (quantiles of nothing have no index to join on)
        out = counts.assign(ttfc_p50_ms=np.nan, ttfc_p95_ms=np.nan, decode_tps_p50=np.nan)
    else:
        g = ok.groupby(keys, observed=True)
        out = counts.join(
            pd.DataFrame(
                {
                    "ttfc_p50_ms": g["ttfc_ms"].quantile(0.5),
                    "ttfc_p95_ms": g["ttfc_ms"].quantile(0.95),
                    "decode_tps_p50": g["decode_tps"].quantile(0.5),
                }
            ),
            how="left",
        )
    out = out.reset_index().rename(columns={key: name})
    return out[cols]


def prompt_buckets(df: pd.DataFrame) -> pd.Series:
    edges = [0, 500, 1000, 2000, 4000, 8000, 16000, 32000, 64000, np.inf]
    labels = [f"{int(a)}-{'' if b == np.inf else int(b)}" for a, b in zip(edges[:-1], edges[1:])]
    return pd.cut(df["prompt_chars"], bins=edges, labels=labels, right=False)


def _p(v: pd.Series, q: float) -> float | None:
    v = v.dropna()
    return float(np.percentile(v, q)) if len(v) else None


def _active_area(starts: np.ndarray, ends: np.ndarray, bounds: np.ndarray) -> np.ndarray:
    """Integral of the number of open streams from the first event up to each bound (stream-seconds)."""
    t = np.concatenate([starts, ends])
    d = np.concatenate([np.ones(starts.size), -np.ones(ends.size)])
    order = np.argsort(t, kind="stable")
    t, d = t[order], d[order]
    active = np.cumsum(d)  # open streams just after each event
    area = np.concatenate([[0.0], np.cumsum(active[:-1] * np.diff(t))])  # area up to each event
    k = np.clip(np.searchsorted(t, bounds, side="right") - 1, 0, None)
    return np.where(bounds < t[0], 0.0, area[k] + active[k] * (bounds - t[k]))


def first_part_wall(df: pd.DataFrame) -> np.ndarray:
    """Wall time (s) of each request's first part: its wall start, connection, then TTFC."""
    return (df["t_wall_start"] + (df["connect_ms"].fillna(0) + df["ttfc_ms"]) / 1000.0).to_numpy(dtype=float)


def time_series(df: pd.DataFrame, window_s: float) -> pd.DataFrame:
    """Per model and window: completed requests/s, output tokens/s, TTFC p50/p95, errors, active streams.

    Output tokens are counted in the window they *streamed* in (each part's own arrival, from the
    first part's time and the request's gaps), not all at the request's end.
    """
    err = df["error"]
    wire_m = (err != ErrorClass.not_sent).to_numpy()
    if not wire_m.any():
        return pd.DataFrame()
    cols = ["model", "t_wall_start", "t_wall_end", "chunks", "output_tokens", "connect_ms", "ttfc_ms", "icl_ms"]
    on_wire = df.loc[wire_m, cols]  # the columns read here only: a million rows carry 40
    t0 = on_wire["t_wall_start"].min()
    nbins = int((on_wire["t_wall_end"].max() - t0) // window_s) + 1
    live_m = ~err.isin(NOT_LIVE).to_numpy()
    ok = err[live_m].isna()
    g = pd.DataFrame(
        {
            "model": df.loc[live_m, "model"],
            "w": ((df.loc[live_m, "t_wall_end"] - t0) // window_s).astype(int),
            "ok": ok,
            "ttfc": df.loc[live_m, "ttfc_ms"].where(ok),
            "err": ~ok,
        }
    )
    agg = g.groupby(["model", "w"], observed=True).agg(
        done=("ok", "sum"),
        errors=("err", "sum"),
        ttfc_p50=("ttfc", lambda x: x.quantile(0.5)),
        ttfc_p95=("ttfc", lambda x: x.quantile(0.95)),
    )
    del g
    models = sorted(map(str, on_wire["model"].unique()))
    tokens = _streamed_tokens(on_wire, models, t0, window_s, nbins, df.attrs.get("gaps"))
    ws = np.arange(nbins)
    lo, hi = t0 + ws * window_s, t0 + (ws + 1) * window_s
    rows = []
    for k, model in enumerate(models):
        a = agg.loc[model].reindex(ws) if model in agg.index.get_level_values(0) else pd.DataFrame(index=ws, columns=agg.columns)
        sel = (on_wire["model"] == model).to_numpy()
        area = _active_area(
            on_wire["t_wall_start"].to_numpy()[sel], on_wire["t_wall_end"].to_numpy()[sel], np.concatenate([lo, hi])
        )
        active = (area[nbins:] - area[:nbins]) / window_s
        rows.append(
            pd.DataFrame(
                {
                    "model": model,
                    "t": (ws + 0.5) * window_s,
                    "requests_per_s": a["done"].fillna(0).to_numpy(dtype=float) / window_s,
                    "output_tps": tokens[k] / window_s,
                    "ttfc_p50_ms": a["ttfc_p50"].to_numpy(dtype=float),
                    "ttfc_p95_ms": a["ttfc_p95"].to_numpy(dtype=float),
                    "errors": a["errors"].fillna(0).to_numpy().astype(int),
                    "active_streams": active,
                }
            )
        )
    return pd.concat(rows, ignore_index=True)


def _streamed_tokens(df: pd.DataFrame, models: list[str], t0: float, width: float, nbins: int, store=None) -> np.ndarray:
    """Output tokens per model and window by when each part arrived (one token share per part)."""
    from bench.analysis.gapstats import arrival_histogram

    chunks = df["chunks"].fillna(0).to_numpy(dtype=float)
    per_part = np.where(chunks > 0, df["output_tokens"].fillna(0).to_numpy(dtype=float) / np.maximum(chunks, 1), 0.0)
    labels = pd.Categorical(df["model"], categories=models).codes.astype(np.int64)  # -1: not one of them
    if store is None:  # no gap file: every part at the first part's time, the best that is known
        out = np.zeros((len(models), nbins))
        t = first_part_wall(df)
        b = np.floor((t - t0) / width)
        ok = np.isfinite(b) & (b >= 0) & (b < nbins) & (chunks > 0)
        np.add.at(out, (labels[ok], b[ok].astype(np.int64)), per_part[ok] * chunks[ok])
        return out
    full = np.full(len(store.lengths), -1, dtype=np.int64)
    idx = df.index.to_numpy()
    full[idx] = labels
    t_first = np.full(len(store.lengths), np.nan)
    t_first[idx] = first_part_wall(df)
    weights = np.zeros(len(store.lengths))
    weights[idx] = per_part
    span = np.zeros(len(store.lengths))  # first to last part, s: the mean gap times the gaps
    span[idx] = (df["icl_ms"].fillna(0) * np.maximum(chunks - 1, 0) / 1000.0).to_numpy(dtype=float)
    return arrival_histogram(store.path, store.starts, store.lengths, t_first, span, weights, full, len(models), t0, width, nbins)

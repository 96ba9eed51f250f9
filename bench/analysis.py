"""Numbers from raw records, with the definitions of METRICS.md. No plotting, no I/O but reading.

Every percentile is computed exactly from raw samples (numpy's default linear interpolation),
never from buckets. Headline numbers exclude the warm-up and requests cut off by the run's end.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from bench.gapstats import PCTS, GapSummary, empty_stats, sample, summarize
from bench.slo import LATENCY, Slo

LAT_COLS = ["ttfb_ms", "ttfc_ms", "ttfc_sched_ms", "ttfv_ms", "e2e_ms", "tpot_ms", "icl_ms"]
READ_COLS = [
    "conversation_id", "conversation", "turn", "model", "t_wall_start", "status", "error", "ttfb_ms", "ttfc_ms",
    "ttfc_sched_ms", "ttfv_ms", "e2e_ms", "tpot_ms", "decode_tps", "icl_ms", "chunks", "gaps_us", "output_chars",
    "output_tokens", "token_source", "prompt_chars", "prompt_tokens", "gap_p99_ms", "gap_max_ms",
]


class GapStore:
    """Where a run's inter-chunk gaps are: ``gaps.u32`` (uint32 microseconds) and each row's slice.

    Kept out of the DataFrame: a million arrays of gaps would cost more than the gaps, and 10^8
    gaps never need to be in memory at once (``bench.gapstats`` streams them). pandas carries the
    store in ``df.attrs["gaps"]`` through filtering and grouping; rows are found by their original
    position (the DataFrame's index).
    """

    def __init__(self, path: Path, offsets: np.ndarray, counts: np.ndarray) -> None:
        self.path = path
        self.starts = offsets.astype(np.int64)
        self.lengths = counts.astype(np.int64)

    def __deepcopy__(self, memo) -> "GapStore":
        return self  # read-only: pandas deep-copies attrs on every operation, which must not copy the gaps

    def summaries(self, groups: list[np.ndarray]) -> list[GapSummary]:
        """Exact gap stats of each group of row positions, in one streamed pass over the file."""
        labels = np.full(len(self.lengths), -1, dtype=np.int64)
        for g, rows in enumerate(groups):
            labels[rows] = g
        return summarize(self.path, self.starts, self.lengths, labels, len(groups))

    def sample(self, rows: np.ndarray, k: int, seed: int = 0) -> np.ndarray:
        """A uniform sample of k of these rows' gaps (uint32 us; all of them if fewer)."""
        return sample(self.path, self.starts, self.lengths, rows, k, seed)


def load_records(run_dir: Path, columns: list[str] | None = None) -> pd.DataFrame:
    import pyarrow as pa
    import pyarrow.parquet as pq

    run_dir = Path(run_dir)
    cols = [c for c in (columns or READ_COLS) if c != "gaps_us"]
    want_gaps = columns is None or "gaps_us" in columns
    table = pq.read_table(run_dir / "requests.parquet", columns=cols + (["gaps_offset", "gaps_count"] if want_gaps else []))
    gaps = None
    if want_gaps:
        gaps = GapStore(run_dir / "gaps.u32", table.column("gaps_offset").to_numpy(), table.column("gaps_count").to_numpy())
        table = table.drop(["gaps_offset", "gaps_count"])
    # repeated strings (model, error class, conversation ids) as categoricals: a fraction of the memory
    df = table.to_pandas(strings_to_categorical=True)
    del table
    pa.default_memory_pool().release_unused()  # Arrow's allocator keeps the decoded Parquet pages otherwise (~300 MB per 10^6 records)
    df.attrs["gaps"] = gaps
    if "t_wall_start" in df and "e2e_ms" in df:
        df["t_wall_end"] = df["t_wall_start"] + df["e2e_ms"].fillna(0) / 1000.0
    return df


def stats(values: pd.Series | np.ndarray) -> dict[str, float | None]:
    v = np.asarray(values).astype(float, copy=False)
    v = v[~np.isnan(v)]
    if v.size == 0:
        return empty_stats()
    out: dict[str, float | None] = dict(zip(PCTS, map(float, np.percentile(v, list(PCTS.values())))))  # one partition
    out["max"], out["mean"], out["n"] = float(v.max()), float(v.mean()), int(v.size)
    return out


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
    t0 = df["t_wall_start"].min()
    mask = df["t_wall_start"] < t0 + warmup_s
    return df[~mask], df[mask]


def request_meets(df: pd.DataFrame, slos: list[Slo]) -> pd.Series:
    """Per request: succeeded and met every per-request SLO (gaps judged by the request's own p99)."""
    ok = df["error"].isna()
    for s in slos:
        if s.metric in LATENCY:
            col = "gap_p99_ms" if s.metric == "gaps_ms" else s.metric
            if col in df:
                vals = df[col]
                cmp = {"<=": vals <= s.value, "<": vals < s.value, ">=": vals >= s.value, ">": vals > s.value}[s.op]
                # no TTFV (no reasoning) or no gaps (a one-part reply) is not a violation; no TTFC is
                ok &= cmp.fillna(s.metric in ("ttfv_ms", "gaps_ms"))
        elif s.metric == "decode_tps":
            ok &= (df["decode_tps"] >= s.value).fillna(False) if s.op.startswith(">") else (df["decode_tps"] <= s.value).fillna(False)
    return ok


def model_summary(df: pd.DataFrame, slos: list[Slo], window_s: float | None = None, gaps: bool | dict = True) -> dict:
    """Per-request and aggregate metrics of one set of requests (one model, one level, ...).

    ``gaps``: True computes the pooled gap stats, a dict passes them in (computed for several
    groups in one pass by ``gap_summaries``), False leaves them out where nobody reads them.
    """
    live = df[df["error"] != "cancelled"]
    ok = live[live["error"].isna()]
    if window_s is None:
        window_s = _window(live)
    window_s = max(window_s, 1e-9)
    errors = {k: v for k, v in live["error"].value_counts().items() if v}
    meets = request_meets(live, slos) if len(live) else pd.Series(dtype=bool)
    conv = conversations_met(live["conversation_id"], meets) if len(live) else np.empty(0, bool)
    out = {
        "requests": int(len(live)), "ok": int(len(ok)), "errors": int(len(live) - len(ok)),
        "cancelled": int((df["error"] == "cancelled").sum()),
        "error_rate": float((len(live) - len(ok)) / len(live)) if len(live) else 0.0,
        "errors_by_class": {str(k): int(v) for k, v in errors.items()},
        "conversations": int(live["conversation_id"].nunique()),
        "window_s": float(window_s),
        "requests_per_s": len(ok) / window_s,
        "output_tps": float(ok["output_tokens"].sum()) / window_s,
        "goodput": float(meets.sum()) / window_s if len(live) else 0.0,
        "goodput_share": float(meets.mean()) if len(live) else 0.0,
        "conversation_goodput": float(conv.mean()) if len(conv) else 0.0,
        "token_source": ok["token_source"].mode().iloc[0] if len(ok) else None,
    }
    for col in LAT_COLS:
        out[col] = stats(ok[col])
    out["decode_tps"] = stats(ok["decode_tps"])
    out["gaps_ms"] = gaps if isinstance(gaps, dict) else gap_stats_ms(ok) if gaps else empty_stats()
    out["prompt_chars"] = stats(live["prompt_chars"])
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


def slo_verdicts(summary: dict, slos: list[Slo]) -> list[dict]:
    out = []
    for s in slos:
        if s.metric in summary and isinstance(summary[s.metric], dict):
            observed = summary[s.metric].get(s.stat)
        else:
            observed = summary.get(s.metric)
        out.append({"slo": s.text, "observed": observed, "ok": s.ok(observed)})
    return out


def by_group(df: pd.DataFrame, key: str, name: str) -> pd.DataFrame:
    """Per model and ``key`` (turn, prompt bucket): counts, TTFC p50/p95, decode speed p50, prompt size."""
    live = df[df["error"] != "cancelled"]
    if live.empty:
        return pd.DataFrame()
    keys = ["model", key]
    counts = live.groupby(keys, observed=True).agg(requests=("error", "size"), errors=("error", "count"),
                                                   prompt_chars_mean=("prompt_chars", "mean"))
    ok = live[live["error"].isna()].groupby(keys, observed=True)
    q = ok["ttfc_ms"].quantile([0.5, 0.95]).unstack()
    out = counts.join(pd.DataFrame({"ttfc_p50_ms": q[0.5], "ttfc_p95_ms": q[0.95],
                                    "decode_tps_p50": ok["decode_tps"].quantile(0.5)}), how="left")
    out = out.reset_index().rename(columns={key: name})
    return out[["model", name, "requests", "errors", "ttfc_p50_ms", "ttfc_p95_ms", "decode_tps_p50", "prompt_chars_mean"]]


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


def time_series(df: pd.DataFrame, window_s: float) -> pd.DataFrame:
    """Per model and window: completed requests/s, output tokens/s, TTFC p50/p95, errors, active streams."""
    if df.empty:
        return pd.DataFrame()
    t0 = df["t_wall_start"].min()
    live = df[df["error"] != "cancelled"]
    w = ((live["t_wall_end"] - t0) // window_s).astype(int)
    ok = live["error"].isna()
    g = pd.DataFrame({"model": live["model"], "w": w, "ok": ok, "tokens": live["output_tokens"].where(ok, 0),
                      "ttfc": live["ttfc_ms"].where(ok), "err": ~ok})
    agg = g.groupby(["model", "w"]).agg(done=("ok", "sum"), tokens=("tokens", "sum"), errors=("err", "sum"),
                                        ttfc_p50=("ttfc", lambda x: x.quantile(0.5)), ttfc_p95=("ttfc", lambda x: x.quantile(0.95)))
    rows = []
    for model, a in agg.groupby(level=0):
        m = df[df["model"] == model]
        ws = a.index.get_level_values(1).to_numpy()
        lo, hi = t0 + ws * window_s, t0 + (ws + 1) * window_s
        area = _active_area(m["t_wall_start"].to_numpy(), m["t_wall_end"].to_numpy(), np.concatenate([lo, hi]))
        active = (area[len(ws):] - area[: len(ws)]) / window_s
        rows.append(pd.DataFrame({"model": model, "t": (ws + 0.5) * window_s, "requests_per_s": a["done"].to_numpy() / window_s,
                                  "output_tps": a["tokens"].to_numpy() / window_s, "ttfc_p50_ms": a["ttfc_p50"].to_numpy(),
                                  "ttfc_p95_ms": a["ttfc_p95"].to_numpy(), "errors": a["errors"].to_numpy().astype(int),
                                  "active_streams": active}))
    return pd.concat(rows, ignore_index=True)

"""Numbers from raw records, with the definitions of METRICS.md. No plotting, no I/O but reading.

Every percentile is computed exactly from raw samples (numpy's default linear interpolation),
never from buckets. Headline numbers exclude the warm-up and requests cut off by the run's end.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from bench.slo import LATENCY, Slo

PCTS = {"p50": 50, "p90": 90, "p95": 95, "p99": 99}
LAT_COLS = ["ttfb_ms", "ttfc_ms", "ttfc_sched_ms", "ttfv_ms", "e2e_ms", "tpot_ms", "icl_ms"]
READ_COLS = [
    "request_id", "worker", "conversation_id", "conversation", "turn", "model", "t_wall_start", "status", "error",
    "ttfb_ms", "ttfc_ms", "ttfc_sched_ms", "ttfv_ms", "e2e_ms", "tpot_ms", "decode_tps", "icl_ms", "chunks", "gaps_us",
    "output_chars", "output_tokens", "token_source", "prompt_chars", "prompt_tokens", "gap_p99_ms", "gap_max_ms",
]


def load_records(run_dir: Path, columns: list[str] | None = None) -> pd.DataFrame:
    df = pd.read_parquet(Path(run_dir) / "requests.parquet", columns=columns or READ_COLS)
    if "t_wall_start" in df and "e2e_ms" in df:
        df["t_wall_end"] = df["t_wall_start"] + df["e2e_ms"].fillna(0) / 1000.0
    return df


def stats(values: pd.Series | np.ndarray) -> dict[str, float | None]:
    v = np.asarray(values, dtype=float)
    v = v[~np.isnan(v)]
    if v.size == 0:
        return {**{k: None for k in PCTS}, "max": None, "mean": None, "n": 0}
    out: dict[str, float | None] = {k: float(np.percentile(v, q)) for k, q in PCTS.items()}
    out["max"], out["mean"], out["n"] = float(v.max()), float(v.mean()), int(v.size)
    return out


def gaps_of(df: pd.DataFrame) -> np.ndarray:
    """All inter-chunk gaps (ms) of these requests, pooled."""
    blobs = [b for b in df["gaps_us"] if b]
    if not blobs:
        return np.empty(0)
    return np.frombuffer(b"".join(blobs), dtype=np.uint32).astype(float) / 1000.0


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
                ok &= cmp.fillna(s.metric == "ttfv_ms")  # no TTFV (no reasoning) is not a violation
        elif s.metric == "decode_tps":
            ok &= (df["decode_tps"] >= s.value).fillna(False) if s.op.startswith(">") else (df["decode_tps"] <= s.value).fillna(False)
    return ok


def model_summary(df: pd.DataFrame, slos: list[Slo], window_s: float | None = None) -> dict:
    """Per-request and aggregate metrics of one set of requests (one model, one level, ...)."""
    live = df[df["error"] != "cancelled"]
    ok = live[live["error"].isna()]
    if window_s is None:
        window_s = _window(live)
    window_s = max(window_s, 1e-9)
    errors = live["error"].value_counts().to_dict()
    meets = request_meets(live, slos) if len(live) else pd.Series(dtype=bool)
    conv = live.assign(m=meets).groupby("conversation_id")["m"].all() if len(live) else pd.Series(dtype=bool)
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
    out["gaps_ms"] = stats(gaps_of(ok))
    out["prompt_chars"] = stats(live["prompt_chars"])
    return out


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


def by_group(df: pd.DataFrame, key: str | pd.Series, name: str) -> pd.DataFrame:
    live = df[df["error"] != "cancelled"]
    rows = []
    for (model, k), g in live.groupby(["model", key], observed=True):
        okg = g[g["error"].isna()]
        rows.append({"model": model, name: k, "requests": len(g), "errors": int(g["error"].notna().sum()),
                     "ttfc_p50_ms": _p(okg["ttfc_ms"], 50), "ttfc_p95_ms": _p(okg["ttfc_ms"], 95),
                     "decode_tps_p50": _p(okg["decode_tps"], 50), "prompt_chars_mean": float(g["prompt_chars"].mean())})
    return pd.DataFrame(rows)


def prompt_buckets(df: pd.DataFrame) -> pd.Series:
    edges = [0, 500, 1000, 2000, 4000, 8000, 16000, 32000, 64000, np.inf]
    labels = [f"{int(a)}-{'' if b == np.inf else int(b)}" for a, b in zip(edges[:-1], edges[1:])]
    return pd.cut(df["prompt_chars"], bins=edges, labels=labels, right=False)


def _p(v: pd.Series, q: float) -> float | None:
    v = v.dropna()
    return float(np.percentile(v, q)) if len(v) else None


def time_series(df: pd.DataFrame, window_s: float) -> pd.DataFrame:
    """Per model and window: completed requests/s, output tokens/s, TTFC p50/p95, errors, active streams."""
    if df.empty:
        return pd.DataFrame()
    t0 = df["t_wall_start"].min()
    live = df[df["error"] != "cancelled"].copy()
    live["w"] = ((live["t_wall_end"] - t0) // window_s).astype(int)
    rows = []
    for (model, w), g in live.groupby(["model", "w"]):
        okg = g[g["error"].isna()]
        lo, hi = t0 + w * window_s, t0 + (w + 1) * window_s
        m = df[df["model"] == model]
        overlap = (np.minimum(m["t_wall_end"], hi) - np.maximum(m["t_wall_start"], lo)).clip(lower=0).sum()
        rows.append({"model": model, "t": (w + 0.5) * window_s, "requests_per_s": len(okg) / window_s,
                     "output_tps": okg["output_tokens"].sum() / window_s, "ttfc_p50_ms": _p(okg["ttfc_ms"], 50),
                     "ttfc_p95_ms": _p(okg["ttfc_ms"], 95), "errors": int(g["error"].notna().sum()),
                     "active_streams": float(overlap / window_s)})
    return pd.DataFrame(rows)

"""Models paired by (conversation, turn): medians with bootstrap intervals, and pairwise differences.

The same scripted conversations replayed against several models pair up request by request, so
a difference between two models is not an artefact of one having had the longer prompts. Used
by the report's ranking section and by ``bench models`` (``decisions/models.py``).
"""

from __future__ import annotations

from itertools import combinations
from typing import Any

import numpy as np
import pandas as pd

from bench.metrics import BY_NAME

METRICS = {m: BY_NAME[m].better for m in ("ttfc_ms", "decode_tps")}  # ranked by these, each the catalogue's way
MIN_PAIRS = 6  # a median of fewer paired differences has no 95 % bound (0.5^n > 0.025): no winner is named
# ("38.9 tok/s better" once came from 3 pairs)


def _ci(v: np.ndarray) -> tuple[float, float]:
    """Distribution-free 95 % interval of the median (order statistics; ``bench.intervals``
    is the same statistic the gate uses); NaN where the sample cannot bound it."""
    from bench.intervals import quantile_interval

    if v.size < 2:
        return float("nan"), float("nan")
    i = quantile_interval(v, 50)
    lo, hi = i.low, i.high
    return (float(lo) if np.isfinite(lo) else float("nan")), (float(hi) if np.isfinite(hi) else float("nan"))


def token_sources(df: pd.DataFrame) -> dict[str, str]:
    """Per model, how most of its output tokens were counted (usage, tokenizer:..., estimate:chars, chunks)."""
    if "token_source" not in df.columns:
        return {}
    ok = df.loc[df["error"].isna().to_numpy(), ["model", "token_source"]]  # two columns, not a copy of every one
    return {str(m): str(g.mode().iloc[0]) for m, g in ok.groupby("model", observed=True)["token_source"] if len(g.dropna())}


def per_key(df: pd.DataFrame) -> pd.DataFrame:
    """Median of each metric per (model, conversation, turn)."""
    ok = df.loc[df["error"].isna().to_numpy(), ["model", "conversation", "turn", *METRICS]]
    return ok.groupby(["model", "conversation", "turn"], observed=True)[list(METRICS)].median().reset_index()


def compare_frame(df: pd.DataFrame) -> dict:
    """Ranking and pairwise differences of the models in these (measured) records."""
    keyed = per_key(df)
    models = sorted(str(m) for m in keyed["model"].unique())
    ranking: list[dict[str, Any]] = []
    for m in models:
        g = keyed[keyed["model"] == m]
        row: dict[str, Any] = {"model": m, "pairs": int(len(g))}
        for metric in METRICS:
            v = g[metric].dropna().to_numpy()
            row[metric] = float(np.median(v)) if v.size else None
            row[f"{metric}_ci"] = _ci(v)
        ranking.append(row)
    ranking.sort(key=lambda r: (r["ttfc_ms"] is None, r["ttfc_ms"]))
    pairs = []
    sources = token_sources(df)
    for r in ranking:
        r["token_source"] = sources.get(r["model"])
    for a, b in combinations(models, 2):
        ga, gb = keyed[keyed["model"] == a], keyed[keyed["model"] == b]
        both = ga.merge(gb, on=["conversation", "turn"], how="inner", suffixes=("_a", "_b"))
        entry = {"a": a, "b": b, "pairs": int(len(both))}
        for metric, better in METRICS.items():
            d = (both[f"{metric}_b"] - both[f"{metric}_a"]).dropna().to_numpy()
            lo, hi = _ci(d)
            med = float(np.median(d)) if d.size else None
            sa, sb = sources.get(a), sources.get(b)
            if d.size < MIN_PAIRS or np.isnan(lo) or np.isnan(hi):
                verdict = f"too few pairs ({d.size} < {MIN_PAIRS})"
            elif (
                metric == "decode_tps"
                and sa != sb
                and not (str(sa).startswith("tokenizer:") and str(sb).startswith("tokenizer:"))
            ):
                verdict = f"not comparable: tokens counted differently ({sa} vs {sb}); pass --tokenizer to count both alike"
            elif lo > 0:
                verdict = f"{b if better == 'higher' else a} better"
            elif hi < 0:
                verdict = f"{a if better == 'higher' else b} better"
            else:
                verdict = "indistinguishable at 95 %"
            entry[metric] = {"median_diff_b_minus_a": med, "ci": [lo, hi], "verdict": verdict}
        per_turn = (
            both.reset_index()
            .groupby("turn", observed=True)
            .apply(
                lambda g: pd.Series(
                    {
                        "ttfc_diff_ms": float((g["ttfc_ms_b"] - g["ttfc_ms_a"]).median()),
                        "decode_tps_diff": float((g["decode_tps_b"] - g["decode_tps_a"]).median()),
                    }
                ),
                include_groups=False,
            )
        )
        entry["per_turn"] = per_turn.reset_index().to_dict(orient="records")
        pairs.append(entry)
    return {"ranking": ranking, "pairs": pairs}

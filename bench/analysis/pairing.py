"""Models paired by (conversation, turn): medians with bootstrap intervals, and pairwise differences.

The same scripted conversations replayed against several models pair up request by request, so
a difference between two models is not an artefact of one having had the longer prompts. Used
by the report's ranking section and by ``bench models`` (``decisions/models.py``).
"""

from __future__ import annotations

from itertools import combinations

import numpy as np
import pandas as pd

from bench.metrics import BY_NAME

METRICS = {m: BY_NAME[m].better for m in ("ttfc_ms", "decode_tps")}  # ranked by these, each the catalogue's way


def _ci(v: np.ndarray, n: int = 2000, seed: int = 0) -> tuple[float, float]:
    if v.size < 2:
        return float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    meds = np.median(v[rng.integers(0, v.size, size=(n, v.size))], axis=1)
    return float(np.percentile(meds, 2.5)), float(np.percentile(meds, 97.5))


def per_key(df: pd.DataFrame) -> pd.DataFrame:
    """Median of each metric per (model, conversation, turn)."""
    ok = df[df["error"].isna()]
    return ok.groupby(["model", "conversation", "turn"], observed=True)[list(METRICS)].median().reset_index()


def compare_frame(df: pd.DataFrame) -> dict:
    """Ranking and pairwise differences of the models in these (measured) records."""
    keyed = per_key(df)
    models = sorted(str(m) for m in keyed["model"].unique())
    ranking = []
    for m in models:
        g = keyed[keyed["model"] == m]
        row = {"model": m, "pairs": int(len(g))}
        for metric in METRICS:
            v = g[metric].dropna().to_numpy()
            row[metric] = float(np.median(v)) if v.size else None
            row[f"{metric}_ci"] = _ci(v)
        ranking.append(row)
    ranking.sort(key=lambda r: (r["ttfc_ms"] is None, r["ttfc_ms"]))
    pairs = []
    for a, b in combinations(models, 2):
        ga = keyed[keyed["model"] == a].set_index(["conversation", "turn"])
        gb = keyed[keyed["model"] == b].set_index(["conversation", "turn"])
        both = ga.join(gb, lsuffix="_a", rsuffix="_b", how="inner")
        entry = {"a": a, "b": b, "pairs": int(len(both))}
        for metric, better in METRICS.items():
            d = (both[f"{metric}_b"] - both[f"{metric}_a"]).dropna().to_numpy()
            lo, hi = _ci(d)
            med = float(np.median(d)) if d.size else None
            if d.size < 3 or np.isnan(lo):
                verdict = "too few pairs"
            elif lo > 0:
                verdict = f"{b if better == 'higher' else a} better"
            elif hi < 0:
                verdict = f"{a if better == 'higher' else b} better"
            else:
                verdict = "no significant difference"
            entry[metric] = {"median_diff_b_minus_a": med, "ci": [lo, hi], "verdict": verdict}
        per_turn = both.reset_index().groupby("turn", observed=True).apply(
            lambda g: pd.Series({"ttfc_diff_ms": float((g["ttfc_ms_b"] - g["ttfc_ms_a"]).median()),
                                 "decode_tps_diff": float((g["decode_tps_b"] - g["decode_tps_a"]).median())}),
            include_groups=False)
        entry["per_turn"] = per_turn.reset_index().to_dict(orient="records")
        pairs.append(entry)
    return {"ranking": ranking, "pairs": pairs}

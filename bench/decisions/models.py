"""``bench models RUN_DIR``: which model answers these conversations fastest?

The same scripted conversations were replayed against several models, so requests pair up by
(conversation, turn). Per pair: the difference in TTFC and in decode speed. Decode speed is
tokens per second of the stream after its first token, which does not depend on how long a
reply is, and TTFC is measured before the reply's length matters; so differences are not an
artefact of one model writing longer answers. The ranking carries bootstrap confidence
intervals over the pairs.
"""

from __future__ import annotations

import json
from itertools import combinations
from pathlib import Path

import numpy as np
import pandas as pd


from bench.metrics import BY_NAME  # noqa: E402

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


def compare_models(run_dir: Path, warmup: float | None = None) -> dict:
    from bench.analysis.runfolder import open_run

    run = open_run(run_dir, warmup)
    df = run.measured
    return {"run": str(run_dir), **compare_frame(df)}


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


def markdown(result: dict) -> str:
    out = ["### Models ranked by median TTFC (paired by conversation and turn)", "",
           "| rank | model | pairs | TTFC ms [95% CI] | decode tok/s [95% CI] |", "|---:|---|---:|---|---|"]
    for i, r in enumerate(result["ranking"], 1):
        t, d = r["ttfc_ms_ci"], r["decode_tps_ci"]
        out.append(f"| {i} | {r['model']} | {r['pairs']} | {r['ttfc_ms']:.1f} [{t[0]:.1f}, {t[1]:.1f}] | "
                   f"{(r['decode_tps'] or 0):.1f} [{d[0]:.1f}, {d[1]:.1f}] |")
    out += ["", "| A | B | pairs | TTFC B−A ms [CI] | verdict | decode B−A tok/s [CI] | verdict |", "|---|---|---:|---|---|---|---|"]
    for p in result["pairs"]:
        t, d = p["ttfc_ms"], p["decode_tps"]
        fmt = lambda x: "–" if x is None or x != x else f"{x:.1f}"  # noqa: E731
        out.append(f"| {p['a']} | {p['b']} | {p['pairs']} | {fmt(t['median_diff_b_minus_a'])} [{fmt(t['ci'][0])}, {fmt(t['ci'][1])}] | {t['verdict']} | "
                   f"{fmt(d['median_diff_b_minus_a'])} [{fmt(d['ci'][0])}, {fmt(d['ci'][1])}] | {d['verdict']} |")
    return "\n".join(out) + "\n"


def write_outputs(result: dict, run_dir: Path) -> Path:
    from bench.analysis.charts import models_chart

    (run_dir / "models.json").write_text(json.dumps(result, indent=2, default=float))
    (run_dir / "models.md").write_text(markdown(result))
    models_chart(result["ranking"], run_dir / "charts")
    return run_dir / "models.md"

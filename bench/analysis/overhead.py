"""What the route adds: each turn sent to the app's route and (``--backend``) straight to the model
server behind it, paired, and the difference per pair.

Pairs go out back to back from the same user, in alternating order (so neither path always meets
the server a moment later), and share a ``pair_id``; the backend's records live in the run
folder's ``backend/``. For each model and metric the statistic is the median of the paired
differences (route minus backend) with its distribution-free 95 % interval (order statistics, as
every percentile interval here), and the share of the route's TTFC that is the app's own: the
median difference over the route's median TTFC. Only pairs where both requests succeeded count.

Tested end to end with a known answer (``tests/test_overhead.py``): the reference target serving the
route in front of another target (``bench target --upstream URL --app-overhead-ms 30``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from bench import intervals as iv
from bench.analysis.results import BACKEND_DIR
from bench.analysis.summaries import load_records

METRICS = ("ttfb_ms", "ttfc_ms", "gap_p50_ms", "gap_p99_ms", "e2e_ms")
MIN_PAIRS = 6  # below this a median's 95 % interval has no finite bounds
COLUMNS = ["model", "error", "pair_id", "t_wall_start", *METRICS]


def paired_turns(run_dir: Path, route: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame] | None:
    """The turns whose route and backend requests both succeeded, one row each (columns ``X_route``,
    ``X_backend``), and the backend's records; ``None`` without a backend. ``route``: the run's
    measured route records (after the warm-up)."""
    bdir = Path(run_dir) / BACKEND_DIR
    if not (bdir / "requests.parquet").is_file() or "pair_id" not in route:
        return None
    back = load_records(bdir, COLUMNS)
    cols = [*COLUMNS, "conversation_id"]
    a = route.loc[route["error"].isna() & route["pair_id"].notna(), [c for c in cols if c in route]]
    b = back.loc[back["error"].isna() & back["pair_id"].notna(), [c for c in COLUMNS if c in back]]
    pairs = a.astype({"pair_id": str}).merge(b.astype({"pair_id": str}), on="pair_id", suffixes=("_route", "_backend"))
    pairs["route_overhead_ms"] = pairs["ttfc_ms_route"] - pairs["ttfc_ms_backend"]  # the catalogue's pair metric
    return pairs, back


def overhead_samples(run_dir: Path, route: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """Per model: each paired turn's ``route_overhead_ms`` with the conversation and start time it
    belongs to (what the gate clusters by); empty without a backend."""
    got = paired_turns(run_dir, route)
    if got is None:
        return {}
    pairs = got[0].dropna(subset=["route_overhead_ms"])
    keep = ["route_overhead_ms", "conversation_id", "t_wall_start_route"]
    return {str(m): g[[c for c in keep if c in g]] for m, g in pairs.groupby(pairs["model_route"].astype(str))}


def route_overhead(run_dir: Path, route: pd.DataFrame) -> dict | None:
    """Per model: pairs, and per metric the paired difference's median [95 % interval]; ``None``
    without a backend. ``route``: the run's measured route records (after the warm-up)."""
    from bench.analysis.summaries import stats

    got = paired_turns(run_dir, route)
    if got is None:
        return None
    pairs, back = got
    out: dict = {"backend_requests": int(len(back)), "backend_failed": int(back["error"].notna().sum()), "models": {}}
    for model, g in pairs.groupby(pairs["model_route"].astype(str)):
        row: dict = {"pairs": int(len(g)), "route_overhead_ms": stats(g["route_overhead_ms"])}
        for m in METRICS:
            d = (g[f"{m}_route"] - g[f"{m}_backend"]).dropna().to_numpy(float)
            if d.size < MIN_PAIRS:
                row[m] = {"median": float(np.median(d)) if d.size else None, "low": None, "high": None, "n": int(d.size)}
                continue
            i = iv.quantile_interval(d, 50)
            row[m] = {
                "median": float(np.median(d)),
                "low": i.low if i.finite else None,
                "high": i.high if i.finite else None,
                "n": int(d.size),
            }
        ttfc = g["ttfc_ms_route"].dropna()
        med = row["ttfc_ms"]["median"]
        row["ttfc_share"] = (med / float(ttfc.median())) if med is not None and len(ttfc) and ttfc.median() else None
        out["models"][model] = row
    return out


def markdown(o: dict | None) -> list[str]:
    if not o:
        return []
    if not o["models"]:  # --backend was given: say why there is no answer, never leave the section out
        return [
            "#### What the route adds: no answer",
            "",
            f"No turn has both its route and backend request successful ({o['backend_requests']} backend requests, "
            f"{o['backend_failed']} failed): nothing to pair.",
            "",
        ]
    lines = [
        "#### What the route adds (route minus model server, paired turns; median [95 % CI], ms)",
        "",
        "| model | pairs | " + " | ".join(METRICS) + " | share of TTFC |",
        "|---|---:|" + "---|" * len(METRICS) + "---:|",
    ]
    for model, r in o["models"].items():
        cells = []
        for m in METRICS:
            x = r[m]
            if x["median"] is None:
                cells.append("–")
            elif x["low"] is None:
                cells.append(f"{x['median']:.1f} (too few pairs for an interval)")
            else:
                cells.append(f"{x['median']:+.1f} [{x['low']:+.1f}, {x['high']:+.1f}]")
        share = f"{r['ttfc_share']:.0%}" if r.get("ttfc_share") is not None else "–"
        lines.append(f"| {model.split('/')[-1]} | {r['pairs']} | " + " | ".join(cells) + f" | {share} |")
    if o.get("backend_failed"):
        lines.append(f"\n{o['backend_failed']} of {o['backend_requests']} backend requests failed (left out of the pairs).")
    return lines + [""]

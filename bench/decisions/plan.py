"""``bench plan BASELINE``: how long a candidate run must be for the gate to decide each tolerance.

A gate that passes must show every row equivalent: the upper bound of the worsening below the
tolerance. From the baseline's own spread (the half-width of each statistic's 95 % interval at
its effective sample size, which shrinks as 1/sqrt(n)) this finds the samples a side for that to
happen with 80 % power when nothing changed, and turns them into requests a model and wall time
at the baseline's request rate. A p99 also needs at least 368 effective samples before it has an
upper bound at all. Where the baseline has no bound yet, the spread is extrapolated from the
spacing of its quantiles just below the percentile, and the row says so.

On the README's CI recipe (2 minutes, 12 users, ~150 requests a model) this is what shows that
p95 and p99 rows could never have been decided there.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from bench import intervals as iv
from bench.analysis.summaries import MIN_SAMPLES, live_rows
from bench.decisions.compare import Tolerance, duration_text, gap_samples, interval, request_rate, request_sample


@dataclass
class PlanRow:
    model: str
    tolerance: str
    baseline: float | None
    allowed: float | None  # the tolerance as an absolute worsening
    half_width: float | None  # the baseline statistic's 95 % half-width now
    requests_now: int
    requests_needed: int | None  # a model, a side
    seconds_needed: float | None  # at the baseline's request rate
    note: str = ""


def _needed_error(p: float, allowed: float) -> int | None:
    """Requests a side for Newcombe's upper bound of the difference of two rates equal to p to
    fall below ``allowed`` with 80 % power."""
    if allowed <= 0:
        return None
    lo, hi = 2, 2

    def ok(n: int) -> bool:
        k = int(round(p * n))
        a = iv.proportion_interval(k, n)
        _, _, up = iv.mover(a, a)
        sd = math.sqrt(max(p * (1 - p), 1e-12) * 2 / n)
        return up + iv.Z_POWER * sd < allowed

    while not ok(hi):
        lo, hi = hi, hi * 2
        if hi > 1 << 40:
            return None
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (lo, mid) if ok(mid) else (mid, hi)
    return hi


def plan(df: pd.DataFrame, tolerances: list[Tolerance]) -> list[PlanRow]:
    rows: list[PlanRow] = []
    rates = request_rate(df)
    gap_sets = {t.stat: gap_samples(df, t.stat, 0) for t in tolerances if t.metric == "gaps_ms"}
    for model in sorted(set(df["model"])):
        g = df[df["model"] == model]
        n_ok = int(g["error"].isna().sum())
        rate = rates.get(model)
        for tol in tolerances:
            if tol.metric == "error_rate":
                live = live_rows(g)
                p = float(live["error"].notna().mean()) if len(live) else 0.0
                need = _needed_error(p, tol.value)
                rows.append(PlanRow(model, tol.text, p, tol.value, None, len(live), need, need / rate if need and rate else None))
                continue
            s = gap_sets[tol.stat].get(model) if tol.metric == "gaps_ms" else request_sample(g, tol.metric)
            if s is None or s.values.size < MIN_SAMPLES:
                rows.append(
                    PlanRow(
                        model,
                        tol.text,
                        None,
                        None,
                        None,
                        n_ok,
                        None,
                        None,
                        f"fewer than {MIN_SAMPLES} samples in the baseline: run it longer first",
                    )
                )
                continue
            x = interval(s, tol.stat)
            allowed = tol.value * abs(x.point) if tol.unit == "%" else tol.value
            h = max(x.point - x.low, x.high - x.point)
            note = ""
            if not math.isfinite(h) and tol.stat != "mean":
                h = iv.tail_density_width(s.values, float(tol.stat[1:]))
                note = "no bound in the baseline yet: spread extrapolated from its quantile spacing"
            requests = max(1, s.requests or s.values.size)
            per_request = x.n_eff / requests
            need_eff = iv.needed_n_eff(h, x.n_eff, allowed)
            if tol.stat != "mean":
                need_eff = max(need_eff, iv.min_n_for_bounds(float(tol.stat[1:])))
            need = int(math.ceil(need_eff / per_request)) if math.isfinite(need_eff) and per_request > 0 else None
            rows.append(
                PlanRow(
                    model,
                    tol.text,
                    x.point,
                    allowed,
                    h if math.isfinite(h) else None,
                    requests,
                    need,
                    need / rate if need and rate else None,
                    note,
                )
            )
    return rows


def markdown(rows: list[PlanRow], users: int | None) -> str:
    at = f" at {users} users" if users else ""
    out = [
        f"### Run length needed to decide each tolerance (80 % power, nothing changed{at})",
        "",
        "| model | tolerance | baseline | requests now | requests needed a model | run time needed | note |",
        "|---|---|---:|---:|---:|---:|---|",
    ]
    for r in rows:
        base = (
            "–"
            if r.baseline is None
            else (f"{100 * r.baseline:.2f} %" if r.tolerance.startswith("error_rate") else f"{r.baseline:.2f}")
        )
        need = "–" if r.requests_needed is None else f"{r.requests_needed:,}"
        out.append(
            f"| {r.model.split('/')[-1]} | {r.tolerance} | {base} | {r.requests_now:,} | {need} | "
            f"{duration_text(r.seconds_needed) if r.seconds_needed else '–'} | {r.note} |"
        )
    longest = max((r.seconds_needed for r in rows if r.seconds_needed), default=None)
    if longest:
        out += [
            "",
            f"The longest: about {duration_text(longest)} of load{at} (the baseline's request rate; "
            "more users shorten it if the server keeps up).",
        ]
    return "\n".join(out) + "\n"


def write(rows: list[PlanRow], out: Path, users: int | None) -> dict[str, Path]:
    out.mkdir(parents=True, exist_ok=True)
    longest = max((r.seconds_needed for r in rows if r.seconds_needed), default=None)
    paths = {"json": out / "plan.json", "md": out / "plan.md"}
    paths["json"].write_text(
        json.dumps(
            {"rows": [asdict(r) for r in rows], "users": users, "longest_s": longest},
            indent=2,
            default=lambda v: None if isinstance(v, float) and not np.isfinite(v) else v,
        )
    )
    paths["md"].write_text(markdown(rows, users))
    return paths

"""``bench capacity``: step through load levels, find the highest load within every SLO, and size it.

Each level is a run of its own (its own folder, warm-up excluded), all against one target that
stays up for the whole sweep. Per model: the highest level that meets every SLO, interpolated
between the last passing and the first failing level on the metric that fails; the knee, where
TTFC p50 departs from its floor; and, by Little's law with the scenario's turns and think time,
concurrent conversations per replica and the replicas a population needs.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import click
import pandas as pd

from bench.analysis.summaries import MIN_SAMPLES, model_summary
from bench.errors import InputError
from bench.options import new_run_id
from bench.runner import RunOptions
from bench.runner import run as run_level
from bench.scenario import load_scenario
from bench.slo import Slo, parse_slo
from bench.units import parse_duration

KNEE_FACTOR = 1.5


@dataclass
class CapacityOptions:
    run: RunOptions
    levels: list[float]
    level_duration: str = "30s"
    level_warmup: float = 5.0
    slos: list[str] = field(default_factory=list)
    adaptive: int = 0
    population: int | None = None
    conversations_per_user_hour: float = 2.0
    headroom: float = 0.3


def parse_levels(text: str) -> list[float]:
    try:
        levels = sorted({float(x) for x in text.split(",") if x.strip()})
    except ValueError:
        raise InputError(f"--levels {text!r}: expected numbers, e.g. 4,8,16,32") from None
    if not levels or levels[0] <= 0:
        raise InputError("--levels must be positive numbers")
    return levels


def _level_row(run_dir: Path, level: float, slos: list[Slo], warmup: float) -> list[dict]:
    from bench.analysis.runfolder import open_run
    from bench.servermetrics import summary as server_summary

    measured = open_run(run_dir, warmup).measured
    server = server_summary(run_dir, float(measured["t_wall_start"].min())) if len(measured) else None
    rows = []
    for model, g in measured.groupby("model"):
        s = model_summary(g, slos)
        row = {
            "model": model,
            "level": level,
            "requests": s["requests"],
            "ok": s["ok"],
            "error_rate": s["error_rate"],
            "still_waiting": s["still_waiting"],
            "longest_wait_ms": s["longest_wait_ms"],
            "not_sent": s["not_sent"],
            "output_tps": s["output_tps"],
            "requests_per_s": s["requests_per_s"],
            "goodput": s["goodput"],
            "e2e_mean_ms": s["e2e_ms"]["mean"],
            "run_dir": str(run_dir),
            "server_waiting_mean": (server or {}).get("waiting", {}).get("mean"),
            "server_waiting_max": (server or {}).get("waiting", {}).get("max"),
            "server_running_mean": (server or {}).get("running", {}).get("mean"),
        }
        for metric in ("ttfc_ms", "ttfv_ms", "e2e_ms", "gaps_ms", "tpot_ms", "decode_tps"):
            for stat in ("p50", "p95", "p99"):
                row[f"{metric}_{stat}"] = s[metric][stat]
        verdicts = s["slo_verdicts"]
        row["slo_ci"] = _slo_intervals(g, slos)
        row["slo_ok"] = all(v["ok"] for v in verdicts)
        row["slo_observed"] = {v["slo"]: v["observed"] for v in verdicts}
        row["slo_status"] = {v["slo"]: v["status"] for v in verdicts}
        row["slo_censored"] = {v["slo"]: v.get("censored", 0) for v in verdicts}
        rows.append(row)
    return rows


def _slo_intervals(g: pd.DataFrame, slos: list[Slo]) -> dict[str, list[float]]:
    """Each percentile SLO's distribution-free 95 % interval at this level (``bench/intervals.py``),
    from the same samples its verdict is judged on: what makes the capacity an interval."""
    from bench import intervals as iv
    from bench.analysis.summaries import metric_samples

    out: dict[str, Any] = {}
    for slo in slos:
        if slo.stat.startswith("p") and slo.stat[1:].replace(".", "").isdigit() and slo.metric != "gaps_ms":
            v = metric_samples(g, slo.metric)
            if v.size >= MIN_SAMPLES:
                i = iv.quantile_interval(v, float(slo.stat[1:]))
                out[slo.text] = [i.low, i.high]
    return out


def _crossing(level_p: float, level_f: float, value: float, vp: float, vf: float) -> float:
    if vf == vp:
        return level_p
    frac = min(max((value - vp) / (vf - vp), 0.0), 1.0)
    return float(level_p + frac * (level_f - level_p))


def _observed(row: pd.Series, slo: Slo) -> float | None:
    return row["slo_observed"].get(slo.text)


def find_capacity(levels: pd.DataFrame, slos: list[Slo]) -> dict:
    """Per model: capacity (interpolated), bounds, the SLO that limits it, and the knee."""
    out: dict[str, Any] = {}
    for model, g in levels.groupby("model"):
        g = g.sort_values("level").reset_index(drop=True)
        judged = [_judgement(r) for _, r in g.iterrows()]
        first_bad = next((i for i, j in enumerate(judged) if j == "missed"), None)
        end = len(g) if first_bad is None else first_bad
        last_ok = next((i for i in range(end - 1, -1, -1) if judged[i] == "ok"), None)
        res: dict[str, Any] = {
            "last_passing_level": None,
            "first_failing_level": None,
            "capacity": None,
            "limited_by": None,
            "bound": None,
            "unjudged_levels": [float(g["level"].iloc[i]) for i, j in enumerate(judged) if j == "unjudged"],
        }
        if first_bad is None:
            # no level missed: the highest level that met every SLO is a lower bound; a level above it with
            # too few finished requests to judge is neither a pass nor a failure (it is named, not counted)
            if last_ok is None:
                res.update(bound="unknown: too few finished requests at every level", limited_by=_failing(g.iloc[0]))
            else:
                above = next((i for i in range(last_ok + 1, len(g)) if judged[i] == "unjudged"), None)
                res.update(
                    last_passing_level=float(g["level"].iloc[last_ok]),
                    capacity=float(g["level"].iloc[last_ok]),
                    bound="at least",
                    limited_by=_failing(g.iloc[above]) if above is not None else None,
                )
        elif last_ok is None:
            lowest = "the lowest level" if first_bad == 0 else "the lowest level judged"
            res.update(
                first_failing_level=float(g["level"].iloc[first_bad]),
                capacity=None,
                bound=f"below {lowest}",
                limited_by=_failing(g.iloc[first_bad]),
            )
        else:
            p, f = g.iloc[last_ok], g.iloc[first_bad]
            cands = []
            for s in slos:
                vp, vf = _observed(p, s), _observed(f, s)
                if vf is None or s.ok(vf) or vp is None:
                    continue
                if vf == vp:
                    cands.append((float(p["level"]), s.text))
                else:
                    frac = min(max((s.value - vp) / (vf - vp), 0.0), 1.0)
                    cands.append((float(p["level"] + frac * (f["level"] - p["level"])), s.text))
            res.update(last_passing_level=float(p["level"]), first_failing_level=float(f["level"]))
            if cands:
                cap, limit = min(cands)
                bound = "interpolated"
                slo = next(x for x in slos if x.text == limit)
                cp, cf = (p.get("slo_ci") or {}).get(limit), (f.get("slo_ci") or {}).get(limit)
                if cp and cf and all(map(math.isfinite, cp + cf)):
                    lower_better = slo.op in ("<=", "<")
                    # pessimistic: the SLO's statistic at the worse end of both levels' intervals, and the reverse
                    worst = (cp[1], cf[1]) if lower_better else (cp[0], cf[0])
                    best = (cp[0], cf[0]) if lower_better else (cp[1], cf[1])
                    lo = _crossing(float(p["level"]), float(f["level"]), slo.value, *worst)
                    hi = _crossing(float(p["level"]), float(f["level"]), slo.value, *best)
                    res.update(capacity_low=min(lo, cap), capacity_high=max(hi, cap))
                else:
                    res.update(
                        capacity_low=None,
                        capacity_high=None,
                        interval_note="no interval: the limiting SLO has no percentile bound at these levels",
                    )
                if ((f.get("slo_censored") or {}).get(limit) or 0) > 0:
                    # the failing level's value is a lower bound (requests still waiting): the true crossing is lower
                    bound = "at most (interpolated on a level with requests still waiting)"
                res.update(capacity=cap, limited_by=limit, bound=bound)
            else:  # failed without a value to interpolate on: too few finished requests, or no sample at all
                res.update(capacity=float(p["level"]), limited_by=_failing(f), bound="at least")
        res["knee"] = _knee(g)
        out[model] = res
    return out


def _judgement(row: pd.Series) -> str:
    """A level's verdict: "ok" (every SLO met), "missed" (one was missed: waits already past a bound
    count), or "unjudged" (too few finished requests to say either way)."""
    if row["slo_ok"]:
        return "ok"
    status = row.get("slo_status") or {}
    return "unjudged" if status and "missed" not in status.values() else "missed"


def _failing(row: pd.Series) -> str:
    """Why a level failed, in words: the SLOs it missed, or too few finished requests to judge."""
    status = row.get("slo_status") or {}
    missed = [k for k, v in status.items() if v == "missed"]
    if missed:
        return ", ".join(missed)
    few = [k for k, v in status.items() if v == "too few"]
    waiting = f"; {row['still_waiting']} still waiting at the end" if row.get("still_waiting") else ""
    return f"too few finished requests ({row.get('ok', 0)} < {MIN_SAMPLES}) to judge {', '.join(few)}{waiting}" if few else "–"


def _knee(g: pd.DataFrame) -> float | None:
    v = g["ttfc_ms_p50"].astype(float)
    if v.isna().all():
        return None
    floor = v.min()
    for i in range(1, len(g)):
        if v.iloc[i] > KNEE_FACTOR * floor:
            a, b = v.iloc[i - 1], v.iloc[i]
            la, lb = g["level"].iloc[i - 1], g["level"].iloc[i]
            frac = (KNEE_FACTOR * floor - a) / (b - a) if b != a else 0.0
            return float(la + min(max(frac, 0.0), 1.0) * (lb - la))
    return None


def people(cap: dict, levels: pd.DataFrame, o: CapacityOptions, turns: float, think_s: float, mode: str) -> dict:
    """Little's law: L = lambda * W, per replica and for the population."""
    out: dict[str, Any] = {}
    for model, c in cap.items():
        if not c["capacity"]:
            out[model] = None
            continue
        g = levels[levels["model"] == model].sort_values("level")
        near = g.iloc[(g["level"] - c["capacity"]).abs().argsort()[:1]]
        e2e_s = float(near["e2e_mean_ms"].iloc[0] or 0) / 1000.0
        w_conv = turns * e2e_s + max(turns - 1, 0) * think_s  # seconds one conversation lasts
        if mode == "open":
            conv_per_s = c["capacity"]
            concurrent = conv_per_s * w_conv
        else:
            concurrent = c["capacity"]
            conv_per_s = concurrent / w_conv if w_conv else None
        res: dict[str, Any] = {
            "conversation_seconds": w_conv,
            "concurrent_conversations_per_replica": concurrent,
            "conversations_per_s_per_replica": conv_per_s,
        }
        if o.population:
            lam = o.population * o.conversations_per_user_hour / 3600.0
            needed = lam * w_conv
            res.update(
                population=o.population,
                conversations_per_user_hour=o.conversations_per_user_hour,
                concurrent_conversations_needed=needed,
                headroom=o.headroom,
                # headroom 30 %: each replica runs at most 70 % of its capacity, so 30 % of it stays spare
                replicas=math.ceil(needed / (concurrent * (1 - o.headroom))) if concurrent and o.headroom < 1 else None,
            )
            low = c.get("capacity_low")
            if low and concurrent and o.headroom < 1:  # the plan's replicas from the interval's lower end: what is sure
                low_concurrent = low * w_conv if mode == "open" else low
                res.update(
                    replicas=math.ceil(needed / (low_concurrent * (1 - o.headroom))),
                    replicas_from="capacity_low",
                    replicas_at_estimate=res["replicas"],
                )
        out[model] = res
    return out


def sweep(o: CapacityOptions) -> Path:
    from bench.launch import embedded_target

    scenario = load_scenario(o.run.scenario)
    slos = [parse_slo(s) for s in (o.slos or scenario.slos)]
    if not slos:
        raise InputError("no SLOs: pass --slo (e.g. --slo 'ttfc_ms:p95<=1000') or add slos: to the scenario")
    seconds = parse_duration(o.level_duration)
    if o.run.load_mode != "open" and any(level != int(level) for level in o.levels):
        raise InputError(
            f"--levels {','.join(f'{x:g}' for x in o.levels)}: closed-loop levels are numbers of users, whole numbers "
            "(fractions are arrival rates: --load-mode open)"
        )
    if o.level_warmup >= seconds:
        raise InputError("--level-warmup must be shorter than --level-duration")
    sweep_id = o.run.run_id or ("capacity-" + new_run_id())
    out = Path(o.run.out) / sweep_id
    out.mkdir(parents=True, exist_ok=True)
    target = None
    saved_env = os.environ.get("BENCH_JWT_SECRET")
    # each level records (and `bench report` on it judges) the SLOs this sweep judges, not the scenario's
    base = replace(o.run, duration=o.level_duration, warmup=o.level_warmup, out=str(out), quiet=True, slo=[s.text for s in slos])
    try:
        if not o.run.host:
            target, secret = embedded_target(o.run, log=out / "target.log")
            os.environ["BENCH_JWT_SECRET"] = secret
            base = replace(base, host=target.url, auth="jwt", server_metrics=o.run.server_metrics or target.url + "/metrics")
        rows: list[dict] = []
        todo = list(o.levels)
        done: set[float] = set()
        rounds = 0
        while todo:
            level = todo.pop(0)
            if level in done:
                continue
            done.add(level)
            r = _one_level(base, level, slos, o.level_warmup)
            click.echo(f"level {level:g}: " + "  ".join(_brief(x) for x in r), err=True)
            rows.extend(r)
            if not todo and rounds < o.adaptive:
                rounds += 1
                todo = _refine(pd.DataFrame(rows), slos, done, whole=o.run.load_mode != "open")
    finally:
        if target is not None:
            target.stop()
        if saved_env is None:
            os.environ.pop("BENCH_JWT_SECRET", None)
        else:
            os.environ["BENCH_JWT_SECRET"] = saved_env
    levels = pd.DataFrame(rows)
    cap = find_capacity(levels, slos)
    turns = sum(len(c.turns) * c.weight for c in scenario.conversations) / sum(c.weight for c in scenario.conversations)
    result = {
        "sweep": sweep_id,
        "mode": o.run.load_mode,
        "slos": [s.text for s in slos],
        "min_samples": MIN_SAMPLES,
        "levels": levels.drop(columns=["slo_observed", "slo_censored"]).to_dict(orient="records"),
        "capacity": cap,
        "people": people(cap, levels, o, turns, scenario.mean_think_s(), o.run.load_mode),
        "scenario": scenario.name,
        "turns_mean": turns,
        "think_mean_s": scenario.mean_think_s(),
    }
    measured_s = seconds - o.level_warmup
    slow = levels[(levels["e2e_mean_ms"].fillna(0) / 1000.0) * 2 > measured_s]
    result["warnings"] = [
        f"level {r['level']:g} ({r['model'].split('/')[-1]}): a typical request took {r['e2e_mean_ms'] / 1000:.1f} s, "
        f"more than half of the {measured_s:g} s measured per level; lengthen --level-duration"
        for _, r in slow.iterrows()
    ]
    write_outputs(result, levels, out, slos)
    return out


def _one_level(base: RunOptions, level: float, slos: list[Slo], warmup: float) -> list[dict]:
    if base.load_mode == "open":
        opts = replace(
            base,
            arrival_rate=level,
            users=max(base.users, int(level * 60)),
            spawn_rate=max(base.users, int(level * 60)),
            run_id=f"level-{level:g}",
        )
    else:
        n = int(round(level))
        opts = replace(base, users=n, spawn_rate=max(n, 1), run_id=f"level-{level:g}")
    run_dir = run_level(opts)
    return _level_row(run_dir, level, slos, warmup)


def _brief(r: dict) -> str:
    verdict = {"ok": "ok", "unjudged": "too few to judge", "missed": "SLO missed"}[_judgement(pd.Series(r))]
    return f"{r['model'].split('/')[-1]} TTFC p95 {r['ttfc_ms_p95'] or float('nan'):.0f} ms {verdict}"


def _refine(levels: pd.DataFrame, slos: list[Slo], done: set[float], whole: bool) -> list[float]:
    """Midpoints between each model's last passing and first failing level not yet run.

    ``whole``: closed-loop levels are numbers of users, so a midpoint is a whole number (a
    level recorded as 14.5 that ran 14 users would bend the interpolated capacity).
    """
    new = []
    for _, c in find_capacity(levels, slos).items():
        a, b = c["last_passing_level"], c["first_failing_level"]
        if a is not None and b is not None:
            mid = float((a + b) // 2) if whole else round((a + b) / 2, 2)
            if mid not in done and a < mid < b and (not whole or b - a > 1):
                new.append(mid)
    return sorted(set(new))


def markdown(result: dict) -> str:
    unit = "conversations/s" if result["mode"] == "open" else "concurrent conversations"
    out = [
        f"### Capacity ({unit}) against {', '.join(result['slos'])}",
        "",
        "| model | capacity [95 % interval] | bound | limited by | knee | conv. per replica | replicas needed |",
        "|---|---:|---|---|---:|---:|---:|",
    ]
    for m, c in result["capacity"].items():
        p = result["people"].get(m) or {}
        cap = "–" if c["capacity"] is None else f"{c['capacity']:.1f}"
        if c.get("capacity_low") is not None:
            cap += f" [{c['capacity_low']:.1f}, {c['capacity_high']:.1f}]"
        elif c.get("interval_note"):
            cap += " (no interval: levels too short for a bound)"
        knee = "–" if c["knee"] is None else f"{c['knee']:.1f}"
        conc = p.get("concurrent_conversations_per_replica")
        out.append(
            f"| {m} | {cap} | {c['bound']} | {c['limited_by'] or '–'} | {knee} | "
            f"{'–' if conc is None else f'{conc:.1f}'} | {p.get('replicas', '–')}{' (from the lower end)' if p.get('replicas_from') else ''} |"
        )
    unjudged = [
        f"{m.split('/')[-1]} at {', '.join(f'{x:g}' for x in c['unjudged_levels'])}"
        for m, c in result["capacity"].items()
        if c.get("unjudged_levels")
    ]
    if unjudged:
        out += [
            "",
            f"Levels with too few finished requests to judge (counted neither as met nor as missed; run longer "
            f"levels to judge them): {'; '.join(unjudged)}.",
        ]
    out += [
        "",
        "| model | level | finished | still waiting (longest) | TTFC p50 | TTFC p95 | gap p99 | error rate | output tok/s | "
        "server queue (mean / max) | SLOs |",
        "|---|---:|---:|---|---:|---:|---:|---:|---:|---|---|",
    ]
    for r in result["levels"]:
        f = lambda x: "–" if x is None or x != x else f"{x:.0f}"  # noqa: E731
        wait = f"{r['still_waiting']} ({r['longest_wait_ms'] / 1000:.1f} s)" if r.get("still_waiting") else "0"
        qm, qx = r.get("server_waiting_mean"), r.get("server_waiting_max")
        queue = "–" if qm is None or qm != qm else f"{qm:.1f} / {qx:.0f}"
        verdict = {"ok": "met", "unjudged": "too few", "missed": "missed"}[_judgement(r)]
        out.append(
            f"| {r['model'].split('/')[-1]} | {r['level']:g} | {r.get('ok', '–')} | {wait} | {f(r['ttfc_ms_p50'])} | {f(r['ttfc_ms_p95'])} | "
            f"{f(r['gaps_ms_p99'])} | {100 * r['error_rate']:.1f}% | {f(r['output_tps'])} | {queue} | {verdict} |"
        )
    for w in result.get("warnings", []):
        out += ["", f"> ⚠️ {w}"]
    return "\n".join(out) + "\n"


def write_outputs(result: dict, levels: pd.DataFrame, out: Path, slos: list[Slo]) -> None:
    from bench.analysis.charts import sweep_chart

    (out / "capacity.json").write_text(json.dumps(result, indent=2, default=float))
    md = markdown(result)
    (out / "capacity.md").write_text(md)
    slo = next((s for s in slos if s.metric == "ttfc_ms"), slos[0])
    metric = slo.metric if f"{slo.metric}_p95" in levels else "ttfc_ms"
    caps = {m: c["capacity"] for m, c in result["capacity"].items()}
    xlabel = "arrival rate (conversations/s)" if result["mode"] == "open" else "concurrent conversations (users)"
    knees = {m: c["knee"] for m, c in result["capacity"].items()}
    sweep_chart(levels, out / "charts", metric, slo.value if slo.metric == metric else None, caps, xlabel=xlabel, knees=knees)
    (out / "capacity.html").write_text(_html(result, (out / "charts" / "capacity.svg").read_text()))


def _html(result: dict, svg: str) -> str:
    """The plan as a page: the same tables as capacity.md, as HTML tables, in the shared page shell."""
    from bench.analysis.page import md_tables_to_html, render_page

    return render_page("Capacity plan", f"<h1>Capacity plan</h1>{svg}{md_tables_to_html(markdown(result))}")

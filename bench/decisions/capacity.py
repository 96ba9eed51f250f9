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
import signal
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
    recheck: int = 1
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


def _level_row(run_dir: Path, level: float, slos: list[Slo], warmup: float, attempt: int = 1) -> list[dict]:
    from bench.analysis.report import CPU_UNTRUSTED
    from bench.analysis.runfolder import open_run
    from bench.analysis.timing import uncertainty, untrusted_reason
    from bench.servermetrics import summary as server_summary

    run = open_run(run_dir, warmup)
    measured = run.measured
    t_from = float(measured["t_wall_start"].min()) if len(measured) else None
    server = server_summary(run_dir, t_from) if t_from is not None else None
    cpu = float((run.meta.get("collector") or {}).get("cpu_max") or 0.0)
    bounds = [x.value for x in slos if x.metric in ("ttfc_ms", "ttfv_ms", "ttfb_ms") and x.op in ("<=", "<")]
    rows = []
    for model, g in measured.groupby("model"):
        s = model_summary(g, slos)
        # a level at which the generator fell behind (its own scheduling lag, or its CPU) says nothing about the
        # server: a miss there is not evidence (seen: one level after a heavy one missed at 2.3 s p95, lag p99 8 ms)
        untrusted = untrusted_reason(uncertainty(run_dir, t_from), bounds, [s["ttfc_ms"]["p50"]])
        if cpu >= CPU_UNTRUSTED:
            untrusted = f"the load generator's CPU reached {cpu:.0f}%"
        row = {
            "model": model,
            "level": level,
            "attempt": attempt,
            "interrupted": bool(run.meta.get("interrupted")),
            "untrusted": untrusted,
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
        row["slo_undecided"] = _undecided_slos(row, slos)
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


def _undecided_slos(row: dict, slos: list[Slo]) -> list[str]:
    """The SLOs this level cannot decide at 95 %: too few finished requests, or a percentile whose
    interval holds the bound (met or missed by chance). ``--adaptive`` runs such a level again, longer."""
    out = []
    for slo in slos:
        status = (row.get("slo_status") or {}).get(slo.text)
        ci = (row.get("slo_ci") or {}).get(slo.text)
        if status == "too few":
            out.append(slo.text)
        elif ci and status in ("met", "missed") and ci[0] <= slo.value <= ci[1]:
            out.append(slo.text)
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
    for model, every in levels.groupby("model"):
        g = _latest_attempts(every)
        judged = [_judgement(r) for _, r in g.iterrows()]
        first_bad = next((i for i, j in enumerate(judged) if j == "missed"), None)
        end = len(g) if first_bad is None else first_bad
        last_ok = next((i for i in range(end - 1, -1, -1) if judged[i] == "ok"), None)
        met_above = [] if first_bad is None else [i for i in range(first_bad + 1, len(g)) if judged[i] == "ok"]
        res: dict[str, Any] = {
            "last_passing_level": None,
            "first_failing_level": None,
            "capacity": None,
            "limited_by": None,
            "bound": None,
            "unjudged_levels": [float(g["level"].iloc[i]) for i, j in enumerate(judged) if j == "unjudged"],
            "untrusted_levels": {
                f"{float(g['level'].iloc[i]):g}": g["untrusted"].iloc[i]
                for i in range(len(g))
                if "untrusted" in g and isinstance(g["untrusted"].iloc[i], str)
            },
            "rechecked": _rechecked(every),
            "limit_reached": first_bad is not None,
        }
        if met_above:
            # verdicts not monotonic in load: a level missed while a heavier one met. Neither reading is the capacity;
            # the sweep runs the missed level again (--recheck) and, if the contradiction stands, says so
            missed = [float(g["level"].iloc[i]) for i, j in enumerate(judged) if j == "missed" and i < met_above[-1]]
            heavier = [float(g["level"].iloc[i]) for i in met_above]
            res.update(
                bound=(
                    f"undecided: verdicts not monotonic in load (missed at {', '.join(f'{x:g}' for x in missed)}; "
                    f"met at the heavier {', '.join(f'{x:g}' for x in heavier)})"
                ),
                contradiction={"missed": missed, "met_above": heavier},
                limited_by=_failing(g.iloc[first_bad]),
            )
        elif first_bad is None:
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
        res["knee"], res["knee_floor_level"] = _knee(g)
        out[model] = res
    return out


def _latest_attempts(g: pd.DataFrame) -> pd.DataFrame:
    """One row per level: its latest finished attempt (a recheck or a longer rerun replaces the first), never an
    interrupted one; sorted by level."""
    g = g.copy()
    if "attempt" not in g:
        g["attempt"] = 1
    if "interrupted" in g:
        g = g[~g["interrupted"].fillna(False).astype(bool)]
    g = g.sort_values(["level", "attempt"]).drop_duplicates("level", keep="last")
    return g.reset_index(drop=True)


def _rechecked(g: pd.DataFrame) -> dict[str, list[str]]:
    """Levels run more than once, with each attempt's verdict in run order."""
    if "attempt" not in g or g["attempt"].max() <= 1:
        return {}
    out: dict[str, list[str]] = {}
    for level, rows in g.sort_values("attempt").groupby("level"):
        if len(rows) > 1:
            out[f"{float(level):g}"] = [_judgement(r) for _, r in rows.iterrows()]
    return out


def _judgement(row: pd.Series | dict) -> str:
    """A level's verdict: "ok" (every SLO met), "missed" (one was missed: waits already past a bound
    count), or "unjudged" (too few finished requests to say either way, or a miss at a level where the
    load generator itself fell behind: that is no evidence about the server)."""
    if row["slo_ok"]:
        return "ok"
    status = row.get("slo_status") or {}
    if status and "missed" not in status.values():
        return "unjudged"
    return "unjudged" if isinstance(row.get("untrusted"), str) else "missed"


def _failing(row: pd.Series) -> str:
    """Why a level failed, in words: the SLOs it missed, or too few finished requests to judge."""
    status = row.get("slo_status") or {}
    missed = [k for k, v in status.items() if v == "missed"]
    if missed and isinstance(row.get("untrusted"), str):
        return f"{', '.join(missed)} missed while {row['untrusted'].split(':')[0]} (not judged)"
    if missed:
        return ", ".join(missed)
    few = [k for k, v in status.items() if v == "too few"]
    waiting = f"; {row['still_waiting']} still waiting at the end" if row.get("still_waiting") else ""
    return f"too few finished requests ({row.get('ok', 0)} < {MIN_SAMPLES}) to judge {', '.join(few)}{waiting}" if few else "–"


def _knee(g: pd.DataFrame) -> tuple[float | None, float | None]:
    """Where TTFC p50 first passes KNEE_FACTOR x its p50 at the lowest level run (with its level).

    The floor is one level's reading, named in the plan: with level 1 in a closed-loop sweep it is the
    unloaded TTFC and does not move with the level set (a minimum over all levels did: 1.4 on levels
    1,2,4,8 and 4.3 on 4..8 against the same server)."""
    v = g["ttfc_ms_p50"].astype(float)
    known = v.notna()
    if not known.any():
        return None, None
    first = int(known.to_numpy().argmax())
    floor, floor_level = float(v.iloc[first]), float(g["level"].iloc[first])
    for i in range(first + 1, len(g)):
        if v.iloc[i] > KNEE_FACTOR * floor:
            a, b = v.iloc[i - 1], v.iloc[i]
            la, lb = g["level"].iloc[i - 1], g["level"].iloc[i]
            frac = (KNEE_FACTOR * floor - a) / (b - a) if b != a else 0.0
            return float(la + min(max(frac, 0.0), 1.0) * (lb - la)), floor_level
    return None, floor_level


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
    from bench.metrics import PAIRED, READER

    later = [x.text for x in slos if x.metric in PAIRED or x.metric in READER]
    if later:  # a level would read them as unmet: refused rather than a capacity below the truth
        raise InputError(
            f"{'--slo' if o.slos else o.run.scenario + ', slos'}: {', '.join(later)}: the sweep judges its levels on "
            "per-request metrics; route overhead and reader figures are judged by bench run and bench report"
        )
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
        rows, interrupted = _run_levels(o, base, slos, seconds)
    finally:
        if target is not None:
            target.stop()
        if saved_env is None:
            os.environ.pop("BENCH_JWT_SECRET", None)
        else:
            os.environ["BENCH_JWT_SECRET"] = saved_env
    levels = pd.DataFrame(rows)
    cap = find_capacity(levels, slos) if len(levels) else {}
    turns = sum(len(c.turns) * c.weight for c in scenario.conversations) / sum(c.weight for c in scenario.conversations)
    result = {
        "sweep": sweep_id,
        "mode": o.run.load_mode,
        "slos": [s.text for s in slos],
        "min_samples": MIN_SAMPLES,
        "levels": levels.drop(columns=["slo_observed", "slo_censored"], errors="ignore").to_dict(orient="records"),
        "capacity": cap,
        "people": people(cap, levels, o, turns, scenario.mean_think_s(), o.run.load_mode),
        "scenario": scenario.name,
        "turns_mean": turns,
        "think_mean_s": scenario.mean_think_s(),
    }
    measured_s = seconds - o.level_warmup
    slow = levels[(levels["e2e_mean_ms"].fillna(0) / 1000.0) * 2 > measured_s] if len(levels) else levels
    result["warnings"] = [
        f"level {r['level']:g} ({r['model'].split('/')[-1]}): a typical request took {r['e2e_mean_ms'] / 1000:.1f} s, "
        f"more than half of the {measured_s:g} s measured per level; lengthen --level-duration"
        for _, r in slow.iterrows()
    ]
    result["warnings"] += _plan_warnings(cap, o.levels)
    if interrupted:
        result["interrupted"] = interrupted
        level = interrupted["during_level"]
        finished = sorted({float(x["level"]) for x in rows if not x["interrupted"]})
        result["warnings"].insert(
            0,
            f"interrupted ({interrupted['signal']}) "
            + ("before the first level" if level is None else f"during level {level:g}")
            + f": this plan is from the {len(finished)} finished level(s) ({', '.join(f'{x:g}' for x in finished) or 'none'}); "
            "what the interrupted level measured is listed, not judged",
        )
    result["outcome"] = _outcome(cap, interrupted)
    write_outputs(result, levels, out, slos)
    return out


_INTERRUPTED: dict[str, str | None] = {"by": None}


def _sigterm(signum: int, frame: object) -> None:  # CI cancelling the job: like Ctrl-C, the plan of what finished
    _INTERRUPTED["by"] = "SIGTERM"
    raise KeyboardInterrupt


def _run_levels(o: CapacityOptions, base: RunOptions, slos: list[Slo], seconds: float) -> tuple[list[dict], dict | None]:
    """Run the sweep's levels in order, then the rechecks of contradicted levels (``--recheck``), then
    ``--adaptive`` rounds: bisection midpoints, and a longer rerun of each level bounding the capacity
    whose SLO verdict its samples cannot decide. Ctrl-C or SIGTERM ends it with what finished."""
    rows: list[dict] = []
    todo: list[tuple[float, int, float]] = [(x, 1, seconds) for x in o.levels]  # (level, attempt, seconds)
    attempts: dict[float, int] = {}
    rounds = rechecks = 0
    level: float | None = None
    _INTERRUPTED["by"] = None
    previous_term = signal.signal(signal.SIGTERM, _sigterm)
    previous_int = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        while True:
            if not todo:
                frame = pd.DataFrame(rows)
                again = _contradicted(frame, slos) if rechecks < o.recheck and len(frame) else []
                if again:
                    rechecks += 1
                    click.echo(
                        f"level {', '.join(f'{x:g}' for x in again)} missed an SLO that a heavier level met: "
                        "running it again (--recheck)",
                        err=True,
                    )
                    todo = [(x, attempts[x] + 1, seconds) for x in again]
                elif rounds < o.adaptive and len(frame):
                    rounds += 1
                    todo = [(x, 1, seconds) for x in _refine(frame, slos, set(attempts), whole=o.run.load_mode != "open")]
                    # a level that bounds the capacity but cannot decide its SLO at 95 % gets twice the time
                    todo += [(x, attempts[x] + 1, 2 * seconds) for x in _undecided_bounds(frame, slos, attempts)]
            if not todo:
                break
            level, attempt, secs = todo.pop(0)
            if attempt == 1 and level in attempts:
                continue
            attempts[level] = attempt
            r, by = _one_level(base, level, slos, o.level_warmup, attempt, secs)
            label = f"level {level:g}" + (f" (attempt {attempt}, {secs:g} s)" if attempt > 1 else "")
            click.echo(f"{label}: " + ("  ".join(_brief(x) for x in r) or "no measured requests"), err=True)
            rows.extend(r)
            if by:
                _INTERRUPTED["by"] = by
                raise KeyboardInterrupt
    except KeyboardInterrupt:
        by = _INTERRUPTED["by"] or "SIGINT"
        for x in rows:
            if level is not None and x["level"] == level and x["attempt"] == attempts.get(level):
                x["interrupted"] = True
        during = "before the first level" if level is None else f"during level {level:g}"
        click.echo(f"\ninterrupted ({by}) {during}: writing the plan of the finished levels", err=True)
        return rows, {"signal": by, "during_level": level}
    finally:
        signal.signal(signal.SIGTERM, previous_term)
        signal.signal(signal.SIGINT, previous_int)
    return rows, None


def _one_level(
    base: RunOptions, level: float, slos: list[Slo], warmup: float, attempt: int = 1, seconds: float | None = None
) -> tuple[list[dict], str | None]:
    """One level's run and its rows; the signal that interrupted it, if one did."""
    run_id = f"level-{level:g}" + (f"-attempt-{attempt}" if attempt > 1 else "")
    if base.load_mode == "open":
        opts = replace(
            base,
            arrival_rate=level,
            users=max(base.users, int(level * 60)),
            spawn_rate=max(base.users, int(level * 60)),
            run_id=run_id,
        )
    else:
        n = int(round(level))
        opts = replace(base, users=n, spawn_rate=max(n, 1), run_id=run_id)
    if seconds is not None:
        opts = replace(opts, duration=f"{seconds:g}s")
    run_dir = run_level(opts)
    try:
        meta = json.loads((run_dir / "run.json").read_text())
    except (OSError, ValueError):
        meta = {}
    by = meta.get("interrupted_by", "SIGINT") if meta.get("interrupted") else None
    return _level_row(run_dir, level, slos, warmup, attempt), by


def _contradicted(levels: pd.DataFrame, slos: list[Slo]) -> list[float]:
    """Missed levels below a met one, not yet rechecked: what ``--recheck`` runs again."""
    out: set[float] = set()
    for _, c in find_capacity(levels, slos).items():
        if c.get("contradiction"):
            out.update(x for x in c["contradiction"]["missed"] if f"{x:g}" not in c["rechecked"])
    return sorted(out)


def _undecided_bounds(levels: pd.DataFrame, slos: list[Slo], attempts: dict[float, int]) -> list[float]:
    """The levels either side of each model's capacity whose SLO verdict is undecided at 95 % (too few
    samples, or an interval holding the bound) and that ran once: ``--adaptive`` spends its time there."""
    out: set[float] = set()
    for model, c in find_capacity(levels, slos).items():
        g = _latest_attempts(levels[levels["model"] == model])
        for bound in (c["last_passing_level"], c["first_failing_level"]):
            if bound is None or attempts.get(bound, 1) > 1:
                continue
            row = g[g["level"] == bound]
            if len(row) and row["slo_undecided"].iloc[0]:
                out.add(float(bound))
    return sorted(out)


def _plan_warnings(cap: dict, levels: list[float]) -> list[str]:
    out = []
    top = max(levels)
    for m, c in cap.items():
        name = m.split("/")[-1]
        if c["bound"] == "at least" and not c["limit_reached"] and c["last_passing_level"] == top:
            out.append(
                f"{name}: every level up to {top:g} met the SLOs, so the limit was not reached: the capacity is at least "
                f"{top:g}; extend --levels (e.g. {top:g},{2 * top:g},{4 * top:g}) to find it"
            )
        for level, reason in (c.get("untrusted_levels") or {}).items():
            out.append(f"{name} at level {level}: {reason}; a miss there is not judged")
        for level, verdicts in (c.get("rechecked") or {}).items():
            out.append(f"{name} at level {level}: run {len(verdicts)} times ({' then '.join(verdicts)}); the last run is judged")
        if c.get("contradiction"):
            out.append(
                f"{name}: {c['bound']}; the machine or the target changed during the sweep (another job, a warm-up): "
                "rerun on a quiet machine, or with longer --level-duration"
            )
    if cap and all(c["capacity"] is None and not str(c["bound"]).startswith("below") for c in cap.values()):
        out.append("no model has a capacity from this sweep (see each model's bound): nothing to plan from")
    return out


def _outcome(cap: dict, interrupted: dict | None) -> str:
    """The sweep's exit: ``interrupted``, ``undecided`` (a model without a capacity or bound: too few
    finished requests everywhere, or contradictory levels) or ``found``."""
    if interrupted:
        return "interrupted"
    if not cap or any(c["capacity"] is None and not str(c["bound"]).startswith("below") for c in cap.values()):
        return "undecided"
    return "found"


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
    floors = {c.get("knee_floor_level") for c in result["capacity"].values()} - {None}
    if floors:
        floor = ", ".join(f"{x:g}" for x in sorted(floors))
        unloaded = floors == {1.0} and result["mode"] != "open"
        out += [
            "",
            f"Knee: where TTFC p50 first passes {KNEE_FACTOR:g}× its p50 at level {floor}, the lowest level run"
            + (
                " (one user: the unloaded TTFC, whatever the other levels)."
                if unloaded
                else "; it moves with that level (add 1 to --levels for the unloaded TTFC as its floor)."
            ),
        ]
    law = [(m, p) for m, p in (result.get("people") or {}).items() if p]
    if law:
        out += [
            "",
            "Little's law (L = λ·W) from the scenario: "
            f"{result.get('turns_mean', 0):.1f} turns a conversation, {result.get('think_mean_s', 0):.1f} s think time "
            "between turns.",
            "",
            "| model | seconds a conversation (W) | conversations/s per replica (λ) | concurrent per replica (L) | "
            "population | conversations per user-hour | concurrent needed | headroom | replicas |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
        ]
        g = lambda x, fmt: "–" if x is None else format(x, fmt)  # noqa: E731
        for m, p in law:
            out.append(
                f"| {m} | {g(p.get('conversation_seconds'), '.1f')} | {g(p.get('conversations_per_s_per_replica'), '.2f')} | "
                f"{g(p.get('concurrent_conversations_per_replica'), '.1f')} | {g(p.get('population'), ',')} | "
                f"{g(p.get('conversations_per_user_hour'), 'g')} | {g(p.get('concurrent_conversations_needed'), '.1f')} | "
                f"{'–' if p.get('headroom') is None else format(100 * p['headroom'], '.0f') + ' %'} | {p.get('replicas', '–')} |"
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
    ordered = sorted(result["levels"], key=lambda r: (r["model"], r["level"], r.get("attempt", 1)))
    for r in ordered:
        f = lambda x: "–" if x is None or x != x else f"{x:.0f}"  # noqa: E731
        wait = f"{r['still_waiting']} ({r['longest_wait_ms'] / 1000:.1f} s)" if r.get("still_waiting") else "0"
        qm, qx = r.get("server_waiting_mean"), r.get("server_waiting_max")
        queue = "–" if qm is None or qm != qm else f"{qm:.1f} / {qx:.0f}"
        verdict = {"ok": "met", "unjudged": "too few", "missed": "missed"}[_judgement(r)]
        if isinstance(r.get("untrusted"), str) and verdict != "met":
            verdict = "not judged (generator behind)"
        elif r.get("slo_undecided") and verdict != "too few":
            verdict += f" (undecided at 95 %: {', '.join(r['slo_undecided'])})"
        if r.get("interrupted"):
            verdict = "interrupted (not judged)"
        level = f"{r['level']:g}" + (f" (attempt {r['attempt']})" if r.get("attempt", 1) > 1 else "")
        out.append(
            f"| {r['model'].split('/')[-1]} | {level} | {r.get('ok', '–')} | {wait} | {f(r['ttfc_ms_p50'])} | {f(r['ttfc_ms_p95'])} | "
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
    judged = pd.concat([_latest_attempts(g) for _, g in levels.groupby("model")]) if len(levels) else levels
    svg = ""
    if len(judged):  # the judged attempt of each level (an interrupted one is left out); no chart when none finished
        bound = slo.value if slo.metric == metric else None
        sweep_chart(judged, out / "charts", metric, bound, caps, xlabel=xlabel, knees=knees)
        svg = (out / "charts" / "capacity.svg").read_text()
    (out / "capacity.html").write_text(_html(result, svg))


def _html(result: dict, svg: str) -> str:
    """The plan as a page: the same tables as capacity.md, as HTML tables, in the shared page shell."""
    from bench.analysis.page import md_tables_to_html, render_page

    return render_page("Capacity plan", f"<h1>Capacity plan</h1>{svg}{md_tables_to_html(markdown(result))}")

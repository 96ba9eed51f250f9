"""``bench calibrate``: how far this machine's measurements can be trusted, and up to what load.

One Locust process (the same users as every run) loads the reference target at rising
concurrency, each stream a fixed schedule of parts; per level, the harness's own TTFC for every
request is compared with the target's stamp of the moment it wrote that first part (same host,
same monotonic clock). The error distribution, the generator's CPU and the parts/s it kept up
with give a plain verdict: up to which load one worker process measures within a bound.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np
import pandas as pd

from bench.analysis.page import num
from bench.analysis.results import environment_info
from bench.analysis.runfolder import open_run
from bench.launch import fixed_schedule_profile, locust_command, pinning, target_for_measuring
from bench.options import new_run_id
from bench.schema import ErrorClass

MODEL = "calib/model"
SCENARIO = """name: calibration
models: [{model: calib/model}]
think_time: {kind: fixed, seconds: 0}
conversations:
  - {name: probe, turns: ["calibration probe"]}
"""


@dataclass
class Level:
    streams: int
    parts_per_s: float
    requests_per_s: float
    cpu_p50: float | None
    cpu_max: float | None
    err_p50: float | None
    err_p99: float | None
    err_max: float | None
    span_err_p50: float | None
    span_err_p99: float | None
    requests: int
    errors: int
    lag_p50: float | None = None  # the run's own uncertainty estimate (bench.analysis.timing), to hold against the real error
    lag_p99: float | None = None
    uncertainty: float | None = None  # what the run states as its uncertainty: lag p99.9


def _truth(url: str) -> pd.DataFrame:
    rows = httpx.get(f"{url}/_bench/truth", timeout=60).json()
    return pd.DataFrame(rows).set_index("request_id") if rows else pd.DataFrame()


def measure_level(
    url: str, streams: int, seconds: float, workdir: Path, env: dict, pin: str | None, skip_s: float = 3.0
) -> Level:
    """One Locust run at ``streams`` users; errors against the target's truth, ramp excluded."""
    httpx.delete(f"{url}/_bench/truth", timeout=10)
    run_dir = workdir / f"level-{streams}"
    if run_dir.exists():  # a repeat of the same level starts from an empty folder
        import shutil

        shutil.rmtree(run_dir)
    cmd = locust_command(
        url,
        streams,
        streams,
        seconds,
        run_dir,
        "--scenario",
        str(workdir / "calibration.yaml"),
        "--auth",
        "none",
        "--start-jitter",
        "1.0",
        "--stop-timeout",
        "0",
        pin=pin,
    )
    with open(workdir / f"level-{streams}.log", "w") as log:
        subprocess.run(cmd, env=env, stdout=log, stderr=subprocess.STDOUT, timeout=seconds + 120)
    run = open_run(
        run_dir, warmup=skip_s, columns=["request_id", "t_start_ns", "t_wall_start", "ttfc_ms", "e2e_ms", "chunks", "error"]
    )
    col = json.loads((run_dir / "collector.json").read_text())
    df = run.measured[run.measured["error"] != ErrorClass.cancelled]  # the ramp (skip_s) is the warm-up
    ok = df[df["error"].isna()]
    truth = _truth(url)
    j = ok.join(truth, on="request_id", how="inner")
    client_first = j["t_start_ns"] + (j["ttfc_ms"] * 1e6)
    err = (client_first - j["first_ns"]) / 1e6
    client_span = j["e2e_ms"] - j["ttfc_ms"]
    server_span = (j["last_ns"] - j["first_ns"]) / 1e6
    span_err = (client_span - server_span).abs()
    window = max(1e-9, (ok["t_wall_start"] + ok["e2e_ms"] / 1000).max() - ok["t_wall_start"].min()) if len(ok) else 1.0
    p = lambda s, q: float(np.percentile(s, q)) if len(s) else None  # noqa: E731
    from bench.analysis.timing import uncertainty

    unc = uncertainty(run_dir, float(run.records["t_wall_start"].min()) + skip_s) or {}
    return Level(
        lag_p50=unc.get("lag_p50_ms"),
        lag_p99=unc.get("lag_p99_ms"),
        uncertainty=unc.get("uncertainty_ms"),
        streams=streams,
        parts_per_s=float(ok["chunks"].sum() / window),
        requests_per_s=len(ok) / window,
        cpu_p50=col.get("cpu_p50"),
        cpu_max=col.get("cpu_max"),
        err_p50=p(err, 50),
        err_p99=p(err, 99),
        err_max=float(err.max()) if len(err) else None,
        span_err_p50=p(span_err, 50),
        span_err_p99=p(span_err, 99),
        requests=int(len(df)),
        errors=int(df["error"].notna().sum()),
    )


def verdict(levels: list[Level], bound_ms: float, cpu_limit: float = 90.0) -> dict:
    good = [
        lv
        for lv in levels
        if lv.err_p99 is not None and lv.err_p99 <= bound_ms and (lv.cpu_p50 or 0) < cpu_limit and lv.errors == 0
    ]
    if not good:
        return {
            "streams": 0,
            "parts_per_s": 0.0,
            "text": f"one worker process of this machine did not measure TTFC within {bound_ms:g} ms (p99) at any tested level",
        }
    best = max(good, key=lambda lv: lv.streams)
    text = (
        f"one worker process of this machine measures TTFC within {best.err_p99:.2f} ms (p99) up to {best.streams} concurrent "
        f"streams / {best.parts_per_s:,.0f} parts/s; beyond that, add workers (--processes)"
    )
    return {
        "streams": best.streams,
        "parts_per_s": best.parts_per_s,
        "err_p99_ms": best.err_p99,
        "bound_ms": bound_ms,
        "text": text,
    }


def calibrate(out: Path, streams: list[int], seconds: float, interval_ms: float, parts: int, bound_ms: float, echo=print) -> Path:
    cal_dir = Path(out) / f"calibration-{new_run_id()}"
    cal_dir.mkdir(parents=True, exist_ok=True)
    (cal_dir / "profiles.yaml").write_text(fixed_schedule_profile(parts, interval_ms, model=MODEL))
    (cal_dir / "calibration.yaml").write_text(SCENARIO)
    pin_gen = pinning()[1]
    env = dict(os.environ)
    levels: list[Level] = []
    with target_for_measuring(cal_dir / "profiles.yaml", log=cal_dir / "target.log") as target:
        for n in streams:
            t = time.monotonic()
            lv = measure_level(target.url, n, seconds, cal_dir, env, pin_gen)
            levels.append(lv)
            echo(
                f"{n:>5} streams: {lv.parts_per_s:>8,.0f} parts/s  CPU p50 {lv.cpu_p50 or 0:3.0f}%  "
                f"TTFC error p50 {lv.err_p50 or float('nan'):.2f} ms  p99 {lv.err_p99 or float('nan'):.2f} ms  "
                f"max {lv.err_max or float('nan'):.1f} ms  | run's own uncertainty {lv.uncertainty or float('nan'):.2f} ms  "
                f"({time.monotonic() - t:.0f} s)"
            )
    v = verdict(levels, bound_ms)
    result = {
        "levels": [lv.__dict__ for lv in levels],
        "verdict": v,
        "interval_ms": interval_ms,
        "parts": parts,
        "seconds": seconds,
        "pinned": pin_gen is not None,
        **environment_info(),
    }
    (cal_dir / "calibration.json").write_text(json.dumps(result, indent=2))
    _chart(levels, cal_dir)
    md = [
        "| streams | parts/s | req/s | CPU p50 | TTFC err p50 | p99 | max | span err p99 | run's stated uncertainty | errors |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for lv in levels:  # a level with no success has no errors to show: "–", not a crash on None
        md.append(
            f"| {lv.streams} | {lv.parts_per_s:,.0f} | {lv.requests_per_s:,.1f} | {lv.cpu_p50 or 0:.0f}% | {_num(lv.err_p50, 2)} | "
            f"{_num(lv.err_p99, 2)} | {_num(lv.err_max, 1)} | {_num(lv.span_err_p99, 2)} | {_num(lv.uncertainty, 2)} | {lv.errors} |"
        )
    (cal_dir / "calibration.md").write_text("\n".join(md) + f"\n\n**Verdict:** {v['text']}.\n")
    return cal_dir


def _num(v: float | None, digits: int) -> str:
    return num(v, digits)


def _chart(levels: list[Level], out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    x = [lv.parts_per_s for lv in levels]
    nan = float("nan")  # a level without a figure is a gap in the line
    ax.plot(x, [nan if lv.err_p50 is None else lv.err_p50 for lv in levels], marker="o", label="TTFC error p50")
    ax.plot(x, [nan if lv.err_p99 is None else lv.err_p99 for lv in levels], marker="o", label="TTFC error p99")
    for lv in levels:
        ax.annotate(f"{lv.streams}", (lv.parts_per_s, lv.err_p99 or 0), textcoords="offset points", xytext=(3, 5), fontsize=8)
    ax.set(
        xlabel="parts/s generated by one worker process (labels: concurrent streams)",
        ylabel="ms",
        yscale="log",
        title="Measurement error against the target's own clock",
    )
    ax.grid(alpha=0.3, which="both")
    ax.legend()
    fig.tight_layout()
    fig.savefig(out / "calibration.png", dpi=110)
    fig.savefig(out / "calibration.svg")
    plt.close(fig)

"""The load generator's capacity on one core, as a ratio to a minimal reference client.

For each concurrency level, in the same run and against the same reference target (pinned to
the other core): (1) the harness itself, one Locust process running the project's ChatUser,
exactly as `bench run` does; (2) a minimal asyncio + aiohttp client with no Locust. Both are
judged against the target's own stamps: TTFC error p50/p99, parts/s kept, CPU per part.
Repeats each level and prints medians; timings are never asserted, only printed.

    python benchmarks/generator_capacity.py --streams 100,200,400 --repeat 3
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import httpx
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from bench.decisions.calibrate import MODEL, SCENARIO, measure_level  # noqa: E402
from bench.launch import fixed_schedule_profile, target_for_measuring  # noqa: E402
from benchmarks.figures import emit  # noqa: E402


def reference(url: str, streams: int, seconds: float, pin: str | None) -> dict:
    httpx.delete(f"{url}/_bench/truth", timeout=10)
    cmd = [sys.executable, str(ROOT / "benchmarks" / "ref_client.py"), url, "--streams", str(streams), "--seconds", str(seconds)]
    if pin:
        cmd = ["taskset", "-c", pin, *cmd]
    out = json.loads(subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 120, check=True).stdout)
    truth = {t["request_id"]: t for t in httpx.get(f"{url}/_bench/truth", timeout=60).json()}
    res = [r for r in out["results"] if r[1] and r[0] in truth]
    err = np.array([(first - truth[rid]["first_ns"]) / 1e6 for rid, first, _ in res])
    parts = sum(r[2] for r in out["results"])
    return {
        "parts_per_s": parts / out["wall"],
        "cpu": 100 * out["cpu"] / out["wall"],
        "cpu_us_per_part": 1e6 * out["cpu"] / max(parts, 1),
        "err_p50": float(np.percentile(err, 50)),
        "err_p99": float(np.percentile(err, 99)),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--streams", default="100,200,400")
    ap.add_argument("--seconds", type=float, default=12.0)
    ap.add_argument("--interval-ms", type=float, default=33.0)
    ap.add_argument("--parts", type=int, default=60)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--quick", action="store_true", help="One level of 100 streams, 6 s, once (a smoke run).")
    a = ap.parse_args()
    if a.quick:
        a.streams, a.seconds, a.repeat = "100", 6.0, 1
    work = Path(tempfile.mkdtemp(prefix="gencap-"))
    (work / "profiles.yaml").write_text(fixed_schedule_profile(a.parts, a.interval_ms, model=MODEL))
    (work / "calibration.yaml").write_text(SCENARIO)
    cpus = os.cpu_count() or 1
    pin_t, pin_g = (cpus - 1, "0") if cpus > 1 else (None, None)
    print(
        f"target pinned to CPU {pin_t}, generators to CPU {pin_g}; {a.interval_ms:g} ms between parts, {a.parts} parts per stream"
    )
    print(
        f"{'streams':>7} | {'harness parts/s':>15} {'CPU':>5} {'err p50':>8} {'err p99':>8} | {'reference parts/s':>17} {'CPU':>5} "
        f"{'err p50':>8} {'err p99':>8} | harness/ref CPU per part"
    )
    with target_for_measuring(work / "profiles.yaml", pin=pin_t is not None) as target:
        for n in [int(x) for x in a.streams.split(",")]:
            hs, rs = [], []
            for _ in range(a.repeat):
                lv = measure_level(target.url, n, a.seconds, work, dict(os.environ), pin_g)
                hs.append(lv)
                rs.append(reference(target.url, n, a.seconds - 3, pin_g))
            med = lambda xs: statistics.median(xs)  # noqa: E731
            h_pps, h_cpu = med([h.parts_per_s for h in hs]), med([h.cpu_p50 or 0 for h in hs])
            r_pps, r_cpu = med([r["parts_per_s"] for r in rs]), med([r["cpu"] for r in rs])
            ratio = (h_cpu / h_pps) / (r_cpu / r_pps) if h_pps and r_pps and r_cpu else float("nan")
            h_us, r_us = (1e4 * h_cpu / h_pps if h_pps else float("nan")), (1e4 * r_cpu / r_pps if r_pps else float("nan"))
            emit(f"generator_{n}_cpu_us_per_part", h_us, "us", r_us, "against the aiohttp reference client, same target")
            emit(f"generator_{n}_err_p99_ms", med([h.err_p99 for h in hs]), "ms", med([r["err_p99"] for r in rs]))
            print(
                f"{n:>7} | {h_pps:>15,.0f} {h_cpu:>4.0f}% {med([h.err_p50 for h in hs]):>7.2f}  {med([h.err_p99 for h in hs]):>7.2f}  | "
                f"{r_pps:>17,.0f} {r_cpu:>4.0f}% {med([r['err_p50'] for r in rs]):>7.2f}  {med([r['err_p99'] for r in rs]):>7.2f}  | {ratio:.2f}x"
            )


if __name__ == "__main__":
    main()

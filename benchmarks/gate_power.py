"""The regression gate's false alarms, power and coverage, simulated (``bench/decisions/gate_power.py``).

    python benchmarks/gate_power.py [--trials 400] [--seed 0] [--quick]

Prints a Markdown table (the README's): per case, distribution and samples a side, the share of
trials with a regression verdict on any row (a false alarm in A/A, power otherwise), the share
shown equivalent on every row (A/A: the power to pass), and the coverage of each row's 95 %
interval; then clustered gaps with and without their clusters, and sequential looks.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.decisions.gate_power import simulate, simulate_clustered, simulate_sequential  # noqa: E402


def pct(x: float) -> str:
    return f"{100 * x:.1f} %"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--trials", type=int, default=400)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--quick", action="store_true", help="fewer sizes (200, 3,000)")
    a = ap.parse_args()
    sizes = [200, 3000] if a.quick else [200, 1000, 3000, 20000]
    t0 = time.monotonic()
    print(f"{a.trials} trials a cell, seed {a.seed}\n")
    print("| case | distribution | samples a side | regression verdict | equivalent (every row) | coverage p50 / p95 / p99 |")
    print("|---|---|---:|---:|---:|---|")
    label = {
        "aa": "A/A, p50/p95/p99 at the default tolerances (regression = false alarm)",
        "tail": "tail only: p99 +50 %, p97 and below unchanged, tolerance p99 +15 %",
        "median": "every request +20 %, tolerance p50 +10 %",
    }
    for case in ("aa", "tail", "median"):
        for dist in ("lognormal", "bimodal"):
            for n in sizes:
                r = simulate(case, n, dist, a.trials, a.seed)
                eq = min(s["equivalent"] for s in r["stats"].values())
                cov = " / ".join(pct(r["stats"][s]["covered"]) if s in r["stats"] else "–" for s in ("p50", "p95", "p99"))
                print(f"| {label[case]} | {dist} | {n:,} | {pct(r['any_regression'])} | {pct(eq)} | {cov} |")
    print("\n| gaps, A/A, pooled p99 | streams (x 50 gaps) | interval excludes 0 | coverage | regression verdict |")
    print("|---|---:|---:|---:|---:|")
    for clusters in (True, False):
        for streams in (100, 1000):
            r = simulate_clustered(streams, a.trials, a.seed, clusters=clusters)
            name = "streams as clusters (the gate)" if clusters else "every gap independent (the old gate)"
            print(f"| {name} | {streams:,} | {pct(r['changed'])} | {pct(r['coverage'])} | {pct(r['regression'])} |")
    print(
        "\n| sequential, 10 looks, alpha / 10 a look | samples a side at the last look | regression | passed | undecided | stopped at (share of the run) |"
    )
    print("|---|---:|---:|---:|---:|---:|")
    for case in ("aa", "tail"):
        for n in [3000] if a.quick else [1000, 3000, 10000]:
            r = simulate_sequential(case, n, 10, "lognormal", max(50, a.trials // 4), a.seed)
            print(
                f"| {label[case]} | {n:,} | {pct(r['regression'])} | {pct(r['pass'])} | {pct(r['undecided'])} | {pct(r['mean_stop_fraction'])} |"
            )
    print(f"\n({time.monotonic() - t0:.0f} s)")


if __name__ == "__main__":
    main()

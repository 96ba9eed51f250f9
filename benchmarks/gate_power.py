"""The regression gate's power and false-alarm rate, simulated (see ``bench/decisions/gate_power.py``).

    python benchmarks/gate_power.py [--trials 100] [--seed 0]

Prints, per case, in how many trials the gate raised a regression: with the rule it uses now
(the statistic's own bootstrap interval excludes 0, point estimate beyond the tolerance) and
with the rule it used before (Mann-Whitney p < 0.05 and the whole interval beyond the tolerance).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.decisions.gate_power import CASES, simulate  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--trials", type=int, default=100)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    goal = {"tail": ">= 95", "median": ">= 75", "none-3000": "<= 5", "none-200": "<= 5"}
    print(f"{'case':<10} {'samples':>7} {'regression (gate)':>18} {'(old rule)':>11}  goal")
    for case in CASES:
        t0 = time.monotonic()
        r = simulate(case, a.trials, a.seed)
        print(f"{case:<10} {r['samples']:>7} {r['caught']:>12} / {r['trials']:<3} {r['caught_old_rule']:>7} / {r['trials']:<3}  "
              f"{goal[case]} of 100   ({time.monotonic() - t0:.1f} s)")


if __name__ == "__main__":
    main()

"""Does a run's own timing-uncertainty estimate bound its real TTFC error?

Runs ``bench calibrate`` at the given concurrencies (one Locust process against the reference
target, each on its own core) and prints, per level, the real TTFC error against the target's
own stamps (p50/p99) beside what the run itself stated as its uncertainty (p99.9 of its probe's
scheduling lag, ``bench.analysis.timing``; the lag's p99 shown too). "bounds" says whether the stated
uncertainty was at least the real p99 error.

    python benchmarks/uncertainty.py --streams 64,256 [--seconds 15]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--streams", default="64,256")
    ap.add_argument("--seconds", type=float, default=15.0)
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        r = subprocess.run(
            [
                sys.executable,
                "-m",
                "bench",
                "calibrate",
                "--streams",
                a.streams,
                "--level-duration",
                str(a.seconds),
                "--out",
                tmp,
            ],
            cwd=ROOT,
            capture_output=True,
            text=True,
        )
        if r.returncode:
            sys.exit(r.stderr[-2000:])
        cal = json.loads(next(Path(tmp).glob("calibration-*/calibration.json")).read_text())
    print(
        f"{'streams':>7} {'parts/s':>8} {'CPU p50':>7} {'real err p50':>12} {'p99':>8} {'max':>8} {'lag p99':>8} {'stated':>8}  bounds p99"
    )
    for lv in cal["levels"]:
        ok = lv["uncertainty"] is not None and lv["err_p99"] is not None and lv["uncertainty"] >= lv["err_p99"]
        print(
            f"{lv['streams']:>7} {lv['parts_per_s']:>8,.0f} {lv['cpu_p50'] or 0:>6.0f}% {lv['err_p50']:>9.2f} ms {lv['err_p99']:>5.2f} ms "
            f"{lv['err_max']:>5.2f} ms {lv['lag_p99'] or float('nan'):>5.2f} ms {lv['uncertainty'] or float('nan'):>5.2f} ms  {'yes' if ok else 'NO'}"
        )


if __name__ == "__main__":
    main()

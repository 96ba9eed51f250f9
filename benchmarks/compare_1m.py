"""``bench compare`` over two runs of 1,000,000 records each: wall time and peak memory.

Builds the synthetic run of ``report_1m.py`` twice (identical data: the cost is what is
measured, not a verdict), runs ``bench compare`` with its default tolerances in a fresh process
and prints its wall time and peak RSS (VmHWM). Then times one p99 bootstrap interval on 330,000
samples a side both ways: computed (the path from 2,000 samples up) and resampled (the
small-sample path, which caps each side at 50,000 samples), to show why the first exists.

    python benchmarks/compare_1m.py
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from benchmarks.figures import bare, emit, measure  # noqa: E402

CHILD = """
import sys, time
from pathlib import Path
from bench.cli import main
t0 = time.monotonic()
try:
    main(["compare", sys.argv[1], sys.argv[2], "--out", sys.argv[3]], standalone_mode=False)
except SystemExit:
    pass
took = time.monotonic() - t0
hwm = next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmHWM:"))
print(f"RESULT {took:.1f} {hwm / 1024:.0f}")
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--records", type=int, default=1_000_000)
    a = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="compare1m-"))
    try:
        for name in ("base", "cand"):
            subprocess.run(
                [
                    sys.executable,
                    str(ROOT / "benchmarks" / "report_1m.py"),
                    "--records",
                    str(a.records),
                    "--synth-only",
                    str(tmp / name),
                ],
                check=True,
            )
        r = subprocess.run(
            [sys.executable, "-c", CHILD, str(tmp / "base"), str(tmp / "cand"), str(tmp / "out")],
            capture_output=True,
            text=True,
            cwd=ROOT,
        )
        line = next((x for x in r.stdout.splitlines() if x.startswith("RESULT")), None)
        if line is None:
            print(r.stderr[-3000:])
            sys.exit(1)
        _, took, mb = line.split()
        wall, pss, _ = measure([sys.executable, "-c", CHILD, str(tmp / "base"), str(tmp / "cand"), str(tmp / "out2")])
        bare_s, bare_pss = bare(tmp / "base", tmp / "cand")
        print(f"bench compare, 2 x {a.records:,} records: {float(took):.1f} s, peak RSS {float(mb):,.0f} MB")
        print(
            f"bench compare: {wall:.1f} s, {pss:,.0f} MB (whole process, imports included) against the bare pass over both runs "
            f"{bare_s:.1f} s, {bare_pss:,.0f} MB: {wall / bare_s:.2f}x the time, {pss / bare_pss:.2f}x the memory (goal: 3x)"
        )
        emit(f"compare_{a.records}_s", wall, "s", bare_s)
        emit(f"compare_{a.records}_pss_mb", pss, "MB", bare_pss)
    finally:
        shutil.rmtree(tmp)

    from bench import intervals as iv

    rng = np.random.default_rng(0)
    x, y = rng.lognormal(5, 0.5, 330_000), rng.lognormal(5.01, 0.5, 330_000)
    t0 = time.monotonic()
    d, lo, hi = iv.mover(iv.quantile_interval(x, 99), iv.quantile_interval(y, 99))
    print(f"p99 interval, 330,000 samples a side: {time.monotonic() - t0:.2f} s, difference {d:.2f} [{lo:.2f}, {hi:.2f}]")


if __name__ == "__main__":
    main()

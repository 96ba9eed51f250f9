"""Cost of the exact pooled gap statistics (``bench.analysis.gapstats``) over 10^8 gaps, by number of groups.

Builds the synthetic 1,000,000-record run of ``report_1m.py`` once, then, for each group count,
runs ``summarize`` in a fresh process (rows assigned to groups round-robin, as models would be)
and prints its wall time and peak RSS. Checks the first group's p99 against np.percentile once.

    python benchmarks/gap_groups.py --groups 3,20,60
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

CHILD = """
import sys, time
import numpy as np, pyarrow.parquet as pq
from pathlib import Path
from bench.analysis.gapstats import summarize
run, groups, check = Path(sys.argv[1]), int(sys.argv[2]), sys.argv[3] == "1"
t = pq.read_table(run / "requests.parquet", columns=["gaps_offset", "gaps_count"])
starts, lengths = t.column("gaps_offset").to_numpy(), t.column("gaps_count").to_numpy()
labels = np.arange(len(lengths)) % groups
t0 = time.monotonic()
out = summarize(run / "gaps.u32", starts, lengths, labels, groups)
took = time.monotonic() - t0
hwm = next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmHWM:"))
msg = f"{groups:4d} groups: {took:5.2f} s, peak RSS {hwm / 1024:,.0f} MB (process total, records' offsets included)"
if check:
    gaps = np.fromfile(run / "gaps.u32", dtype="<u4")
    mine = np.repeat(labels == 0, lengths)
    msg += f"; group 0 p99 {out[0].stats['p99']:.3f} ms, np.percentile {np.percentile(gaps[mine], 99) / 1000:.3f} ms"
print(msg)
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--records", type=int, default=1_000_000)
    ap.add_argument("--groups", default="3,20,60")
    a = ap.parse_args()
    run_dir = Path(tempfile.mkdtemp(prefix="gapgroups-")) / "run"
    subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "report_1m.py"), "--records", str(a.records), "--synth-only", str(run_dir)],
        check=True,
    )
    try:
        for i, g in enumerate(int(x) for x in a.groups.split(",")):
            subprocess.run([sys.executable, "-c", CHILD, str(run_dir), str(g), "1" if i == 0 else "0"], check=True, cwd=ROOT)
    finally:
        shutil.rmtree(run_dir.parent)


if __name__ == "__main__":
    main()

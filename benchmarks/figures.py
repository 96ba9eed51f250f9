"""What every speed benchmark shares: the bare pass it is measured against, the way it measures a
child process (wall time and the whole process tree's peak PSS), and one line per figure that
``benchmarks/run_all.py`` appends to ``benchmarks/history.jsonl``.

The bare pass is the work a report or a gate cannot avoid, written as plainly as possible: pyarrow
reads the headline columns, numpy takes exact per-model percentiles, one counting pass over
``gaps.u32`` gives the pooled gap percentiles. A benchmark prints its figure beside the bare pass
measured in the same sitting and their ratio, so a shared, noisy machine cancels out of the ratio.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parent.parent
FIGURE = "FIGURE "  # a line run_all.py collects

BARE = """
import sys, time
import numpy as np
import pyarrow.parquet as pq
t0 = time.monotonic()
cols = ["model", "error", "ttfc_ms", "e2e_ms", "tpot_ms", "decode_tps", "gaps_offset", "gaps_count"]
for run in sys.argv[1:]:
    t = pq.read_table(run + "/requests.parquet", columns=cols)
    model = t.column("model").to_numpy(zero_copy_only=False)
    ok = t.column("error").is_null().to_numpy(zero_copy_only=False)
    out = {}
    for m in np.unique(model):
        sel = ok & (model == m)
        for c in ("ttfc_ms", "e2e_ms", "tpot_ms", "decode_tps"):
            v = t.column(c).to_numpy(zero_copy_only=False)[sel]
            out[(m, c)] = np.percentile(v[~np.isnan(v)], [50, 90, 95, 99])
    hist = np.zeros(1 << 20, dtype=np.int64)
    with open(run + "/gaps.u32", "rb") as f:
        while True:
            chunk = np.frombuffer(f.read(1 << 24), dtype="<u4")
            if not chunk.size:
                break
            hist += np.bincount(np.minimum(chunk, (1 << 20) - 1), minlength=1 << 20)
    cum = np.cumsum(hist)
    pooled = [int(np.searchsorted(cum, q * cum[-1])) for q in (0.5, 0.9, 0.95, 0.99)]
print(time.monotonic() - t0)
"""


def measure(argv: list[str], cwd: Path = ROOT) -> tuple[float, float, str]:
    """Run ``argv``; (wall seconds, peak PSS of the whole process tree in MB, its stdout)."""
    t0 = time.monotonic()
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=cwd)
    peak = 0.0
    ps = psutil.Process(proc.pid)
    while proc.poll() is None:  # shared pages counted once, split between the processes sharing them
        try:
            tree = [ps] + ps.children(recursive=True)
            peak = max(peak, sum(p.memory_full_info().pss for p in tree) / 2**20)
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            pass
        time.sleep(0.05)
    stdout, stderr = proc.communicate()
    took = time.monotonic() - t0
    if proc.returncode:
        sys.stderr.write(stderr[-3000:])
        raise SystemExit(f"{argv[:3]} failed (exit {proc.returncode})")
    return took, peak, stdout


def bare(*run_dirs: Path) -> tuple[float, float]:
    took, peak, _ = measure([sys.executable, "-c", BARE, *map(str, run_dirs)])
    return took, peak


def emit(name: str, value: float, unit: str, baseline: float | None = None, note: str = "") -> None:
    """One figure, with its ratio to the baseline measured in the same run."""
    line = {"figure": name, "value": round(value, 4), "unit": unit}
    if baseline:
        line["baseline"] = round(baseline, 4)
        line["ratio"] = round(value / baseline, 3)
    if note:
        line["note"] = note
    print(FIGURE + json.dumps(line), flush=True)

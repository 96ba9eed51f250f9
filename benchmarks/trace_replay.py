"""How closely a trace replay keeps the trace's times: intended times and actual send lateness.

Replays a bursty 1,000-arrival trace (``bench.workload.trace.bursty_trace``: lognormal gaps, 100
three-turn conversations) against the embedded target at each speed-up, and prints per run:

- intended error: |intended send time - trace time / speed-up| (the schedule itself, p99 / max);
- send lateness: from the intended time to the request leaving (after the connection is ready),
  for first turns (a later turn may rightly wait for its predecessor's reply) p50 / p99 / max;
- rows recorded of rows in the trace.

    python benchmarks/trace_replay.py --speedups 1,10 --users 100
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.workload.trace import bursty_trace  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--speedups", default="1,10")
    ap.add_argument("--users", type=int, default=100)
    ap.add_argument("--rows", type=int, default=1000)
    ap.add_argument("--span", type=float, default=25.0, help="trace span in seconds at 1x")
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        trace = Path(tmp) / "trace.jsonl"
        rows = bursty_trace(trace, a.rows, a.span)
        t_of = {i + 1: r["t"] for i, r in enumerate(rows)}
        for sp in (float(x) for x in a.speedups.split(",")):
            out = Path(tmp) / f"x{sp:g}"
            cmd = [
                sys.executable,
                "-m",
                "bench",
                "run",
                "--trace",
                str(trace),
                "--speedup",
                f"{sp:g}",
                "--out",
                str(out),
                "--target-profiles",
                str(ROOT / "tests" / "fast-profiles.yaml"),
                "-u",
                str(a.users),
                "-r",
                str(a.users),
                "-q",
                "--no-report",
            ]
            subprocess.run(cmd, check=True, cwd=ROOT)
            run = next(p for p in out.iterdir() if p.is_dir() and not p.is_symlink())
            df = pd.read_parquet(run / "requests.parquet")
            info = next(iter(json.loads((run / "run.json").read_text())["collector"]["workers"].values()))["trace"]
            intended = df["t_start_ns"] - df["intended_delay_ms"] * 1e6
            err = np.abs(intended - (info["t0_ns"] + df["trace_row"].map(t_of) / sp * 1e9)) / 1e6
            first = df.loc[df["turn"] == 0, "intended_delay_ms"]
            print(
                f"speed-up {sp:g}x: {len(df)} of {len(rows)} rows recorded, {int(df['error'].notna().sum())} failed; "
                f"intended error p99 {np.percentile(err, 99):.3f} ms max {err.max():.3f} ms; "
                f"send lateness (first turns) p50 {first.median():.2f} ms p99 {np.percentile(first, 99):.2f} ms "
                f"max {first.max():.1f} ms"
            )


if __name__ == "__main__":
    main()

"""The same build run N times: how often the gate calls it a regression, with and without
run-to-run noise (``bench compare --noise-from``).

Runs ``bench run`` N times on the embedded target with one fixed scenario and seed, then compares
each run with the next at the default tolerances: once with within-run intervals only, once with
the intervals widened by the spread among the other runs (the compared two left out). Prints the
verdict counts of both and one FIGURE line per rate.

    python benchmarks/run_to_run.py --runs 10 --seconds 12
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from benchmarks.figures import emit  # noqa: E402


def bench(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "bench", *args], capture_output=True, text=True, cwd=ROOT)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=10)
    ap.add_argument("--seconds", type=int, default=12)
    ap.add_argument("--users", type=int, default=8)
    a = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="run2run-"))
    try:
        runs = []
        for k in range(a.runs):
            out = tmp / "runs"
            r = bench(
                "run",
                "-t",
                f"{a.seconds}s",
                "-u",
                str(a.users),
                "-r",
                str(a.users),
                "--seed",
                "1",
                "--scenario",
                "short-qa",
                "--run-id",
                f"same-{k:02d}",
                "--out",
                str(out),
                "--no-report",
                "-q",
            )
            if r.returncode:
                sys.exit(r.stderr[-2000:])
            runs.append(out / f"same-{k:02d}")
            print(f"run {k + 1}/{a.runs} done", flush=True)
        counts = {"within-run only": Counter(), "widened by run-to-run noise": Counter()}
        for i in range(len(runs) - 1):
            for label, extra in (("within-run only", []), ("widened by run-to-run noise", ["--noise-from", str(tmp / "runs")])):
                r = bench("compare", str(runs[i]), str(runs[i + 1]), "--out", str(tmp / f"cmp-{i}-{len(extra)}"), *extra)
                v = (
                    json.loads((tmp / f"cmp-{i}-{len(extra)}" / "compare.json").read_text())["verdict"]
                    if r.returncode != 2
                    else "n/a"
                )
                counts[label][v] += 1
        pairs = len(runs) - 1
        for label, c in counts.items():
            print(f"{label:>28}: {dict(c)} of {pairs} same-build pairs; exit 1 (regression) in {c['regression']}")
            emit(f"same_build_regression_rate_{'noise' if 'noise' in label else 'plain'}", c["regression"] / pairs, "share")
    finally:
        shutil.rmtree(tmp)


if __name__ == "__main__":
    main()

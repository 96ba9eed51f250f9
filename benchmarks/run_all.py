"""Run the speed benchmarks and append one JSON line per figure to ``benchmarks/history.jsonl``.

Each line: commit, date, machine (CPU model and count), benchmark, figure, value, unit, and where
the benchmark measures a baseline in the same sitting (the bare pass, the reference client), that
baseline and the ratio. A regression then shows as a line whose ratio moved, not as a surprise;
``--compare`` prints each figure beside the last recorded one of the same machine.

    python benchmarks/run_all.py                 # the default set, appended to the history
    python benchmarks/run_all.py --quick         # smaller sizes (a smoke run), not appended
    python benchmarks/run_all.py --only report_1m --no-append
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
HISTORY = ROOT / "benchmarks" / "history.jsonl"
FIGURE = "FIGURE "

# name -> (arguments, quick arguments)
SUITE: dict[str, tuple[list[str], list[str]]] = {
    "report_1m": (["--records", "1000000", "--repeat", "2"], ["--records", "50000"]),
    "compare_1m": (["--records", "1000000"], ["--records", "50000"]),
    "hotpath": (["--streams", "200", "--seconds", "10"], ["--streams", "50", "--seconds", "3"]),
    "generator_capacity": ([], ["--quick"]),
}


def machine() -> str:
    model = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{model} x{os.cpu_count()}"


def commit() -> str:
    r = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=ROOT)
    dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], capture_output=True, text=True, cwd=ROOT)
    return r.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")


def last_of(figure: str, where: str) -> dict | None:
    if not HISTORY.is_file():
        return None
    found = None
    for line in HISTORY.read_text().splitlines():
        x = json.loads(line)
        if x.get("figure") == figure and x.get("machine") == where:
            found = x
    return found


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", action="append", choices=sorted(SUITE), help="Run only this benchmark (repeatable).")
    ap.add_argument("--quick", action="store_true", help="Smaller sizes; figures are printed, not appended.")
    ap.add_argument("--no-append", action="store_true", help="Print the figures only.")
    a = ap.parse_args()
    where, rev, date = machine(), commit(), time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    lines = []
    for name in a.only or list(SUITE):
        full, quick = SUITE[name]
        argv = [sys.executable, str(ROOT / "benchmarks" / f"{name}.py"), *(quick if a.quick else full)]
        print(f"== {name}: {' '.join(argv[1:])}", flush=True)
        r = subprocess.run(argv, capture_output=True, text=True, cwd=ROOT)
        sys.stdout.write("".join(x + "\n" for x in r.stdout.splitlines() if not x.startswith(FIGURE)))
        if r.returncode:
            print(f"{name} failed (exit {r.returncode}):\n{r.stderr[-2000:]}")
            continue
        for x in r.stdout.splitlines():
            if x.startswith(FIGURE):
                fig = json.loads(x[len(FIGURE) :])
                lines.append({"commit": rev, "date": date, "machine": where, "benchmark": name, **fig, "quick": a.quick})
    print(f"\n{'figure':<34} {'value':>12} {'ratio':>7}   last recorded on this machine")
    for x in lines:
        prev = last_of(x["figure"], where)
        was = f"{prev['value']:g} {prev['unit']} (ratio {prev.get('ratio', '-')}, {prev['commit']})" if prev else "-"
        print(f"{x['figure']:<34} {x['value']:>10g} {x['unit']:<2} {x.get('ratio', '-'):>6}   {was}")
    if lines and not a.quick and not a.no_append:
        with HISTORY.open("a") as fh:
            fh.writelines(json.dumps(x) + "\n" for x in lines)
        print(f"appended {len(lines)} figures to {HISTORY.relative_to(ROOT)}")


if __name__ == "__main__":
    main()

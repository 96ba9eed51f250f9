"""Soak: the load generator's memory over a steady run (records go to disk, not to a list).

Starts the reference target, runs one Locust process at steady load for --minutes, samples the
generator's resident memory every --every seconds and prints it with the requests recorded so
far; a flat line after warm-up is the pass. Bounded: it stops itself after --minutes.

    python benchmarks/soak.py --minutes 10 --users 50
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from bench.launch import locust_command, target_for_measuring  # noqa: E402

PROFILE = """defaults: {ttft_ms: 40, prefill_ms_per_1k_prompt_tokens: 0, step_ms: 10, step_ms_per_active: 0,
           output_tokens_median: 40, output_tokens_sigma: 0.3, jitter: 0.05, max_batch: 100000}
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--minutes", type=float, default=10.0)
    ap.add_argument("--users", type=int, default=50)
    ap.add_argument("--every", type=float, default=15.0)
    a = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="soak-"))
    (work / "p.yaml").write_text(PROFILE)
    seconds = a.minutes * 60
    with target_for_measuring(work / "p.yaml", pin=False) as target:
        cmd = locust_command(target.url, a.users, a.users, seconds, work / "run", "--auth", "none", "--scenario", "default")
        p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=ROOT)
        proc = psutil.Process(p.pid)
        t0 = time.monotonic()
        print(f"{'t (s)':>6} {'RSS (MB)':>9} {'records':>8}")
        samples = []
        while p.poll() is None:
            time.sleep(a.every)
            try:
                rss = proc.memory_info().rss / 1e6
            except psutil.NoSuchProcess:
                break
            if rss <= 0 or p.poll() is not None:  # exiting
                break
            try:
                records = json.loads((work / "run" / "progress.json").read_text()).get("records", 0)
            except (OSError, ValueError):
                records = 0
            samples.append((time.monotonic() - t0, rss))
            print(f"{samples[-1][0]:6.0f} {rss:9.1f} {records:8d}", flush=True)
        p.wait()
    if len(samples) >= 4:
        half = len(samples) // 2
        first = sum(r for _, r in samples[1:half]) / max(1, half - 1)
        second = sum(r for _, r in samples[half:]) / (len(samples) - half)
        slope = (samples[-1][1] - samples[1][1]) / ((samples[-1][0] - samples[1][0]) / 60)
        print(
            f"mean RSS first half {first:.1f} MB, second half {second:.1f} MB ({100 * (second - first) / first:+.1f} %), "
            f"{slope:+.2f} MB/min after the first sample"
        )


if __name__ == "__main__":
    main()

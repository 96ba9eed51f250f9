"""How many concurrent streams the reference target sustains on one core, and how late it runs.

A lazy client opens N streams (starts spread over a second) and reads nothing until the end,
so the client costs almost no CPU and the kernel's socket buffers absorb the parts; the target
alone decides the pace. From the target's own truth: how late its first and last parts were
against their schedule, and its CPU use.

    python benchmarks/target_capacity.py --streams 1000 --rate 20 --seconds 10 --repeat 3
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np
import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.launch import fixed_schedule_profile, target_for_measuring  # noqa: E402

BODY = json.dumps({"messages": [{"role": "user", "content": "probe"}]}).encode()


async def lazy_client(host: str, port: int, streams: int, seconds: float, spread: float) -> int:
    async def one(i: int) -> int:
        await asyncio.sleep(spread * i / streams)
        reader, writer = await asyncio.open_connection(host, port)
        req = (
            f"POST /api/ai/huggingface/calib/model/chat?chat_id=-1&is_playground=true HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
            f"X-Request-ID: t{i}\r\nContent-Length: {len(BODY)}\r\nConnection: close\r\n\r\n"
        ).encode() + BODY
        writer.write(req)
        await writer.drain()
        await asyncio.sleep(seconds + 1.5 - spread * i / streams)
        data = await reader.read()  # everything, at the end
        writer.close()
        return len(data)

    sizes = await asyncio.gather(*(one(i) for i in range(streams)))
    return sum(sizes)


def once(streams: int, rate: float, seconds: float, spread: float) -> dict:
    tmp = Path(tempfile.mkdtemp())
    parts = int(rate * seconds)
    (tmp / "p.yaml").write_text(fixed_schedule_profile(parts, 1000.0 / rate))
    cpus = os.cpu_count() or 1
    if cpus > 1:
        os.sched_setaffinity(0, {0})
    with target_for_measuring(tmp / "p.yaml", pin=cpus > 1) as target:
        host, port = target.url.split("//")[1].rsplit(":", 1)
        proc = psutil.Process(target.proc.pid)
        for child in proc.children(recursive=True):
            proc = child  # taskset execs python in place; children only if a wrapper stayed
        c0, t0 = proc.cpu_times(), time.monotonic()
        total = asyncio.run(lazy_client(host, int(port), streams, seconds, spread))
        c1, t1 = proc.cpu_times(), time.monotonic()
        truth = httpx.get(f"{target.url}/_bench/truth", timeout=60).json()
    first_late = np.array([(t["first_ns"] - t["first_due_ns"]) / 1e6 for t in truth if t["first_ns"]])
    last_late = np.array([(t["last_ns"] - t["last_due_ns"]) / 1e6 for t in truth if t["last_ns"]])
    sent = sum(t["parts"] for t in truth)
    span = (sum(t["last_ns"] - t["first_ns"] for t in truth) / len(truth)) / 1e9 if truth else 1.0
    sent = sent  # parts/s below: streams x parts per stream over one stream's span (all run concurrently)
    return {
        "streams": len(truth),
        "parts_per_s": sent / span if span else 0.0,
        "target_cpu": 100 * ((c1.user - c0.user) + (c1.system - c0.system)) / (t1 - t0),
        "first_late_p50": float(np.percentile(first_late, 50)),
        "first_late_p99": float(np.percentile(first_late, 99)),
        "last_late_p99": float(np.percentile(last_late, 99)),
        "bytes": total,
        "parts": sent,
        "expected_parts": streams * parts,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--streams", type=int, default=1000)
    ap.add_argument("--rate", type=float, default=20.0, help="parts per second per stream")
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--spread", type=float, default=2.0, help="seconds over which the streams start")
    a = ap.parse_args()
    runs = []
    for i in range(a.repeat):
        r = once(a.streams, a.rate, a.seconds, a.spread)
        runs.append(r)
        print(
            f"run {i + 1}: {r['streams']} streams, {r['parts_per_s']:,.0f} parts/s, target CPU {r['target_cpu']:.0f}%, "
            f"first part late p50 {r['first_late_p50']:.2f} ms p99 {r['first_late_p99']:.2f} ms, last part late p99 {r['last_late_p99']:.1f} ms, "
            f"parts {r['parts']}/{r['expected_parts']}"
        )
    med = {
        k: statistics.median(r[k] for r in runs)
        for k in ("parts_per_s", "target_cpu", "first_late_p50", "first_late_p99", "last_late_p99")
    }
    print(
        f"median of {a.repeat}: {a.streams} streams x {a.rate:g} parts/s: {med['parts_per_s']:,.0f} parts/s, target CPU {med['target_cpu']:.0f}%, "
        f"first part late p50 {med['first_late_p50']:.2f} ms / p99 {med['first_late_p99']:.2f} ms, last part late p99 {med['last_late_p99']:.1f} ms"
    )


if __name__ == "__main__":
    main()

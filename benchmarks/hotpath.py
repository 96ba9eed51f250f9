"""CPU cost per streamed part of the measuring hot path, outside Locust.

Runs ``bench.load.stream.stream_request`` (what every Locust user runs) in plain gevent against the
reference target, and reports CPU microseconds per part and per read, the TTFC error against
the target's truth, and, with --profile, what dominates (cProfile, sorted by own time).

    python benchmarks/hotpath.py --streams 200 --seconds 10 [--profile]
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import resource
import sys
import tempfile
import time
from pathlib import Path

import gevent
import httpx
import numpy as np
from geventhttpclient import HTTPClient

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.launch import fixed_schedule_profile, target_for_measuring  # noqa: E402
from bench.load.route import RouteConfig  # noqa: E402
from bench.load.stream import Outcome, Timeouts, stream_request  # noqa: E402
from benchmarks.figures import emit  # noqa: E402

MODEL = "calib/model"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--streams", type=int, default=200)
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--interval-ms", type=float, default=33.0)
    ap.add_argument("--parts", type=int, default=60)
    ap.add_argument("--profile", action="store_true")
    a = ap.parse_args()
    tmp = Path(tempfile.mkdtemp())
    (tmp / "p.yaml").write_text(fixed_schedule_profile(a.parts, a.interval_ms, model=MODEL, max_batch=100000))
    cpus = os.cpu_count() or 1
    if cpus > 1:
        os.sched_setaffinity(0, {0})
    with target_for_measuring(tmp / "p.yaml", pin=cpus > 1) as target:
        route = RouteConfig()
        body = route.body(MODEL, [{"role": "user", "content": "probe"}])
        outs: list[tuple[str, Outcome]] = []
        stop = time.monotonic() + a.seconds

        def user(i: int) -> None:
            c = HTTPClient.from_url(target.url, concurrency=1, network_timeout=60)
            gevent.sleep(i / a.streams)  # spread starts over a second
            n = 0
            while time.monotonic() < stop:
                rid = f"h{i}-{n}"
                o = Outcome()
                stream_request(
                    o, c, route.path(MODEL), body, {"X-Request-ID": rid, "Content-Type": "application/json"}, Timeouts()
                )
                outs.append((rid, o))
                n += 1

        prof = cProfile.Profile() if a.profile else None
        r0, t0 = resource.getrusage(resource.RUSAGE_SELF), time.monotonic()
        if prof:
            prof.enable()
        gevent.joinall([gevent.spawn(user, i) for i in range(a.streams)])
        if prof:
            prof.disable()
        r1, t1 = resource.getrusage(resource.RUSAGE_SELF), time.monotonic()
        truth = {t["request_id"]: t for t in httpx.get(f"{target.url}/_bench/truth", timeout=60).json()}
    cpu = (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)
    parts = sum(sum(o.stamps[1::2]) for _, o in outs)
    reads = sum(len(o.stamps) // 2 for _, o in outs)
    err = np.array([(o.stamps[0] - truth[r]["first_ns"]) / 1e6 for r, o in outs if o.stamps and r in truth and o.t_start > 0])
    print(
        f"streams {a.streams}  parts/s {parts / (t1 - t0):,.0f}  CPU {100 * cpu / (t1 - t0):.0f}%  "
        f"CPU per part {1e6 * cpu / max(parts, 1):.1f} us  per read {1e6 * cpu / max(reads, 1):.1f} us  "
        f"TTFC error p50 {np.percentile(err, 50):.2f} ms p99 {np.percentile(err, 99):.2f} ms  (requests {len(outs)})"
    )
    emit(f"hotpath_{a.streams}_cpu_us_per_part", 1e6 * cpu / max(parts, 1), "us")
    emit(f"hotpath_{a.streams}_err_p99_ms", float(np.percentile(err, 99)), "ms")
    if prof:
        pstats.Stats(prof).sort_stats("tottime").print_stats(18)


if __name__ == "__main__":
    main()

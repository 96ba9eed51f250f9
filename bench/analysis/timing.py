"""How far this run's own timings can be trusted, from what every load generator measured while it ran.

Each load-generating process runs a probe greenlet that asks to wake every 10 ms and records how
late it woke (``bench.load.collect``). A streamed part's stamp waits for the same event loop, so the
probe's lateness is the run's timing uncertainty: measured in the run, per worker, every second,
not borrowed from a calibration on another day. The records are in ``timing.jsonl``.

The probe samples the loop 100 times a second at times of its own, while parts arrive in bursts
that lengthen the queue they meet; so the figure a run states as its uncertainty is the lag's
p99.9, not its p99 (``benchmarks/uncertainty.py`` holds both against the real TTFC error
measured against the reference target's own stamps).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from bench.schema import TIMING_FILE  # noqa: F401  (declared with the run folder's other contracts)

SLO_SHARE = 0.10  # lag p99 above this share of the tightest first-part latency SLO: untrusted
TTFC_SHARE = 0.25  # ... or above this share of the lowest per-model TTFC p50


def read_timing(run_dir: Path) -> list[dict]:
    path = Path(run_dir) / TIMING_FILE
    if not path.is_file():
        return []
    out = []
    for line in path.read_text().splitlines():
        try:
            out.append(json.loads(line))
        except ValueError:
            continue  # a line cut off by a killed process
    return out


def uncertainty(run_dir: Path, t_from: float | None = None) -> dict | None:
    """Scheduling lag (ms) over the measured window: all workers pooled, the busiest, and CPU."""
    lines = [x for x in read_timing(run_dir) if t_from is None or x.get("t", 0) >= t_from]
    if not lines:
        return None
    by_worker: dict[str, list[int]] = {}
    cpu: dict[str, float] = {}
    for x in lines:
        by_worker.setdefault(x["w"], []).extend(x.get("lag_us") or [])
        if x.get("cpu") is not None:
            cpu[x["w"]] = max(cpu.get(x["w"], 0.0), float(x["cpu"]))
    pooled = np.concatenate([np.asarray(v, dtype=float) for v in by_worker.values()]) / 1000.0 if by_worker else np.empty(0)
    if pooled.size == 0:
        return None
    per = {}
    for w, v in by_worker.items():
        a = np.asarray(v, dtype=float) / 1000.0
        if a.size:
            per[w] = {
                "lag_p50_ms": float(np.percentile(a, 50)),
                "lag_p99_ms": float(np.percentile(a, 99)),
                "uncertainty_ms": float(np.percentile(a, 99.9)),
                "lag_max_ms": float(a.max()),
                "n": int(a.size),
                "cpu_max": cpu.get(w),
            }
    return {
        "lag_p50_ms": float(np.percentile(pooled, 50)),
        "lag_p99_ms": float(np.percentile(pooled, 99)),
        "uncertainty_ms": float(np.percentile(pooled, 99.9)),
        "lag_max_ms": float(pooled.max()),
        "n": int(pooled.size),
        "workers": per,
        "busiest_cpu": max(cpu.values()) if cpu else None,
    }


def untrusted_reason(unc: dict | None, slo_bounds: list[float], ttfc_p50s: list[float]) -> str | None:
    """Why this run's latencies cannot be trusted to the precision they are printed with, if so."""
    if not unc:
        return None
    p99 = unc["lag_p99_ms"]
    if slo_bounds and p99 > SLO_SHARE * min(slo_bounds):
        return (
            f"the load generator's scheduling lag reached {p99:.1f} ms (p99), over {SLO_SHARE:.0%} of the tightest "
            f"latency SLO ({min(slo_bounds):g} ms): add --processes or lower the load"
        )
    floor = [v for v in ttfc_p50s if v and v == v]
    if floor and p99 > TTFC_SHARE * min(floor):
        return (
            f"the load generator's scheduling lag reached {p99:.1f} ms (p99), over {TTFC_SHARE:.0%} of the lowest "
            f"TTFC p50 ({min(floor):.1f} ms): add --processes or lower the load"
        )
    return None

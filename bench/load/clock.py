"""Wall clocks across machines: each worker's offset to the master's, measured as NTP does.

Latencies never need this: each is a difference of one process's CLOCK_MONOTONIC. But the wall
stamps that place requests in time (the warm-up split, the throughput window, time series) come
from each worker's own clock, and machines without NTP drift by seconds. The master sends each
worker a ping stamped with its wall clock (t0); the worker answers with its own (tw); the master
stamps the answer (t3). Offset = tw - (t0 + t3) / 2, wrong by at most half the round trip; of
recent exchanges the one with the shortest round trip is kept. Rows from a worker are moved onto
the master's clock as they arrive.

``BENCH_TEST_CLOCK_OFFSET_S`` makes this process's wall clock read that many seconds off: the
tests' stand-in for a machine whose clock is wrong (one cannot set one process's real clock).
"""

from __future__ import annotations

import os
import time
from collections import deque
from dataclasses import dataclass, field

_SKEW = float(os.environ.get("BENCH_TEST_CLOCK_OFFSET_S") or 0.0)
KEEP = 16  # exchanges considered per worker: the shortest round trip among the latest ones wins
WARN_UNCERTAINTY_S = 0.05  # 5 % of the report's 1 s time buckets
WARN_OFFSET_S = 0.5


def wall() -> float:
    """This process's wall clock (``time.time()``, or the test hook's deliberately wrong one)."""
    return time.time() + _SKEW


@dataclass
class WorkerClock:
    samples: deque[tuple[float, float, float]] = field(default_factory=lambda: deque(maxlen=KEEP))  # (rtt, offset, t)
    exchanges: int = 0

    def add(self, t0: float, tw: float, t3: float) -> None:
        rtt = max(0.0, t3 - t0)
        self.samples.append((rtt, tw - (t0 + t3) / 2, t3))
        self.exchanges += 1

    def best(self) -> tuple[float, float] | None:
        """(offset, round trip) of the exchange with the shortest round trip, or None before any."""
        if not self.samples:
            return None
        rtt, offset, _ = min(self.samples)
        return offset, rtt

    def summary(self) -> dict[str, float] | None:
        b = self.best()
        if b is None:
            return None
        offset, rtt = b
        return {
            "offset_s": round(offset, 6),
            "uncertainty_s": round(rtt / 2, 6),
            "rtt_s": round(rtt, 6),
            "exchanges": self.exchanges,
        }


def clock_warnings(clocks: dict[str, dict[str, float] | None]) -> list[str]:
    out = []
    for wid, c in clocks.items():
        if c is None:
            out.append(f"worker {wid}: no clock exchange answered; its wall stamps are uncorrected")
            continue
        if abs(c["offset_s"]) > WARN_OFFSET_S:
            out.append(
                f"worker {wid}'s wall clock is {c['offset_s']:+.3f} s off the master's (±{c['uncertainty_s'] * 1000:.1f} ms); "
                "its stamps were moved onto the master's clock. Run NTP (chrony) on load-generating machines."
            )
        if c["uncertainty_s"] > WARN_UNCERTAINTY_S:
            out.append(
                f"worker {wid}: clock offset known only to ±{c['uncertainty_s'] * 1000:.0f} ms (round trip "
                f"{c['rtt_s'] * 1000:.0f} ms): time-series placement across workers is that uncertain"
            )
    return out

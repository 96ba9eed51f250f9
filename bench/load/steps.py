"""Step and ramp schedules (pure functions; ``bench/load/shapes.py`` wraps them for Locust).

Used as ``locust -f locustfile.py,bench/load/shapes.py``.

``--steps "10:30s,20:30s,40:30s"`` holds each user count for its duration; ``--ramp`` moves
between them linearly instead of in steps; ``--drain 10s`` ends with the last level's users kept
but the run's end announced, so streams in flight finish before Locust stops (those still open
then are recorded as ``cancelled``). ``bench capacity`` does the same with one run per level.
"""

from __future__ import annotations

from bench.errors import InputError


def parse_steps(text: str) -> list[tuple[int, float]]:
    from bench.units import parse_duration

    steps = []
    for item in filter(None, (x.strip() for x in text.split(","))):
        users, _, dur = item.partition(":")
        try:
            n = int(users)
        except ValueError:
            raise InputError(f"--steps {item!r}: expected USERS:DURATION, e.g. 20:30s") from None
        if n < 0:
            raise InputError(f"--steps {item!r}: users must not be negative")
        steps.append((n, parse_duration(dur or "30s")))
    if not steps:
        raise InputError("--steps is empty")
    return steps


def schedule(steps: list[tuple[int, float]], t: float, ramp: bool, drain: float) -> int | None:
    """User count at time t, or None when the run is over."""
    start = 0.0
    prev = 0
    for users, dur in steps:
        if t < start + dur:
            if ramp:
                return int(round(prev + (users - prev) * (t - start) / dur))
            return users
        start += dur
        prev = users
    if t < start + drain:
        return prev
    return None

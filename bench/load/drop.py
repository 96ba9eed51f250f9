"""Load that fell mid-run: Locust does not move a lost worker's users to the others.

Kept apart from the collector (which imports Locust) so it can be checked without Locust's
monkey-patching of the process.
"""

from __future__ import annotations

LOAD_DROP = 0.9  # users falling below this share of the previous sample, with the target unchanged, is flagged


def load_drop(series: list[tuple[float, int, int, str]], share: float = LOAD_DROP) -> str | None:
    """A fall in running users that nobody asked for: Locust's target unchanged, users down by more
    than ``share`` between two samples (a lost worker's users are not moved to the others). A ramp,
    a step shape or a web-UI change moves the target with the users and is not flagged."""
    running = [x for x in series if x[3] in ("running", "spawning")]
    for prev, cur in zip(running, running[1:]):
        if cur[2] == prev[2] and cur[1] < share * prev[1]:
            t_drop, before, target = cur[0], prev[1], cur[2]
            after = [x for x in running if x[0] >= t_drop and x[2] == target]
            back = next((x[0] for x in after if x[1] >= share * before), None)  # users back (a worker rejoined)
            reduced = [x for x in after if back is None or x[0] < back]
            low = min(x[1] for x in reduced)
            lasted = (
                f"stayed reduced for {back - t_drop:.0f} s (back to {before} users at {back:.0f} s)"
                if back is not None
                else f"stayed reduced to the end of the run ({after[-1][0] - t_drop:.0f} s)"
            )
            return (
                f"load fell from {before} to {low} users at {t_drop:.0f} s into the run (a worker lost? Locust does not "
                f"move its users to the others) and {lasted}; the headline numbers include that period of reduced load"
            )
    return None

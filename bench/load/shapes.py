"""Step and ramp load shapes for plain-Locust sweeps: ``locust -f locustfile.py,bench/load/shapes.py --steps 10:30s,20:30s``.

See ``bench/load/steps.py`` for the schedule and the options (--steps, --ramp, --drain).
"""

from __future__ import annotations

from locust import LoadTestShape

from bench.load.steps import parse_steps, schedule


class StepShape(LoadTestShape):
    """Reads --steps, --ramp and --drain from Locust's parsed options."""

    def tick(self) -> tuple[int, float] | None:
        assert self.runner is not None, "Locust gives a shape its runner before the first tick"
        opts = self.runner.environment.parsed_options
        steps = parse_steps(getattr(opts, "steps", "") or "10:30s")
        users = schedule(
            steps,
            self.get_run_time(),  # type: ignore[no-untyped-call]  # Locust's own, untyped
            bool(getattr(opts, "ramp", False)),
            float(getattr(opts, "drain", 0.0) or 0.0),
        )
        if users is None:
            return None
        return users, max(users, 1)

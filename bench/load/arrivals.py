"""Open-loop arrivals: when each conversation (or trace row) is due, drawn before anyone is free to send it.

A request's intended start is its arrival, so time an arrival waits for a free user shows up in
``ttfc_sched_ms`` instead of disappearing; arrivals still queued at the end become ``not_sent``
records. ``bench.workload.replay.TraceArrivals`` is the same schedule driven by a trace.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from time import monotonic_ns
from typing import TYPE_CHECKING

import gevent

if TYPE_CHECKING:
    from bench.options import Settings
    from bench.scenario import Conversation
    from bench.workload.trace import TraceRow
from gevent.queue import Queue


@dataclass(slots=True)
class Arrival:
    """One open-loop arrival: when it was due and what it is, drawn before anyone is free to send it,
    so an arrival the run never sends still has a model and conversation in its record."""

    due: int  # monotonic ns
    seq: int
    conversation: Conversation | None
    model: str
    row: TraceRow | None = None  # a trace row (bench.workload.trace.TraceRow): one turn of a trace's conversation


class Schedule:
    """An open-loop schedule in one load-generating process: a greenlet that puts each arrival on
    the queue the users take from when it is due, and the count of every arrival it offered."""

    def __init__(self, settings: Settings) -> None:
        self.s = settings
        self.queue: Queue = Queue()
        self.offered = 0
        self.greenlet = None

    def start(self) -> None:
        self.greenlet = gevent.spawn(self._run)

    def stop(self) -> None:
        if self.greenlet is not None:
            self.greenlet.kill(block=False)
            self.greenlet = None

    def _run(self) -> None:
        raise NotImplementedError

    def drain(self) -> list[Arrival]:
        """Arrivals nobody took: called once the users have stopped."""
        out = []
        while not self.queue.empty():
            out.append(self.queue.get_nowait())
        return out


class Arrivals(Schedule):
    """Conversations arriving at a rate (Poisson, gamma or constant gaps), drawn independently of the server.

    Each process draws its own times from a seed of its own (seed, worker index): processes that
    shared one seed would send their arrivals in lock-step. Arrivals still queued when the run
    ends become ``not_sent`` records: offered load that the generator could not send.
    """

    def __init__(self, settings: Settings, rate: float, rng: random.Random) -> None:
        super().__init__(settings)
        self.rate = rate
        self.rng = rng

    def _run(self) -> None:
        s, rng, rate = self.s, self.rng, self.rate
        due = monotonic_ns()
        shape = 1.0 / (s.arrival_cv * s.arrival_cv) if s.arrival_cv > 0 else 1.0
        convs = s.scenario.conversations
        weights = [c.weight for c in convs]
        while True:
            if s.arrival_dist == "poisson":
                gap = rng.expovariate(rate)
            elif s.arrival_dist == "gamma":
                gap = rng.gammavariate(shape, 1.0 / (rate * shape))
            else:
                gap = 1.0 / rate
            due += int(gap * 1e9)
            conv = rng.choices(convs, weights=weights)[0]
            model = rng.choices(s.models, weights=s.model_weights)[0]
            delay = (due - monotonic_ns()) / 1e9
            if delay > 0:
                gevent.sleep(delay)
            self.offered += 1
            self.queue.put(Arrival(due, self.offered, conv, model))

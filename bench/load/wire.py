"""What workers and the master say to each other (Locust messages), and what the master knows of each worker.

Message names and keys are the wire format between releases' workers and masters on other
machines: one-letter keys stay as they were (``w`` is the worker's id), and a key added later is
``NotRequired`` so an older peer's message still reads. ``WorkerStatus`` is the master's (or a local
run's) account of one load-generating process; ``collector.json`` carries it per worker.
"""

# no `from __future__ import annotations`: TypedDict reads NotRequired from evaluated annotations only
from dataclasses import asdict, dataclass
from typing import Any, NotRequired, TypedDict

from bench.records import Row, StartNotice

RECORDS, STARTED, FLUSH, CLOCK, CLOCK_REPLY = "bench_records", "bench_started", "bench_flush", "bench_clock", "bench_clock_reply"


class RecordsMsg(TypedDict):
    """Worker → master, once a second and once at the end (``final``): rows and counters."""

    w: str
    rows: list[Row]
    sent: int
    errors: int
    final: bool
    cpu_max: float
    warnings: list[str]
    lag: bytes  # scheduling-lag samples since the last batch, microseconds, array("I") bytes
    cpu: float | None
    t: float  # the worker's wall clock when it sent the batch
    offered: NotRequired[int | None]  # open loop: arrivals due so far
    not_sent: NotRequired[int]
    trace: NotRequired[dict[str, Any] | None]  # a trace replay's clock origin and progress


class StartedMsg(TypedDict):
    """Worker → master: the requests that started in one event-loop turn (before their replies)."""

    w: str
    starts: list[StartNotice]


class ClockPing(TypedDict):
    t0: float  # the master's wall clock when it asked


class ClockReply(TypedDict):
    w: str
    t0: float
    tw: float  # the worker's wall clock when it answered


@dataclass
class WorkerStatus:
    """One load-generating process as the collecting side knows it."""

    received: int = 0  # rows received (and written)
    sent: int = 0  # requests it says it sent
    final: bool = False  # its final batch came: everything it had is in
    started: int = 0  # start notices received (a killed worker started more than it last reported)
    errors: int = 0
    cpu_max: float = 0.0
    cpu: float | None = None
    last_report: float | None = None  # wall time of its latest batch
    offered: int | None = None
    not_sent: int = 0
    trace: dict[str, Any] | None = None
    lost: int = 0  # requests it had in flight when it died: written as worker_lost rows

    def took(self, msg: RecordsMsg, now: float) -> None:
        """A batch arrived (and its rows were written)."""
        self.received += len(msg["rows"])
        self.sent = msg["sent"]
        self.final = self.final or msg["final"]
        self.cpu_max = msg.get("cpu_max", 0.0)
        self.cpu = msg.get("cpu")
        self.errors = msg.get("errors", 0)
        self.last_report = now
        self.offered, self.not_sent = msg.get("offered"), msg.get("not_sent", 0)
        if msg.get("trace") is not None:
            self.trace = msg.get("trace")

    @property
    def missing(self) -> int:
        """Requests it sent or was due to send that no row accounts for."""
        return max(0, max(self.sent, self.started) + (self.not_sent or 0) - self.received - self.lost)

    def as_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["sent"] = max(self.sent, self.started)
        out["missing"] = self.missing
        return out

"""Replay a trace in a load-generating process: each row at its time, each conversation in order.

Open loop: a row is due at the trace's time divided by the speed-up, whatever the server does.
A due row goes to the queue the users take from, unless an earlier turn of its conversation is
still streaming: then it waits behind it (its reply is the next turn's history), keeps its
intended time, and the wait shows in ``ttfc_sched_ms``. Rows still queued or waiting when the
run ends become ``not_sent`` records. In a distributed run each worker replays the conversations
whose id hashes to it, so a conversation's turns stay in one process.
"""

from __future__ import annotations

import random
import uuid
import zlib
from collections import deque
from dataclasses import dataclass, field
from time import monotonic_ns, time

import gevent

from bench.load.arrivals import Arrival, Schedule


@dataclass
class ConversationState:
    conv_id: str = field(default_factory=lambda: uuid.uuid4().hex[:12])
    history: list = field(default_factory=list)
    tokens: list = field(default_factory=list)  # each history message's token count (with --tokenizer), kept as it grows
    busy: bool = False
    waiting: deque = field(default_factory=deque)


def rows_for_worker(rows, workers: int, index: int):
    """The rows this worker replays: whole conversations, spread by a hash of their id."""
    if workers <= 1:
        return list(rows)
    return [r for r in rows if zlib.crc32(r.conversation.encode()) % workers == index]


class TraceArrivals(Schedule):
    """The trace's schedule in this process: each row due at its (scaled) time."""

    def __init__(self, settings, rows, speedup: float, on_finished=None) -> None:
        super().__init__(settings)
        self.rows = rows
        self.speedup = speedup
        self.completed = 0
        self.convs: dict[str, ConversationState] = {}
        self.t0_ns: int | None = None
        self.t0_wall: float | None = None
        self.dispatched_all = False
        self.on_finished = on_finished
        self._finished = False

    def state(self, conversation: str) -> ConversationState:
        return self.convs.setdefault(conversation, ConversationState())

    def _run(self) -> None:
        s = self.s
        # models drawn before the clock starts: nothing but sleeping and queueing between arrivals
        models = [
            r.model or random.Random(f"{s.seed}:trace-model:{r.row}").choices(s.models, weights=s.model_weights)[0]
            for r in self.rows
        ]
        self.t0_ns, self.t0_wall = monotonic_ns(), time()
        for r, model in zip(self.rows, models):
            due = self.t0_ns + int(r.t / self.speedup * 1e9)
            delay = (due - monotonic_ns()) / 1e9
            if delay > 0:
                gevent.sleep(delay)
            self.offered += 1
            a = Arrival(due, self.offered, None, model, row=r)
            st = self.state(r.conversation)
            if st.busy:
                st.waiting.append(a)
            else:
                st.busy = True
                self.queue.put(a)
        self.dispatched_all = True
        self._check_finished()

    def done(self, conversation: str) -> None:
        """A turn of ``conversation`` ended (any outcome): release its next turn, if one is waiting."""
        st = self.convs[conversation]
        if st.waiting:
            self.queue.put(st.waiting.popleft())
        else:
            st.busy = False
        self.completed += 1
        self._check_finished()

    def _check_finished(self) -> None:
        if self.dispatched_all and self.completed >= self.offered and not self._finished:
            self._finished = True
            if self.on_finished is not None:
                self.on_finished()

    def drain(self) -> list:
        """Rows due but never sent: queued for a free user, or waiting behind an unfinished turn."""
        out = super().drain()
        for st in self.convs.values():
            out.extend(st.waiting)
            st.waiting.clear()
        return sorted(out, key=lambda a: a.seq)

    def info(self) -> dict:
        return {
            "rows": len(self.rows),
            "offered": self.offered,
            "completed": self.completed,
            "speedup": self.speedup,
            "t0_wall": self.t0_wall,
            "t0_ns": self.t0_ns,
            "finished": self._finished,
        }

"""The measuring Locust user: replays scripted conversations as the real client does.

Each turn sends the whole history, the replies actually streamed included, so prompts grow
turn by turn. A user owns one keep-alive connection, like one browser tab. Closed loop: a
user thinks, then sends. Open loop: conversations start at arrival times drawn independently
of the server (Poisson or gamma); a request's intended start is its arrival, so time spent
waiting for a free user shows up in ``ttfc_sched_ms`` instead of disappearing.
"""

from __future__ import annotations

import os
import random
import uuid
from urllib.parse import urlsplit
from time import monotonic_ns, time

import gevent
from gevent import GreenletExit
from gevent.queue import Queue
from geventhttpclient import HTTPClient
from locust import User, constant, task

from bench.records import RequestContext, build_row
from bench.stream import Outcome, stream_request

STATE: dict = {"settings": None, "collector": None, "arrivals": None}


class StreamFailure(Exception):
    """Shown in Locust's failure table: the error class of METRICS.md."""


def arrival_greenlet(queue: Queue, rate: float, dist: str, cv: float, rng: random.Random) -> None:
    """Put intended start times (monotonic ns) on ``queue`` at ``rate`` per second, forever."""
    due = monotonic_ns()
    shape = 1.0 / (cv * cv) if cv > 0 else 1.0
    while True:
        if dist == "poisson":
            gap = rng.expovariate(rate)
        elif dist == "gamma":
            gap = rng.gammavariate(shape, 1.0 / (rate * shape))
        else:
            gap = 1.0 / rate
        due += int(gap * 1e9)
        delay = (due - monotonic_ns()) / 1e9
        if delay > 0:
            gevent.sleep(delay)
        queue.put(due)


class ChatUser(User):
    """Replays the scenario's conversations against the route and records every request."""

    wait_time = constant(0)  # think time lives inside the conversation, between turns

    def __init__(self, environment) -> None:
        super().__init__(environment)
        s = STATE["settings"]
        self.s = s
        self.collector = STATE["collector"]
        self.rng = random.Random(f"{s.seed}:{os.getpid()}:{id(self)}")
        self.client = HTTPClient.from_url(
            self.host, concurrency=1, connection_timeout=s.timeouts.connect,
            network_timeout=s.timeouts.first_chunk, insecure=False,
        )
        self.base_path = urlsplit(self.host).path.rstrip("/")  # a deployment mounted under a prefix
        self._prefix = uuid.uuid4().hex[:8]
        self._n = 0
        self.user_id = id(self) & 0xFFFFFF

    def on_start(self) -> None:
        if self.s.start_jitter:
            gevent.sleep(self.rng.uniform(0, self.s.start_jitter))

    def on_stop(self) -> None:
        self.client.close()

    @task
    def conversation(self) -> None:
        s = self.s
        conv = self.rng.choices(s.scenario.conversations, weights=[c.weight for c in s.scenario.conversations])[0]
        model = self.rng.choices(s.models, weights=s.model_weights)[0]
        conv_id = uuid.uuid4().hex[:12]
        history: list[dict[str, str]] = []
        last_reply = 0
        for turn_no, turn in enumerate(conv.turns):
            if turn_no == 0 and s.load_mode == "open":
                t_intended = STATE["arrivals"].get()
            else:
                if turn_no > 0:
                    think = s.scenario.think(self.rng, last_reply, len(turn.user))
                    if think > 0:
                        gevent.sleep(think)
                t_intended = monotonic_ns()
            history.append({"role": "user", "content": turn.user})
            reply, ok = self._send(model, history, conv, conv_id, turn_no, t_intended)
            if reply:
                history.append({"role": "assistant", "content": reply})
                last_reply = len(reply)
            else:
                history.pop()
                last_reply = 0
            if not ok and s.on_error == "next-conversation":
                return

    def _send(self, model, history, conv, conv_id, turn_no, t_intended) -> tuple[str, bool]:
        s = self.s
        self._n += 1
        rid = f"{self._prefix}-{self._n}"
        body = s.route.body(model, history)
        headers = {"Content-Type": "application/json", "Accept-Encoding": "identity", "X-Request-ID": rid}
        headers.update(s.credentials.headers())
        ctx = RequestContext(
            run_id=s.run_id, request_id=rid, worker=self.collector.worker_id, user=self.user_id,
            conversation_id=conv_id, conversation=conv.name, turn=turn_no, model=model, tags=",".join(conv.tags),
            t_intended=t_intended, t_wall_start=time(), prompt_chars=sum(len(m["content"]) for m in history),
            prompt_messages=len(history), protocol=s.protocol,
        )
        o = Outcome()
        self.collector.sent += 1
        try:
            stream_request(o, self.client, self.base_path + s.route.path(model), body, headers, s.timeouts, s.protocol)
        except GreenletExit:
            self._record(o, ctx)
            raise
        self._record(o, ctx)
        return (o.decoder.text if o.decoder is not None else ""), o.error is None

    def _record(self, o: Outcome, ctx: RequestContext) -> None:
        if o.error is None and o.decoder is not None and not o.decoder.texts:
            o.error, o.detail = "truncated", "the stream ended with no content part"
        row = build_row(o, ctx, self.s.count_tokens)
        failed = o.error is not None
        self.collector.add(row, failed and o.error != "cancelled")
        if o.error == "cancelled":
            return  # cut off by the run's end: kept in the records, not a failure of the target
        fire = self.environment.events.request.fire
        e2e = (o.t_end - o.t_start) / 1e6 if o.t_end else 0.0
        fire(request_type="CHAT", name=ctx.model, response_time=e2e, response_length=o.bytes_in,
             exception=StreamFailure(o.error) if failed else None, context={})
        if o.stamps:
            fire(request_type="TTFC", name=ctx.model, response_time=(o.stamps[0] - o.t_start) / 1e6,
                 response_length=0, exception=None, context={})

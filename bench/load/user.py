"""The measuring Locust user: replays scripted conversations as the real client does.

Each turn sends the whole history, the replies actually streamed included, so prompts grow
turn by turn. A user owns one keep-alive connection, like one browser tab. Closed loop: a
user thinks, then sends. Open loop: conversations start at arrival times drawn independently
of the server (Poisson or gamma); a request's intended start is its arrival, so time spent
waiting for a free user shows up in ``ttfc_sched_ms`` instead of disappearing.
"""

from __future__ import annotations

import itertools
import random
import ssl
import uuid
from dataclasses import dataclass, field
from time import monotonic_ns
from typing import TYPE_CHECKING, Any, cast
from urllib.parse import urlsplit

import gevent
from gevent import GreenletExit
from geventhttpclient import HTTPClient
from locust import User, constant, task

from bench.load.arrivals import Arrival
from bench.load.clock import wall
from bench.load.locusttypes import LocustEnv
from bench.load.route import RouteConfig, salted
from bench.load.stream import Outcome, stream_request
from bench.neptunapp import requested_new_tokens
from bench.records import IDX, RequestContext, Row, build_row, silent_at_end
from bench.schema import ErrorClass, Protocol

if TYPE_CHECKING:
    from bench.load.arrivals import Schedule
    from bench.load.collect import Collector
    from bench.options import Backend, Settings
    from bench.workload.replay import TraceArrivals


@dataclass
class LoadState:
    """What the users of one load-generating process share, kept on Locust's ``Environment``
    (``environment.bench``): the validated settings, the record collector, the open-loop arrivals."""

    settings: Settings | None = None
    collector: Collector | None = None
    arrivals: Schedule | None = None
    ssl_context: ssl.SSLContext | None = None
    preflight_host: str | None = None  # the host plain Locust's preflight checked (a web-UI host is checked at start)
    preflight_log: list[dict[str, Any]] = field(default_factory=list)  # its requests, for run.json: the server saw them
    start_host: str | None = None  # --host as given at start: the web UI may not send the credentials elsewhere

    def ssl_context_factory(self, **kw: Any) -> ssl.SSLContext:
        """One SSL context for every user of the process (creating one costs about 20 ms of CPU)."""
        if self.ssl_context is None:
            assert self.settings is not None and self.settings.tls is not None, "only asked for with https"
            self.ssl_context = self.settings.tls.context()
        return self.ssl_context


def load_state(environment: LocustEnv) -> LoadState:
    state = getattr(environment, "bench", None)
    if state is None:
        state = environment.bench = LoadState()
    return state


@dataclass
class Via:
    """Where a request goes: the app's route, or (--backend) the model server behind it."""

    path: str  # route | backend: the record's ``path``
    client: HTTPClient
    base_path: str
    route: RouteConfig
    protocol: Protocol
    backend: Backend | None  # the backend's headers and model ids; None for the route


class StreamFailure(Exception):
    """Shown in Locust's failure table: the error class of METRICS.md."""


class ChatUser(User):
    """Replays the scenario's conversations against the route and records every request."""

    wait_time = constant(0)  # think time lives inside the conversation, between turns
    _index = itertools.count()  # users of this process in the order Locust started them

    def __init__(self, environment: LocustEnv) -> None:
        super().__init__(environment)
        self.state = load_state(environment)
        s, collector = self.state.settings, self.state.collector
        assert s is not None and collector is not None, "the locustfile's init listener sets these before any user starts"
        self.s: Settings = s
        self.collector: Collector = collector
        # the same seed, worker and user index give the same conversations, models and think times
        self.index = next(ChatUser._index)
        worker = getattr(environment.runner, "worker_index", 0) if environment.runner is not None else 0
        self.worker_index = max(worker, 0)
        self.rng = random.Random(f"{s.seed}:{self.worker_index}:{self.index}")  # conversation and model choices
        self.conversations = 0
        self._tokens: dict[str, int] = {}  # prompt token counts of user messages, with a tokenizer
        host = self.host or ""  # Locust refuses to start users without one
        tls: dict[str, object] = {}
        if host.startswith("https:"):  # one SSL context per process, shared by every user
            tls = {"ssl_context_factory": self.state.ssl_context_factory, "insecure": s.tls is not None and s.tls.insecure}
        self.client = HTTPClient.from_url(
            host,
            concurrency=1,
            connection_timeout=s.timeouts.connect,
            network_timeout=s.timeouts.first_chunk,
            **tls,
        )
        self.base_path: str = urlsplit(host).path.rstrip("/")  # a deployment mounted under a prefix
        self._n = 0
        self.route_via = Via("route", self.client, self.base_path, s.route, s.protocol, None)
        self.backend_via: Via | None = None
        if s.backend is not None:  # a second connection, to the model server behind the route
            b = s.backend
            bclient = HTTPClient.from_url(
                b.url,
                concurrency=1,
                connection_timeout=s.timeouts.connect,
                network_timeout=s.timeouts.first_chunk,
                **(tls if b.url.startswith("https:") else {}),
            )
            broute = RouteConfig(kind=b.protocol, max_tokens=s.route.max_tokens, ignore_eos=s.route.ignore_eos)
            decoded_as = Protocol.openai if b.protocol == "openai" else Protocol.tgi  # tgi and hf: Hugging Face's token stream
            self.backend_via = Via("backend", bclient, urlsplit(b.url).path.rstrip("/"), broute, decoded_as, b)
        self._pairs = 0
        self._pair_rng = random.Random(f"{s.seed}:{self.worker_index}:{self.index}:pairs")
        self.user_id = self.worker_index * 100_000 + self.index  # the same user in every run of the same seed

    def on_start(self) -> None:
        # closed loop only: spreads the users' first conversations; in open loop the arrivals set the pace,
        # and a user still sleeping here would only make the first arrivals wait for a free one
        if self.s.start_jitter and self.s.load_mode == "closed":
            gevent.sleep(random.Random(f"{self.s.seed}:{self.worker_index}:{self.index}:start").uniform(0, self.s.start_jitter))

    def on_stop(self) -> None:
        self.client.close()
        if self.backend_via is not None:
            self.backend_via.client.close()

    def _turn(self, *args: Any, **kw: Any) -> tuple[str, int | None, bool]:
        """One turn: the route's request, and with --backend (for its share of turns) the same
        messages straight to the model server, the two in alternating order and sharing a pair id.
        The conversation goes on with the route's reply."""
        b = self.backend_via
        if b is None or self._pair_rng.random() >= self.s.backend.share:  # type: ignore[union-attr]
            return self._send(*args, **kw)
        pair = uuid.uuid4().hex
        self._pairs += 1
        route_kw, backend_kw = {**kw, "pair_id": pair}, {**kw, "pair_id": pair, "via": b}
        if self._pairs % 2:
            out = self._send(*args, **route_kw)
            self._send(*args, **backend_kw)
        else:
            self._send(*args, **backend_kw)
            out = self._send(*args, **route_kw)
        return out

    @task
    def conversation(self) -> None:
        s = self.s
        arrival: Arrival | None = None
        if s.load_mode == "open":
            assert self.state.arrivals is not None, "open loop: the schedule starts before the users"
            arrival = self.state.arrivals.queue.get()
            if arrival.row is not None:
                self._trace_turn(arrival)
                return
            conv, model = arrival.conversation, arrival.model
            assert conv is not None, "an arrival without a trace row carries its conversation"
        else:
            conv = self.rng.choices(s.scenario.conversations, weights=[c.weight for c in s.scenario.conversations])[0]
            model = self.rng.choices(s.models, weights=s.model_weights)[0]
        conv_id = uuid.uuid4().hex[:12]
        # think times from a generator of this conversation's own: a conversation cut short by an error
        # does not shift the choices and think times of the ones after it
        self.conversations += 1
        think_rng = random.Random(f"{s.seed}:{self.worker_index}:{self.index}:{self.conversations}")
        history: list[dict[str, str]] = []
        tokens: list[int] = []
        last_reply = 0
        for turn_no, turn in enumerate(conv.turns):
            if arrival is not None and turn_no == 0:
                t_intended = arrival.due
            elif turn_no > 0:
                think = s.scenario.think(think_rng, last_reply, len(turn.user))
                # intended: when thinking ends, whatever the generator does; a late wake-up shows in ttfc_sched_ms
                t_intended = monotonic_ns() + int(think * 1e9)
                if think > 0:
                    gevent.sleep(think)
            else:
                t_intended = monotonic_ns()
            history.append({"role": "user", "content": turn.user})
            if s.count_tokens is not None:
                tokens.append(self._count(turn.user))
            requested = s.workload.requested.get(conv.name) if s.workload is not None else None
            reply, reply_tokens, ok = self._turn(
                model, history, tokens, conv.name, ",".join(conv.tags), conv_id, turn_no, t_intended, *(requested or (None, None))
            )
            if reply:
                history.append({"role": "assistant", "content": reply})
                if s.count_tokens is not None:
                    tokens.append(reply_tokens if reply_tokens is not None else s.count_tokens(reply))
                last_reply = len(reply)
            else:
                history.pop()
                if tokens:
                    tokens.pop()
                last_reply = 0
            if not ok and s.on_error == "next-conversation":
                return

    def _trace_turn(self, a: Arrival) -> None:
        """One row of a trace: this turn of its conversation, after the turns before it (live history)."""
        s, row, replay = self.s, a.row, cast("TraceArrivals", self.state.arrivals)
        assert row is not None
        st = replay.state(row.conversation)
        try:
            count = s.count_tokens
            if row.messages is not None:  # a logged request, sent exactly as it was
                history = [dict(m) for m in row.messages]
                tokens = [count(m["content"]) for m in history] if count is not None else []
            else:
                if row.prompt is not None:
                    text = row.prompt
                else:  # a row with only a length: the workload's prompt maker writes it (checked when the trace was read)
                    assert s.workload is not None and s.workload.maker is not None and row.input_tokens is not None
                    maker = s.workload.maker
                    text = (
                        maker.block_prompt(row.hash_ids, row.input_tokens)
                        if row.hash_ids
                        else maker.prompt(row.input_tokens, row.row)
                    )
                history = st.history + [{"role": "user", "content": text}]
                tokens = st.tokens + [self._count(text)] if count is not None else []  # earlier turns counted once
            reply, reply_tokens, _ = self._turn(
                a.model,
                history,
                tokens,
                row.conversation,
                "trace",
                st.conv_id,
                row.turn,
                a.due,
                row.input_tokens,
                row.output_tokens,
                row.row,
            )
            if row.messages is None and reply:
                st.history = history + [{"role": "assistant", "content": reply}]
                if count is not None:
                    st.tokens = tokens + [reply_tokens if reply_tokens is not None else count(reply)]
        finally:
            replay.done(row.conversation)  # releases the conversation's next turn, also when this one was cut off

    def _count(self, text: str) -> int:
        n = self._tokens.get(text)
        if n is None:
            assert self.s.count_tokens is not None, "only called with a tokenizer loaded"
            n = self._tokens[text] = self.s.count_tokens(text)
        return n

    def _send(
        self,
        model: str,
        history: list[dict[str, str]],
        tokens: list[int],
        name: str,
        tags: str,
        conv_id: str,
        turn_no: int,
        t_intended: int,
        input_tokens: int | None = None,
        output_tokens: int | None = None,
        trace_row: int | None = None,
        pair_id: str | None = None,
        via: Via | None = None,
    ) -> tuple[str, int | None, bool]:
        """One request, always ending in exactly one record: whatever raises on the way (a bug, a
        server's shape no check foresaw) becomes an ``internal_error`` record with the exception."""
        s = self.s
        via = via or self.route_via
        route = via.route
        self._n += 1
        rid = str(uuid.uuid4())  # servers such as llama.cpp's refuse an X-Request-ID that is not a UUID
        o = Outcome()
        ctx = None

        def context(prompt_chars: int, prompt_tokens: int | None, requested: int | None) -> RequestContext:
            return RequestContext(
                run_id=s.run_id,
                request_id=rid,
                worker=self.collector.worker_id,
                user=self.user_id,
                conversation_id=conv_id,
                conversation=name,
                turn=turn_no,
                model=model,
                tags=tags,
                t_intended=t_intended,
                t_wall_start=wall(),
                prompt_chars=prompt_chars,
                prompt_messages=len(history),
                protocol=via.protocol.recorded,
                prompt_tokens=prompt_tokens,
                requested_tokens=requested,
                trace_row=trace_row,
                requested_input_tokens=input_tokens,
                path=via.path,
                pair_id=pair_id,
            )

        try:
            limit = output_tokens or route.max_tokens or None
            ctx = context(
                sum(len(m["content"]) for m in history),
                sum(tokens) if tokens else None,
                limit
                if route.kind == "openai"
                else (requested_new_tokens(model, limit or 0) if route.kind in ("tgi", "hf") else None),
            )
            self.collector.count_sent(ctx)
            if s.cache_salt is not None:  # --cache-salt run | request
                history = salted(history, s.cache_salt or rid.replace("-", "")[:10])
            sent_model = via.backend.model(model) if via.backend is not None else model
            # a Hugging Face backend gets the app's prompt, built from the route's model (its template)
            body = route.body(model if route.kind in ("tgi", "hf") else sent_model, history, limit or 0)
            headers = {"Content-Type": "application/json", "Accept-Encoding": "identity", "X-Request-ID": rid}
            if via.backend is None:
                headers.update(s.credentials.headers())
                headers.update(s.headers)
            else:
                headers.update(via.backend.headers)
            stream_request(o, via.client, via.base_path + route.path(sent_model), body, headers, s.timeouts, via.protocol)
        except GreenletExit:
            if ctx is not None:
                self._record(o, ctx)
            raise
        except Exception as exc:  # noqa: BLE001 (nothing may leave a request without its record)
            o.error, o.detail = ErrorClass.internal_error, f"{type(exc).__name__}: {exc}"[:300]
            o.t_end = monotonic_ns()
            if ctx is None:
                ctx = context(0, None, None)  # the context itself raised: what is known without it
                self.collector.count_sent(ctx)
            if o.t_start == 0:
                o.t_start = o.t_end
        row = self._record(o, ctx)
        try:
            dec = o.decoder
            reply = (
                ""
                if dec is None or o.error in (ErrorClass.internal_error, ErrorClass.oversized)  # no history past the bounds
                else (dec.visible_text() if s.history == "visible" else dec.text)
            )
            counted = str(row[IDX["token_source"]]).startswith("tokenizer:") and dec is not None and reply == dec.text
        except Exception:  # noqa: BLE001
            return "", None, False
        self._back_off(o)
        return reply, (row[IDX["output_tokens"]] if counted else None), o.error is None

    FAST_FAILURE_NS = 20_000_000  # a failure this quick (a 401, a refused connection) repeats at once if nothing waits

    def _back_off(self, o: Outcome) -> None:
        """Consecutive instant failures wait 20 ms, 40 ms, ... up to 1 s before the next request, so a
        broken target is not hammered thousands of times a second (4,444 req/s of connect_error
        were seen); a success or a slower failure resets it. The wait is think time, not latency."""
        if o.error is None or o.error == ErrorClass.cancelled or (o.t_end - o.t_start) > self.FAST_FAILURE_NS:
            self._fast_failures = 0
            return
        self._fast_failures = getattr(self, "_fast_failures", 0) + 1
        if self._fast_failures > 1:
            gevent.sleep(min(1.0, 0.01 * 2 ** (self._fast_failures - 1)))

    def _record(self, o: Outcome, ctx: RequestContext) -> Row:
        if o.error is None and o.decoder is not None and not o.decoder.texts:
            o.error, o.detail = ErrorClass.truncated, "the stream ended with no content part"
        if o.t_start == 0 and o.t_end:
            o.t_start = o.t_end  # cancelled while still connecting: no wait of the host's uptime
        dead = silent_at_end(o)
        if dead:
            o.error, o.detail = ErrorClass.stall, dead
        try:
            row = build_row(o, ctx, self.s.count_tokens)
        except Exception as exc:  # noqa: BLE001 (what was observed could not be turned into a row: keep the request)
            bare = Outcome(
                t_start=o.t_start,
                t_end=o.t_end or monotonic_ns(),
                status=o.status,
                error=ErrorClass.internal_error,
                detail=f"record: {type(exc).__name__}: {exc}"[:300],
            )
            o.error = bare.error
            row = build_row(bare, ctx, None)
        failed = o.error is not None
        self.collector.add(row, failed and o.error != ErrorClass.cancelled)
        if o.error == "cancelled":
            return row  # cut off by the run's end: kept in the records, not a failure of the target
        fire = self.environment.events.request.fire
        e2e = (o.t_end - o.t_start) / 1e6 if o.t_end else 0.0
        fire(
            request_type="CHAT" if ctx.path == "route" else "BACKEND",
            name=ctx.model,
            response_time=e2e,
            response_length=o.bytes_in,
            exception=StreamFailure(o.error) if failed else None,
            context={},
        )
        # one Locust entry per request sent, so Locust's totals and RPS count requests once; TTFC and the
        # rest are in the records (and the live "Streams" tab), exact, not Locust's rounded percentiles
        return row

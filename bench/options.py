"""The project's options on Locust's own parser, and the settings each process builds from them.

Registering on Locust's parser makes ``locust -f locustfile.py --help`` list them and makes
the master pass them to its workers. Secrets are never options: only the files holding them.
"""

from __future__ import annotations

import argparse
import random
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from bench.decode import PROTOCOLS
from bench.errors import InputError
from bench.route import Credentials, RouteConfig, credentials_from
from bench.scenario import Scenario, load_scenario
from bench.secrets import refuse_url_credentials
from bench.stream import Timeouts


def add_arguments(parser) -> None:
    g = parser.add_argument_group("bench (streaming chat replay)")
    g.add_argument("--scenario", default="default", help="Scenario file or bundled name (default: default)")
    g.add_argument("--models", default="", help="Comma-separated publisher/model list; overrides the scenario's mix")
    g.add_argument("--results-dir", default="", help="Run folder for records (default results/<run-id>)")
    g.add_argument("--run-id", default="", help="Run id (default: time-stamped)")
    g.add_argument("--route", choices=["neptun", "openai"], default="neptun", help="Route protocol (default neptun)")
    g.add_argument("--protocol", choices=list(PROTOCOLS), default="auto", help="Stream decoding: aisdk, sse, ui (AI SDK 5 UI message stream), openai (default: detect)")
    g.add_argument("--auth", choices=["auto", "none", "bearer", "jwt", "cookie"], default="auto",
                   help="Credentials: bearer token (BENCH_TOKEN/--token-file), JWT minted from a secret "
                        "(BENCH_JWT_SECRET/--jwt-secret-file), session cookie (BENCH_COOKIE/--cookie-file)")
    g.add_argument("--token-file", default="", help="File holding a bearer token")
    g.add_argument("--jwt-secret-file", default="", help="File holding the HS256 secret to mint JWTs")
    g.add_argument("--cookie-file", default="", help="File holding the session cookie")
    g.add_argument("--persist", action="store_true", help="Write chat history on the target (default: playground mode)")
    g.add_argument("--chat-id", type=int, default=-1, help="chat_id sent with every request (default -1)")
    g.add_argument("--connect-timeout", type=float, default=10.0, help="Seconds (default 10)")
    g.add_argument("--first-chunk-timeout", type=float, default=60.0, help="Seconds from send to first content (default 60)")
    g.add_argument("--stall-timeout", type=float, default=30.0, help="Seconds without a chunk mid-stream (default 30)")
    g.add_argument("--total-timeout", type=float, default=300.0, help="Seconds for a whole stream (default 300)")
    g.add_argument("--load-mode", choices=["closed", "open"], default="closed",
                   help="closed: each user replays conversations back to back; open: conversations arrive at --arrival-rate")
    g.add_argument("--arrival-rate", type=float, default=1.0, help="Open loop: new conversations per second, all workers together")
    g.add_argument("--arrival-dist", choices=["poisson", "gamma", "constant"], default="poisson", help="Open loop arrival process")
    g.add_argument("--arrival-cv", type=float, default=2.0, help="Gamma arrivals: coefficient of variation (>1 is bursty)")
    # set by the master for its workers (Locust does not pass --expect-workers on): how many share the arrival rate
    g.add_argument("--arrival-split", type=int, default=0, help=argparse.SUPPRESS)
    g.add_argument("--on-error", choices=["next-conversation", "next-turn"], default="next-conversation",
                   help="After a failed turn: start a new conversation, or go on with the next turn")
    g.add_argument("--start-jitter", type=float, default=1.0, help="Spread each user's start over this many seconds")
    g.add_argument("--seed", type=int, default=0, help="Seed for conversation/model choice and think times")
    g.add_argument("--tokenizer", default="", help="tokenizer.json to count output tokens when the server sends no usage")
    g.add_argument("--steps", default="", help="With -f locustfile.py,bench/shapes.py: USERS:DURATION,... e.g. 10:30s,20:30s")
    g.add_argument("--ramp", action="store_true", help="With bench/shapes.py: ramp linearly between steps")
    g.add_argument("--drain", type=float, default=0.0, help="With bench/shapes.py: seconds after the last step before stopping")


@dataclass
class Settings:
    scenario: Scenario
    models: list[str]
    model_weights: list[float]
    route: RouteConfig
    credentials: Credentials
    timeouts: Timeouts
    protocol: str
    load_mode: str
    arrival_rate: float
    arrival_dist: str
    arrival_cv: float
    on_error: str
    start_jitter: float
    seed: int
    run_id: str
    run_dir: Path
    count_tokens: object = None
    rng: random.Random = field(default_factory=random.Random)


def new_run_id() -> str:
    import time

    return time.strftime("%Y%m%d-%H%M%S") + "-" + uuid.uuid4().hex[:6]


def settings_from(opts) -> Settings:
    """Validate everything before any load: scenario, models, credentials, timeouts."""
    refuse_url_credentials(getattr(opts, "host", None))
    scenario = load_scenario(opts.scenario)
    if opts.models:
        models = [m.strip() for m in opts.models.split(",") if m.strip()]
        for m in models:
            if m.count("/") != 1:
                raise InputError(f"--models: {m!r} is not publisher/model")
        weights = [1.0] * len(models)
    else:
        models = [m.model for m in scenario.models]
        weights = [m.weight for m in scenario.models]
    if not models:
        raise InputError(f"scenario {scenario.name!r} names no models: add 'models:' or pass --models")
    for name in ("connect_timeout", "first_chunk_timeout", "stall_timeout", "total_timeout"):
        if getattr(opts, name) <= 0:
            raise InputError(f"--{name.replace('_', '-')} must be positive")
    if opts.load_mode == "open" and opts.arrival_rate <= 0:
        raise InputError("--arrival-rate must be positive in open loop")
    if opts.persist and opts.chat_id < 0:
        raise InputError("--persist needs --chat-id N of a real chat")
    creds = credentials_from(opts.auth, opts.token_file or None, opts.jwt_secret_file or None, opts.cookie_file or None)
    run_id = opts.run_id or new_run_id()
    run_dir = Path(opts.results_dir) if opts.results_dir else Path("results") / run_id
    count_tokens = None
    if opts.tokenizer:
        from bench.tokens import load_tokenizer

        count_tokens = load_tokenizer(opts.tokenizer)
    return Settings(
        scenario=scenario, models=models, model_weights=weights,
        route=RouteConfig(kind=opts.route, playground=not opts.persist, chat_id=opts.chat_id),
        credentials=creds,
        timeouts=Timeouts(opts.connect_timeout, opts.first_chunk_timeout, opts.stall_timeout, opts.total_timeout),
        protocol=opts.protocol, load_mode=opts.load_mode, arrival_rate=opts.arrival_rate,
        arrival_dist=opts.arrival_dist, arrival_cv=opts.arrival_cv, on_error=opts.on_error,
        start_jitter=max(0.0, opts.start_jitter), seed=opts.seed, run_id=run_id, run_dir=run_dir,
        count_tokens=count_tokens, rng=random.Random(opts.seed),
    )

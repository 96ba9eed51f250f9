"""The settings each load-generating process builds from its parsed options, validated.

The options themselves are declared in ``bench.optiontable`` (registered on Locust's own parser,
so the master passes them to its workers). Secrets are never options: only the files holding them.
"""

from __future__ import annotations

import random
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from bench.errors import InputError
from bench.load.route import Credentials, RouteConfig, check_models, check_template, credentials_from, parse_headers
from bench.load.stream import Timeouts
from bench.optiontable import LOCUST, OPTIONS
from bench.optiontable import add_arguments as add_arguments  # the locustfile registers them through here
from bench.scenario import Scenario, load_scenario
from bench.schema import Protocol
from bench.secrets import refuse_url_credentials

# a run's options: a RunOptions (bench run, capacity) or the Locust child's parsed namespace, with the same names
Opts = Any

if TYPE_CHECKING:
    import ssl

    from bench.tokens import TokenCounter
    from bench.workload.setup import Workload


@dataclass
class Settings:
    scenario: Scenario
    models: list[str]
    model_weights: list[float]
    route: RouteConfig
    credentials: Credentials
    timeouts: Timeouts
    protocol: Protocol  # the route's stream framing (--protocol)
    load_mode: str
    arrival_rate: float
    arrival_dist: str
    arrival_cv: float
    on_error: str
    start_jitter: float
    seed: int
    run_id: str
    run_dir: Path
    count_tokens: TokenCounter | None = None
    rng: random.Random = field(default_factory=random.Random)
    headers: dict[str, str] = field(default_factory=dict)  # --header: extra request headers (values may be secrets)
    history: str = "visible"  # what a turn sends back of earlier replies: visible text, or reasoning too
    backend: Backend | None = None  # --backend: the model server behind the route, paired turn by turn
    cache_salt: str | None = None  # --cache-salt: None (none), the run's nonce (run) or "" (request: one per request)
    tls: Tls | None = None
    workload: Workload | None = None  # bench.workload.setup.Workload: a trace, synthetic prompts, or the scenario alone


@dataclass(frozen=True)
class Backend:
    """--backend: where the model server behind the route is, and how to speak to it."""

    url: str
    share: float
    headers: dict[str, str]
    models: dict[str, str]  # route model id -> the id the backend serves
    protocol: str = "openai"  # openai | tgi | hf (bench.load.route.RouteConfig's kinds for a model server)

    def model(self, route_model: str) -> str:
        """The id the backend serves: --backend-models, else for hf the id the app sends Hugging Face."""
        if route_model in self.models:
            return self.models[route_model]
        if self.protocol == "hf":
            from bench.neptunapp import hf_model_id

            return hf_model_id(route_model)
        return route_model


def backend_from(opts: Opts) -> Backend | None:
    url = getattr(opts, "backend", "") or ""
    if not url:
        return None
    refuse_url_credentials(url)
    if not url.startswith(("http://", "https://")):
        raise InputError(f"--backend {url}: expected an http:// or https:// base URL of the model server")
    share = float(opts.backend_share)  # in (0, 1]: checked with the option (check_values)
    models = {}
    for item in filter(None, (x.strip() for x in (opts.backend_models or "").split(","))):
        route_id, sep, backend_id = item.partition("=")
        if not sep or not route_id or not backend_id:
            raise InputError(f"--backend-models {item!r}: expected ROUTE_ID=BACKEND_ID")
        models[route_id.strip()] = backend_id.strip()
    protocol = getattr(opts, "backend_protocol", "openai") or "openai"
    if protocol not in ("openai", "tgi", "hf"):
        raise InputError(f"--backend-protocol {protocol!r}: expected openai, tgi or hf")
    return Backend(url.rstrip("/"), share, parse_headers(opts.backend_header), models, protocol)


def cache_salt(mode: str, run_id: str) -> str | None:
    """The nonce ``--cache-salt`` puts in front of each conversation's first user message: ``None``
    for none, one per run (from the run id, so every worker of a run sends the same), ``""`` for a
    fresh one per request (the user makes it)."""
    import hashlib

    if mode == "none":
        return None
    if mode == "request":
        return ""
    return hashlib.sha256(run_id.encode()).hexdigest()[:10]


def new_run_id() -> str:
    import time

    return time.strftime("%Y%m%d-%H%M%S") + "-" + uuid.uuid4().hex[:6]


@dataclass(frozen=True)
class Tls:
    """How the client checks the target's certificate: a private CA, or not at all (loudly)."""

    ca_file: str = ""
    insecure: bool = False

    def httpx_verify(self) -> ssl.SSLContext | bool:
        import ssl

        return False if self.insecure else (ssl.create_default_context(cafile=self.ca_file) if self.ca_file else True)

    def context(self) -> ssl.SSLContext:
        """One SSL context for every user of a process (creating one costs about 20 ms of CPU); gevent's,
        so its sockets yield to the other users while they wait."""
        import ssl

        import gevent.ssl

        ctx = gevent.ssl.create_default_context(cafile=self.ca_file or None)
        if self.insecure:
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        return cast("ssl.SSLContext", ctx)  # gevent's SSLContext subclasses the standard library's


def tls_from(opts: Opts) -> Tls:
    ca = getattr(opts, "ca_file", "") or ""
    if ca and not Path(ca).is_file():
        raise InputError(f"--ca-file {ca}: file not found")
    return Tls(ca, bool(getattr(opts, "insecure", False)))


def check_values(opts: Opts, command: str = LOCUST) -> None:
    """Values that need no file or server to be refused: before any target starts or load is sent.

    The one place option values are checked. Each option's accepted numbers are declared with it
    (``optiontable.Bound``) and checked here for every option of ``command`` that ``opts`` holds:
    the same code in ``bench run`` (``RUN``) and in every Locust process (``LOCUST``)."""
    import math

    for o in OPTIONS:
        if command not in o.where or o.type not in (int, float):
            continue
        v = getattr(opts, o.name, None)
        if v is None or isinstance(v, bool):
            continue
        if not isinstance(v, (int, float)):
            raise InputError(f"{o.long} {v!r}: expected a number")
        if not math.isfinite(v):
            raise InputError(f"{o.long} {v}: expected a finite number")
        if o.bound is not None and not o.bound.admits(v):
            raise InputError(f"{o.long} {v:g}: expected {o.bound.phrase}")
    for text in getattr(opts, "slo", None) or []:
        from bench.slo import parse_slo

        parse_slo(text)  # a bad SLO is refused here, not after the run
    if opts.persist and opts.chat_id < 0:
        raise InputError("--persist needs --chat-id N of a real chat")
    if not opts.persist and opts.chat_id != -1:
        raise InputError(
            f"--chat-id {opts.chat_id} without --persist: playground mode always sends chat_id=-1; add --persist "
            "to write the load into that chat"
        )
    parse_headers(opts.header)
    tls_from(opts)


def check_slos(opts: Opts, scenario: Scenario) -> None:
    """The SLOs this run judges (``--slo``, else the scenario's), against what the run can measure: an
    SLO on paired turns without ``--backend`` is said now, not "not judged" after the load."""
    from bench.metrics import PAIRED
    from bench.slo import parse_slo

    given = list(getattr(opts, "slo", None) or [])
    for text in given or scenario.slos:
        if not getattr(opts, "backend", "") and parse_slo(text).metric in PAIRED:
            where = "--slo" if given else f"{opts.scenario}, slos"
            raise InputError(
                f"{where}: {text!r} is judged on paired turns; add --backend URL (the model server behind the route)"
            )


def ignored_options(opts: Opts, defaults: dict[str, Any] | None = None) -> list[str]:
    """Options given that this run cannot use: said in one line each (console and run.json), never
    silently dropped."""
    out = []
    d = defaults or {}
    if getattr(opts, "speedup", 1.0) != d.get("speedup", 1.0) and not getattr(opts, "trace", ""):
        out.append(f"--speedup {opts.speedup:g} ignored: it scales a --trace, and this run replays no trace")
    if (
        getattr(opts, "max_tokens", 0)
        and getattr(opts, "route", "neptun") == "neptun"
        and not getattr(opts, "route_template", "")
    ):
        out.append(
            f"--max-tokens {opts.max_tokens} ignored on the Neptun route: its body has no such field (the app applies each "
            "model's own max_new_tokens); use --route openai to bound replies"
        )
    if (
        getattr(opts, "load_mode", "closed") == "closed"
        and getattr(opts, "arrival_rate", 1.0) != d.get("arrival_rate", 1.0)
        and not getattr(opts, "trace", "")
    ):
        out.append(f"--arrival-rate {opts.arrival_rate:g} ignored in closed loop (users send back to back); add --load-mode open")
    return out


def check_files(opts: Opts) -> None:
    """Every file an option names exists before any target starts (not in the Locust child, after the load began)."""
    from pathlib import Path as _P

    for name, what in (
        ("token_file", "token file"),
        ("cookie_file", "cookie file"),
        ("jwt_secret_file", "JWT secret file"),
        ("ca_file", "CA file"),
        ("tokenizer", "tokenizer file"),
        ("trace", "trace file"),
        ("gate_tolerance_file", "tolerance file"),
    ):
        v = getattr(opts, name, "")
        if v and not _P(v).is_file():
            raise InputError(f"--{name.replace('_', '-')} {v}: {what} not found")


def route_and_models(opts: Opts, scenario: Scenario) -> tuple[RouteConfig, list[str], list[float]]:
    """The route (templates per model included) and the model mix, checked: one home for both the
    ``bench`` process (before any load) and every load-generating process."""
    if opts.route_template:
        check_template(opts.route_template)
    templates = {
        m.model: check_template(m.route, f"scenario {scenario.name!r}, model {m.model!r}, route")
        for m in scenario.models
        if m.route
    }
    if opts.models:
        models = [m.strip() for m in opts.models.split(",") if m.strip()]
        weights = [1.0] * len(models)
    elif opts.route == "openai":
        models, weights = [], []  # the ids the server serves (GET /v1/models), not the scenario's Neptun ids
    else:
        models = [m.model for m in scenario.models]
        weights = [m.weight for m in scenario.models]
    if not models and opts.route != "openai":
        raise InputError(f"scenario {scenario.name!r} names no models: add 'models:' or pass --models")
    check_models(models, opts.route, opts.route_template, templates)
    route = RouteConfig(
        kind=opts.route,
        playground=not opts.persist,
        chat_id=opts.chat_id,
        template=opts.route_template,
        templates=tuple(templates.items()),
        max_tokens=opts.max_tokens or (scenario.max_tokens or 0),
        ignore_eos=opts.ignore_eos,
    )
    return route, models, weights


def settings_from(opts: Opts) -> Settings:
    """Validate everything before any load: scenario, models, credentials, timeouts."""
    refuse_url_credentials(getattr(opts, "host", None))
    scenario = load_scenario(opts.scenario)
    check_values(opts)
    route, models, weights = route_and_models(opts, scenario)
    check_slos(opts, scenario)
    creds = credentials_from(
        opts.auth,
        opts.token_file or None,
        opts.jwt_secret_file or None,
        opts.cookie_file or None,
        getattr(opts, "cookie_name", None) or "neptun-session",
    )
    if not models and getattr(opts, "host", None):  # an OpenAI server: the models it serves
        from bench.preflight import served_models

        models = served_models(opts.host, creds, tls_from(opts))
        weights = [1.0] * len(models)
    extra_headers = parse_headers(opts.header)
    run_id = opts.run_id or new_run_id()
    run_dir = Path(opts.results_dir) if opts.results_dir else Path("results") / run_id
    count_tokens = None
    if opts.tokenizer:
        from bench.tokens import load_tokenizer

        count_tokens = load_tokenizer(opts.tokenizer)
    from bench.workload.setup import workload_from

    workload, scenario = workload_from(
        opts, scenario, count_tokens, lambda ids: check_models(ids, opts.route, opts.route_template)
    )
    load_mode = "open" if workload.trace is not None else opts.load_mode  # a trace is its own arrival process
    return Settings(
        workload=workload,
        scenario=scenario,
        models=models,
        model_weights=weights,
        route=route,
        credentials=creds,
        headers=extra_headers,
        history=opts.history,
        cache_salt=cache_salt(opts.cache_salt, run_id),
        backend=backend_from(opts),
        tls=tls_from(opts),
        timeouts=Timeouts(opts.connect_timeout, opts.first_chunk_timeout, opts.stall_timeout, opts.total_timeout),
        protocol=Protocol(opts.protocol),
        load_mode=load_mode,
        arrival_rate=opts.arrival_rate,
        arrival_dist=opts.arrival_dist,
        arrival_cv=opts.arrival_cv,
        on_error=opts.on_error,
        start_jitter=max(0.0, opts.start_jitter),
        seed=opts.seed,
        run_id=run_id,
        run_dir=run_dir,
        count_tokens=count_tokens,
        rng=random.Random(opts.seed),
    )

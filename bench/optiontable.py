"""Every option of the harness, declared once; the click commands, Locust's parser and the
Locust child's argv are generated from this table.

An option lists the places it belongs to: ``locust`` (Locust's parser: it reaches every worker,
and ``bench run`` passes it to its Locust child), ``run`` (``bench run``), ``capacity``
(``bench capacity``). A command shows exactly the options it honours.
"""

from __future__ import annotations

import argparse
import typing
from collections.abc import Callable
from dataclasses import MISSING, dataclass, field, fields, replace
from typing import Any

import click

from bench.load.decode import PROTOCOLS

F = typing.TypeVar("F", bound=Callable[..., Any])
LOCUST, RUN, CAPACITY = "locust", "run", "capacity"
LOAD = frozenset({LOCUST, RUN, CAPACITY})  # what the measuring users read: everywhere
HARNESS = frozenset({RUN, CAPACITY})  # what bench run / capacity do around Locust


@dataclass(frozen=True)
class Bound:
    """The numbers an option accepts, declared with it and checked in one place
    (``bench.options.check_values``) before any target starts; every float must also be finite
    (NaN passes a ``<= 0`` check, and an infinite timeout once sent requests that left no record)."""

    low: float
    above: bool = False  # ``low`` itself refused (> low rather than >= low)
    high: float | None = None

    def admits(self, v: float) -> bool:
        return (v > self.low if self.above else v >= self.low) and (self.high is None or v <= self.high)

    @property
    def phrase(self) -> str:
        if self.high is not None:
            return f"a number in {'(' if self.above else '['}{self.low:g}, {self.high:g}]"
        if self.low == 0:
            return "a positive number" if self.above else "a number not below 0"
        return f"a number {'above' if self.above else 'at least'} {self.low:g}"


POSITIVE, NOT_NEGATIVE, AT_LEAST_1, SHARE = Bound(0, True), Bound(0), Bound(1), Bound(0, True, 1)


@dataclass(frozen=True)
class Opt:
    name: str  # the Python name: RunOptions field, Locust's parsed option, click parameter
    flags: tuple[str, ...]
    help: str
    default: Any = None
    type: Any = str
    choices: tuple[str, ...] | None = None
    flag: bool = False  # a switch (store_true)
    multiple: bool = False  # repeatable
    where: frozenset[str] = LOAD
    hidden: bool = False
    path: bool = False  # a file the child must find from another working directory
    bound: Bound | None = None  # the numbers it accepts

    @property
    def long(self) -> str:
        return next(f for f in self.flags if f.startswith("--"))


def opt(
    flags: tuple[str, ...],
    help: str,
    default: Any = None,
    *,
    choices: tuple[str, ...] | None = None,
    flag: bool = False,
    multiple: bool = False,
    where: frozenset[str] = LOAD,
    hidden: bool = False,
    path: bool = False,
    bound: Bound | None = None,
) -> Any:
    """One option: a ``RunOptions`` field carrying its ``Opt`` (name and type come from the field)."""
    spec = Opt("", flags, help, default, str, choices, flag, multiple, where, hidden, path, bound)
    if multiple:
        items: list[str] = list(default or [])
        return field(default_factory=items.copy, metadata={"opt": spec})
    return field(default=bool(default) if flag else default, metadata={"opt": spec})


@dataclass(frozen=True)
class RunOptions:
    """What ``bench run``, each level of ``bench capacity`` and the Locust child run with.

    Each field is one option, declared once: its annotation is its type, ``opt(...)`` its flags,
    help, default and where it belongs. ``OPTIONS``, the click commands, Locust's parser and the
    child's argv are generated from these fields."""

    # --- where and how much (bench run / capacity only; plain Locust has its own -u/-r/-t/--host) -------------
    host: str | None = opt(
        ("--host",),
        "Base URL of the app to test, e.g. https://neptun.example (default: start the embedded reference target on loopback).",
        where=HARNESS,
    )
    users: int = opt(
        ("-u", "--users"),
        "Concurrent users (closed loop) or the cap on concurrent conversations (open loop).",
        12,
        where=frozenset({RUN}),
        bound=AT_LEAST_1,
    )
    spawn_rate: float = opt(("-r", "--spawn-rate"), "Users started per second.", 12.0, where=frozenset({RUN}), bound=POSITIVE)
    duration: str = opt(
        ("-t", "--duration"),
        "How long to load: 30s, 2m, 1h30m (default 30s; with --trace, the trace's span "
        "divided by the speed-up plus 60 s, and the run ends once every row is answered).",
        "",
        where=frozenset({RUN}),
    )
    out: str = opt(("--out",), "Folder that receives the run folder.", "results", where=HARNESS)
    processes: int = opt(
        ("--processes",),
        "Load-generator processes (Locust --processes); add more when one CPU saturates.",
        1,
        where=HARNESS,
        bound=AT_LEAST_1,
    )
    # --- the workload ---------------------------------------------------------------------------------------
    scenario: str = opt(
        ("--scenario",),
        "Scenario file or bundled name (default, short-qa, coding-help, long-context, long-chat).",
        "default",
        path=True,
    )
    models: str = opt(
        ("--models",),
        "Comma-separated model list; overrides the scenario's model mix (publisher/model on the "
        "Neptun route, any id the server serves on --route openai).",
        "",
    )
    load_mode: str = opt(
        ("--load-mode",),
        "closed: users replay conversations back to back; open: conversations arrive at --arrival-rate.",
        "closed",
        choices=("closed", "open"),
    )
    arrival_rate: float = opt(
        ("--arrival-rate",), "Open loop: new conversations per second, all workers together.", 1.0, bound=POSITIVE
    )
    arrival_dist: str = opt(
        ("--arrival-dist",), "Open loop arrival process.", "poisson", choices=("poisson", "gamma", "constant")
    )
    arrival_cv: float = opt(("--arrival-cv",), "Gamma arrivals: coefficient of variation (>1 is bursty).", 2.0, bound=POSITIVE)
    on_error: str = opt(
        ("--on-error",),
        "After a failed turn: start a new conversation, or go on with the next turn.",
        "next-conversation",
        choices=("next-conversation", "next-turn"),
    )
    start_jitter: float = opt(
        ("--start-jitter",), "Closed loop: spread the users' first conversations over this many seconds.", 1.0, bound=NOT_NEGATIVE
    )
    seed: int = opt(("--seed",), "Seed for conversation and model choice and think times.", 0)
    trace: str = opt(
        ("--trace",),
        "Replay a request trace (JSONL or CSV; ours, Mooncake's or Azure's layout, see README "
        '"Workloads"): each row at its time (open loop), turns of a conversation in order with live history.',
        "",
        path=True,
        where=frozenset({LOCUST, RUN}),
    )
    speedup: float = opt(
        ("--speedup",),
        "--trace: play the trace this many times faster (2 = twice the rate).",
        1.0,
        where=frozenset({LOCUST, RUN}),
        bound=POSITIVE,
    )
    trace_rate: float = opt(
        ("--trace-rate",),
        "--trace: scale time so the trace's mean rate becomes this many requests/s (instead of --speedup).",
        0.0,
        where=frozenset({LOCUST, RUN}),
        bound=NOT_NEGATIVE,
    )
    trace_window: str = opt(
        ("--trace-window",),
        "--trace: replay only rows arriving in START:END seconds of trace time, e.g. 600:1200.",
        "",
        where=frozenset({LOCUST, RUN}),
    )
    input_tokens: str = opt(
        ("--input-tokens",),
        "Synthetic one-turn prompts of this many tokens instead of the scenario's "
        "conversations: fixed:N (or N), uniform:LO:HI, normal:MEAN:SD, hist:TRACE (a trace's input lengths). Counted "
        "with --tokenizer when given, else at 4 characters per token.",
        "",
    )
    output_tokens: str = opt(
        ("--output-tokens",),
        "With --input-tokens: the reply length to ask for (max_tokens, OpenAI "
        "route), the same forms; add --ignore-eos where the server supports it.",
        "",
    )
    # --- the route and the stream ----------------------------------------------------------------------------
    route: str = opt(
        ("--route",), "neptun: the chat route; openai: /v1/chat/completions.", "neptun", choices=("neptun", "openai")
    )
    protocol: str = opt(
        ("--protocol",),
        "Stream format: aisdk (AI SDK 4 data stream), sse (its parts in SSE), ui (AI SDK 5 UI "
        "message stream), openai, tgi (Hugging Face's token stream); auto detects it.",
        "auto",
        choices=PROTOCOLS,
    )
    persist: bool = opt(
        ("--persist",), "Let the deployment store the chats (default: playground mode, nothing stored).", False, flag=True
    )
    chat_id: int = opt(("--chat-id",), "chat_id sent with every request (a real chat's id with --persist).", -1)
    route_template: str = opt(
        ("--route-template",),
        "Path of the chat route for every model, e.g. "
        "'/api/ai/cloudflare/{model}/chat?chat_id={chat_id}' (placeholders {model}, {publisher}, {name}, {provider}, "
        "{chat_id}); a model in the scenario may carry its own 'route:'.",
        "",
    )
    history: str = opt(
        ("--history",),
        "What each turn sends back of earlier replies: visible (the text a user saw, as the "
        "AI SDK's useChat does: no reasoning) or full (reasoning included).",
        "visible",
        choices=("visible", "full"),
    )
    backend: str = opt(
        ("--backend",),
        "Also send each turn straight to the model server behind the route (its base URL, e.g. "
        "http://tgi:8080 or http://vllm:8000; --backend-protocol says how to speak to it): paired with the "
        "route's request, in alternating order, recorded apart (backend/ in the run folder); the report's "
        '"what the route adds" is their difference.',
        "",
    )
    backend_protocol: str = opt(
        ("--backend-protocol",),
        "--backend: openai (URL/v1/chat/completions, the messages as they are), tgi (Hugging Face TGI's "
        "URL/generate_stream) or hf (the Inference API's URL/models/{id} with stream: true, what the Neptun "
        "app's client calls). tgi and hf get the prompt and parameters the app would send: its instruction "
        "prepended, its sanitising, the model's template (bench/neptunapp.py).",
        "openai",
        choices=("openai", "tgi", "hf"),
    )
    backend_share: float = opt(
        ("--backend-share",),
        "--backend: the share of turns that get a paired backend request (1 = every turn).",
        1.0,
        bound=SHARE,
    )
    backend_models: str = opt(
        ("--backend-models",),
        "--backend: model ids the server behind the route serves, as ROUTE_ID=BACKEND_ID[,...] (default: the same id).",
        "",
    )
    backend_header: list[str] = opt(
        ("--backend-header",),
        "--backend: a request header for the model server, repeatable ('Authorization: @env:HF_TOKEN' reads a secret).",
        multiple=True,
    )
    cache_salt: str = opt(
        ("--cache-salt",),
        "Keep a server's prefix cache from carrying over: none (the scenario's bytes exactly), run (one "
        "short nonce per run at the start of each conversation's first user message: turns of a "
        "conversation still share their prefix, two runs do not) or request (a nonce per request: no "
        "prefix shared beyond what the app itself prepends).",
        "none",
        choices=("none", "run", "request"),
    )
    max_tokens: int = opt(
        ("--max-tokens",),
        "Bound every reply (OpenAI route: max_tokens in the body; overrides the scenario's max_tokens).",
        0,
        bound=NOT_NEGATIVE,
    )
    ignore_eos: bool = opt(
        ("--ignore-eos",),
        "OpenAI route: ask the server to ignore end-of-sequence (vLLM, llama.cpp), so replies run to --max-tokens.",
        False,
        flag=True,
    )
    header: list[str] = opt(
        ("--header",),
        "Extra request header, repeatable: 'Name: value', or a secret value from the "
        "environment or a file, 'Name: @env:VAR' / 'Name: @file:PATH' (scrubbed from every output).",
        multiple=True,
    )
    ca_file: str = opt(
        ("--ca-file",), "PEM file of the CA that signed the target's certificate (a private staging CA).", "", path=True
    )
    insecure: bool = opt(
        ("--insecure",),
        "Do not verify the target's TLS certificate (recorded as a warning in run.json and the report).",
        False,
        flag=True,
    )
    # --- credentials: files and environment variables only ---------------------------------------------------
    auth: str = opt(
        ("--auth",),
        "cookie: the app's session cookie (BENCH_COOKIE / --cookie-file), bearer token (BENCH_TOKEN / "
        "--token-file, for a gateway), jwt minted from a secret (BENCH_JWT_SECRET / --jwt-secret-file); auto tries "
        "those present in that order and keeps the first the target accepts.",
        "auto",
        choices=("auto", "none", "bearer", "jwt", "cookie"),
    )
    token_file: str = opt(("--token-file",), "File holding the bearer token.", "", path=True)
    jwt_secret_file: str = opt(("--jwt-secret-file",), "File holding the HS256 secret to mint JWTs.", "", path=True)
    cookie_file: str = opt(
        ("--cookie-file",),
        "File holding the session cookie (its value alone, name=value, or a whole "
        "'Cookie:' header line as copied from a browser).",
        "",
        path=True,
    )
    cookie_name: str = opt(
        ("--cookie-name",),
        "Name the session cookie is sent under when BENCH_COOKIE / --cookie-file hold its "
        "value alone (the Neptun app's is neptun-session).",
        "neptun-session",
    )
    # --- timeouts --------------------------------------------------------------------------------------------
    connect_timeout: float = opt(("--connect-timeout",), "Seconds to open a connection.", 10.0, bound=POSITIVE)
    first_chunk_timeout: float = opt(
        ("--first-chunk-timeout",), "Seconds from send to the first content part.", 60.0, bound=POSITIVE
    )
    stall_timeout: float = opt(
        ("--stall-timeout",),
        "Seconds without a content part mid-stream (a user waiting on a dead stream is "
        "held this long; a stream the run's end cuts off after 3 s and 20x its largest gap of silence is a stall too).",
        10.0,
        bound=POSITIVE,
    )
    total_timeout: float = opt(("--total-timeout",), "Seconds for a whole stream.", 300.0, bound=POSITIVE)
    tokenizer: str = opt(
        ("--tokenizer",),
        "Local tokenizer.json to count tokens when the server sends no usage (pip install -e '.[tokenizer]').",
        "",
        path=True,
    )
    # --- the embedded reference target -----------------------------------------------------------------------
    target_profiles: str | None = opt(
        ("--target-profiles",), "Embedded target: model profile YAML.", None, where=HARNESS, path=True
    )
    target_seed: int = opt(("--target-seed",), "Embedded target: seed.", 0, where=HARNESS)
    target_faults: str | None = opt(
        ("--target-faults",),
        'Embedded target: fault shares, e.g. "500=0.01,stall=0.01:2" (drawn); "silent=1/3" is exact, every third request.',
        None,
        where=HARNESS,
    )
    target_flavor: str = opt(
        ("--target-flavor",),
        "Embedded target: the AI SDK 4 data stream as deployed or as documented, or the AI SDK 5 UI message stream.",
        "deployed",
        choices=("deployed", "documented", "ui-stream"),
        where=HARNESS,
    )
    server_metrics: str = opt(
        ("--server-metrics",),
        "Prometheus endpoint of the server to scrape every second during the run "
        "(e.g. vLLM's or llama.cpp's /metrics); the embedded target's is scraped by default.",
        "",
        where=HARNESS,
    )
    # --- what bench run does with the run ---------------------------------------------------------------------
    warmup: float | None = opt(
        ("--warmup",),
        "Seconds excluded from headline numbers (default: the ramp-up plus 1 s, at most a third of the run).",
        None,
        where=frozenset({LOCUST, RUN}),
        bound=NOT_NEGATIVE,
    )
    run_id: str = opt(("--run-id",), "Run id (default: time-stamped).", "", where=frozenset({LOCUST, RUN}))
    build_id: str = opt(
        ("--build-id",),
        "The build under test (the app's commit, an image tag), recorded in run.json and ordering `bench history "
        "--order build`. Default: $BENCH_BUILD_ID, else the commit CI sets ($GITHUB_SHA, $CI_COMMIT_SHA, "
        "$BUILD_SOURCEVERSION).",
        "",
        where=frozenset({LOCUST, RUN}),
    )
    no_report: bool = opt(("--no-report",), "Write records and run.json only.", False, flag=True, where=frozenset({RUN}))
    slo: list[str] = opt(
        ("--slo",),
        "SLO to judge the run by, repeatable: 'ttfc_ms:p95<=1000', 'gaps_ms:p99<=200', 'error_rate<=1%'. "
        "Replaces the scenario's slos: (recorded in run.json as the ones used).",
        multiple=True,
        where=frozenset({RUN}),
    )
    fail_on_slo: bool = opt(
        ("--fail-on-slo",), "Exit 1 when an SLO (--slo or the scenario's) is missed.", False, flag=True, where=frozenset({RUN})
    )
    junit: str = opt(
        ("--junit",),
        "Write the SLO verdicts as JUnit XML to this file (one test case per model and SLO).",
        "",
        where=frozenset({RUN}),
    )
    quiet: bool = opt(("-q", "--quiet"), "No progress output.", False, flag=True, where=HARNESS)
    until_decided: str = opt(
        ("--until-decided",),
        "Keep loading until the regression gate against this baseline run folder "
        "decides every row (regression, equivalent or improvement), checked every --decide-every seconds with alpha spent "
        "per look; at most --max-duration.",
        "",
        where=frozenset({RUN}),
        path=True,
    )
    max_duration: str = opt(("--max-duration",), "--until-decided: the longest the run may last.", "20m", where=frozenset({RUN}))
    decide_every: float = opt(
        ("--decide-every",), "--until-decided: seconds between looks.", 20.0, where=frozenset({RUN}), bound=Bound(5)
    )
    gate_tolerance: list[str] = opt(
        ("--gate-tolerance",),
        "--until-decided: a tolerance as for bench compare, repeatable (default: the gate's defaults).",
        multiple=True,
        where=frozenset({RUN}),
    )
    gate_tolerance_file: str = opt(
        ("--gate-tolerance-file",), "--until-decided: tolerances, one per line.", "", where=frozenset({RUN}), path=True
    )
    # --- plain Locust only ----------------------------------------------------------------------------------
    results_dir: str = opt(
        ("--results-dir",), "Run folder for records (default results/<run-id>).", "", where=frozenset({LOCUST})
    )
    steps: str = opt(
        ("--steps",),
        "With -f locustfile.py,bench/load/shapes.py: USERS:DURATION,... e.g. 10:30s,20:30s",
        "",
        where=frozenset({LOCUST}),
    )
    ramp: bool = opt(
        ("--ramp",), "With bench/load/shapes.py: ramp linearly between steps.", False, flag=True, where=frozenset({LOCUST})
    )
    drain: float = opt(
        ("--drain",),
        "With bench/load/shapes.py: seconds after the last step before stopping.",
        0.0,
        where=frozenset({LOCUST}),
        bound=NOT_NEGATIVE,
    )
    allow_host_change: bool = opt(
        ("--allow-host-change",),
        "Web UI: let the page change the target host (credentials go wherever it says); by default the host "
        "given at start is fixed and the web UI listens on 127.0.0.1 only.",
        False,
        flag=True,
        where=frozenset({LOCUST}),
    )
    # set by the master for its workers (Locust does not pass --expect-workers on): how many share the arrival rate
    arrival_split: int = opt(("--arrival-split",), "", 0, where=frozenset({LOCUST}), hidden=True)
    # not options: what bench run does after the load, and Locust arguments passed through
    report: bool = True
    extra: list[str] = field(default_factory=list)


def _options() -> list[Opt]:
    hints = typing.get_type_hints(RunOptions)
    out = []
    for f in fields(RunOptions):
        spec = f.metadata.get("opt")
        if spec is None:
            continue
        args = [a for a in typing.get_args(hints[f.name]) if a is not type(None)]
        base = args[0] if args else hints[f.name]
        default = spec.default if f.default is MISSING else f.default
        out.append(replace(spec, name=f.name, type=base, default=default))
    return out


OPTIONS: list[Opt] = _options()
BY_NAME = {o.name: o for o in OPTIONS}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``locust`` options on Locust's own parser (group "bench")."""
    g = parser.add_argument_group("bench (streaming chat replay)")
    for o in OPTIONS:
        if LOCUST not in o.where:
            continue
        helptext = argparse.SUPPRESS if o.hidden else o.help
        long_flags = [f for f in o.flags if f.startswith("--")]  # Locust owns the short letters
        if o.flag:
            g.add_argument(*long_flags, dest=o.name, action="store_true", default=False, help=helptext)
        elif o.multiple:
            g.add_argument(*long_flags, dest=o.name, action="append", default=[], help=helptext)
        else:
            g.add_argument(
                *long_flags,
                dest=o.name,
                type=o.type,
                default=o.default if o.default is not None else ("" if o.type is str else None),
                choices=list(o.choices) if o.choices else None,
                help=helptext,
            )


def click_options(command: str, skip: tuple[str, ...] = ()) -> Callable[[F], F]:
    """A decorator adding the options of ``command`` (in table order) to a click command."""

    def deco(f: F) -> F:
        for o in reversed(OPTIONS):
            if command not in o.where or o.hidden or o.name in skip:
                continue
            kw: dict[str, Any] = {"help": o.help}
            if o.flag:
                kw["is_flag"] = True
            elif o.multiple:
                kw["multiple"] = True
            else:
                kw["default"] = o.default
                kw["show_default"] = o.default not in (None, "")
                kw["type"] = click.Choice(list(o.choices)) if o.choices else o.type
            f = click.option(*o.flags, o.name, **kw)(f)
        return f

    return deco


def locust_argv(o: RunOptions) -> list[str]:
    """The child's argv for every ``locust`` option that ``o`` sets (defaults left out)."""
    from pathlib import Path

    out: list[str] = []
    for opt in OPTIONS:
        if LOCUST not in opt.where or not hasattr(o, opt.name) or opt.name in ("run_id", "results_dir"):
            continue
        v = getattr(o, opt.name)
        if opt.flag:
            out += [opt.long] if v else []
        elif opt.multiple:
            for item in v or []:
                out += [opt.long, str(item)]
        elif v not in (None, "") and v != opt.default:
            out += [opt.long, str(Path(v).resolve()) if opt.path and opt.name != "scenario" else str(v)]
    return out

"""Every option of the harness, declared once; the click commands, Locust's parser and the
Locust child's argv are generated from this table.

An option lists the places it belongs to: ``locust`` (Locust's parser: it reaches every worker,
and ``bench run`` passes it to its Locust child), ``run`` (``bench run``), ``capacity``
(``bench capacity``). A command shows exactly the options it honours.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field, make_dataclass
from typing import Any

import click

from bench.load.decode import PROTOCOLS

LOCUST, RUN, CAPACITY = "locust", "run", "capacity"
LOAD = frozenset({LOCUST, RUN, CAPACITY})  # what the measuring users read: everywhere
HARNESS = frozenset({RUN, CAPACITY})  # what bench run / capacity do around Locust


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
    where: frozenset = LOAD
    hidden: bool = False
    path: bool = False  # a file the child must find from another working directory

    @property
    def long(self) -> str:
        return next(f for f in self.flags if f.startswith("--"))


OPTIONS: list[Opt] = [
    # --- where and how much (bench run / capacity only; plain Locust has its own -u/-r/-t/--host) -------------
    Opt(
        "host",
        ("--host",),
        "Base URL of the app to test, e.g. https://neptun.example (default: start the embedded reference target on loopback).",
        where=HARNESS,
    ),
    Opt(
        "users",
        ("-u", "--users"),
        "Concurrent users (closed loop) or the cap on concurrent conversations (open loop).",
        12,
        int,
        where=frozenset({RUN}),
    ),
    Opt("spawn_rate", ("-r", "--spawn-rate"), "Users started per second.", 12.0, float, where=frozenset({RUN})),
    Opt(
        "duration",
        ("-t", "--duration"),
        "How long to load: 30s, 2m, 1h30m (default 30s; with --trace, the trace's span "
        "divided by the speed-up plus 60 s, and the run ends once every row is answered).",
        "",
        where=frozenset({RUN}),
    ),
    Opt("out", ("--out",), "Folder that receives the run folder.", "results", where=HARNESS),
    Opt(
        "processes",
        ("--processes",),
        "Load-generator processes (Locust --processes); add more when one CPU saturates.",
        1,
        int,
        where=HARNESS,
    ),
    # --- the workload ---------------------------------------------------------------------------------------
    Opt(
        "scenario",
        ("--scenario",),
        "Scenario file or bundled name (default, short-qa, coding-help, long-context, long-chat).",
        "default",
        path=True,
    ),
    Opt(
        "models",
        ("--models",),
        "Comma-separated model list; overrides the scenario's model mix (publisher/model on the "
        "Neptun route, any id the server serves on --route openai).",
        "",
    ),
    Opt(
        "load_mode",
        ("--load-mode",),
        "closed: users replay conversations back to back; open: conversations arrive at --arrival-rate.",
        "closed",
        choices=("closed", "open"),
    ),
    Opt("arrival_rate", ("--arrival-rate",), "Open loop: new conversations per second, all workers together.", 1.0, float),
    Opt("arrival_dist", ("--arrival-dist",), "Open loop arrival process.", "poisson", choices=("poisson", "gamma", "constant")),
    Opt("arrival_cv", ("--arrival-cv",), "Gamma arrivals: coefficient of variation (>1 is bursty).", 2.0, float),
    Opt(
        "on_error",
        ("--on-error",),
        "After a failed turn: start a new conversation, or go on with the next turn.",
        "next-conversation",
        choices=("next-conversation", "next-turn"),
    ),
    Opt(
        "start_jitter",
        ("--start-jitter",),
        "Closed loop: spread the users' first conversations over this many seconds.",
        1.0,
        float,
    ),
    Opt("seed", ("--seed",), "Seed for conversation and model choice and think times.", 0, int),
    Opt(
        "trace",
        ("--trace",),
        "Replay a request trace (JSONL or CSV; ours, Mooncake's or Azure's layout, see README "
        '"Workloads"): each row at its time (open loop), turns of a conversation in order with live history.',
        "",
        path=True,
        where=frozenset({LOCUST, RUN}),
    ),
    Opt(
        "speedup",
        ("--speedup",),
        "--trace: play the trace this many times faster (2 = twice the rate).",
        1.0,
        float,
        where=frozenset({LOCUST, RUN}),
    ),
    Opt(
        "trace_rate",
        ("--trace-rate",),
        "--trace: scale time so the trace's mean rate becomes this many requests/s (instead of --speedup).",
        0.0,
        float,
        where=frozenset({LOCUST, RUN}),
    ),
    Opt(
        "trace_window",
        ("--trace-window",),
        "--trace: replay only rows arriving in START:END seconds of trace time, e.g. 600:1200.",
        "",
        where=frozenset({LOCUST, RUN}),
    ),
    Opt(
        "input_tokens",
        ("--input-tokens",),
        "Synthetic one-turn prompts of this many tokens instead of the scenario's "
        "conversations: fixed:N (or N), uniform:LO:HI, normal:MEAN:SD, hist:TRACE (a trace's input lengths). Counted "
        "with --tokenizer when given, else at 4 characters per token.",
        "",
    ),
    Opt(
        "output_tokens",
        ("--output-tokens",),
        "With --input-tokens: the reply length to ask for (max_tokens, OpenAI "
        "route), the same forms; add --ignore-eos where the server supports it.",
        "",
    ),
    # --- the route and the stream ----------------------------------------------------------------------------
    Opt("route", ("--route",), "neptun: the chat route; openai: /v1/chat/completions.", "neptun", choices=("neptun", "openai")),
    Opt(
        "protocol",
        ("--protocol",),
        "Stream format: aisdk (AI SDK 4 data stream), sse (its parts in SSE), ui (AI SDK 5 UI "
        "message stream), openai; auto detects it.",
        "auto",
        choices=PROTOCOLS,
    ),
    Opt(
        "persist",
        ("--persist",),
        "Let the deployment store the chats (default: playground mode, nothing stored).",
        False,
        flag=True,
    ),
    Opt("chat_id", ("--chat-id",), "chat_id sent with every request (a real chat's id with --persist).", -1, int),
    Opt(
        "route_template",
        ("--route-template",),
        "Path of the chat route for every model, e.g. "
        "'/api/ai/cloudflare/{model}/chat?chat_id={chat_id}' (placeholders {model}, {publisher}, {name}, {provider}, "
        "{chat_id}); a model in the scenario may carry its own 'route:'.",
        "",
    ),
    Opt(
        "history",
        ("--history",),
        "What each turn sends back of earlier replies: visible (the text a user saw, as the "
        "AI SDK's useChat does: no reasoning) or full (reasoning included).",
        "visible",
        choices=("visible", "full"),
    ),
    Opt(
        "max_tokens",
        ("--max-tokens",),
        "Bound every reply (OpenAI route: max_tokens in the body; overrides the scenario's max_tokens).",
        0,
        int,
    ),
    Opt(
        "ignore_eos",
        ("--ignore-eos",),
        "OpenAI route: ask the server to ignore end-of-sequence (vLLM, llama.cpp), so replies run to --max-tokens.",
        False,
        flag=True,
    ),
    Opt(
        "header",
        ("--header",),
        "Extra request header, repeatable: 'Name: value', or a secret value from the "
        "environment or a file, 'Name: @env:VAR' / 'Name: @file:PATH' (scrubbed from every output).",
        multiple=True,
    ),
    Opt(
        "ca_file",
        ("--ca-file",),
        "PEM file of the CA that signed the target's certificate (a private staging CA).",
        "",
        path=True,
    ),
    Opt(
        "insecure",
        ("--insecure",),
        "Do not verify the target's TLS certificate (recorded as a warning in run.json and the report).",
        False,
        flag=True,
    ),
    # --- credentials: files and environment variables only ---------------------------------------------------
    Opt(
        "auth",
        ("--auth",),
        "cookie: the app's session cookie (BENCH_COOKIE / --cookie-file), bearer token (BENCH_TOKEN / "
        "--token-file, for a gateway), jwt minted from a secret (BENCH_JWT_SECRET / --jwt-secret-file); auto tries "
        "those present in that order and keeps the first the target accepts.",
        "auto",
        choices=("auto", "none", "bearer", "jwt", "cookie"),
    ),
    Opt("token_file", ("--token-file",), "File holding the bearer token.", "", path=True),
    Opt("jwt_secret_file", ("--jwt-secret-file",), "File holding the HS256 secret to mint JWTs.", "", path=True),
    Opt(
        "cookie_file",
        ("--cookie-file",),
        "File holding the session cookie (its value alone, name=value, or a whole "
        "'Cookie:' header line as copied from a browser).",
        "",
        path=True,
    ),
    Opt(
        "cookie_name",
        ("--cookie-name",),
        "Name the session cookie is sent under when BENCH_COOKIE / --cookie-file hold its "
        "value alone (the Neptun app's is neptun-session).",
        "neptun-session",
    ),
    # --- timeouts --------------------------------------------------------------------------------------------
    Opt("connect_timeout", ("--connect-timeout",), "Seconds to open a connection.", 10.0, float),
    Opt("first_chunk_timeout", ("--first-chunk-timeout",), "Seconds from send to the first content part.", 60.0, float),
    Opt(
        "stall_timeout",
        ("--stall-timeout",),
        "Seconds without a content part mid-stream (a user waiting on a dead stream is "
        "held this long; a stream the run's end cuts off after 3 s and 20x its largest gap of silence is a stall too).",
        10.0,
        float,
    ),
    Opt("total_timeout", ("--total-timeout",), "Seconds for a whole stream.", 300.0, float),
    Opt(
        "tokenizer",
        ("--tokenizer",),
        "Local tokenizer.json to count tokens when the server sends no usage (pip install -e '.[tokenizer]').",
        "",
        path=True,
    ),
    # --- the embedded reference target -----------------------------------------------------------------------
    Opt("target_profiles", ("--target-profiles",), "Embedded target: model profile YAML.", None, where=HARNESS, path=True),
    Opt("target_seed", ("--target-seed",), "Embedded target: seed.", 0, int, where=HARNESS),
    Opt(
        "target_faults", ("--target-faults",), 'Embedded target: fault shares, e.g. "500=0.01,stall=0.01:2".', None, where=HARNESS
    ),
    Opt(
        "target_flavor",
        ("--target-flavor",),
        "Embedded target: the AI SDK 4 data stream as deployed or as documented, or the AI SDK 5 UI message stream.",
        "deployed",
        choices=("deployed", "documented", "ui-stream"),
        where=HARNESS,
    ),
    Opt(
        "server_metrics",
        ("--server-metrics",),
        "Prometheus endpoint of the server to scrape every second during the run "
        "(e.g. vLLM's or llama.cpp's /metrics); the embedded target's is scraped by default.",
        "",
        where=HARNESS,
    ),
    # --- what bench run does with the run ---------------------------------------------------------------------
    Opt(
        "warmup",
        ("--warmup",),
        "Seconds excluded from headline numbers (default: the ramp-up plus 1 s, at most a third of the run).",
        None,
        float,
        where=frozenset({LOCUST, RUN}),
    ),
    Opt("run_id", ("--run-id",), "Run id (default: time-stamped).", "", where=frozenset({LOCUST, RUN})),
    Opt("no_report", ("--no-report",), "Write records and run.json only.", False, flag=True, where=frozenset({RUN})),
    Opt(
        "slo",
        ("--slo",),
        "SLO to judge the run by, repeatable: 'ttfc_ms:p95<=1000', 'gaps_ms:p99<=200', 'error_rate<=1%'. "
        "Replaces the scenario's slos: (recorded in run.json as the ones used).",
        multiple=True,
        where=frozenset({RUN}),
    ),
    Opt(
        "fail_on_slo",
        ("--fail-on-slo",),
        "Exit 1 when an SLO (--slo or the scenario's) is missed.",
        False,
        flag=True,
        where=frozenset({RUN}),
    ),
    Opt(
        "junit",
        ("--junit",),
        "Write the SLO verdicts as JUnit XML to this file (one test case per model and SLO).",
        "",
        where=frozenset({RUN}),
    ),
    Opt("quiet", ("-q", "--quiet"), "No progress output.", False, flag=True, where=HARNESS),
    Opt(
        "until_decided",
        ("--until-decided",),
        "Keep loading until the regression gate against this baseline run folder "
        "decides every row (regression, equivalent or improvement), checked every --decide-every seconds with alpha spent "
        "per look; at most --max-duration.",
        "",
        where=frozenset({RUN}),
        path=True,
    ),
    Opt("max_duration", ("--max-duration",), "--until-decided: the longest the run may last.", "20m", where=frozenset({RUN})),
    Opt("decide_every", ("--decide-every",), "--until-decided: seconds between looks.", 20.0, float, where=frozenset({RUN})),
    Opt(
        "gate_tolerance",
        ("--gate-tolerance",),
        "--until-decided: a tolerance as for bench compare, repeatable (default: the gate's defaults).",
        multiple=True,
        where=frozenset({RUN}),
    ),
    Opt(
        "gate_tolerance_file",
        ("--gate-tolerance-file",),
        "--until-decided: tolerances, one per line.",
        "",
        where=frozenset({RUN}),
        path=True,
    ),
    # --- plain Locust only ----------------------------------------------------------------------------------
    Opt("results_dir", ("--results-dir",), "Run folder for records (default results/<run-id>).", "", where=frozenset({LOCUST})),
    Opt(
        "steps",
        ("--steps",),
        "With -f locustfile.py,bench/load/shapes.py: USERS:DURATION,... e.g. 10:30s,20:30s",
        "",
        where=frozenset({LOCUST}),
    ),
    Opt(
        "ramp",
        ("--ramp",),
        "With bench/load/shapes.py: ramp linearly between steps.",
        False,
        flag=True,
        where=frozenset({LOCUST}),
    ),
    Opt(
        "drain",
        ("--drain",),
        "With bench/load/shapes.py: seconds after the last step before stopping.",
        0.0,
        float,
        where=frozenset({LOCUST}),
    ),
    # set by the master for its workers (Locust does not pass --expect-workers on): how many share the arrival rate
    Opt("arrival_split", ("--arrival-split",), "", 0, int, where=frozenset({LOCUST}), hidden=True),
]
BY_NAME = {o.name: o for o in OPTIONS}


def add_arguments(parser) -> None:
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


def click_options(command: str, skip: tuple[str, ...] = ()):
    """A decorator adding the options of ``command`` (in table order) to a click command."""

    def deco(f):
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


def _field(o: Opt):
    default = list(o.default or []) if o.multiple else o.default
    return (o.name, Any, field(default_factory=lambda d=default: list(d)) if o.multiple else field(default=default))


RunOptions = make_dataclass(
    "RunOptions",
    [_field(o) for o in OPTIONS if o.where & HARNESS]
    + [("report", bool, field(default=True)), ("extra", list, field(default_factory=list))],
)
RunOptions.__doc__ = "What ``bench run`` and each level of ``bench capacity`` run with: the table's run and capacity options."


def locust_argv(o) -> list[str]:
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

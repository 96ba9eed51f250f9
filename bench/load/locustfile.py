"""Locust entry point: options, the record collector and the measuring user, wired together.

``locustfile.py`` at the repository root imports this module, so both
``locust -f locustfile.py`` and ``bench run`` run exactly the same users.
"""

from __future__ import annotations

import gc
import os
import random
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

# Locust puts the working directory first on the import path: a `bench/` folder where the user stands (their
# own scripts, a second checkout) would replace the harness here. The harness is imported first without it.
_cwd = os.path.realpath(os.getcwd())
if _cwd != os.path.realpath(str(Path(__file__).resolve().parents[2])) and "bench" not in sys.modules:
    _path = list(sys.path)
    sys.path[:] = [p for p in sys.path if os.path.realpath(p or ".") != _cwd]
    import bench  # noqa: F401  (the harness itself binds the name; its submodules follow its own __path__)

    sys.path[:] = _path  # the user's own modules in that folder still import

from locust import events
from locust.runners import MasterRunner, WorkerRunner

from bench.errors import InputError
from bench.load.arrivals import Arrivals, Schedule
from bench.load.collect import Collector
from bench.load.locusttypes import LocustEnv, on
from bench.load.user import ChatUser, LoadState, load_state
from bench.load.workerauth import WorkerGate
from bench.options import add_arguments, new_run_id, settings_from

if TYPE_CHECKING:
    from bench.options import Settings

__all__ = ["ChatUser"]

# plain `locust --processes N` forks its workers after importing this file: a secret made here reaches every
# one of them (and nothing else), so the master refuses any other process that reaches its port
if ("--processes" in sys.argv or os.environ.get("LOCUST_PROCESSES")) and not os.environ.get("BENCH_RUN_SECRET"):
    import secrets

    os.environ["BENCH_RUN_SECRET"] = secrets.token_hex(32)


@on(events.init_command_line_parser)
def _options(parser: Any, **kw: Any) -> None:
    add_arguments(parser)
    # Locust's web UI listens on every interface by default, with no authentication: anyone who reached it
    # could start load, or point it (and the run's credentials) at another host. Loopback unless asked.
    parser.set_defaults(web_host="127.0.0.1")


@on(events.init)
def _init(environment: LocustEnv, **kw: Any) -> None:
    opts = environment.parsed_options
    if opts is None:
        return
    if isinstance(environment.runner, MasterRunner):
        WorkerGate.install(environment.runner)  # first: no worker is admitted without the run's secret
    state = load_state(environment)
    state.start_host = environment.host or None
    if not opts.run_id:
        opts.run_id = new_run_id()  # one id for the master and, through it, every worker
    if isinstance(environment.runner, MasterRunner):
        opts.arrival_split = max(1, opts.expect_workers or 1)  # custom options travel to the workers with the spawn message
    if not isinstance(environment.runner, WorkerRunner):
        try:
            state.settings = settings_from(opts)  # fail here, before any load is sent
        except InputError as exc:
            sys.stderr.write(f"error: {exc}\n")
            sys.exit(2)
        if environment.host and _preflight(environment, state.settings) is not None:
            sys.exit(2)  # bad credentials, a wrong model, no server: one line before any load, as bench run says it
        run_dir = state.settings.run_dir
    else:
        run_dir = None
    state.collector = Collector(environment, Path(run_dir or "."))
    if not isinstance(environment.runner, WorkerRunner):
        from bench.load.live import install

        install(environment, state.collector.live)
    s = state.settings
    if s is not None:
        state.collector.meta = {
            "scenario": {"name": s.scenario.name, "path": str(opts.scenario)},
            "slos": s.scenario.slos,
            "models": s.models,
            "run_id": s.run_id,
            "build_id": getattr(opts, "build_id", "") or "",
            "preflight": state.preflight_log,
        }


def _preflight(environment: LocustEnv, s: Settings) -> str | None:
    """Plain Locust's preflight: the one bench run does (one request per model, playground mode), run
    before the first user. ``bench run``'s own child skips it (its parent ran it). Returns the error line."""
    import os

    from bench.preflight import PreflightError, preflight

    state = load_state(environment)
    if os.environ.get("BENCH_CHILD") or state.preflight_host == environment.host:
        return None
    state.preflight_host = environment.host
    try:
        preflight(environment.host, s.models, s.route, s.credentials, tls=s.tls, headers=s.headers, log=state.preflight_log)
    except PreflightError as exc:
        sys.stderr.write(f"error: {exc}\n")
        return str(exc)
    return None


@on(events.test_start)
def _test_start(environment: LocustEnv, **kw: Any) -> None:
    runner = environment.runner
    state = load_state(environment)
    refused = _host_change_refused(environment, state)
    if refused is not None:
        import gevent

        sys.stderr.write(f"error: {refused}\n")
        environment.process_exit_code = 2
        gevent.spawn(runner.quit if environment.parsed_options.headless else runner.stop)
        return
    if not isinstance(runner, WorkerRunner) and environment.host and state.settings is not None:
        # a host first given in the web UI: checked as the test starts; the test stops before its users send
        if _preflight(environment, state.settings) is not None:
            import gevent

            environment.process_exit_code = 2
            gevent.spawn(runner.quit if environment.parsed_options.headless else runner.stop)
            return
    if isinstance(runner, MasterRunner):
        return
    if isinstance(runner, WorkerRunner):
        # the master's options arrive with the spawn message; build settings from them now
        state.settings = settings_from(environment.parsed_options)
        if state.collector is not None and state.settings.run_dir:
            state.collector.run_dir = Path(state.settings.run_dir)  # where rows go if the master dies
    s = state.settings
    assert s is not None and state.collector is not None, "built in _init (local, master) or just above (worker)"
    gc.collect()
    gc.freeze()  # start-up objects leave the collector's sight: shorter full-collection pauses mid-run
    if s.load_mode == "open" and state.arrivals is None:
        workers, index = 1, 0
        if isinstance(runner, WorkerRunner):
            workers = max(1, getattr(environment.parsed_options, "arrival_split", 1) or 1)
            index = max(0, runner.worker_index)
        arrivals: Schedule
        if s.workload is not None and s.workload.trace is not None:
            from bench.workload.replay import TraceArrivals, rows_for_worker

            arrivals = TraceArrivals(
                s,
                rows_for_worker(s.workload.trace.rows, workers, index),
                s.workload.speedup,
                on_finished=lambda: _trace_finished(environment),
            )
        else:
            arrivals = Arrivals(s, s.arrival_rate / workers, random.Random(f"{s.seed}:arrivals:{index}"))
        state.arrivals = arrivals
        state.collector.arrivals = arrivals
        if isinstance(arrivals, Arrivals):
            arrivals.start()
        else:  # a trace's clock starts once every user is running: its first rows must not wait for the ramp-up

            def _go(**kw: Any) -> None:
                environment.events.spawning_complete.remove_listener(_go)
                arrivals.start()

            environment.events.spawning_complete.add_listener(_go)


def _host_change_refused(environment: LocustEnv, state: LoadState) -> str | None:
    """The web UI's start form can name any host, and the run's token or cookie would go there: only the
    host given at start is used, unless ``--allow-host-change``."""
    if isinstance(environment.runner, WorkerRunner) or getattr(environment.parsed_options, "allow_host_change", False):
        return None
    host = (environment.host or "").rstrip("/")
    if host == (state.start_host or "").rstrip("/"):
        return None
    if state.start_host is None:
        return (
            f"the web UI asked to load {host}, but no --host was given at start: give --host (the web UI then "
            "keeps it) or start with --allow-host-change to let the page choose where the credentials go"
        )
    return (
        f"the web UI asked to load {host}, but this run's host is {state.start_host}, fixed at start; "
        "start with --allow-host-change to let the page change it"
    )


def _trace_finished(environment: LocustEnv) -> None:
    """Every row of this process's share of the trace is answered: the run is over (no idle tail)."""
    import gevent

    runner = environment.runner
    if isinstance(runner, WorkerRunner):
        runner.send_message("bench_trace_done", runner.client_id)  # type: ignore[arg-type]  # Locust sends any msgpack value
    else:
        gevent.spawn_later(0.2, runner.quit)  # after this turn's record is handed to the collector


@on(events.init)
def _trace_done_listener(environment: LocustEnv, **kw: Any) -> None:
    runner = environment.runner
    if isinstance(runner, MasterRunner):
        done: set[str] = set()

        def on_done(environment: LocustEnv, msg: Any, **kw: Any) -> None:
            import gevent

            done.add(msg.data)
            if len(done) >= max(1, runner.worker_count):
                gevent.spawn_later(0.2, runner.quit)

        runner.register_message("bench_trace_done", on_done)


@on(events.test_stopping)
def _test_stopping(environment: LocustEnv, **kw: Any) -> None:
    arrivals = load_state(environment).arrivals
    if arrivals is not None:
        arrivals.stop()  # offered load ends with the run; what is still queued becomes not_sent

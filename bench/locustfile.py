"""Locust entry point: options, the record collector and the measuring user, wired together.

``locustfile.py`` at the repository root imports this module, so both
``locust -f locustfile.py`` and ``bench run`` run exactly the same users.
"""

from __future__ import annotations

import gc
import random
import sys

from locust import events
from locust.runners import MasterRunner, WorkerRunner

from bench.collect import Collector
from bench.errors import InputError
from bench.options import add_arguments, new_run_id, settings_from
from bench.user import STATE, Arrivals, ChatUser

__all__ = ["ChatUser"]


@events.init_command_line_parser.add_listener
def _options(parser, **kw) -> None:
    add_arguments(parser)


@events.init.add_listener
def _init(environment, **kw) -> None:
    opts = environment.parsed_options
    if opts is None:
        return
    if not opts.run_id:
        opts.run_id = new_run_id()  # one id for the master and, through it, every worker
    if isinstance(environment.runner, MasterRunner):
        opts.arrival_split = max(1, opts.expect_workers or 1)  # custom options travel to the workers with the spawn message
    if not isinstance(environment.runner, WorkerRunner):
        try:
            STATE["settings"] = settings_from(opts)  # fail here, before any load is sent
        except InputError as exc:
            sys.stderr.write(f"error: {exc}\n")
            sys.exit(2)
        run_dir = STATE["settings"].run_dir
    else:
        run_dir = None
    STATE["collector"] = Collector(environment, run_dir or ".")
    if not isinstance(environment.runner, WorkerRunner):
        from bench.live import install

        install(environment, STATE["collector"].live)
    s = STATE["settings"]
    if s is not None:
        STATE["collector"].meta = {"scenario": {"name": s.scenario.name, "path": str(opts.scenario)}, "slos": s.scenario.slos,
                                   "models": s.models, "run_id": s.run_id}


@events.test_start.add_listener
def _test_start(environment, **kw) -> None:
    runner = environment.runner
    if isinstance(runner, MasterRunner):
        return
    if isinstance(runner, WorkerRunner):
        # the master's options arrive with the spawn message; build settings from them now
        STATE["settings"] = settings_from(environment.parsed_options)
    s = STATE["settings"]
    gc.collect()
    gc.freeze()  # start-up objects leave the collector's sight: shorter full-collection pauses mid-run
    if s.load_mode == "open" and STATE["arrivals"] is None:
        workers, index = 1, 0
        if isinstance(runner, WorkerRunner):
            workers = max(1, getattr(environment.parsed_options, "arrival_split", 1) or 1)
            index = max(0, runner.worker_index)
        arrivals = Arrivals(s, s.arrival_rate / workers, random.Random(f"{s.seed}:arrivals:{index}"))
        STATE["arrivals"] = arrivals
        STATE["collector"].arrivals = arrivals
        arrivals.start()


@events.test_stopping.add_listener
def _test_stopping(environment, **kw) -> None:
    if STATE["arrivals"] is not None:
        STATE["arrivals"].stop()  # offered load ends with the run; what is still queued becomes not_sent

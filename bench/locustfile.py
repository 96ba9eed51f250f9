"""Locust entry point: options, the record collector and the measuring user, wired together.

``locustfile.py`` at the repository root imports this module, so both
``locust -f locustfile.py`` and ``bench run`` run exactly the same users.
"""

from __future__ import annotations

import gc
import sys

import gevent
from gevent.queue import Queue
from locust import events
from locust.runners import MasterRunner, WorkerRunner

from bench.collect import Collector
from bench.errors import InputError
from bench.options import add_arguments, new_run_id, settings_from
from bench.user import STATE, ChatUser, arrival_greenlet

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
        workers = max(1, getattr(environment.parsed_options, "expect_workers", 1) or 1) if isinstance(runner, WorkerRunner) else 1
        q: Queue = Queue()
        STATE["arrivals"] = q
        gevent.spawn(arrival_greenlet, q, s.arrival_rate / workers, s.arrival_dist, s.arrival_cv, s.rng)

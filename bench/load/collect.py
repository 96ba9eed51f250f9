"""Deliver every record to one spool file, in local and distributed Locust runs, losing none.

Each load-generating process buffers rows and ships them once a second: straight to the spool
(``sink.RecordSink``) in a local run, as a ``bench_records`` message to the master in a distributed
one (``links.WorkerLink``, ``links.MasterLink``: the end-of-run handshake, start notices, clocks and
``worker_lost`` rows live there). This module is what every role shares: the row buffer and its
flush, the scheduling-lag probe, progress, and the run's ``collector.json``.
"""

from __future__ import annotations

import json
import os
import sys
import time
from array import array
from collections.abc import Callable
from pathlib import Path
from time import monotonic_ns
from typing import TYPE_CHECKING, Any

import gevent
import psutil
from locust.runners import MasterRunner, WorkerRunner

from bench.load.clock import clock_warnings
from bench.load.drop import load_drop
from bench.load.lagprobe import KernelTimer
from bench.load.links import MasterLink, WorkerLink
from bench.load.locusttypes import LocustEnv
from bench.load.sink import RecordSink
from bench.load.wire import RecordsMsg, WorkerStatus
from bench.records import Row, not_sent_row, rescue_dir
from bench.schema import TIMING_FILE, default_warmup

if TYPE_CHECKING:
    from bench.load.arrivals import Schedule
    from bench.records import RequestContext

FLUSH_INTERVAL = 1.0
LAG_PERIOD = 0.01  # the scheduling-lag probe wakes this often (100 wake-ups/s: nothing next to thousands of parts/s)


def write_json(path: Path, obj: dict[str, Any], rescue: Path | None = None) -> None:
    """Atomically; on a full disk, into ``rescue`` instead (when given), else not at all."""
    tmp = path.with_suffix(".tmp")
    try:
        tmp.write_text(json.dumps(obj, indent=1))
        os.replace(tmp, path)
    except OSError:
        try:
            tmp.unlink(missing_ok=True)
        except OSError:
            pass
        if rescue is not None:
            rescue.mkdir(parents=True, exist_ok=True)
            write_json(rescue / path.name, obj)


class Collector:
    """One per process. ``add`` and ``count_sent`` are all the measuring greenlets call.

    Its role is one of three: a local run (rows to its own sink), a worker (``self.worker``: rows to
    the master) or a master (``self.master``: every worker's rows to its sink)."""

    # turns a finished plain-Locust folder's spool into requests.parquet and run.json: the next stage
    # (bench.analysis.results.ensure_records), wired in by the locustfile so load/ never imports analysis/
    finalize: Callable[[Path], None] | None = None

    def __init__(self, environment: LocustEnv, run_dir: Path) -> None:
        self.env = environment
        self.run_dir = Path(run_dir)
        self.rows: list[Row] = []  # rows not yet flushed
        self.arrivals: Schedule | None = None  # open loop: this process's arrival schedule
        self.not_sent = 0
        self.lag: array[int] = array("I")  # scheduling lag of the probe, microseconds, since the last flush
        self.sent = 0
        self.errors = 0
        self.done = 0
        self.worker_id = f"local-{os.getpid()}"
        self.workers: dict[str, WorkerStatus] = {}  # the collecting side's account of each process
        self.warnings: list[str] = []
        self.cpu_max = 0.0
        self.cpu_samples: list[float] = []
        self.users_over_time: list[tuple[float, int, int, str]] = []  # (seconds since start, users, target users, state)
        self.meta: dict[str, Any] = {}
        from bench.load.live import LiveStats

        self.live = LiveStats()  # scenario, models, SLOs: so a plain-locust run folder explains itself
        self.started = time.time()
        self.spawned_s: float | None = None  # seconds from start until every user was running (the ramp-up)
        self.final_sent = False
        self._flusher: gevent.Greenlet | None = None
        self._proc = psutil.Process()
        runner = environment.runner
        self.worker: WorkerLink | None = None
        self.master: MasterLink | None = None
        self.sink: RecordSink | None = None  # where rows are written: a local run's and the master's
        self._timing = None  # timing.jsonl, where the master (or a local run) writes every process's lag
        if isinstance(runner, WorkerRunner):
            self.worker = WorkerLink(self)
            self.worker_id = self.worker.worker_id
        else:
            self.sink = RecordSink(
                self.run_dir / "records.spool",
                rescue=lambda: self.rescue,
                give_up=lambda: gevent.spawn(self.env.runner.quit),
                warnings=self.warnings,
            )
            self._timing = open(self.run_dir / TIMING_FILE, "a")
            if isinstance(runner, MasterRunner):
                self.master = MasterLink(self)
        ev = environment.events
        ev.test_start.add_listener(self._on_test_start)
        ev.test_stopping.add_listener(self._on_test_stopping)
        ev.test_stop.add_listener(self._on_test_stop)
        ev.cpu_warning.add_listener(self._on_cpu_warning)
        ev.quitting.add_listener(self._on_quitting)
        ev.spawning_complete.add_listener(self._on_spawned)

    # --- measuring side ----------------------------------------------------------------------
    def count_sent(self, ctx: RequestContext | None = None) -> None:
        self.sent += 1
        if self.worker is not None and ctx is not None:
            self.worker.started(ctx)

    def add(self, row: Row, failed: bool) -> None:
        self.rows.append(row)
        if self.worker is None:
            self.live.add(row)
        self.done += 1
        if failed:
            self.errors += 1

    # --- the collecting side's writes ----------------------------------------------------------------------
    def write(self, rows: list[Row]) -> None:
        assert self.sink is not None, "rows are written only where a sink is (a local run or the master)"
        self.sink.write(rows)

    @property
    def rescue(self) -> Path:
        return rescue_dir(self.meta.get("run_id") or self.run_dir.name)

    def timing(self, worker: str, t: float, cpu: float | None, lag: bytes | array[int]) -> None:
        if self._timing is None:
            return
        lag_us = list(array("I", lag)) if isinstance(lag, bytes) else list(lag)
        try:
            self._timing.write(json.dumps({"w": worker, "t": round(t, 3), "cpu": cpu, "lag_us": lag_us}) + "\n")
            self._timing.flush()
        except OSError:
            pass  # the records matter more; their own write reports the disk

    # --- every second and at the end ---------------------------------------------------------
    def _on_spawned(self, user_count: int = 0, **kw: Any) -> None:
        if self.spawned_s is None:
            self.spawned_s = time.time() - self.started

    def _on_test_start(self, environment: LocustEnv, **kw: Any) -> None:
        self.started = time.time()
        self.spawned_s = None
        self.final_sent = False
        if self._flusher is None:
            self._flusher = gevent.spawn(self._flush_loop)
            if self.master is None:
                gevent.spawn(self._lag_loop)
            else:
                gevent.spawn(self.master.clock_loop)
        self._proc.cpu_percent(None)

    def _lag_loop(self) -> None:
        """How late this process's event loop serves a file descriptor that became readable.

        A kernel timer (timerfd) makes a descriptor readable every 10 ms; the probe waits for it
        as a stream read waits for its socket, in the same queue of ready descriptors, and
        records how long after the expiry it ran. A part's stamp is late by the same delay, so
        the distribution is this run's timing uncertainty, measured while it ran. Where timerfd
        is missing, a sleeping greenlet's lateness stands in (it sees timer slack, not the queue).
        """
        period = int(LAG_PERIOD * 1e9)
        timer = KernelTimer.start(period)
        if timer is None:
            due = monotonic_ns() + period
            while True:
                gevent.sleep(max(0.0, (due - monotonic_ns()) / 1e9))
                now = monotonic_ns()
                self.lag.append(max(0, now - due) // 1000)  # self.lag: each flush swaps in a fresh array
                due = now + period
        while True:
            late = timer.wait()
            if late is not None:
                # one sample per wake-up, its lag counted from the oldest expiry it missed: a 1 s block
                # reads 1,000 ms (in the max and the p99.9), not the 1.16 ms since the latest expiry
                self.lag.append(late // 1000)

    def _flush_loop(self) -> None:
        while True:
            gevent.sleep(FLUSH_INTERVAL)
            try:
                cpu = self._proc.cpu_percent(None)
                self.cpu_samples.append(cpu)
                self.cpu_max = max(self.cpu_max, cpu)
                if not self.final_sent and self.master is None:
                    self.flush(final=False)
                elif self.sink is not None and self.sink.pending:
                    self.sink.write([])  # retry what a full disk kept back
                if self.worker is None:
                    runner = self.env.runner
                    self.users_over_time.append(
                        (
                            round(time.time() - self.started, 2),
                            int(runner.user_count),
                            int(getattr(runner, "target_user_count", 0) or 0),
                            str(runner.state),
                        )
                    )
                    self._progress()
            except Exception as exc:  # a flush problem must never kill the flusher
                self.warnings.append(f"record flush failed: {exc!r}")

    def not_sent_rows(self) -> list[Row]:
        """Open loop: every arrival still queued at the end becomes a record of its own."""
        if self.arrivals is None:
            return []
        self.arrivals.stop()
        s = self.arrivals.s
        rows = [not_sent_row(a, s.run_id, self.worker_id, s.protocol.recorded) for a in self.arrivals.drain()]
        self.not_sent += len(rows)
        return rows

    def flush(self, final: bool) -> None:
        """This process's rows since the last flush: to the master (a worker) or to the sink (a local run)."""
        if final and not self.final_sent:
            self.rows.extend(self.not_sent_rows())
        rows, self.rows = self.rows, []
        lag, self.lag = self.lag, array("I")
        cpu = self.cpu_samples[-1] if self.cpu_samples else None
        offered = self.arrivals.offered if self.arrivals is not None else None
        info = getattr(self.arrivals, "info", None)
        trace = info() if info is not None else None  # a trace replay: its clock origin and progress
        msg: RecordsMsg = {
            "w": self.worker_id,
            "rows": rows,
            "sent": self.sent,
            "errors": self.errors,
            "final": final,
            "cpu_max": self.cpu_max,
            "warnings": self.warnings[-5:],
            "lag": lag.tobytes(),
            "cpu": cpu,
            "t": time.time(),
            "offered": offered,
            "not_sent": self.not_sent,
            "trace": trace,
        }
        if self.worker is not None:
            self.worker.send(msg)
        else:  # a local run is its own worker and its own master
            self.write(rows)
            self.timing(self.worker_id, msg["t"], cpu, lag)
            self.workers.setdefault(self.worker_id, WorkerStatus()).took(msg, msg["t"])
        if final:
            self.final_sent = True

    def _on_cpu_warning(self, environment: LocustEnv, cpu_usage: float, **kw: Any) -> None:
        self.warnings.append(f"load generator CPU at {cpu_usage:.0f}%: timings are not trustworthy")

    def _progress(self) -> None:
        if self.master is not None:
            done = sum(w.received for w in self.workers.values())
            sent = sum(w.sent for w in self.workers.values())
            errors = sum(w.errors for w in self.workers.values())
            # the busiest load generator's CPU: in a distributed run the workers', not the master's
            cpu = max([self.cpu_max] + [w.cpu_max or 0.0 for w in self.workers.values()])
        else:
            done, sent = (self.sink.rows if self.sink is not None else 0) + len(self.rows), self.sent
            errors, cpu = self.errors, self.cpu_max
        write_json(
            self.run_dir / "progress.json",
            {
                "elapsed": time.time() - self.started,
                "records": done,
                "sent": sent,
                "errors": errors,
                "users": self.env.runner.user_count,
                "cpu_max": cpu,
                "t": time.time(),
            },
        )

    def _on_test_stopping(self, environment: LocustEnv, **kw: Any) -> None:
        if self.master is not None:
            self.master.final_handshake()

    def _on_test_stop(self, environment: LocustEnv, **kw: Any) -> None:
        if self.worker is not None:
            return
        if self.master is None:
            self.flush(final=True)
        self.write_summary()

    def _on_quitting(self, environment: LocustEnv, **kw: Any) -> None:
        """Locust is exiting (end of -t, Ctrl-C, SIGTERM, the web UI's quit): leave a whole run folder.

        A web-UI run may still be running here: stopping the users first turns the streams in
        flight into ``cancelled`` records (and, distributed, runs the workers' final flush).
        Plain Locust then gets ``requests.parquet`` and ``run.json`` right away; ``bench run``
        writes its own after the child exits.
        """
        if self.worker is not None:
            return
        runner = environment.runner
        if getattr(runner, "state", None) in ("spawning", "running"):
            try:
                runner.stop()
            except Exception as exc:  # quitting must still write what it has
                self.warnings.append(f"stopping the users at quit failed: {exc!r}")
        if not self.final_sent and self.master is None:
            self.flush(final=True)
        if self.sink is not None and self.sink.pending:  # the disk still refuses them: the rescue folder, so the quit loses none
            line = self.sink.to_rescue()
            self.warnings.append(f"the run folder's disk refused records to the end; {line}")
            sys.stderr.write(f"error: the run folder's disk refused records to the end; {line}\n")
        self.write_summary()
        if os.environ.get("BENCH_CHILD") == "1":
            return
        if Collector.finalize is None:  # the stage after this one was not wired in (see the root locustfile.py)
            sys.stderr.write(f"bench: records in {self.run_dir}/; bench report {self.run_dir} finalizes them\n")
            return
        try:  # plain Locust: the folder is complete now; the report is one command away
            Collector.finalize(self.run_dir)
            sys.stderr.write(
                f"bench: run folder {self.run_dir}/ (requests.parquet, run.json); "
                f"build the report with: bench report {self.run_dir}\n"
            )
        except Exception as exc:
            sys.stderr.write(
                f"bench: records in {self.run_dir}/ could not be finalized now ({exc}); "
                f"bench report {self.run_dir} finalizes them\n"
            )

    def _warmup(self, ended: float) -> tuple[float, str]:
        """The warm-up this run excludes, by the rule ``bench run`` uses (see ``default_warmup``)."""
        opts = self.env.parsed_options
        given = getattr(opts, "warmup", None)
        if given is not None:
            return float(given), "--warmup"
        if getattr(opts, "trace", ""):
            return 0.0, "a trace replay: its clock starts once every user runs, so its first rows are the workload"
        users, rate = getattr(opts, "num_users", None), getattr(opts, "spawn_rate", None)
        if getattr(opts, "headless", False) and users and rate and self.env.shape_class is None:
            return default_warmup(ended - self.started, users / rate), f"ramp-up of -u {users} at -r {rate:g}/s, plus 1 s"
        if self.spawned_s is not None:
            return default_warmup(ended - self.started, self.spawned_s), f"observed ramp-up {self.spawned_s:.1f} s, plus 1 s"
        return 0.0, "no ramp-up observed"

    def write_summary(self) -> None:
        """``collector.json``: what every process sent, what arrived, what was lost, and why."""
        ended = time.time()
        warmup, rule = self._warmup(ended)
        clocks: dict[str, Any] = {}
        if self.master is not None:
            self.master.write_lost()
            clocks = self.master.clock_summaries()
        workers = {}
        for wid, w in self.workers.items():
            workers[wid] = {**w.as_json(), **({"clock": clocks.get(wid)} if self.master is not None else {})}
            if not w.final:
                last = f" (its last report came {w.last_report - self.started:.0f} s into the run)" if w.last_report else ""
                self.warnings.append(
                    f"worker {wid} sent no final report (killed?){last}: {w.received} records received, "
                    f"{w.lost} requests it had in flight recorded as worker_lost"
                    + (f", {w.missing} unaccounted for" if w.missing else "")
                )
        self.warnings.extend(clock_warnings(clocks))
        if self.master is not None:
            self.warnings.extend(self.master.gate.warnings())
        drop = load_drop(self.users_over_time)
        if drop:
            self.warnings.append(drop)
        self.warnings[:] = list(dict.fromkeys(self.warnings))  # in place: the sink appends to this list
        if self.sink is not None and self.sink.rescued:
            self.meta["rescued"] = {"records": self.sink.rescued, "where": str(self.rescue)}
        ws = self.workers.values()
        write_json(
            self.run_dir / "collector.json",
            {
                "records": sum(w.received + w.lost for w in ws),
                "worker_lost": self.master.lost if self.master is not None else 0,
                "users_over_time": [[t, u] for t, u, _, _ in self.users_over_time],
                "sent": sum(max(w.sent, w.started) for w in ws),
                "offered": sum(w.offered or 0 for w in ws) if any(w.offered is not None for w in ws) else None,
                "not_sent": sum(w.not_sent or 0 for w in ws),
                "workers": workers,
                **({"worker_auth": self.master.gate.describe()} if self.master is not None else {}),
                "warnings": self.warnings,
                "cpu_max": max([self.cpu_max] + [w.cpu_max for w in ws]),
                "cpu_p50": sorted(self.cpu_samples)[len(self.cpu_samples) // 2] if self.cpu_samples else None,
                "runner": type(self.env.runner).__name__,
                "started": self.started,
                "ended": ended,
                "warmup_s": warmup,
                "warmup_rule": rule,
                "host": self.env.host,
                **self.meta,
            },
            rescue=self.rescue,
        )
        self._progress()

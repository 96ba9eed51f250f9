"""Deliver every record to one spool file, in local and distributed Locust runs, losing none.

Each load-generating process buffers rows and ships them once a second: straight to the spool
in a local run, as a ``bench_records`` message to the master in a distributed one. Locust's
master waits only 0.5 s for workers at quit, so the master runs its own end-of-run handshake
when the test stops: it asks every worker to stop its users (in-flight requests become
``cancelled`` rows) and flush, and waits until each has sent a final batch that says how
many requests it sent. Workers also tell the master each request as it starts (one message per
event-loop turn, sent before the reply is awaited), so a worker that dies leaves a ``worker_lost``
record for every request it had in flight. The master measures each worker's wall clock against
its own (``bench.load.clock``) and moves the rows onto its clock as they arrive.
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

from bench.load.clock import WorkerClock, clock_warnings, wall
from bench.load.drop import load_drop
from bench.load.locusttypes import LocustEnv
from bench.load.workerauth import WorkerGate, send_hello
from bench.records import IDX, Row, Spool, StartNotice, lost_row, not_sent_row, rescue_dir, start_notice
from bench.schema import TIMING_FILE, Protocol, default_warmup

if TYPE_CHECKING:
    from locust.rpc.protocol import Message

    from bench.load.arrivals import Schedule
    from bench.records import RequestContext

FLUSH_INTERVAL = 1.0
FINAL_WAIT = 20.0
LAG_PERIOD = 0.01  # the scheduling-lag probe wakes this often (100 wake-ups/s: nothing next to thousands of parts/s)
WRITE_GIVE_UP = 10.0  # seconds the spool may stay unwritable before the run is stopped
MASTER_SILENT_S = 15.0  # a worker on another machine takes its master for dead after this many silent seconds
CLOCK_EVERY = 5.0  # seconds between clock exchanges with each worker (plus a burst at the start)


def _write_json(path: Path, obj: dict[str, Any], rescue: Path | None = None) -> None:
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
            _write_json(rescue / path.name, obj)


class KernelTimer:
    """A periodic CLOCK_MONOTONIC timerfd, read through gevent like a socket (Linux; via ctypes)."""

    def __init__(self, fd: int, t0: int, period: int) -> None:
        self.fd, self.t0, self.period, self.count = fd, t0, period, 0
        self.missed = 0  # expiries the latest wait() found already passed besides the oldest

    @classmethod
    def start(cls, period: int) -> KernelTimer | None:
        import ctypes
        import ctypes.util

        try:
            libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
            fd = libc.timerfd_create(1, 0o4000)  # CLOCK_MONOTONIC, TFD_NONBLOCK
            if fd < 0:
                return None
            t0 = monotonic_ns() + period

            class Timespec(ctypes.Structure):
                _fields_ = [("tv_sec", ctypes.c_long), ("tv_nsec", ctypes.c_long)]

            class Itimerspec(ctypes.Structure):
                _fields_ = [("it_interval", Timespec), ("it_value", Timespec)]

            spec = Itimerspec(Timespec(period // 10**9, period % 10**9), Timespec(t0 // 10**9, t0 % 10**9))
            if libc.timerfd_settime(fd, 1, ctypes.byref(spec), None) != 0:  # TFD_TIMER_ABSTIME
                os.close(fd)
                return None
            return cls(fd, t0, period)
        except (OSError, AttributeError):
            return None

    def wait(self) -> int | None:
        """Block (cooperatively) until the timer fires; ns from the oldest expiry not yet served to now."""
        from gevent.socket import wait_read

        wait_read(self.fd)
        try:
            n = int.from_bytes(os.read(self.fd, 8), "little")
        except BlockingIOError:
            return None
        now = monotonic_ns()
        oldest = self.t0 + self.count * self.period  # the first expiry not served yet: a loop blocked for 1 s
        self.count += n  # missed n - 1 of them, and the lag is from the first (it read 1.16 ms from the last before)
        self.missed = n - 1
        return max(0, now - oldest)


class Collector:
    """One per process. ``add`` is all the measuring greenlets call."""

    # turns a finished plain-Locust folder's spool into requests.parquet and run.json: the next stage
    # (bench.analysis.results.ensure_records), wired in by the locustfile so load/ never imports analysis/
    finalize: Callable[[Path], None] | None = None

    def __init__(self, environment: LocustEnv, run_dir: Path) -> None:
        self.env = environment
        self.run_dir = Path(run_dir)
        self.rows: list[Row] = []
        self.pending: list[Row] = []  # rows not yet written to the spool (a full disk keeps them here)
        self._rescue_spool: Spool | None = None  # the rescue folder's spool, once the run folder's disk gave up
        self.rescued = 0
        self.write_failing_since: float | None = None
        self.arrivals: Schedule | None = None  # open loop: this process's arrival schedule
        self.offered = 0
        self.not_sent = 0
        self.lag: array[int] = array("I")  # scheduling lag of the probe, microseconds, since the last flush
        self.timing = None  # timing.jsonl, where the master (or a local run) writes every process's lag
        self.sent = 0
        self.errors = 0
        self.done = 0
        self.worker_id = f"local-{os.getpid()}"
        self.spool: Spool | None = None
        self.workers: dict[str, dict[str, Any]] = {}
        self.warnings: list[str] = []
        self.cpu_max = 0.0
        self.cpu_samples: list[float] = []
        self.starts: list[StartNotice] = []  # worker: start notices not yet sent to the master
        self._starts_flush = None
        self.inflight: dict[str, dict[str, StartNotice]] = {}  # master: per worker, started requests not yet reported as rows
        self.clocks: dict[str, WorkerClock] = {}  # master: per worker, clock exchanges
        self.users_over_time: list[tuple[float, int, int, str]] = []  # (seconds since start, users, target users, state)
        self.lost = 0
        self.meta: dict[str, Any] = {}
        from bench.load.live import LiveStats

        self.live = LiveStats()  # scenario, models, SLOs: so a plain-locust run folder explains itself
        self.started = time.time()
        self.spawned_s: float | None = None  # seconds from start until every user was running (the ramp-up)
        self._final_sent = False
        self._flusher = None
        self._proc = psutil.Process()
        runner = environment.runner
        self.is_worker = isinstance(runner, WorkerRunner)
        self.is_master = isinstance(runner, MasterRunner)
        if self.is_worker:
            self.worker_id = f"{runner.client_id}"
            runner.register_message("bench_flush", self._on_flush_request, concurrent=True)
            runner.register_message("bench_clock", self._on_clock_ping, concurrent=True)
            send_hello(runner)  # before anything else this worker sends: the master admits it on this proof
            # forked by `--processes`: the master is this process's parent, and a new parent means it died
            self._master_pid = os.getppid() if getattr(environment.parsed_options, "processes", None) else None
            gevent.spawn(self._watch_master)
        else:
            self.spool = Spool(self.run_dir / "records.spool")
            self.timing = open(self.run_dir / TIMING_FILE, "a")
        self.gate: WorkerGate | None = WorkerGate.install(runner) if self.is_master else None
        if self.is_master:
            runner.register_message("bench_records", self._on_records)
            runner.register_message("bench_started", self._on_started)
            runner.register_message("bench_clock_reply", self._on_clock_reply)
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
        if self.is_worker and ctx is not None:
            self.starts.append(start_notice(ctx))
            if self._starts_flush is None:  # runs when this greenlet next waits: right after the request is written
                self._starts_flush = gevent.spawn(self._send_starts)

    def _send_starts(self) -> None:
        starts, self.starts = self.starts, []
        self._starts_flush = None
        if starts:
            self.env.runner.send_message("bench_started", {"w": self.worker_id, "starts": starts})

    # --- a master that dies (distributed runs) ---------------------------------------------------------
    def _watch_master(self) -> None:
        """Worker: notice a master that is gone and keep what this worker still holds.

        Locust's worker waits 60 s for a silent master and then quits with its rows in memory (20 of
        165 load requests had no record after a master SIGKILL); an orphan used to join the next run
        on the machine meanwhile. A forked worker checks its parent twice a second; a worker on
        another machine gives the master ``MASTER_SILENT_S`` of missed heartbeats (one a second)."""
        while True:
            gevent.sleep(0.5)
            runner = self.env.runner
            if self._master_pid is not None and os.getppid() != self._master_pid:
                self._master_gone("the Locust master (its parent process) died")
            last = getattr(runner, "last_heartbeat_timestamp", None)
            if last and time.time() - last > MASTER_SILENT_S:
                self._master_gone(f"no heartbeat from the Locust master for {MASTER_SILENT_S:.0f} s")

    def _master_gone(self, reason: str) -> None:
        """Stop the users (streams in flight become ``cancelled`` rows), write every row not yet shipped to
        ``worker-<id>.spool`` in the run folder (``bench report`` reads every spool), say so, and exit."""
        if not self._final_sent:
            try:
                self.env.runner.stop()
            except Exception as exc:  # noqa: BLE001  # the rows must be written whatever stopping did
                self.warnings.append(f"stopping the users failed: {exc!r}")
            self.rows.extend(self._not_sent_rows())
        rows, self.rows = self.rows, []
        if not rows and not self.sent:
            os._exit(3)  # never started (the master refused the run before any load): nothing to keep or say
        name = "".join(c if c.isalnum() or c in "-_" else "_" for c in self.worker_id)
        try:
            if rows:
                spool = Spool(self.run_dir / f"worker-{name}.spool")
                spool.write(rows)
                spool.close()
            _write_json(
                self.run_dir / f"worker-{name}.json",
                {"worker": self.worker_id, "sent": self.sent, "saved_rows": len(rows), "reason": reason, "t": time.time()},
            )
            sys.stderr.write(f"bench worker {self.worker_id}: {reason}; {len(rows)} records kept in {self.run_dir}\n")
        except OSError as exc:
            sys.stderr.write(f"bench worker {self.worker_id}: {reason}; {len(rows)} records could not be kept: {exc}\n")
        sys.stderr.flush()
        os._exit(3)

    # --- clocks (distributed runs) -------------------------------------------------------------
    def _on_clock_ping(self, environment: LocustEnv, msg: Message, **kw: Any) -> None:
        """Worker: answer the master's clock ping with this machine's wall clock, at once."""
        environment.runner.send_message("bench_clock_reply", {"w": self.worker_id, "t0": msg.data["t0"], "tw": wall()})

    def _on_clock_reply(self, environment: LocustEnv, msg: Message, **kw: Any) -> None:
        t3 = wall()
        d = msg.data
        self.clocks.setdefault(d["w"], WorkerClock()).add(d["t0"], d["tw"], t3)

    def _ping_workers(self) -> None:
        for client in list(self.env.runner.clients.all):
            if client.state != "missing":
                self.env.runner.send_message("bench_clock", {"t0": wall()}, client_id=client.id)

    def _clock_loop(self) -> None:
        for _ in range(8):  # a burst at the start: the first rows arrive after one second
            self._ping_workers()
            gevent.sleep(0.05)
        while True:
            gevent.sleep(CLOCK_EVERY)
            self._ping_workers()

    def _offset(self, wid: str) -> float:
        c = self.clocks.get(wid)
        b = c.best() if c is not None else None
        return b[0] if b is not None else 0.0

    def _on_started(self, environment: LocustEnv, msg: Message, **kw: Any) -> None:
        d = msg.data
        w = self.inflight.setdefault(d["w"], {})
        off = self._offset(d["w"])
        for got in d["starts"]:
            n = list(got)
            n[1] -= off  # t_wall_start onto the master's clock
            w[n[0]] = tuple(n)
        ws = self.workers.setdefault(d["w"], {"received": 0, "sent": 0, "final": False})
        ws["started"] = ws.get("started", 0) + len(d["starts"])

    def add(self, row: Row, failed: bool) -> None:
        self.rows.append(row)
        if not self.is_worker:
            self.live.add(row)
        self.done += 1
        if failed:
            self.errors += 1

    def _on_spawned(self, user_count: int = 0, **kw: Any) -> None:
        if self.spawned_s is None:
            self.spawned_s = time.time() - self.started

    def _on_test_start(self, environment: LocustEnv, **kw: Any) -> None:
        self.started = time.time()
        self.spawned_s = None
        self._final_sent = False
        if self._flusher is None:
            self._flusher = gevent.spawn(self._flush_loop)
            if not self.is_master:
                gevent.spawn(self._lag_loop)
            else:
                gevent.spawn(self._clock_loop)
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
                if not self._final_sent and not self.is_master:
                    self.flush(final=False)
                elif self.pending:
                    self._write([])  # retry what a full disk kept back
                if not self.is_worker:
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

    def _not_sent_rows(self) -> list[Row]:
        """Open loop: every arrival still queued at the end becomes a record of its own."""
        if self.arrivals is None:
            return []
        self.arrivals.stop()
        s = self.arrivals.s
        rows = [not_sent_row(a, s.run_id, self.worker_id, s.protocol.recorded) for a in self.arrivals.drain()]
        self.not_sent += len(rows)
        return rows

    def flush(self, final: bool) -> None:
        if final and not self._final_sent:
            self.rows.extend(self._not_sent_rows())
        rows, self.rows = self.rows, []
        lag, self.lag = self.lag, array("I")
        cpu = self.cpu_samples[-1] if self.cpu_samples else None
        offered = self.arrivals.offered if self.arrivals is not None else None
        info = getattr(self.arrivals, "info", None)
        trace = info() if info is not None else None  # a trace replay: its clock origin and progress
        if self.is_worker:
            data = {
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
            self.env.runner.send_message("bench_records", data)
        else:
            self._write(rows)
            self._timing(self.worker_id, time.time(), cpu, lag)
            w = self.workers.setdefault(self.worker_id, {"received": 0, "sent": 0, "final": False})
            w["received"] += len(rows)
            w["sent"] = self.sent
            w["errors"] = self.errors
            w["final"] = w["final"] or final
            w["cpu_max"] = self.cpu_max
            w["offered"], w["not_sent"] = offered, self.not_sent
            if trace is not None:
                w["trace"] = trace
        if final:
            self._final_sent = True

    def _write(self, rows: list[Row]) -> None:
        """Rows to the spool, or kept until the disk takes them; a disk that stays full stops the run."""
        self.pending.extend(rows)
        if not self.pending:
            return
        spool = self.spool
        assert spool is not None, "_write runs only where a spool was opened (a worker or a local run)"
        try:
            spool.write(self.pending)
        except OSError as exc:
            now = time.monotonic()
            if self.write_failing_since is None:
                self.write_failing_since = now
                self.warnings.append(f"writing records to {spool.path} failed ({exc}); {len(self.pending)} rows kept, retrying")
            if now - self.write_failing_since > WRITE_GIVE_UP and not getattr(self, "_gave_up", False):
                self._gave_up = True
                kept = self._rescue()
                msg = (
                    f"records could not be written to {spool.path} for {WRITE_GIVE_UP:.0f} s ({exc}); the run was stopped; {kept}"
                )
                self.warnings.append(msg)
                sys.stderr.write(f"error: {msg}\n")
                sys.stderr.flush()
                gevent.spawn(self.env.runner.quit)
            elif getattr(self, "_gave_up", False):
                self._rescue()  # what came in after the stop (cancelled streams, final batches)
            return
        self.pending = []
        if self.write_failing_since is not None:
            self.write_failing_since = None
            self.warnings.append("writing records works again: every kept row was written")

    @property
    def rescue(self) -> Path:
        return rescue_dir(self.meta.get("run_id") or self.run_dir.name)

    def _rescue(self) -> str:
        """The rows the run folder would not take, to the rescue folder; says where (or that it failed too)."""
        if not self.pending:
            return "no record was lost"
        where = self.rescue / "records.spool"
        try:
            if self._rescue_spool is None:
                self._rescue_spool = Spool(where)
            self._rescue_spool.write(self.pending)
        except OSError as exc:
            return f"{len(self.pending)} records in memory could not be kept in {where} either ({exc})"
        n, self.pending = len(self.pending), []
        self.rescued += n
        return f"{self.rescued} records kept in {where} (bench report on the run folder reads them)"

    def _timing(self, worker: str, t: float, cpu: float | None, lag: bytes | array[int]) -> None:
        if self.timing is None:
            return
        lag_us = list(array("I", lag)) if isinstance(lag, bytes) else list(lag)
        try:
            self.timing.write(json.dumps({"w": worker, "t": round(t, 3), "cpu": cpu, "lag_us": lag_us}) + "\n")
            self.timing.flush()
        except OSError:
            pass  # the records matter more; their own write reports the disk

    def _on_flush_request(self, environment: LocustEnv, msg: Message, **kw: Any) -> None:
        """Worker: the master's handshake. Stop users (cancelled rows get recorded), then flush."""
        environment.runner.stop()
        self.flush(final=True)

    def _on_cpu_warning(self, environment: LocustEnv, cpu_usage: float, **kw: Any) -> None:
        self.warnings.append(f"load generator CPU at {cpu_usage:.0f}%: timings are not trustworthy")

    # --- collecting side ---------------------------------------------------------------------
    def _on_records(self, environment: LocustEnv, msg: Message, **kw: Any) -> None:
        data = msg.data
        off = self._offset(data["w"])
        t_i, id_i = IDX["t_wall_start"], IDX["request_id"]
        inflight = self.inflight.get(data["w"], {})
        for row in data["rows"]:
            if off:
                row[t_i] -= off  # the worker's wall stamp on the master's clock
            inflight.pop(row[id_i], None)
        self._write(data["rows"])
        self._timing(data["w"], data.get("t") or time.time(), data.get("cpu"), data.get("lag") or b"")
        for row in data["rows"]:
            self.live.add(row)
        w = self.workers.setdefault(data["w"], {"received": 0, "sent": 0, "final": False})
        w["received"] += len(data["rows"])
        w["sent"] = data["sent"]
        w["final"] = w["final"] or data["final"]
        w["cpu_max"] = data.get("cpu_max", 0.0)
        w["cpu"] = data.get("cpu")
        w["errors"] = data.get("errors", 0)
        w["last_report"] = time.time()
        w["offered"], w["not_sent"] = data.get("offered"), data.get("not_sent", 0)
        if data.get("trace") is not None:
            w["trace"] = data["trace"]
        for warning in data.get("warnings") or []:
            if warning not in self.warnings:
                self.warnings.append(warning)

    def _progress(self) -> None:
        if self.is_master:
            done = sum(w["received"] for w in self.workers.values())
            sent = sum(w["sent"] for w in self.workers.values())
        else:
            done, sent = (self.spool.rows if self.spool is not None else 0) + len(self.rows), self.sent
        errors = sum(w.get("errors", 0) for w in self.workers.values()) if self.is_master else self.errors
        # the busiest load generator's CPU: in a distributed run the workers', not the master's
        cpu = max([self.cpu_max] + [w.get("cpu_max") or 0.0 for w in self.workers.values()]) if self.is_master else self.cpu_max
        _write_json(
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
        if not self.is_master:
            return
        runner = environment.runner
        for client in list(runner.clients.all):
            runner.send_message("bench_flush", None, client_id=client.id)
        deadline = time.monotonic() + FINAL_WAIT
        while time.monotonic() < deadline:
            alive = {c.id for c in runner.clients.all if c.state != "missing"}
            pending = [cid for cid in alive if not self.workers.get(cid, {}).get("final")]
            if not pending:
                break
            gevent.sleep(0.05)

    def _on_test_stop(self, environment: LocustEnv, **kw: Any) -> None:
        if self.is_worker:
            return
        if not self.is_master:
            self.flush(final=True)
        self.write_summary()

    def _on_quitting(self, environment: LocustEnv, **kw: Any) -> None:
        """Locust is exiting (end of -t, Ctrl-C, SIGTERM, the web UI's quit): leave a whole run folder.

        A web-UI run may still be running here: stopping the users first turns the streams in
        flight into ``cancelled`` records (and, distributed, runs the workers' final flush).
        Plain Locust then gets ``requests.parquet`` and ``run.json`` right away; ``bench run``
        writes its own after the child exits.
        """
        if self.is_worker:
            return
        runner = environment.runner
        if getattr(runner, "state", None) in ("spawning", "running"):
            try:
                runner.stop()
            except Exception as exc:  # quitting must still write what it has
                self.warnings.append(f"stopping the users at quit failed: {exc!r}")
        if not self._final_sent and not self.is_master:
            self.flush(final=True)
        if self.pending:  # the disk still refuses them: the rescue folder, so the quit loses none
            line = self._rescue()
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

    def _write_lost(self) -> None:
        """Master: a record for every request a worker started and never reported (it died meanwhile)."""
        meta_run = self.meta.get("run_id") or self.run_dir.name
        for wid, w in self.workers.items():
            if w["final"]:
                continue
            pending = self.inflight.pop(wid, {})
            if pending:
                rows = [lost_row(tuple(n), meta_run, wid, Protocol.auto.recorded) for n in pending.values()]
                self._write(rows)
                for row in rows:
                    self.live.add(row)
                w["lost"] = w.get("lost", 0) + len(rows)
                self.lost += len(rows)

    def write_summary(self) -> None:
        ended = time.time()
        warmup, rule = self._warmup(ended)
        if self.is_master:
            self._write_lost()
        workers = {}
        clocks = {}
        for wid, w in self.workers.items():
            w["sent"] = max(w["sent"], w.get("started", 0))  # a killed worker started more than it last reported
            missing = max(0, w["sent"] + (w.get("not_sent") or 0) - w["received"] - w.get("lost", 0))
            clock = self.clocks[wid].summary() if wid in self.clocks else None
            workers[wid] = {**w, "missing": missing, **({"clock": clock} if self.is_master else {})}
            if self.is_master:
                clocks[wid] = clock
            if not w["final"]:
                last = (
                    f" (its last report came {w['last_report'] - self.started:.0f} s into the run)"
                    if w.get("last_report")
                    else ""
                )
                self.warnings.append(
                    f"worker {wid} sent no final report (killed?){last}: {w['received']} records received, "
                    f"{w.get('lost', 0)} requests it had in flight recorded as worker_lost"
                    + (f", {missing} unaccounted for" if missing else "")
                )
        self.warnings.extend(clock_warnings(clocks))
        if self.gate is not None:
            self.warnings.extend(self.gate.warnings())
        drop = load_drop(self.users_over_time)
        if drop:
            self.warnings.append(drop)
        self.warnings = list(dict.fromkeys(self.warnings))
        if self.rescued:
            self.meta["rescued"] = {"records": self.rescued, "where": str(self.rescue)}
        _write_json(
            self.run_dir / "collector.json",
            {
                "records": sum(w["received"] + w.get("lost", 0) for w in self.workers.values()),
                "worker_lost": self.lost,
                "users_over_time": [[t, u] for t, u, _, _ in self.users_over_time],
                "sent": sum(w["sent"] for w in self.workers.values()),
                "offered": (
                    sum(w.get("offered") or 0 for w in self.workers.values())
                    if any(w.get("offered") is not None for w in self.workers.values())
                    else None
                ),
                "not_sent": sum(w.get("not_sent") or 0 for w in self.workers.values()),
                "workers": workers,
                **({"worker_auth": self.gate.describe()} if self.gate is not None else {}),
                "warnings": self.warnings,
                "cpu_max": max([self.cpu_max] + [w.get("cpu_max", 0.0) for w in self.workers.values()]),
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

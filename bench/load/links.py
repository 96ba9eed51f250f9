"""The two ends of a distributed run: what a worker tells its master, and what the master does with it.

``WorkerLink`` ships a worker's rows (``RecordsMsg``) and start notices (``StartedMsg``, one message
per event-loop turn, sent before the reply is awaited), answers clock pings, runs the master's
end-of-run handshake, and keeps its rows on disk when the master dies. ``MasterLink`` writes the
rows it receives on the master's clock, keeps each worker's ``WorkerStatus`` and in-flight starts,
and at the end writes a ``worker_lost`` record for every request a dead worker had in flight.
Locust's master waits only 0.5 s for workers at quit, so the master runs its own handshake when
the test stops: it asks every worker to stop its users (in-flight requests become ``cancelled``
rows) and flush, and waits until each has sent a final batch saying how many requests it sent.
"""

from __future__ import annotations

import os
import sys
import time
from typing import TYPE_CHECKING, Any

import gevent

from bench.load.clock import WorkerClock, wall
from bench.load.locusttypes import LocustEnv
from bench.load.wire import (
    CLOCK,
    CLOCK_REPLY,
    FLUSH,
    RECORDS,
    STARTED,
    ClockPing,
    ClockReply,
    RecordsMsg,
    StartedMsg,
    WorkerStatus,
)
from bench.load.workerauth import WorkerGate, send_hello
from bench.records import IDX, Row, Spool, StartNotice, lost_row, start_notice
from bench.schema import Protocol

if TYPE_CHECKING:
    from locust.rpc.protocol import Message

    from bench.load.collect import Collector
    from bench.records import RequestContext

FINAL_WAIT = 20.0  # seconds the master waits for every worker's final batch
MASTER_SILENT_S = 15.0  # a worker on another machine takes its master for dead after this many silent seconds
CLOCK_EVERY = 5.0  # seconds between clock exchanges with each worker (plus a burst at the start)


class WorkerLink:
    """A worker's side: its batches and start notices to the master, and its rows kept if the master dies."""

    def __init__(self, collector: Collector) -> None:
        self.c = collector
        runner = collector.env.runner
        self.worker_id = f"{runner.client_id}"
        self.starts: list[StartNotice] = []  # start notices not yet sent
        self._starts_flush: gevent.Greenlet | None = None
        runner.register_message(FLUSH, self._on_flush_request, concurrent=True)
        runner.register_message(CLOCK, self._on_clock_ping, concurrent=True)
        send_hello(runner)  # before anything else this worker sends: the master admits it on this proof
        # forked by `--processes`: the master is this process's parent, and a new parent means it died
        self._master_pid = os.getppid() if getattr(collector.env.parsed_options, "processes", None) else None
        gevent.spawn(self._watch_master)

    def started(self, ctx: RequestContext) -> None:
        self.starts.append(start_notice(ctx))
        if self._starts_flush is None:  # runs when this greenlet next waits: right after the request is written
            self._starts_flush = gevent.spawn(self._send_starts)

    def _send_starts(self) -> None:
        starts, self.starts = self.starts, []
        self._starts_flush = None
        if starts:
            msg: StartedMsg = {"w": self.worker_id, "starts": starts}
            self.c.env.runner.send_message(STARTED, msg)

    def send(self, msg: RecordsMsg) -> None:
        self.c.env.runner.send_message(RECORDS, msg)

    def _on_flush_request(self, environment: LocustEnv, msg: Message, **kw: Any) -> None:
        """The master's handshake: stop the users (their streams become cancelled rows), then the final batch."""
        environment.runner.stop()
        self.c.flush(final=True)

    def _on_clock_ping(self, environment: LocustEnv, msg: Message, **kw: Any) -> None:
        """Answer the master's clock ping with this machine's wall clock, at once."""
        ping: ClockPing = msg.data
        reply: ClockReply = {"w": self.worker_id, "t0": ping["t0"], "tw": wall()}
        environment.runner.send_message(CLOCK_REPLY, reply)

    # --- a master that dies ------------------------------------------------------------------------
    def _watch_master(self) -> None:
        """Notice a master that is gone and keep what this worker still holds.

        Locust's worker waits 60 s for a silent master and then quits with its rows in memory (20 of
        165 load requests had no record after a master SIGKILL); an orphan used to join the next run
        on the machine meanwhile. A forked worker checks its parent twice a second; a worker on
        another machine gives the master ``MASTER_SILENT_S`` of missed heartbeats (one a second)."""
        while True:
            gevent.sleep(0.5)
            runner = self.c.env.runner
            if self._master_pid is not None and os.getppid() != self._master_pid:
                self._master_gone("the Locust master (its parent process) died")
            last = getattr(runner, "last_heartbeat_timestamp", None)
            if last and time.time() - last > MASTER_SILENT_S:
                self._master_gone(f"no heartbeat from the Locust master for {MASTER_SILENT_S:.0f} s")

    def _master_gone(self, reason: str) -> None:
        """Stop the users (streams in flight become ``cancelled`` rows), write every row not yet shipped to
        ``worker-<id>.spool`` in the run folder (``bench report`` reads every spool), say so, and exit."""
        c = self.c
        if not c.final_sent:
            try:
                c.env.runner.stop()
            except Exception as exc:  # noqa: BLE001  # the rows must be written whatever stopping did
                c.warnings.append(f"stopping the users failed: {exc!r}")
            c.rows.extend(c.not_sent_rows())
        rows, c.rows = c.rows, []
        if not rows and not c.sent:
            os._exit(3)  # never started (the master refused the run before any load): nothing to keep or say
        from bench.load.collect import write_json

        name = "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in self.worker_id)
        try:
            if rows:
                spool = Spool(c.run_dir / f"worker-{name}.spool")
                spool.write(rows)
                spool.close()
            write_json(
                c.run_dir / f"worker-{name}.json",
                {"worker": self.worker_id, "sent": c.sent, "saved_rows": len(rows), "reason": reason, "t": time.time()},
            )
            sys.stderr.write(f"bench worker {self.worker_id}: {reason}; {len(rows)} records kept in {c.run_dir}\n")
        except OSError as exc:
            sys.stderr.write(f"bench worker {self.worker_id}: {reason}; {len(rows)} records could not be kept: {exc}\n")
        sys.stderr.flush()
        os._exit(3)


class MasterLink:
    """The master's side: every worker's rows onto the master's clock and into the sink, their status,
    their requests in flight, and a ``worker_lost`` row for each one a dead worker never reported."""

    def __init__(self, collector: Collector) -> None:
        self.c = collector
        runner = collector.env.runner
        self.inflight: dict[str, dict[str, StartNotice]] = {}  # per worker: started, not yet reported as rows
        self.clocks: dict[str, WorkerClock] = {}  # per worker: clock exchanges
        self.lost = 0
        self.gate = WorkerGate.install(runner)
        runner.register_message(RECORDS, self._on_records)
        runner.register_message(STARTED, self._on_started)
        runner.register_message(CLOCK_REPLY, self._on_clock_reply)

    def _status(self, wid: str) -> WorkerStatus:
        return self.c.workers.setdefault(wid, WorkerStatus())

    def _offset(self, wid: str) -> float:
        c = self.clocks.get(wid)
        b = c.best() if c is not None else None
        return b[0] if b is not None else 0.0

    def _on_records(self, environment: LocustEnv, msg: Message, **kw: Any) -> None:
        data: RecordsMsg = msg.data
        wid = data["w"]
        off = self._offset(wid)
        t_i, id_i = IDX["t_wall_start"], IDX["request_id"]
        inflight = self.inflight.get(wid, {})
        rows: list[Row] = data["rows"]
        for row in rows:
            if off:
                row[t_i] -= off  # the worker's wall stamp on the master's clock
            inflight.pop(row[id_i], None)
        c = self.c
        c.write(rows)
        c.timing(wid, data.get("t") or time.time(), data.get("cpu"), data.get("lag") or b"")
        for row in rows:
            c.live.add(row)
        self._status(wid).took(data, time.time())
        for warning in data.get("warnings") or []:
            if warning not in c.warnings:
                c.warnings.append(warning)

    def _on_started(self, environment: LocustEnv, msg: Message, **kw: Any) -> None:
        data: StartedMsg = msg.data
        w = self.inflight.setdefault(data["w"], {})
        off = self._offset(data["w"])
        for got in data["starts"]:
            n = list(got)
            n[1] -= off  # t_wall_start onto the master's clock
            w[n[0]] = tuple(n)  # type: ignore[assignment]  # the notice's own shape, its time moved
        self._status(data["w"]).started += len(data["starts"])

    def _on_clock_reply(self, environment: LocustEnv, msg: Message, **kw: Any) -> None:
        t3 = wall()
        d: ClockReply = msg.data
        self.clocks.setdefault(d["w"], WorkerClock()).add(d["t0"], d["tw"], t3)

    def _ping_workers(self) -> None:
        runner = self.c.env.runner
        for client in list(runner.clients.all):
            if client.state != "missing":
                ping: ClockPing = {"t0": wall()}
                runner.send_message(CLOCK, ping, client_id=client.id)

    def clock_loop(self) -> None:
        for _ in range(8):  # a burst at the start: the first rows arrive after one second
            self._ping_workers()
            gevent.sleep(0.05)
        while True:
            gevent.sleep(CLOCK_EVERY)
            self._ping_workers()

    def final_handshake(self) -> None:
        """Ask every worker to stop and flush; wait until each live one has sent its final batch."""
        runner = self.c.env.runner
        for client in list(runner.clients.all):
            runner.send_message(FLUSH, None, client_id=client.id)
        deadline = time.monotonic() + FINAL_WAIT
        while time.monotonic() < deadline:
            alive = {cl.id for cl in runner.clients.all if cl.state != "missing"}
            waiting = [cid for cid in alive if not (cid in self.c.workers and self.c.workers[cid].final)]
            if not waiting:
                break
            gevent.sleep(0.05)

    def write_lost(self) -> None:
        """A record for every request a worker started and never reported (it died meanwhile)."""
        c = self.c
        meta_run = c.meta.get("run_id") or c.run_dir.name
        for wid, w in c.workers.items():
            if w.final:
                continue
            pending = self.inflight.pop(wid, {})
            if pending:
                rows = [lost_row(n, meta_run, wid, Protocol.auto.recorded) for n in pending.values()]
                c.write(rows)
                for row in rows:
                    c.live.add(row)
                w.lost += len(rows)
                self.lost += len(rows)

    def clock_summaries(self) -> dict[str, Any]:
        return {wid: (self.clocks[wid].summary() if wid in self.clocks else None) for wid in self.c.workers}

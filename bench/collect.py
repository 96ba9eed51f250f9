"""Deliver every record to one spool file, in local and distributed Locust runs, losing none.

Each load-generating process buffers rows and ships them once a second: straight to the spool
in a local run, as a ``bench_records`` message to the master in a distributed one. Locust's
master waits only 0.5 s for workers at quit, so the master runs its own end-of-run handshake
when the test stops: it asks every worker to stop its users (in-flight requests become
``cancelled`` rows) and flush, and waits until each has sent a final batch that says how
many requests it sent. What a killed worker never delivered is counted in ``collector.json``.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import gevent
import psutil
from locust.runners import MasterRunner, WorkerRunner

FLUSH_INTERVAL = 1.0
FINAL_WAIT = 20.0


def _write_json(path: Path, obj: dict) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(obj, indent=1))
    os.replace(tmp, path)


class Collector:
    """One per process. ``add`` is all the measuring greenlets call."""

    def __init__(self, environment, run_dir: Path) -> None:
        self.env = environment
        self.run_dir = Path(run_dir)
        self.rows: list[list] = []
        self.sent = 0
        self.errors = 0
        self.done = 0
        self.worker_id = f"local-{os.getpid()}"
        self.spool = None
        self.workers: dict[str, dict] = {}
        self.warnings: list[str] = []
        self.cpu_max = 0.0
        self.cpu_samples: list[float] = []
        self.meta: dict = {}
        from bench.live import LiveStats

        self.live = LiveStats()  # scenario, models, SLOs: so a plain-locust run folder explains itself
        self.started = time.time()
        self._final_sent = False
        self._flusher = None
        self._proc = psutil.Process()
        runner = environment.runner
        self.is_worker = isinstance(runner, WorkerRunner)
        self.is_master = isinstance(runner, MasterRunner)
        if self.is_worker:
            self.worker_id = f"{runner.client_id}"
            runner.register_message("bench_flush", self._on_flush_request, concurrent=True)
        else:
            from bench.records import Spool

            self.spool = Spool(self.run_dir / "records.spool")
        if self.is_master:
            runner.register_message("bench_records", self._on_records)
        ev = environment.events
        ev.test_start.add_listener(self._on_test_start)
        ev.test_stopping.add_listener(self._on_test_stopping)
        ev.test_stop.add_listener(self._on_test_stop)
        ev.cpu_warning.add_listener(self._on_cpu_warning)
        ev.quitting.add_listener(self._on_quitting)

    # --- measuring side ----------------------------------------------------------------------
    def add(self, row: list, failed: bool) -> None:
        self.rows.append(row)
        if not self.is_worker:
            self.live.add(row)
        self.done += 1
        if failed:
            self.errors += 1

    def _on_test_start(self, environment, **kw) -> None:
        self.started = time.time()
        self._final_sent = False
        if self._flusher is None:
            self._flusher = gevent.spawn(self._flush_loop)
        self._proc.cpu_percent(None)

    def _flush_loop(self) -> None:
        while True:
            gevent.sleep(FLUSH_INTERVAL)
            try:
                cpu = self._proc.cpu_percent(None)
                self.cpu_samples.append(cpu)
                self.cpu_max = max(self.cpu_max, cpu)
                if not self._final_sent and not self.is_master:
                    self.flush(final=False)
                if not self.is_worker:
                    self._progress()
            except Exception as exc:  # a flush problem must never kill the flusher
                self.warnings.append(f"record flush failed: {exc!r}")

    def flush(self, final: bool) -> None:
        rows, self.rows = self.rows, []
        if self.is_worker:
            data = {"w": self.worker_id, "rows": rows, "sent": self.sent, "errors": self.errors, "final": final,
                    "cpu_max": self.cpu_max, "warnings": self.warnings[-5:]}
            self.env.runner.send_message("bench_records", data)
        else:
            self.spool.write(rows)
            w = self.workers.setdefault(self.worker_id, {"received": 0, "sent": 0, "final": False})
            w["received"] += len(rows)
            w["sent"] = self.sent
            w["errors"] = self.errors
            w["final"] = w["final"] or final
            w["cpu_max"] = self.cpu_max
        if final:
            self._final_sent = True

    def _on_flush_request(self, environment, msg, **kw) -> None:
        """Worker: the master's handshake. Stop users (cancelled rows get recorded), then flush."""
        environment.runner.stop()
        self.flush(final=True)

    def _on_cpu_warning(self, environment, cpu_usage, **kw) -> None:
        self.warnings.append(f"load generator CPU at {cpu_usage:.0f}%: timings are not trustworthy")

    # --- collecting side ---------------------------------------------------------------------
    def _on_records(self, environment, msg, **kw) -> None:
        data = msg.data
        self.spool.write(data["rows"])
        for row in data["rows"]:
            self.live.add(row)
        w = self.workers.setdefault(data["w"], {"received": 0, "sent": 0, "final": False})
        w["received"] += len(data["rows"])
        w["sent"] = data["sent"]
        w["final"] = w["final"] or data["final"]
        w["cpu_max"] = data.get("cpu_max", 0.0)
        w["errors"] = data.get("errors", 0)
        w["last_report"] = time.time()
        for warning in data.get("warnings") or []:
            if warning not in self.warnings:
                self.warnings.append(warning)

    def _progress(self) -> None:
        if self.is_master:
            done = sum(w["received"] for w in self.workers.values())
            sent = sum(w["sent"] for w in self.workers.values())
        else:
            done, sent = self.spool.rows + len(self.rows), self.sent
        errors = sum(w.get("errors", 0) for w in self.workers.values()) if self.is_master else self.errors
        _write_json(self.run_dir / "progress.json", {
            "elapsed": time.time() - self.started, "records": done, "sent": sent,
            "errors": errors,
            "users": self.env.runner.user_count, "cpu_max": self.cpu_max, "t": time.time(),
        })

    def _on_test_stopping(self, environment, **kw) -> None:
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

    def _on_test_stop(self, environment, **kw) -> None:
        if self.is_worker:
            return
        if not self.is_master:
            self.flush(final=True)
        self.write_summary()

    def _on_quitting(self, environment, **kw) -> None:
        if not self.is_worker:
            if not self._final_sent and not self.is_master:
                self.flush(final=True)
            self.write_summary()

    def write_summary(self) -> None:
        workers = {}
        for wid, w in self.workers.items():
            missing = max(0, w["sent"] - w["received"])
            workers[wid] = {**w, "missing": missing}
            if not w["final"]:
                self.warnings.append(f"worker {wid} sent no final report (killed?): {w['received']} records received, "
                                     f"{missing} known missing, plus whatever it sent after its last report")
        self.warnings = list(dict.fromkeys(self.warnings))
        _write_json(self.run_dir / "collector.json", {
            "records": sum(w["received"] for w in self.workers.values()),
            "sent": sum(w["sent"] for w in self.workers.values()),
            "workers": workers, "warnings": self.warnings,
            "cpu_max": max([self.cpu_max] + [w.get("cpu_max", 0.0) for w in self.workers.values()]),
            "cpu_p50": sorted(self.cpu_samples)[len(self.cpu_samples) // 2] if self.cpu_samples else None,
            "runner": type(self.env.runner).__name__, "started": self.started, "ended": time.time(),
            "host": self.env.host, **self.meta,
        })
        self._progress()


"""Where a local run's or a master's rows are written: the spool, kept rows while the disk refuses
them, the rescue folder once it has refused them for too long.

Rows are never dropped here. A write that fails (a full disk, ``EFBIG``) keeps the rows in
``pending`` and says so once; every later write (the collector retries once a second) tries them
again, first in order. After ``WRITE_GIVE_UP`` seconds of refusals the run is stopped (the
``give_up`` callback) and what the run folder will not take goes to the rescue folder, whose
spool ``bench report`` reads beside the run folder's. Imports neither Locust nor gevent: it is the
part that must lose nothing, testable on its own.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from pathlib import Path

from bench.records import Row, Spool

WRITE_GIVE_UP = 10.0  # seconds the spool may stay unwritable before the run is stopped


class RecordSink:
    """The run folder's ``records.spool``, with retry and rescue."""

    def __init__(self, path: Path, rescue: Callable[[], Path], give_up: Callable[[], None], warnings: list[str]) -> None:
        self.spool = Spool(path)
        self.pending: list[Row] = []  # rows not yet written (a full disk keeps them here)
        self.rescued = 0
        self._rescue_dir = rescue  # where rows go once the run folder gave up (known only once the run id is)
        self._rescue_spool: Spool | None = None
        self._give_up = give_up
        self._gave_up = False
        self._failing_since: float | None = None
        self.warnings = warnings  # the collector's list: every warning reaches collector.json

    @property
    def rows(self) -> int:
        return self.spool.rows

    @property
    def rescue(self) -> Path:
        return self._rescue_dir()

    def write(self, rows: list[Row]) -> None:
        """Rows to the spool, or kept until the disk takes them; a disk that stays full stops the run."""
        self.pending.extend(rows)
        if not self.pending:
            return
        try:
            self.spool.write(self.pending)
        except OSError as exc:
            now = time.monotonic()
            if self._failing_since is None:
                self._failing_since = now
                self.warnings.append(
                    f"writing records to {self.spool.path} failed ({exc}); {len(self.pending)} rows kept, retrying"
                )
            if now - self._failing_since > WRITE_GIVE_UP and not self._gave_up:
                self._gave_up = True
                kept = self.to_rescue()
                msg = (
                    f"records could not be written to {self.spool.path} for {WRITE_GIVE_UP:.0f} s ({exc}); "
                    f"the run was stopped; {kept}"
                )
                self.warnings.append(msg)
                sys.stderr.write(f"error: {msg}\n")
                sys.stderr.flush()
                self._give_up()
            elif self._gave_up:
                self.to_rescue()  # what came in after the stop (cancelled streams, final batches)
            return
        self.pending = []
        if self._failing_since is not None:
            self._failing_since = None
            self.warnings.append("writing records works again: every kept row was written")

    def to_rescue(self) -> str:
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

    def close(self) -> None:
        self.spool.close()

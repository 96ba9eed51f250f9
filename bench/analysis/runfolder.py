"""One reader for a run folder: its records, its run.json, and the warm-up split every command uses.

``open_run`` finalizes a folder plain Locust left (spool to Parquet), refuses a folder that is not
a run, and splits the records by the run's warm-up (``run.json`` → ``warmup_s``, or the caller's).
The gap file stays behind ``records.attrs["gaps"]`` (``analysis.GapStore``): gap statistics stream
from it. Report, compare, models and capacity read runs through here.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from bench.analysis.results import ensure_records, read_run_json
from bench.analysis.summaries import live_rows, load_records, split_warmup
from bench.errors import InputError
from bench.schema import ErrorClass


@dataclass
class Run:
    path: Path
    meta: dict
    records: pd.DataFrame  # every record of the run
    measured: pd.DataFrame  # after the warm-up: what headline numbers are computed from
    warmup: pd.DataFrame  # requests that started in the warm-up
    warmup_s: float

    @property
    def live(self) -> pd.DataFrame:
        """Measured requests the target answered or failed: not cut off, not unsent, not lost with a worker."""
        return live_rows(self.measured)

    @property
    def on_wire(self) -> pd.DataFrame:
        """Measured requests that were sent (streams cut off by the end keep their first-part moments)."""
        return self.measured[self.measured["error"] != ErrorClass.not_sent]

    @property
    def gaps(self):
        return self.records.attrs.get("gaps")


def open_run(run_dir: str | Path, warmup: float | None = None, columns: list[str] | None = None) -> Run:
    run_dir = Path(run_dir)
    ensure_records(run_dir)
    if not (run_dir / "requests.parquet").is_file():
        raise InputError(f"{run_dir}: no requests.parquet (is this a run folder?)")
    meta = read_run_json(run_dir)
    df = load_records(run_dir, columns)
    warm = warmup if warmup is not None else float(meta.get("warmup_s") or 0.0)
    measured, warm_df = split_warmup(df, warm)
    return Run(run_dir, meta, df, measured, warm_df, warm)

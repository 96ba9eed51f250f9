"""``bench run --until-decided BASELINE``: keep loading until the gate can decide, then stop.

Every ``--decide-every`` seconds after the warm-up, this process (the ``bench`` parent: never
the measuring one) reads the records the run has spooled so far, judges them against the
baseline with the gate's own rows, and stops the run as soon as every row is decided
(regression, equivalent or improvement) or ``--max-duration`` is reached. Looking again and again
would raise the false-alarm rate of a fixed 95 % interval; with K = max-duration / decide-every
looks at most, each look judges at alpha / K (``intervals.spending_alpha``), so the errors of all
looks together stay within 5 %
(``benchmarks/gate_power.py`` simulates it). The look count and its alpha go into ``run.json``
(``sequential``) and ``bench compare`` of this run against the same baseline judges at that alpha.
"""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path

from bench import intervals as iv
from bench.schema import ErrorClass


@dataclass
class Look:
    look: int
    at_s: float
    alpha: float
    verdict: str  # the gate's: ok, regression, undecided
    undecided: int
    regressions: int
    requests: int


@dataclass
class Sequential:
    baseline: Path
    tolerances: list  # compare.Tolerance
    every_s: float = 20.0
    warmup_s: float = 0.0
    max_s: float = 0.0  # the run's longest length: fixes the number of looks, so each can spend alpha / K
    looks: list[Look] = field(default_factory=list)
    _baseline_records: object = None

    def _base(self):
        """The baseline's measured requests, read once for all looks."""
        if self._baseline_records is None:
            from bench.analysis.runfolder import open_run

            self._baseline_records = open_run(self.baseline).on_wire
        return self._baseline_records

    def check(self, run_dir: Path, elapsed_s: float) -> bool:
        """One look at what the run has recorded so far; True when every row is decided."""
        from bench.analysis.results import rows_to_table, write_records
        from bench.analysis.summaries import load_records, split_warmup
        from bench.decisions.compare import NotComparable, compare_runs
        from bench.records import read_spool

        rows: list[list] = []
        for spool in sorted(run_dir.glob("*.spool")):
            try:
                rows.extend(read_spool(spool))
            except OSError:
                return False
        if not rows:
            return False
        peek = Path(tempfile.mkdtemp(prefix="peek-", dir=run_dir))
        try:
            write_records(rows_to_table(rows, peek / "gaps.u32"), peek / "requests.parquet")
            df, _ = split_warmup(load_records(peek), self.warmup_s)
            df = df[df["error"] != ErrorClass.not_sent]
            k = len(self.looks) + 1
            alpha = iv.spending_alpha(k, self.max_looks)
            try:
                result = compare_runs(self.baseline, run_dir, self.tolerances, runs=(self._base(), df), alpha=alpha)
            except NotComparable:
                result = {"verdict": "undecided", "undecided": -1, "regressions": 0}
            self.looks.append(
                Look(k, round(elapsed_s, 1), alpha, result["verdict"], result["undecided"], result["regressions"], len(df))
            )
            return result["verdict"] != "undecided"
        finally:
            shutil.rmtree(peek, ignore_errors=True)

    @property
    def max_looks(self) -> int:
        """Looks a run can take: one every ``every_s`` after the warm-up, plus the final judgement."""
        return max(1, int((self.max_s - self.warmup_s) // self.every_s)) + 1

    def final_alpha(self, decided: bool) -> float:
        """The alpha the final judgement spends: the deciding look's, or the next look's when none decided."""
        return iv.spending_alpha(len(self.looks) + (0 if decided and self.looks else 1), self.max_looks)

    def describe(self, decided: bool) -> dict:
        return {
            "baseline": str(Path(self.baseline).resolve()),
            "tolerances": [t.text for t in self.tolerances],
            "every_s": self.every_s,
            "decided": decided,
            "looks": [asdict(x) for x in self.looks],
            "final_alpha": self.final_alpha(decided),
        }

"""``bench history`` over many run folders: wall time of reading and summarising them.

Synthesizes N run folders (each R records over 3 models, written the way a run writes them), then
times ``bench.decisions.history.history`` (one pyarrow dataset scan, per run and model percentiles with
intervals) and the outputs separately.

    python benchmarks/history_500.py [--runs 500] [--records 1000]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=500)
    ap.add_argument("--records", type=int, default=1000)
    a = ap.parse_args()
    from synth import row, write_run

    from bench.decisions.history import history, write_outputs

    models = ["m/mistral", "q/qwen", "g/gemma"]
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.monotonic()
        rng = np.random.default_rng(0)
        for k in range(a.runs):
            ttfc = rng.lognormal(np.log(100), 0.3, a.records)
            rows = [row(models[i % 3], float(v), t=i * 0.01, chunks=5) for i, v in enumerate(ttfc)]
            write_run(Path(tmp) / f"run-{k:04d}", rows, started=1_800_000_000 + 60 * k, git=f"{k:040x}")
        made = time.monotonic() - t0
        t1 = time.monotonic()
        h, runs = history(Path(tmp))
        read = time.monotonic() - t1
        t2 = time.monotonic()
        write_outputs(h, Path(tmp) / "out", "time")
        written = time.monotonic() - t2
    print(
        f"{a.runs} runs x {a.records} records ({len(h)} run-model rows): history {read:.2f} s, outputs {written:.2f} s "
        f"(synthesis {made:.0f} s, not counted)"
    )


if __name__ == "__main__":
    main()

"""Report build time and peak memory over 1,000,000 records (target: < 10 s, < 2 GB).

Writes a synthetic run folder (records with the project's schema, about 100 gaps each), then
builds the full report (summary, tables, charts, report.html) in a fresh process and prints
its wall time and peak RSS. The synthetic data only has to be realistic in shape and size.

    python benchmarks/report_1m.py --records 1000000
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from bench.analysis.results import GAP_COLUMNS, schema, write_records  # noqa: E402
from benchmarks.figures import bare, emit, measure  # noqa: E402


def synth(n: int, run_dir: Path, seed: int = 1) -> None:
    rng = np.random.default_rng(seed)
    models = np.array(["mistralai/Mistral-7B-Instruct-v0.3", "qwen/Qwen2.5-72B-Instruct", "google/gemma-2-27b-it"])
    m = rng.integers(0, 3, n)
    tokens = np.clip(rng.lognormal(np.log(100), 0.5, n).astype(np.int64), 2, 500)
    ttfc = rng.lognormal(np.log(150), 0.4, n)
    step = np.array([10.0, 28.0, 20.0])[m]
    e2e = ttfc + tokens * step
    t0 = 1.79e9
    start = t0 + np.sort(rng.uniform(0, 3600, n))
    err = np.where(rng.random(n) < 0.01, "server_error", None)
    lengths = tokens - 1
    total = int(lengths.sum())
    gaps = (rng.gamma(4.0, 1.0, total) * np.repeat(step, lengths) * 250).astype(np.uint32)  # microseconds
    offsets = np.concatenate(([0], np.cumsum(lengths)[:-1]))
    run_dir.mkdir(parents=True, exist_ok=True)
    gaps.astype("<u4").tofile(run_dir / "gaps.u32")
    conv = rng.integers(0, n // 3, n)
    cols = {
        "run_id": pa.array(np.full(n, "synthetic")),
        "request_id": pa.array(np.arange(n).astype(str)),
        "worker": pa.array(np.full(n, "w1")),
        "user": pa.array(rng.integers(0, 1000, n)),
        "conversation_id": pa.array(conv.astype(str)),
        "conversation": pa.array(np.full(n, "c")),
        "turn": pa.array(rng.integers(0, 5, n).astype(np.int32)),
        "model": pa.array(models[m]),
        "tags": pa.array(np.full(n, "")),
        "t_wall_start": pa.array(start),
        "t_start_ns": pa.array((start * 1e9).astype(np.int64)),
        "intended_delay_ms": pa.array(np.zeros(n)),
        "status": pa.array(np.where(err == None, 200, 500).astype(np.int32)),  # noqa: E711 (elementwise on an object array)
        "error": pa.array(err, type=pa.string()),
        "error_detail": pa.array(np.full(n, "")),
        "protocol": pa.array(np.full(n, "auto")),
        "ttfb_ms": pa.array(ttfc * 0.02),
        "ttfc_ms": pa.array(ttfc),
        "ttfc_sched_ms": pa.array(ttfc),
        "ttfv_ms": pa.array(ttfc),
        "e2e_ms": pa.array(e2e),
        "tpot_ms": pa.array(step),
        "decode_tps": pa.array(1000 / step),
        "icl_ms": pa.array(step),
        "chunks": pa.array(tokens.astype(np.int32)),
        "gaps_offset": pa.array(offsets),
        "gaps_count": pa.array(lengths.astype(np.int32)),
        "output_chars": pa.array(tokens * 5),
        "output_tokens": pa.array(tokens),
        "token_source": pa.array(np.full(n, "chunks")),
        "prompt_chars": pa.array(rng.integers(50, 20000, n)),
        "prompt_tokens": pa.array(np.zeros(n, dtype=np.int64)),
        "prompt_messages": pa.array(np.ones(n, dtype=np.int32)),
        "bytes_in": pa.array(tokens * 12),
    }
    for c in GAP_COLUMNS:
        cols[c] = pa.array(step)
    # columns a run has and this synthesis does not set (connect_ms, content_type, ...) are empty, as in a run without them
    table = pa.table({f.name: (cols[f.name] if f.name in cols else pa.nulls(n)).cast(f.type) for f in schema()}, schema=schema())
    write_records(table, run_dir / "requests.parquet")
    (run_dir / "run.json").write_text(
        json.dumps(
            {
                "run_id": "synthetic",
                "slos": ["ttfc_ms:p95<=1000", "gaps_ms:p99<=200"],
                "warmup_s": 60,
                "duration_s": 3600,
                "scenario": {"name": "synthetic"},
            }
        )
    )


CHILD = """
import sys, time, resource
from pathlib import Path
t0 = time.monotonic()
from bench.analysis.report import write_report
t1 = time.monotonic()
write_report(Path(sys.argv[1]))
t2 = time.monotonic()
# VmHWM, not ru_maxrss: Linux carries ru_maxrss across exec, so it would report the parent's peak
hwm = next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmHWM:"))
print(t1 - t0, t2 - t1, hwm, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--records", type=int, default=1_000_000)
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--synth-only", metavar="DIR", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.synth_only:
        synth(a.records, Path(a.synth_only))
        return
    run_dir = Path(tempfile.mkdtemp(prefix="report1m-")) / "run"
    t = time.monotonic()
    # in its own process: this one stays small, so nothing of the synthesis counts in the report's figures
    subprocess.run([sys.executable, __file__, "--records", str(a.records), "--synth-only", str(run_dir)], check=True)
    size = (run_dir / "requests.parquet").stat().st_size / 1e6
    print(f"synthetic run: {a.records:,} records, {size:.0f} MB Parquet, made in {time.monotonic() - t:.1f} s")
    for i in range(a.repeat):
        took, peak_pss, stdout = measure([sys.executable, "-c", CHILD, str(run_dir)])
        imp, build, rss_kb, child_kb = stdout.split()
        bare_s, bare_pss = bare(run_dir)
        print(f"report {i + 1}: peak memory of the whole process tree (PSS) {peak_pss:,.0f} MB")
        print(
            f"report {i + 1}: build {float(build):.1f} s (+ {float(imp):.1f} s of imports), peak RSS {int(rss_kb) / 1024:,.0f} MB "
            f"(chart renderer, a forked child sharing the parent's pages: {int(child_kb) / 1024:,.0f} MB)"
        )
        print(
            f"report {i + 1}: {took:.1f} s, {peak_pss:,.0f} MB against the bare pass's {bare_s:.1f} s, {bare_pss:,.0f} MB: "
            f"{took / bare_s:.2f}x the time, {peak_pss / bare_pss:.2f}x the memory (goal: 3x, 2x)"
        )
        emit(f"report_{a.records}_s", took, "s", bare_s)
        emit(f"report_{a.records}_pss_mb", peak_pss, "MB", bare_pss)
    shutil.rmtree(run_dir.parent)


if __name__ == "__main__":
    main()

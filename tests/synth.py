"""Run folders written from chosen numbers, for tests of what reads them (gate, report, capacity).

Rows go through the same path as a real run's (``rows_to_table`` -> ``requests.parquet`` +
``gaps.u32``), so the readers see exactly what a run leaves.
"""

from __future__ import annotations

import uuid
from array import array
from pathlib import Path

import numpy as np

from bench.analysis.results import rows_to_table, write_records, write_run_json
from bench.records import COLUMNS, IDX


def row(
    model: str,
    ttfc: float | None,
    *,
    t: float = 0.0,
    error: str | None = None,
    e2e: float | None = None,
    chunks: int = 10,
    gap_ms: float = 20.0,
    conversation: str = "c",
    turn: int = 0,
    tokens: int | None = None,
    intended_delay: float = 0.0,
    detail: str = "",
    head: str | None = None,
    status: int = 200,
) -> list:
    r = [None] * len(COLUMNS)
    has_parts = ttfc is not None and chunks > 0
    vals = {
        "run_id": "synth",
        "request_id": str(uuid.uuid4()),
        "worker": "w",
        "user": 1,
        "conversation_id": uuid.uuid4().hex[:12],
        "conversation": conversation,
        "turn": turn,
        "model": model,
        "tags": "",
        "t_wall_start": 1_000_000.0 + t,
        "t_start_ns": int(t * 1e9),
        "intended_delay_ms": intended_delay,
        "status": status,
        "error": error,
        "error_detail": detail,
        "protocol": "aisdk",
        "ttfb_ms": ttfc,
        "ttfc_ms": ttfc,
        "ttfc_sched_ms": None if ttfc is None else ttfc + intended_delay,
        "ttfv_ms": ttfc,
        "e2e_ms": e2e if e2e is not None else (None if ttfc is None else ttfc + gap_ms * (chunks - 1)),
        "chunks": chunks if has_parts else 0,
        "gaps_us": array("I", [int(gap_ms * 1000)] * (chunks - 1 if has_parts else 0)).tobytes(),
        "output_chars": 5 * chunks,
        "output_tokens": tokens if tokens is not None else (chunks if has_parts else 0),
        "token_source": "chunks",
        "prompt_chars": 100,
        "prompt_messages": 1,
        "bytes_in": 100,
        "body_head": head,
    }
    if has_parts and error is None and chunks > 1:
        vals["tpot_ms"] = gap_ms
        vals["decode_tps"] = 1000.0 / gap_ms
        vals["icl_ms"] = gap_ms
    for k, v in vals.items():
        r[IDX[k]] = v
    return r


def write_run(run_dir: Path, rows: list[list], **meta) -> Path:
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    for r in rows:
        r[IDX["run_id"]] = run_dir.name  # as a real run's records carry its run id
    write_records(rows_to_table(rows, run_dir / "gaps.u32"), run_dir / "requests.parquet")
    write_run_json(
        run_dir, {"run_id": run_dir.name, "scenario": {"name": "synth", "sha256": "x"}, "warmup_s": 0.0, "slos": [], **meta}
    )
    return run_dir


def lognormal(n: int, median: float, sigma: float = 0.3, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).lognormal(np.log(median), sigma, n)

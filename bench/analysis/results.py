"""A run's folder: spooled rows become ``requests.parquet``; ``run.json`` says how they were made.

Runs after the load has stopped, in the ``bench`` process, never in a load generator.
"""

from __future__ import annotations

import hashlib
import json
import math
import platform
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from bench.records import COLUMNS, IDX, SpoolCheck, read_spool, rescue_dir
from bench.schema import RECORD_COLUMNS, RUN_SCHEMA, RunMeta, default_warmup, read_run_json  # noqa: F401  (re-exported for readers)
from bench.secrets import redact
from bench.stats import PERCENTILES, segmented

# the Parquet types: each column's own (bench.schema.RequestRecord), the raw gaps as their slice of gaps.u32
_TYPES = {
    **{name: getattr(pa, c.parquet)() for name, c in RECORD_COLUMNS.items() if c.parquet != "gaps"},
    "gaps_offset": pa.int64(),
    "gaps_count": pa.int32(),
}
GAP_PCTS = {f"gap_{name}_ms": q for name, q in PERCENTILES.items()}  # a request's own gap percentiles (bench.stats)
GAP_COLUMNS = [*GAP_PCTS, "gap_max_ms"]


GAPS_FILE = "gaps.u32"
PARQUET_COLUMNS = [c for c in COLUMNS if c != "gaps_us"] + ["gaps_offset", "gaps_count"] + GAP_COLUMNS


def schema() -> pa.Schema:
    """requests.parquet. The raw gaps of request i are gaps.u32[gaps_offset : gaps_offset + gaps_count]:
    little-endian uint32 microseconds in one flat side file, memory-mapped by readers (a Parquet
    column of a hundred million gaps takes seconds to decode; a mapped file takes none)."""
    return pa.schema([pa.field(c, _TYPES.get(c, pa.float64())) for c in PARQUET_COLUMNS])


def gap_stats(gaps: list[bytes]) -> dict[str, np.ndarray]:
    """Per-request percentiles and max of inter-chunk gaps (ms), vectorised over all requests at once.

    The same definition as every other percentile here (numpy's default, linear interpolation
    between order statistics), so a request's p99 gap and a run's p99 gap mean the same thing.
    """
    n = len(gaps)
    out = {c: np.full(n, np.nan) for c in GAP_COLUMNS}
    lengths = np.fromiter((len(g) // 4 for g in gaps), dtype=np.int64, count=n)
    if lengths.sum() == 0:
        return out
    vals = np.frombuffer(b"".join(gaps), dtype=np.uint32).astype(np.float64) / 1000.0
    rows = np.repeat(np.arange(n), lengths)
    order = np.lexsort((vals, rows))
    vals = vals[order]
    starts = np.concatenate(([0], np.cumsum(lengths)[:-1]))
    has = lengths > 0
    st, ln = starts[has], lengths[has]
    for col, q in GAP_PCTS.items():
        out[col][has] = segmented(vals, st, ln, q)
    out["gap_max_ms"][has] = vals[st + ln - 1]
    return out


def rows_to_table(rows: list[list], gaps_path: Path) -> pa.Table:
    """Rows -> table; their gap blobs -> one flat file at ``gaps_path``."""
    sch = schema()
    cols: list[tuple] = list(zip(*rows)) if rows else [() for _ in COLUMNS]
    arrays = {c: pa.array(list(cols[i]), type=sch.field(c).type) for i, c in enumerate(COLUMNS) if c != "gaps_us"}
    blobs = list(cols[COLUMNS.index("gaps_us")])
    counts = np.fromiter((len(g) // 4 for g in blobs), dtype=np.int64, count=len(blobs))
    offsets = np.concatenate(([0], np.cumsum(counts)[:-1])) if len(blobs) else np.empty(0, np.int64)
    with open(gaps_path, "wb") as fh:
        for g in blobs:
            fh.write(g)
    arrays["gaps_offset"] = pa.array(offsets, type=pa.int64())
    arrays["gaps_count"] = pa.array(counts.astype(np.int32), type=pa.int32())
    for c, v in gap_stats(blobs).items():
        arrays[c] = pa.array(v, type=pa.float64())
    return pa.table({f.name: arrays[f.name] for f in sch}, schema=sch)


BACKEND_DIR = "backend"  # --backend: the model server's requests, a run folder's records of their own


def finalize_records(run_dir: Path, warnings: list[str] | None = None) -> int:
    """Spool(s) -> requests.parquet + gaps.u32. Returns the number of records; what a damaged
    spool lost is appended to ``warnings``."""
    run_dir = Path(run_dir)
    rows: list[list] = []
    for spool in sorted(run_dir.glob("*.spool")) + sorted(rescue_dir(run_dir.name).glob("*.spool")):
        check = SpoolCheck()
        rows.extend(read_spool(spool, check))
        if warnings is not None:
            warnings.extend(check.warnings(spool))
    width = len(COLUMNS)
    if any(len(r) != width for r in rows):  # rows of an older version: columns added since are empty
        rows = [r[:width] + [None] * (width - len(r)) for r in rows]
    # --backend: the model server's own requests go to a folder of their own, so every reader of
    # requests.parquet sees the route's requests only (analysis/overhead.py pairs the two)
    # in start order: a reader then splits off the warm-up as a slice, not a copy of every column
    start = IDX["t_wall_start"]
    rows.sort(key=lambda r: r[start] if r[start] is not None else math.inf)
    path = IDX["path"]
    backend = [r for r in rows if r[path] == "backend"]
    if backend:
        rows = [r for r in rows if r[path] != "backend"]
        (run_dir / BACKEND_DIR).mkdir(exist_ok=True)
        write_records(rows_to_table(backend, run_dir / BACKEND_DIR / GAPS_FILE), run_dir / BACKEND_DIR / "requests.parquet")
    write_records(rows_to_table(rows, run_dir / GAPS_FILE), run_dir / "requests.parquet")
    return len(rows) + len(backend)


def write_records(table: pa.Table, path: Path) -> None:
    pq.write_table(table, path, compression="zstd", row_group_size=262_144)


NOT_SENT_UNTRUSTED = 0.01  # share of offered arrivals left unsent that makes a run untrusted
NOT_SENT_WAIT_S = 1.0  # ... or any unsent arrival that waited this long


def delivery(collector: dict, records: int) -> tuple[dict, list[str]]:
    """What was offered, sent and recorded, for run.json; and the warnings it calls for."""
    sent, not_sent, offered = collector.get("sent"), collector.get("not_sent") or 0, collector.get("offered")
    fields = {"records": records, "requests_sent": sent, "not_sent": not_sent, "offered": offered}
    warnings = []
    if sent is not None and sent + not_sent != records:
        warnings.append(f"{sent} requests sent but {records - not_sent} records delivered")
    if offered:
        fields["offered_text"] = f"offered {offered}, sent {offered - not_sent}"
        if not_sent:
            warnings.append(
                f"open loop: offered {offered} arrivals, sent {offered - not_sent}; {not_sent} were never sent "
                "(every user busy): the target saw less load than asked. Raise -u or lower --arrival-rate."
            )
    return fields, warnings


def latest_calibration(out: Path) -> dict | None:
    """The newest ``bench calibrate`` result under ``out``, if any, for ``bench run``'s load warning."""
    found = sorted(Path(out).glob("calibration-*/calibration.json"))
    return json.loads(found[-1].read_text()) if found else None


def _version(pkg: str) -> str | None:
    try:
        return metadata.version(pkg)
    except metadata.PackageNotFoundError:
        return None


def git_revision() -> str | None:
    try:
        root = Path(__file__).resolve().parents[2]
        out = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5)
        if out.returncode == 0:
            dirty = subprocess.run(
                ["git", "-C", str(root), "status", "--porcelain"], capture_output=True, text=True, timeout=5
            ).stdout.strip()
            return out.stdout.strip() + ("-dirty" if dirty else "")
    except (OSError, subprocess.TimeoutExpired):
        pass
    return None


def file_digest(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()[:16]


def environment_info() -> dict:
    return {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "cpus": __import__("os").cpu_count(),
        "versions": {
            p: _version(p) for p in ("neptun-bench", "locust", "geventhttpclient", "gevent", "aiohttp", "pandas", "pyarrow")
        },
        "git": git_revision(),
    }


def write_run_json(run_dir: Path, meta: dict) -> Path:
    """The one writer of run.json (bench run, plain Locust's folder, capacity levels): validated
    against ``schema.RunMeta`` and stamped with its version, so a wrong type fails here, not in a reader."""
    path = Path(run_dir) / "run.json"
    checked = RunMeta.model_validate({**meta, "schema": RUN_SCHEMA}).model_dump(by_alias=True)
    path.write_text(redact(json.dumps(checked, indent=2, default=str)))
    return path


def _build(flag: str | None) -> dict | None:
    import os

    from bench.schema import build_ref

    ref = build_ref(flag, os.environ)
    return ref.model_dump() if ref else None


def ensure_records(run_dir: Path) -> None:
    """A run made with plain ``locust`` leaves a spool: turn it into Parquet and a minimal run.json."""
    run_dir = Path(run_dir)
    rescue = rescue_dir(run_dir.name)
    if (run_dir / "requests.parquet").is_file() or not (any(run_dir.glob("*.spool")) or any(rescue.glob("*.spool"))):
        return
    spool_warnings: list[str] = []
    n = finalize_records(run_dir, spool_warnings)
    if not (run_dir / "run.json").is_file():
        found = [d / "collector.json" for d in (run_dir, rescue) if (d / "collector.json").is_file()]
        collector = json.loads(max(found, key=lambda f: f.stat().st_mtime).read_text()) if found else {}
        fields, delivery_warnings = delivery(collector, n)
        meta = {
            "run_id": collector.get("run_id", run_dir.name),
            "scenario": collector.get("scenario"),
            **fields,
            "slos": collector.get("slos", []),
            "models": collector.get("models"),
            "collector": collector,
            "warnings": collector.get("warnings", []) + spool_warnings + delivery_warnings,
            "host": collector.get("host"),
            "started": collector.get("started"),
            "ended": collector.get("ended"),
            "warmup_s": float(collector.get("warmup_s") or 0.0),
            "warmup_rule": collector.get("warmup_rule"),
            "build": _build(collector.get("build_id")),
            "preflight": collector.get("preflight") or [],
            **environment_info(),
        }
        if collector.get("rescued"):
            meta["warnings"].insert(
                0,
                f"the run folder's disk was full: the run was stopped, and {collector['rescued']['records']} records "
                f"were kept in {collector['rescued']['where']} (read back here)",
            )
        write_run_json(run_dir, meta)
        import shutil

        shutil.rmtree(rescue, ignore_errors=True)  # read back into requests.parquet

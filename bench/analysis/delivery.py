"""What reached the user: was the stream delivered as the server wrote it, or held somewhere?

A proxy that buffers (nginx ``proxy_buffering on``, a CDN, compression), or a framework that
flushes late, turns a part-by-part stream into a few large deliveries; TTFC and gaps then measure
the middlebox, and the user sees text in bursts. The records already hold the evidence, at no
cost on the hot path: every read's parts are stamped, and the parts of one read have a gap of
exactly 0 µs between them in ``gaps.u32``. From that, per request:

* ``parts``, ``reads``, and the share of parts that arrived in reads of ≥ 2 and ≥ 4 parts;
* the mean interval between reads.

Verdicts, for successful requests of at least ``MIN_PARTS`` parts: ``buffered`` when at least
80 % of the parts arrived in reads of 4 or more, ``coalesced`` when at least half arrived in reads
of 2 or more, else ``smooth``; shorter replies are ``short`` (too few parts to tell). A relay that
holds bytes for 200 ms in front of a target writing a part every 30 ms is ``buffered`` in every
request, a pass-through relay in none (``tests/test_delivery.py``). A load generator that reads
late (its CPU saturated: see the timing probe) also coalesces reads: ``coalesced`` is evidence,
``buffered`` is the verdict that says the stream was held.

The report judges every successful request of 8+ parts, or a seeded random sample of ``SAMPLE`` of
them in a larger run (reading only their gaps: 0.1 s, where all 10^8 gaps of a million requests
took 6 s), and says so.
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path

import numpy as np

from bench.analysis.gapstats import CHUNK, row_chunks

MIN_PARTS = 8
BUFFERED_SHARE = 0.8  # of parts in reads of >= BUFFERED_READ parts
BUFFERED_READ = 4
COALESCED_SHARE = 0.5  # of parts in reads of >= 2 parts
WARN_SHARE = 0.2  # of judged requests buffered: a run-level warning
SAMPLE = 20_000  # requests judged at most (a seeded random sample beyond): a share of 20,000 is within +-0.7 points


class Delivery(StrEnum):
    smooth = "smooth"
    coalesced = "coalesced"
    buffered = "buffered"
    short = "short"


def shape_of(vals: np.ndarray, lens: np.ndarray) -> dict[str, np.ndarray]:
    """The shape of consecutive rows whose gaps (``vals``, row after row) number ``lens`` each."""
    rows = lens.size
    parts = lens + 1
    out = {
        "parts": parts,
        "reads": np.ones(rows, dtype=np.int64),
        "in2": np.zeros(rows),
        "in4": np.zeros(rows),
        "read_interval_ms": np.full(rows, np.nan),
    }
    if not int(lens.sum()):
        return out
    first = np.concatenate(([0], np.cumsum(parts)[:-1]))  # each row's first part, in part order
    new_read = np.ones(int(parts.sum()), dtype=bool)
    rest = np.ones(new_read.size, dtype=bool)
    rest[first] = False
    new_read[rest] = vals != 0  # a part after a zero gap came in the same read as the one before it
    read_start = np.flatnonzero(new_read)
    sizes = np.diff(np.append(read_start, new_read.size))
    owner = np.searchsorted(first, read_start, side="right") - 1
    reads = np.bincount(owner, minlength=rows)
    out["reads"] = reads
    out["in2"] = np.bincount(owner, weights=sizes * (sizes >= 2), minlength=rows) / parts
    out["in4"] = np.bincount(owner, weights=sizes * (sizes >= BUFFERED_READ), minlength=rows) / parts
    gap_first = np.concatenate(([0], np.cumsum(lens)[:-1]))
    total = np.add.reduceat(vals.astype(np.float64), np.minimum(gap_first, max(vals.size - 1, 0))) / 1000.0
    total[lens == 0] = 0.0
    with np.errstate(invalid="ignore", divide="ignore"):
        out["read_interval_ms"] = np.where(reads > 1, total / (reads - 1), np.nan)
    return out


def read_shape(path: Path, starts: np.ndarray, lengths: np.ndarray, chunk: int = CHUNK) -> dict[str, np.ndarray]:
    """Per row (in file order): parts, reads, share of parts in reads of >= 2 and >= 4 parts, and
    the mean interval between reads (ms; NaN with one read)."""
    starts = np.asarray(starts, dtype=np.int64)
    lengths = np.asarray(lengths, dtype=np.int64)
    out = shape_of(np.empty(0, "<u4"), np.zeros(len(lengths), dtype=np.int64))
    out["parts"] = lengths + 1
    path = Path(path)
    if not len(lengths) or not path.is_file() or not int(lengths.sum()):
        return out
    with open(path, "rb", buffering=0) as f:
        for i, j in row_chunks(starts, lengths, chunk):
            lens = lengths[i:j]
            n = int(lens.sum())
            if n == 0:
                continue
            vals = np.empty(n, dtype="<u4")
            f.seek(int(starts[i]) * 4)
            if f.readinto(memoryview(vals.data).cast("B")) != n * 4:
                raise ValueError(f"{path}: ends before the gaps of its records (truncated file?)")
            for k, v in shape_of(vals, lens).items():
                out[k][i:j] = v
    return out


def verdicts(shape: dict[str, np.ndarray], ok: np.ndarray) -> np.ndarray:
    """One ``Delivery`` value per row (``ok``: the row succeeded)."""
    v = np.full(len(ok), Delivery.short.value, dtype=object)
    judged = ok & (shape["parts"] >= MIN_PARTS)
    v[judged] = Delivery.smooth.value
    v[judged & (shape["in2"] >= COALESCED_SHARE)] = Delivery.coalesced.value
    v[judged & (shape["in4"] >= BUFFERED_SHARE)] = Delivery.buffered.value
    return v


def summary(shape: dict[str, np.ndarray], v: np.ndarray) -> dict:
    """Counts of each verdict, and the evidence: parts per read and the read interval of the judged requests."""
    judged = v != Delivery.short.value
    counts = {d.value: int((v == d.value).sum()) for d in Delivery}
    out: dict = {"counts": counts, "judged": int(judged.sum())}
    if judged.any():
        parts, reads = shape["parts"][judged], shape["reads"][judged]
        out["parts_per_read_p50"] = float(np.median(parts / reads))
        out["share_in_reads_of_4_p50"] = float(np.median(shape["in4"][judged]))
        iv = shape["read_interval_ms"][judged]
        iv = iv[~np.isnan(iv)]
        out["read_interval_ms_p50"] = float(np.median(iv)) if iv.size else None
        out["buffered_share"] = counts["buffered"] / int(judged.sum())
    return out


def warning(s: dict) -> str | None:
    if not s.get("judged") or s.get("buffered_share", 0) < WARN_SHARE:
        return None
    interval = s.get("read_interval_ms_p50")
    return (
        f"stream delivery: {s['buffered_share']:.0%} of {s['judged']} requests arrived buffered "
        f"(median {s['parts_per_read_p50']:.1f} parts per read, {s['share_in_reads_of_4_p50']:.0%} of a reply's parts "
        f"in reads of {BUFFERED_READ}+"
        + (f", reads every {interval:.0f} ms" if interval is not None else "")
        + "): something between the server and the harness holds the stream (proxy buffering, compression, a CDN); "
        "TTFC and gaps measure it, and users see the reply in bursts"
    )

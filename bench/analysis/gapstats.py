"""Exact inter-chunk gap statistics per group, streamed from ``gaps.u32`` in bounded memory.

A run of a million requests holds about 10^8 gaps (400 MB). Selecting each model's gaps and
partitioning them costs several copies of that. Instead one pass over the file, chunk by chunk,
counts every gap in a 1-microsecond histogram per group (gaps are integers in microseconds, so
the histogram loses nothing); the rare gaps beyond its range (over ~1 s) are kept as raw values.
Any order statistic is then exact, and percentiles follow numpy's default linear interpolation,
so they equal ``np.percentile`` over the same samples.

Memory: 8 bytes per microsecond of the longest gap (under 1.05 s) per group, plus 80 MB of
buffers, whatever the size of the run.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bench.stats import PERCENTILES, from_order_stats

PCTS = PERCENTILES  # the statistics catalogue's (bench.stats)
FINE_BITS = 20
FINE = 1 << FINE_BITS  # gaps below this many microseconds (1.05 s) are counted, longer ones kept raw
CHUNK = 1 << 20  # gaps per read: a 4 MB read buffer and two 8 MB buffers (keys, groups); 4x this was no faster
# at 10^6 records (0.85-1.4 s either way) and peaked 63 MB higher
CDF_POINTS = 4000  # a CDF drawn from this many exact quantiles is indistinguishable from all samples


def empty_stats() -> dict[str, float | None]:
    return {**{k: None for k in PCTS}, "max": None, "mean": None, "n": 0}


@dataclass
class GapSummary:
    """One group's gaps: stats in ms, and the CDF chart's points (exact quantiles, zero gaps left out)."""

    stats: dict[str, float | None]
    cdf_ms: tuple[np.ndarray, np.ndarray]

    @classmethod
    def empty(cls) -> GapSummary:
        return cls(empty_stats(), (np.empty(0), np.empty(0)))


class _Counts:
    """Every gap of one group: a fine histogram below FINE, raw values above."""

    def __init__(self, hist: np.ndarray, big: list[np.ndarray]) -> None:
        self.cum = np.cumsum(hist)
        self.small = int(self.cum[-1])
        self.big = np.sort(np.concatenate(big)) if big else np.empty(0, np.uint32)
        self.n = self.small + int(self.big.size)
        self.total = float(np.dot(hist, np.arange(FINE, dtype=np.int64))) + float(self.big.sum(dtype=np.float64))
        self.zeros = int(hist[0])

    def order_stats(self, k: np.ndarray) -> np.ndarray:
        """The k-th smallest gaps (0-based), in microseconds."""
        k = np.asarray(k, dtype=np.int64)
        fine = np.searchsorted(self.cum, k, side="right")
        return np.where(
            k < self.small, fine, self.big[np.clip(k - self.small, 0, max(self.big.size - 1, 0))] if self.big.size else 0
        )

    def summary(self) -> GapSummary:
        if self.n == 0:
            return GapSummary.empty()
        vals = from_order_stats(self.order_stats, self.n, list(PCTS.values()))
        stats: dict[str, float | None] = {k: float(v) * 1e-3 for k, v in zip(PCTS, vals)}
        stats["max"] = float(self.order_stats(np.array([self.n - 1]))[0]) * 1e-3
        stats["mean"] = self.total / self.n * 1e-3
        stats["n"] = self.n
        nz = self.n - self.zeros  # gaps of parts read together (0 us) cannot be drawn on a log axis
        if nz:
            k = np.unique(np.linspace(0, nz - 1, min(nz, CDF_POINTS)).astype(np.int64))
            cdf = (self.order_stats(k + self.zeros) / 1000.0, (k + 1) / nz)
        else:
            cdf = (np.empty(0), np.empty(0))
        return GapSummary(stats, cdf)


def row_chunks(starts: np.ndarray, lengths: np.ndarray, chunk: int):
    """Row ranges [i, j) whose gaps are about ``chunk`` long (one long row may exceed it)."""
    ends = starts + lengths
    i, n = 0, len(lengths)
    while i < n:
        j = max(int(np.searchsorted(ends, starts[i] + chunk, side="right")), i + 1)
        yield i, j
        i = j


def _group_ids(out: np.ndarray, lab: np.ndarray, lens: np.ndarray) -> None:
    """Fill ``out`` with each gap's group, in place (np.repeat would allocate a fresh array per chunk)."""
    nonempty = lens > 0
    lab, lens = lab[nonempty], lens[nonempty]
    out.fill(0)
    out[np.concatenate(([0], np.cumsum(lens)[:-1]))] = np.diff(lab, prepend=0)
    np.cumsum(out, out=out)


def summarize(
    path: Path, starts: np.ndarray, lengths: np.ndarray, labels: np.ndarray, groups: int, chunk: int = CHUNK
) -> list[GapSummary]:
    """Gap summaries of ``groups`` groups; ``labels[i]`` is row i's group, or -1 to leave it out.

    The file holds the rows' gaps in row order (``starts`` is the running sum of ``lengths``),
    as ``bench.analysis.results`` writes it. The histogram is laid out gap-major (``gap * G + group``), so
    each chunk's count is as long as its longest gap, not FINE per group: the pages of a 1.05 s
    range that no gap reaches are never touched, whatever the number of groups.
    """
    path = Path(path)
    starts = np.asarray(starts, dtype=np.int64)
    lengths = np.asarray(lengths, dtype=np.int64)
    labels = np.where(np.asarray(labels) >= 0, labels, groups).astype(np.int64)  # left-out rows: a group nobody reads
    width = groups + 1
    hist = np.zeros(FINE * width, dtype=np.int64)  # calloc'd: untouched pages cost nothing
    big: list[list[np.ndarray]] = [[] for _ in range(width)]
    if groups and path.is_file() and path.stat().st_size and (labels < groups).any():
        # buffers reused across chunks: fresh 32 MB arrays per chunk cost more in page faults than the counting
        buf = np.empty(chunk, dtype="<u4")
        keys = np.empty(chunk, dtype=np.int64)
        ids = np.empty(chunk, dtype=np.int64)
        with open(path, "rb", buffering=0) as f:
            for i, j in row_chunks(starts, lengths, chunk):
                lab, lens = labels[i:j], lengths[i:j]
                n = int(lens.sum())
                if n == 0 or (lab == groups).all():
                    continue
                vals = buf[:n] if n <= chunk else np.empty(n, dtype="<u4")
                key = keys[:n] if n <= chunk else np.empty(n, dtype=np.int64)
                group = ids[:n] if n <= chunk else np.empty(n, dtype=np.int64)
                f.seek(int(starts[i]) * 4)
                if f.readinto(memoryview(vals.data).cast("B")) != n * 4:
                    raise ValueError(f"{path}: ends before the gaps of its records (truncated file?)")
                one = int(lab[0]) if (lab == lab[0]).all() else None
                if one is None:
                    _group_ids(group, lab, lens)
                large = vals >= FINE
                if large.any():  # kept raw, per group, and moved to the unread group in the histogram
                    if one is not None:
                        group.fill(one)
                        one = None
                    owner = group[large]
                    for g in np.unique(owner):
                        big[int(g)].append(vals[large][owner == g].copy())
                    group[large] = groups
                    vals[large] = 0
                np.multiply(vals, width, out=key, casting="unsafe")
                if one is not None:
                    key += one
                else:
                    key += group
                counts = np.bincount(key)
                hist[: counts.size] += counts
    by_group = hist.reshape(FINE, width)
    return [_Counts(by_group[:, g], big[g]).summary() for g in range(groups)]


def sample(
    path: Path,
    starts: np.ndarray,
    lengths: np.ndarray,
    rows: np.ndarray,
    k: int,
    seed: int = 0,
    chunk: int = CHUNK,
    owners: bool = False,
):
    """A uniform sample of ``k`` of the given rows' gaps (all of them if fewer), uint32 microseconds.

    For the rank test and bootstrap of ``bench compare``, which need samples, not all 10^8 gaps;
    read in chunks, so memory stays at the sample's size whatever the run's. ``owners``: also
    return, per gap, which of the (sorted) rows it belongs to: its cluster.
    """
    rows = np.sort(np.asarray(rows, dtype=np.int64))
    lens = np.asarray(lengths, dtype=np.int64)[rows]
    total = int(lens.sum())
    path = Path(path)
    if total == 0 or not path.is_file():
        return (np.empty(0, np.uint32), np.empty(0, np.int64)) if owners else np.empty(0, np.uint32)
    picks = np.arange(total) if total <= k else np.sort(np.random.default_rng(seed).choice(total, k, replace=False))
    cum = np.cumsum(lens)
    owner = np.searchsorted(cum, picks, side="right")
    where = (
        np.asarray(starts, dtype=np.int64)[rows][owner] + picks - (cum[owner] - lens[owner])
    )  # positions in the file, ascending
    out = np.empty(where.size, np.uint32)
    buf = np.empty(min(chunk, int(where[-1] - where[0]) + 1), "<u4")
    with open(path, "rb", buffering=0) as f:
        i = 0
        while i < where.size:  # one read per window of the file that holds any picked gap
            first = int(where[i])
            j = int(np.searchsorted(where, first + buf.size, side="left"))
            span = buf[: int(where[j - 1]) - first + 1]
            f.seek(first * 4)
            if f.readinto(memoryview(span.data).cast("B")) != span.size * 4:
                raise ValueError(f"{path}: ends before the gaps of its records (truncated file?)")
            out[i:j] = span[where[i:j] - first]
            i = j
    return (out, owner) if owners else out


def arrival_histogram(
    path: Path,
    starts: np.ndarray,
    lengths: np.ndarray,
    t_first: np.ndarray,
    span: np.ndarray,
    weights: np.ndarray,
    labels: np.ndarray,
    groups: int,
    t0: float,
    width: float,
    nbins: int,
    chunk: int = CHUNK // 4,
) -> np.ndarray:
    """Per group and time bin: the summed ``weights`` of the parts that *arrived* in the bin.

    A part's arrival is its row's first-part time ``t_first`` (seconds) plus the running sum of
    the row's gaps, so tokens count when they streamed, not when their request ended. A row whose
    first and last part (``t_first + span``) fall in one bin puts all its parts there without
    reading a gap; only rows that straddle a bin boundary have their gaps read, chunk by chunk
    (a few percent of a long run's rows when bins are long against streams). ``weights[i]`` is
    what one part of row i weighs (its output tokens per part); rows labelled -1 are left out.
    """
    out = np.zeros(groups * nbins + 1, dtype=np.float64)  # last cell: parts outside the bins
    starts = np.asarray(starts, dtype=np.int64)
    lengths = np.asarray(lengths, dtype=np.int64)
    labels = np.asarray(labels, dtype=np.int64)
    t_first = np.asarray(t_first, dtype=np.float64)
    span = np.nan_to_num(np.asarray(span, dtype=np.float64), nan=0.0)
    weights = np.asarray(weights, dtype=np.float64)
    use = (labels >= 0) & np.isfinite(t_first) & (weights > 0)

    def cell(t: np.ndarray, lab: np.ndarray) -> np.ndarray:
        b = np.floor((t - t0) / width).astype(np.int64)
        inside = (b >= 0) & (b < nbins)
        return np.where(inside, lab * nbins + np.clip(b, 0, nbins - 1), groups * nbins)

    b_first = np.floor((t_first - t0) / width)
    b_last = np.floor((t_first + span - t0) / width)
    whole = use & ((b_first == b_last) | (lengths == 0))
    np.add.at(out, cell(t_first[whole], labels[whole]), weights[whole] * (lengths[whole] + 1))
    split = np.flatnonzero(use & ~whole)
    if split.size:
        np.add.at(out, cell(t_first[split], labels[split]), weights[split])  # their first parts
        path = Path(path)
        size = path.stat().st_size // 4 if path.is_file() else 0
        lens = lengths[split]
        # a window of the file mapped per chunk and unmapped after it: one map of the whole file kept every
        # page it touched resident (+400 MB at 10^6 records), and so did the temporaries of 4M-gap chunks
        for i, j in row_chunks(np.concatenate(([0], np.cumsum(lens)[:-1])), lens, chunk):
            rows, ln = split[i:j], lens[i:j]
            n = int(ln.sum())
            base = np.repeat(np.concatenate(([0], np.cumsum(ln)[:-1])), ln)
            idx = np.repeat(starts[rows], ln) + (np.arange(n) - base)
            lo, hi = int(idx.min()), int(idx.max()) + 1
            if hi > size:
                raise ValueError(f"{path}: ends before the gaps of its records (truncated file?)")
            window = np.memmap(path, dtype="<u4", mode="r", offset=lo * 4, shape=(hi - lo,))
            vals = np.asarray(window[idx - lo], dtype=np.int64)
            del window
            cum = np.cumsum(vals)
            row_of = np.repeat(np.arange(rows.size), ln)
            before = (cum - vals)[np.concatenate(([0], np.cumsum(ln)[:-1]))]  # running sum just before each row
            t = t_first[rows][row_of] + (cum - before[row_of]) / 1e6
            out += np.bincount(cell(t, labels[rows][row_of]), weights=weights[rows][row_of], minlength=out.size)
    return out[:-1].reshape(groups, nbins)

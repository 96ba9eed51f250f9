"""Streamed gap statistics equal numpy over the same samples, for any grouping, chunking and values."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bench.analysis.gapstats import FINE, PCTS, sample, summarize


def write(tmp: Path, gaps: np.ndarray) -> Path:
    path = tmp / "gaps.u32"
    gaps.astype("<u4").tofile(path)
    return path


def expected(gaps, starts, lengths, labels, g):
    parts = [gaps[s : s + n] for s, n, lab in zip(starts, lengths, labels) if lab == g]
    return np.concatenate(parts) if parts else np.empty(0, np.uint32)


def check(path, gaps, lengths, labels, groups, chunk):
    starts = np.concatenate(([0], np.cumsum(lengths)[:-1])).astype(np.int64)
    got = summarize(path, starts, lengths, labels, groups, chunk=chunk)
    for g in range(groups):
        v = expected(gaps, starts, lengths, labels, g)
        s = got[g].stats
        assert s["n"] == v.size
        if not v.size:
            assert s["p50"] is None and s["max"] is None
            continue
        for name, q in PCTS.items():
            assert s[name] == pytest.approx(np.percentile(v.astype(float), q) / 1000, rel=1e-12, abs=1e-12)
        assert s["max"] == pytest.approx(v.max() / 1000)
        assert s["mean"] == pytest.approx(v.mean() / 1000, rel=1e-9)
        x, y = got[g].cdf_ms
        nonzero = np.sort(v[v > 0])
        if nonzero.size:
            assert x[0] == pytest.approx(nonzero[0] / 1000) and x[-1] == pytest.approx(nonzero[-1] / 1000)
            assert y[-1] == 1.0 and np.all(np.diff(x) >= 0) and np.all(np.diff(y) > 0)
        else:
            assert len(x) == 0


values = st.one_of(
    st.integers(0, 3),  # parts read together: zero gaps
    st.integers(0, 200_000),  # ordinary gaps
    st.integers(FINE - 2, FINE + 2),  # around the histogram's edge
    st.integers(0, 2**32 - 1),  # anything a uint32 holds
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    rows=st.lists(st.tuples(st.integers(-1, 2), st.lists(values, max_size=12)), min_size=1, max_size=40), chunk=st.integers(1, 64)
)
def test_matches_numpy_for_any_rows_and_chunking(tmp_path, rows, chunk):
    labels = np.array([lab for lab, _ in rows])
    lengths = np.array([len(g) for _, g in rows], dtype=np.int64)
    gaps = np.array([v for _, g in rows for v in g], dtype=np.uint32)
    check(write(tmp_path, gaps), gaps, lengths, labels, 3, chunk)


def test_large_run_with_realistic_gaps(tmp_path):
    rng = np.random.default_rng(7)
    lengths = rng.integers(0, 300, 20_000)
    gaps = (rng.gamma(4.0, 1.0, int(lengths.sum())) * 5000).astype(np.uint32)
    gaps[::997] = rng.integers(FINE, 5 * FINE, gaps[::997].size)  # a few stalls longer than a second
    labels = rng.integers(-1, 12, lengths.size)  # a dozen models
    check(write(tmp_path, gaps), gaps, lengths, labels, 12, chunk=100_000)


def test_all_gaps_equal(tmp_path):
    lengths = np.full(50, 40)
    gaps = np.full(2000, 12_345, np.uint32)
    check(write(tmp_path, gaps), gaps, lengths, np.zeros(50, int), 1, chunk=333)


def test_missing_or_empty_file_gives_empty_stats(tmp_path):
    got = summarize(tmp_path / "absent.u32", np.zeros(2, np.int64), np.zeros(2, np.int64), np.array([0, 1]), 2)
    assert [g.stats["n"] for g in got] == [0, 0]


def test_truncated_file_is_an_error(tmp_path):
    path = write(tmp_path, np.arange(10, dtype=np.uint32))
    with pytest.raises(ValueError, match="truncated"):
        summarize(path, np.array([0, 5]), np.array([5, 10]), np.array([0, 0]), 1)


def test_sample_is_drawn_from_the_chosen_rows_only(tmp_path):
    rng = np.random.default_rng(3)
    lengths = rng.integers(0, 50, 2000)
    starts = np.concatenate(([0], np.cumsum(lengths)[:-1]))
    owner = np.repeat(np.arange(lengths.size), lengths)
    gaps = owner.astype(np.uint32)  # each gap holds its row's number: where a sampled gap came from is visible
    path = write(tmp_path, gaps)
    rows = np.flatnonzero(rng.random(lengths.size) < 0.3)
    everything = sample(path, starts, lengths, rows, 10**9)
    assert np.array_equal(everything, np.repeat(rows, lengths[rows]))  # fewer than k: all of them, in order
    some = sample(path, starts, lengths, rows, 500, seed=1, chunk=64)
    assert some.size == 500 and set(some) <= set(rows)
    counts = np.bincount(some, minlength=lengths.size)[rows]
    assert np.corrcoef(counts, lengths[rows])[0, 1] > 0.3  # rows with more gaps give more of the sample
    assert not np.array_equal(some, sample(path, starts, lengths, rows, 500, seed=2, chunk=64))

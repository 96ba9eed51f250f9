"""The statistics catalogue (bench/stats.py): one interpolation, held against numpy, and its names
against docs/METRICS.md."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from bench.stats import PERCENTILES, STATISTICS, from_order_stats, segmented

segments = st.lists(st.lists(st.floats(-1e6, 1e6, allow_nan=False), min_size=1, max_size=40), min_size=1, max_size=20)


@settings(max_examples=200, deadline=None)
@given(segments, st.sampled_from(sorted(PERCENTILES.values())))
def test_segmented_percentiles_are_numpys(segs, q):
    sorted_segs = [np.sort(np.array(s, dtype=float)) for s in segs]
    values = np.concatenate(sorted_segs)
    lengths = np.array([len(s) for s in sorted_segs])
    starts = np.concatenate(([0], np.cumsum(lengths)[:-1]))
    got = segmented(values, starts, lengths, q)
    want = [np.percentile(s, q) for s in sorted_segs]
    assert np.allclose(got, want, rtol=1e-12, atol=1e-9)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(0, 2**32 - 1), min_size=1, max_size=300))
def test_percentiles_from_order_statistics_are_numpys(xs):
    v = np.sort(np.array(xs, dtype=float))
    got = from_order_stats(lambda k: v[k], v.size, list(PERCENTILES.values()))
    assert np.allclose(got, np.percentile(v, list(PERCENTILES.values())), rtol=1e-12)


def test_the_catalogue_is_the_documented_one():
    doc = (Path(__file__).resolve().parent.parent / "docs" / "METRICS.md").read_text()
    row = next(line for line in doc.splitlines() if line.startswith("| percentiles |"))
    assert all(name in row for name in PERCENTILES) and "max" in row and "linear interpolation" in row
    assert STATISTICS == ("p50", "p90", "p95", "p99", "max", "mean")
    from bench.analysis.results import GAP_COLUMNS
    from bench.decisions.compare import parse_tolerance
    from bench.slo import parse_slo

    assert GAP_COLUMNS == [f"gap_{n}_ms" for n in PERCENTILES] + ["gap_max_ms"]
    for name in STATISTICS:
        assert parse_slo(f"ttfc_ms:{name}<=100").stat == name
    for name in [*PERCENTILES, "mean"]:
        assert parse_tolerance(f"ttfc_ms:{name}:+10%").stat == name

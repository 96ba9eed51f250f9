"""What reaches the user: a relay that holds the stream (a buffering proxy) between the harness and
the target is flagged ``buffered``; one that passes bytes through is not (bench/analysis/delivery.py)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import pytest
from conftest import SECRET, bench_cmd, bench_env
from relay import Relay

from bench.analysis.delivery import Delivery, read_shape, verdicts

DATA = Path(__file__).parent / "data"


def test_read_shape_counts_parts_per_read_from_zero_gaps(tmp_path):
    """Gaps of 0 us join parts of one read: [5 parts in one read] and [1 part per read]."""
    path = tmp_path / "gaps.u32"
    a = [0, 0, 0, 0, 20_000, 0, 0, 0, 0]  # 10 parts: two reads of 5
    b = [20_000] * 9  # 10 parts, 10 reads
    np.array(a + b, dtype="<u4").tofile(path)
    shape = read_shape(path, np.array([0, 9]), np.array([9, 9]))
    assert list(shape["reads"]) == [2, 10] and list(shape["parts"]) == [10, 10]
    assert shape["in4"][0] == 1.0 and shape["in2"][1] == 0.0
    assert shape["read_interval_ms"][0] == pytest.approx(20.0) and shape["read_interval_ms"][1] == pytest.approx(20.0)
    v = verdicts(shape, np.array([True, True]))
    assert list(v) == [Delivery.buffered, Delivery.smooth]
    assert list(verdicts(shape, np.array([False, True]))) == [Delivery.short, Delivery.smooth]  # failed: not judged


def _run_through(relay_url: str, out: Path) -> dict:
    r = subprocess.run(
        bench_cmd(
            "run",
            "--host",
            relay_url,
            "--auth",
            "jwt",
            "--scenario",
            str(DATA / "one-turn.yaml"),
            "-u",
            "4",
            "-r",
            "4",
            "-t",
            "5s",
            "--warmup",
            "0",
            "--slo",
            "read_stall_share:p95<=10%",
            "--out",
            str(out),
            "-q",
        ),
        capture_output=True,
        text=True,
        timeout=120,
        env=bench_env(),
    )
    assert r.returncode == 0, r.stderr[-2000:]
    run = next(p for p in out.iterdir() if p.is_dir() and not p.is_symlink())
    return {"summary": json.loads((run / "summary.json").read_text()), "md": (run / "summary.md").read_text()}


@pytest.mark.parametrize("hold_s", [0.0, 0.2], ids=["pass-through", "buffering-200ms"])
def test_a_buffering_relay_is_flagged_and_a_pass_through_one_is_not(tmp_path, hold_s):
    from bench.target import TargetProcess

    with TargetProcess(["--profiles", str(DATA / "delivery-profiles.yaml")], secret=SECRET) as target:
        port = int(target.url.rsplit(":", 1)[1])
        with Relay(port, hold_s=hold_s) as relay:
            got = _run_through(relay.url, tmp_path / "out")
    d = got["summary"]["delivery"]
    assert d["judged"] >= 12, d  # 4 users, 5 s: about 20 held streams, 27 passed through
    share = d["counts"]["buffered"] / d["judged"]
    if hold_s:
        assert share >= 0.95, d
        assert "stream delivery" in got["md"] and "buffered" in got["md"]
    else:
        assert share < 0.01, d
        assert "stream delivery" not in got["md"]
    # a reader at 238 words a minute outruns neither: 200 ms bursts of 20 ms parts still come faster than they read
    m = got["summary"]["models"]["mistralai/Mistral-7B-Instruct-v0.3"]
    assert m["read_wait_ms"]["n"] >= 12 and m["read_wait_ms"]["p95"] == 0, m["read_wait_ms"]
    assert "What a reader met" not in got["md"]  # nobody waited: no table (the figures stay in summary.json)
    assert [v["status"] for v in m["slo_verdicts"]] == ["too few" if m["read_wait_ms"]["n"] < 20 else "met"], m["slo_verdicts"]


def test_a_large_run_is_judged_from_a_seeded_sample_and_says_so(tmp_path, monkeypatch):
    """Beyond delivery.SAMPLE judged requests the report reads a sample's gaps only; the shares hold."""
    from synth import row, write_run

    from bench.analysis import delivery
    from bench.analysis.report import build_summary

    # 0.1 us rounds to a 0 us gap: all 12 parts in one read
    rows = [row("m/a", 30.0, t=i * 0.01, chunks=12, gap_ms=0.0001 if i % 4 == 0 else 20.0) for i in range(400)]
    run = write_run(tmp_path / "run", rows)
    monkeypatch.setattr(delivery, "SAMPLE", 100)
    summary, _ = build_summary(run)
    d = summary["delivery"]
    assert d["sampled"] == 100 and d["judged"] == 100
    assert 0.1 < d["buffered_share"] < 0.4, d  # a quarter of the requests arrived in one read
    assert summary["models"]["m/a"]["delivery"]["buffered"] == d["counts"]["buffered"]


def test_no_success_and_streams_cut_off_are_not_judged_and_raise_no_warning(tmp_path):
    """Failed requests and streams still in flight at the end are 'short' (not judged), never 'smooth'."""
    from synth import row, write_run

    from bench.analysis.report import build_summary

    rows = [row("m/a", 30.0, t=i * 0.1, chunks=12, error="cancelled" if i % 2 else "server_error") for i in range(40)]
    summary, _ = build_summary(write_run(tmp_path / "run", rows))
    d = summary["delivery"]
    assert d["judged"] == 0 and d["counts"]["short"] == 40 and d["counts"]["smooth"] == 0, d
    assert not any("stream delivery" in w for w in summary["warnings"])


def test_the_reader_model_waits_only_when_the_text_runs_out():
    """A reader at 23.8 characters a second, 5-character parts (210 ms each to read): a part every
    20 ms never makes them wait, nor do the same parts in 200 ms bursts; a part every 400 ms does
    (190 ms a part, 47.5 % of the session); a 3 s hold in the middle of a reply is 3 s minus what was
    left to read. Checked against the recursion written out step by step on random streams."""
    from bench.analysis.reading import READING_CPS, reader

    d = 5 / READING_CPS * 1000
    steady = [20_000] * 23
    bursts = ([0] * 9 + [200_000]) * 2 + [0] * 3
    slow = [400_000] * 23
    held = [20_000] * 10 + [3_000_000] + [20_000] * 12
    lens = np.array([23, 23, 23, 23])
    got = reader(np.array(steady + bursts + slow + held, dtype="<u4"), lens, np.full(4, 5.0))
    assert got["read_wait_ms"][0] == 0 and got["read_wait_ms"][1] == 0, got
    assert got["read_wait_ms"][2] == pytest.approx(23 * (400 - d)), got
    assert got["read_stall_share"][2] == pytest.approx(23 * (400 - d) / (23 * (400 - d) + 24 * d)), got
    assert got["read_wait_ms"][3] == pytest.approx(3000 + 10 * 20 - 11 * d), got  # 11 parts read, 10 gaps already spent
    rng = np.random.default_rng(0)
    lens = rng.integers(0, 40, 300)
    gaps = (rng.exponential(150, int(lens.sum())) * 1000).astype("<u4")
    per_part = rng.uniform(1, 10, lens.size)
    got = reader(gaps, lens, per_part)
    off = 0
    for r, n in enumerate(lens):
        step, backlog, wait = per_part[r] / READING_CPS * 1000, 0.0, 0.0
        for g in gaps[off : off + n] / 1000:
            wait += max(0.0, g - backlog - step)
            backlog = max(0.0, backlog + step - g)
        off += n
        assert got["read_wait_ms"][r] == pytest.approx(wait, abs=1e-6), r


def test_the_readers_table_shows_when_a_reader_waited():
    from bench.analysis.reading import markdown

    waited = {"m/a": {"read_wait_ms": {"n": 30, "p50": 0.0, "p95": 1200.0}, "read_stall_share": {"p50": 0.0, "p95": 0.31}}}
    text = "\n".join(markdown(waited))
    assert "What a reader met (238 words a minute" in text and "| a | 30 | 0 | 1200 | 0.0% | 31.0% |" in text
    calm = {"m/a": {"read_wait_ms": {"n": 30, "p50": 0.0, "p95": 0.0}, "read_stall_share": {"p50": 0.0, "p95": 0.0}}}
    assert markdown(calm) == [] and markdown({"m/a": {"read_wait_ms": {"n": 0}}}) == []


def test_a_reader_slo_with_no_successful_reply_is_never_met(tmp_path):
    """Every request failed: no reply to model a reader on. The SLO says "too few" and the run's
    slo_ok is False (bench run --fail-on-slo exits 1 on it), never met."""
    from synth import row, write_run

    from bench.analysis.report import build_summary

    rows = [row("m/a", None, t=i * 0.1, error="server_error", status=500) for i in range(30)]
    summary, _ = build_summary(write_run(tmp_path / "run", rows, slos=["read_stall_share:p95<=10%"]))
    v = summary["models"]["m/a"]["slo_verdicts"][0]
    assert v["status"] == "too few" and not v["ok"] and summary["slo_ok"] is False, v
    assert summary["models"]["m/a"]["read_wait_ms"]["n"] == 0

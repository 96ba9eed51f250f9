"""Where a run could be silently wrong: censored waits, unsent arrivals, tokens by when they
streamed, total failure, a full disk, a damaged spool, and the small definitions."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import FAST, bench_cmd, bench_env
from synth import row, write_run

from bench.analysis.results import gap_stats
from bench.analysis.summaries import load_records, model_summary, request_meets, time_series
from bench.decisions.capacity import find_capacity
from bench.records import IDX, Spool, SpoolCheck, read_spool
from bench.slo import parse_slo

HERE = Path(__file__).resolve().parent


def summary_of(tmp_path: Path, rows: list[list], slos: list[str]) -> dict:
    run = write_run(tmp_path / "run", rows)
    return model_summary(load_records(run), [parse_slo(s) for s in slos])


# --- censoring: requests still waiting are the slowest, not missing ---------------------------------


def test_requests_still_waiting_past_the_bound_fail_the_slo(tmp_path):
    """30 fast successes and 5 requests that waited 3 s with no first chunk: p95 <= 1000 is missed.

    Over finished requests only, the p95 is 100 ms and the SLO would read "met".
    """
    rows = [row("m/m", 100.0, t=i * 0.1) for i in range(30)]
    rows += [row("m/m", None, t=3 + i * 0.1, error="cancelled", e2e=3000.0) for i in range(5)]
    s = summary_of(tmp_path, rows, ["ttfc_ms:p95<=1000"])
    v = s["slo_verdicts"][0]
    assert s["ttfc_ms"]["p95"] == pytest.approx(100.0)  # the finished requests' own percentile is still shown
    assert v["status"] == "missed" and not v["ok"] and v["censored"] == 5 and v["observed"] >= 1000, v
    assert s["still_waiting"] == 5 and s["longest_wait_ms"] == pytest.approx(3000.0)


def test_waits_shorter_than_the_bound_are_not_violations(tmp_path):
    rows = [row("m/m", 100.0, t=i * 0.1) for i in range(30)] + [row("m/m", None, error="cancelled", e2e=50.0)]
    v = summary_of(tmp_path, rows, ["ttfc_ms:p95<=1000"])["slo_verdicts"][0]
    assert v["status"] == "met" and v["censored"] == 0


def test_too_few_finished_requests_is_never_met(tmp_path):
    v = summary_of(tmp_path, [row("m/m", 100.0, t=i) for i in range(10)], ["ttfc_ms:p95<=1000"])["slo_verdicts"][0]
    assert v["status"] == "too few" and not v["ok"] and "10 finished requests < 20" in v["note"]


def test_streams_cut_off_after_their_first_part_keep_their_ttfc(tmp_path):
    rows = [row("m/m", 100.0, t=i * 0.1) for i in range(30)] + [row("m/m", 5000.0, error="cancelled", e2e=6000.0)]
    s = summary_of(tmp_path, rows, [])
    assert s["ttfc_ms"]["n"] == 31 and s["ttfc_ms"]["max"] == pytest.approx(5000.0)
    assert s["requests"] == 30 and s["error_rate"] == 0.0  # cut off by the run's end: not a failure of the target


def test_capacity_never_interpolates_on_levels_without_finished_requests():
    """One request at a time (llama.cpp): level 1 met, level 2 had nothing finished and two waiting 20 s."""
    slo = parse_slo("ttfc_ms:p95<=1000")
    levels = pd.DataFrame(
        [
            {
                "model": "m",
                "level": 1.0,
                "slo_ok": True,
                "slo_observed": {slo.text: 300.0},
                "slo_status": {slo.text: "met"},
                "ttfc_ms_p50": 200.0,
                "still_waiting": 0,
                "ok": 40,
            },
            {
                "model": "m",
                "level": 2.0,
                "slo_ok": False,
                "slo_observed": {slo.text: None},
                "slo_status": {slo.text: "too few"},
                "ttfc_ms_p50": np.nan,
                "still_waiting": 2,
                "ok": 0,
            },
        ]
    )
    c = find_capacity(levels, [slo])["m"]
    assert c["capacity"] == 1.0 and c["bound"] == "at least"
    assert "too few finished requests (0 < 20)" in c["limited_by"] and "2 still waiting" in c["limited_by"]


def _level(slo, level: float, status: str, observed: float | None, ok: int = 40) -> dict:
    return {
        "model": "m",
        "level": level,
        "slo_ok": status == "met",
        "slo_observed": {slo.text: observed},
        "slo_status": {slo.text: status},
        "ttfc_ms_p50": observed or np.nan,
        "still_waiting": 0,
        "ok": ok,
    }


def test_capacity_a_level_too_short_to_judge_is_not_a_failure():
    """The lowest level (4 users) finished 7 requests of a light model; 12 and 24 met the SLO.
    The model's capacity is at least 24, not "below the lowest level"."""
    slo = parse_slo("ttfc_ms:p95<=150")
    levels = pd.DataFrame([_level(slo, 4, "too few", 32.0, ok=7), _level(slo, 12, "met", 32.0), _level(slo, 24, "met", 33.0)])
    c = find_capacity(levels, [slo])["m"]
    assert c["capacity"] == 24.0 and c["bound"] == "at least" and c["unjudged_levels"] == [4.0]
    # too few at the lowest level, then a miss: below the lowest level that could be judged
    levels = pd.DataFrame([_level(slo, 4, "too few", 32.0, ok=7), _level(slo, 12, "missed", 400.0)])
    c = find_capacity(levels, [slo])["m"]
    assert c["capacity"] is None and c["bound"] == "below the lowest level judged" and c["first_failing_level"] == 12.0
    # an unjudged level between a pass and a miss is stepped over: interpolation uses the judged ones
    levels = pd.DataFrame([_level(slo, 4, "met", 50.0), _level(slo, 8, "too few", 90.0, ok=5), _level(slo, 12, "missed", 250.0)])
    c = find_capacity(levels, [slo])["m"]
    assert c["capacity"] == pytest.approx(4 + 8 * (150 - 50) / (250 - 50)) and c["bound"] == "interpolated"
    # nothing judged anywhere: no number at all
    c = find_capacity(pd.DataFrame([_level(slo, 4, "too few", 32.0, ok=3)]), [slo])["m"]
    assert c["capacity"] is None and c["bound"].startswith("unknown")


# --- throughput counts tokens when they streamed ---------------------------------------------------


def test_output_tokens_counted_in_the_windows_they_streamed_in(tmp_path):
    """One 10 s stream of 100 parts (one token each, 100 ms apart): 10 tokens/s in every 1 s window,
    not 100 tokens in the last one."""
    rows = [row("m/m", 0.0, chunks=101, gap_ms=100.0, e2e=10_000.0)]
    ts = time_series(load_records(write_run(tmp_path / "run", rows)), 1.0)
    tps = ts["output_tps"].to_numpy()
    assert tps.sum() == pytest.approx(101.0)
    assert np.all(tps[:10] >= 9) and tps.max() <= 11, tps


def test_tokens_of_failed_and_cut_off_streams_count_in_throughput(tmp_path):
    rows = [row("m/m", 10.0, chunks=11, e2e=1000.0, tokens=11)]
    rows += [row("m/m", 10.0, t=0.5, chunks=11, e2e=500.0, error="cancelled", tokens=11)]
    s = summary_of(tmp_path, rows, [])
    assert s["output_tps"] * s["window_s"] == pytest.approx(22.0)


# --- a run where nothing succeeds ---------------------------------------------------------------------


def test_a_run_where_every_request_fails_gets_a_full_report(tmp_path):
    """Every stream stalls after its first part (the preflight, which needs only a first part, passes)."""
    r = subprocess.run(
        bench_cmd(
            "run",
            "--out",
            str(tmp_path),
            "--target-profiles",
            FAST,
            "-t",
            "4s",
            "-u",
            "3",
            "-r",
            "3",
            "--warmup",
            "0",
            "--target-faults",
            "stall=1.0:3",
            "--stall-timeout",
            "0.3",
            "-q",
        ),
        capture_output=True,
        text=True,
        timeout=120,
        env=bench_env(),
    )
    assert r.returncode == 0, r.stderr[-3000:]
    run = next(p for p in tmp_path.iterdir() if p.is_dir() and not p.is_symlink())
    page = (run / "report.html").read_text()
    assert 'id="no-success"' in page and 'id="failures"' in page and "stall" in page
    summary = json.loads((run / "summary.json").read_text())
    stall = next(f for f in summary["failures"] if f["error"] == "stall")
    assert stall["body_head"].startswith('0:"') and "no content part for 0.3 s" in stall["detail"]  # what came back, per class
    md = (run / "summary.md").read_text()
    assert "No request succeeded" in md and "stall" in md
    again = subprocess.run(bench_cmd("report", str(run)), capture_output=True, text=True, timeout=120, env=bench_env())
    assert again.returncode == 0, again.stderr[-2000:]


# --- open loop: every arrival is recorded ---------------------------------------------------------------


def test_open_loop_records_every_arrival_offered(tmp_path):
    """6 arrivals/s with 2 users that stay busy for seconds: most arrivals cannot be sent. Each has a
    record (not_sent), run.json says offered vs sent, and the report is marked untrusted."""
    r = subprocess.run(
        bench_cmd(
            "run",
            "--out",
            str(tmp_path),
            "--target-profiles",
            FAST,
            "-t",
            "6s",
            "-u",
            "2",
            "-r",
            "2",
            "--load-mode",
            "open",
            "--arrival-rate",
            "6",
            "--scenario",
            "long-chat",
            "-q",
        ),
        capture_output=True,
        text=True,
        timeout=120,
        env=bench_env(),
    )
    assert r.returncode == 0, r.stderr[-3000:]
    run = next(p for p in tmp_path.iterdir() if p.is_dir() and not p.is_symlink())
    meta = json.loads((run / "run.json").read_text())
    df = pd.read_parquet(run / "requests.parquet")
    not_sent = df[df["error"] == "not_sent"]
    first_turns = df[(df["turn"] == 0) & (df["error"] != "not_sent")]
    assert meta["offered"] == len(first_turns) + len(not_sent) and meta["not_sent"] == len(not_sent) > 10, meta
    assert 20 <= meta["offered"] <= 60  # about 36 arrivals at 6/s
    assert (not_sent["intended_delay_ms"] > 0).all() and not_sent["model"].notna().all()
    assert any("never sent" in w for w in meta["warnings"])
    summary = json.loads((run / "summary.json").read_text())
    assert summary["untrusted"] and any("could not send" in x for x in summary["untrusted_reasons"])
    assert 'id="untrusted"' in (run / "report.html").read_text()


def test_open_loop_processes_draw_their_own_arrivals(tmp_path):
    """Two worker processes at 6/s together: merged arrival gaps look Poisson (about 3 % under 5 ms),
    not two copies of one schedule (half the gaps near 0)."""
    r = subprocess.run(
        bench_cmd(
            "run",
            "--out",
            str(tmp_path),
            "--target-profiles",
            FAST,
            "-t",
            "12s",
            "-u",
            "40",
            "-r",
            "40",
            "--processes",
            "2",
            "--load-mode",
            "open",
            "--arrival-rate",
            "6",
            "--scenario",
            "short-qa",
            "-q",
        ),
        capture_output=True,
        text=True,
        timeout=150,
        env=bench_env(),
    )
    assert r.returncode == 0, r.stderr[-3000:]
    run = next(p for p in tmp_path.iterdir() if p.is_dir() and not p.is_symlink())
    df = pd.read_parquet(run / "requests.parquet")
    first = df[df["turn"] == 0]
    intended = np.sort(first["t_start_ns"].to_numpy() - first["intended_delay_ms"].to_numpy() * 1e6)
    gaps_ms = np.diff(intended) / 1e6
    assert len(gaps_ms) > 40
    assert (gaps_ms < 5).mean() < 0.15, np.sort(gaps_ms)[:20]
    assert 3.5 < len(first) / 12 < 9  # the rate is shared, not doubled


# --- lossless: a full disk, a damaged spool ---------------------------------------------------------------


class FileSizeLimit:
    """A real write error on the real file: RLIMIT_FSIZE makes writes past ``limit`` bytes fail (EFBIG),
    part of a frame written first, as a disk filling up mid-write does."""

    def __init__(self, limit: int) -> None:
        import resource
        import signal

        self.resource, self.signal, self.limit = resource, signal, limit

    def __enter__(self):
        self.old_sig = self.signal.signal(self.signal.SIGXFSZ, self.signal.SIG_IGN)
        self.old = self.resource.getrlimit(self.resource.RLIMIT_FSIZE)
        self.resource.setrlimit(self.resource.RLIMIT_FSIZE, (self.limit, self.old[1]))
        return self

    def __exit__(self, *exc):
        self.resource.setrlimit(self.resource.RLIMIT_FSIZE, self.old)
        self.signal.signal(self.signal.SIGXFSZ, self.old_sig)


def test_spool_keeps_rows_through_a_full_disk(tmp_path):
    """A write that fails half way raises and leaves no torn frame; the retry writes every row."""
    path = tmp_path / "records.spool"
    spool = Spool(path)
    spool.write([["a", 1], ["b", 2]])
    size = path.stat().st_size
    big = [["x" * 100, k] for k in range(50)]
    with FileSizeLimit(size + 64):  # room for 64 more bytes: the next frame is torn at the limit
        with pytest.raises(OSError):
            spool.write(big)
    assert path.stat().st_size == size  # cut back to the last whole frame
    spool.write(big)
    spool.close()
    check = SpoolCheck()
    assert list(read_spool(path, check)) == [["a", 1], ["b", 2], *big]
    assert check.bad_frames == 0 and check.torn_tail == 0


def test_collector_keeps_and_retries_rows_the_disk_refused(tmp_path):
    """The sink keeps what a full disk refused, says so once, and writes it all, in order, once the disk takes it."""
    import resource
    import signal

    from bench.load.sink import RecordSink

    warnings: list[str] = []
    stopped: list[bool] = []
    sink = RecordSink(tmp_path / "records.spool", lambda: tmp_path / "rescue", lambda: stopped.append(True), warnings)
    sink.write([["r0"]])
    size = (tmp_path / "records.spool").stat().st_size
    rows = [[f"r{k}" * 20] for k in range(1, 40)]
    old_handler = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    old = resource.getrlimit(resource.RLIMIT_FSIZE)
    try:
        resource.setrlimit(resource.RLIMIT_FSIZE, (size + 32, old[1]))
        sink.write(rows)
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, old)
        signal.signal(signal.SIGXFSZ, old_handler)
    assert len(sink.pending) == len(rows) and sum("failed" in w for w in warnings) == 1, warnings
    assert not stopped  # a refusal shorter than WRITE_GIVE_UP does not stop the run
    sink.write([])
    sink.close()
    assert sink.pending == [] and list(read_spool(tmp_path / "records.spool")) == [["r0"], *rows]
    assert any("works again" in w for w in warnings)


def test_a_disk_that_stays_full_stops_the_run_and_rescues_every_row(tmp_path, monkeypatch):
    from bench.load import sink as sink_mod

    warnings: list[str] = []
    stopped: list[bool] = []
    s = sink_mod.RecordSink(tmp_path / "records.spool", lambda: tmp_path / "rescue", lambda: stopped.append(True), warnings)

    def refuse(rows):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(s.spool, "write", refuse)
    clock = iter([100.0, 100.0 + sink_mod.WRITE_GIVE_UP + 1, 200.0])
    monkeypatch.setattr(sink_mod.time, "monotonic", lambda: next(clock))
    s.write([["a"]])  # refused: kept
    assert stopped == [] and s.pending == [["a"]]
    s.write([["b"]])  # refused for longer than WRITE_GIVE_UP: the run is stopped, the rows rescued
    assert stopped == [True] and s.pending == [] and s.rescued == 2
    s.write([["c"]])  # what comes in after the stop goes to the rescue folder too
    assert s.rescued == 3 and list(read_spool(tmp_path / "rescue" / "records.spool")) == [["a"], ["b"], ["c"]]
    assert any("the run was stopped" in w for w in warnings)


def test_damaged_spool_frame_is_skipped_and_reported(tmp_path):
    path = tmp_path / "records.spool"
    spool = Spool(path)
    for k in range(3):
        spool.write([[f"row{k}a"], [f"row{k}b"]])
    spool.close()
    data = bytearray(path.read_bytes())
    frame = len(data) // 3
    data[frame + 20] ^= 0xFF  # a flipped byte inside the second frame's payload
    path.write_bytes(bytes(data))
    check = SpoolCheck()
    rows = list(read_spool(path, check))
    assert rows == [["row0a"], ["row0b"], ["row2a"], ["row2b"]]
    assert check.bad_frames == 1 and check.skipped_bytes > 0
    assert "1 damaged frame" in check.warnings(path)[0]


# --- the small definitions ------------------------------------------------------------------------------


def test_gaps_slo_judged_by_its_own_statistic(tmp_path):
    """gaps_ms:max<=200 fails a request with one 900 ms gap among 20 ms ones (its p99 alone would pass)."""
    from array import array

    r = row("m/m", 10.0, chunks=101, gap_ms=20.0)
    gaps = [20_000] * 99 + [900_000]
    r[IDX["gaps_us"]] = array("I", gaps).tobytes()
    df = load_records(write_run(tmp_path / "run", [r]))
    assert not request_meets(df, [parse_slo("gaps_ms:max<=200")]).iloc[0]
    assert request_meets(df, [parse_slo("gaps_ms:p95<=200")]).iloc[0]


def test_per_request_gap_percentiles_interpolate_like_numpy():
    rng = np.random.default_rng(3)
    blobs = [rng.integers(0, 10**6, size=n).astype("<u4") for n in (1, 2, 7, 100, 0)]
    got = gap_stats([b.tobytes() for b in blobs])
    for i, b in enumerate(blobs):
        if b.size:
            for col, q in (("gap_p50_ms", 50), ("gap_p90_ms", 90), ("gap_p95_ms", 95), ("gap_p99_ms", 99)):
                assert got[col][i] == pytest.approx(np.percentile(b / 1000.0, q))


def test_decode_speed_slo_strict_and_one_token_replies(tmp_path):
    rows = [row("m/m", 10.0, chunks=11, gap_ms=50.0), row("m/m", 10.0, chunks=1)]  # 20 tok/s, and a one-token reply
    df = load_records(write_run(tmp_path / "run", rows))
    assert list(request_meets(df, [parse_slo("decode_tps>20")])) == [False, True]
    assert list(request_meets(df, [parse_slo("decode_tps>=20")])) == [True, True]


def test_token_source_mix(tmp_path):
    rows = [row("m/m", 10.0) for _ in range(3)]
    rows[0][IDX["token_source"]] = "usage"
    s = summary_of(tmp_path, rows, [])
    assert s["token_source"] == {"chunks": pytest.approx(2 / 3), "usage": pytest.approx(1 / 3)}


def test_credentials_in_host_are_refused_without_echo(tmp_path):
    r = subprocess.run(
        bench_cmd("run", "--host", "http://alice:s3cret@127.0.0.1:9", "-t", "2s", "--out", str(tmp_path)),
        capture_output=True,
        text=True,
        timeout=60,
        env=bench_env(),
    )
    assert r.returncode == 2 and "credentials in the URL" in r.stderr and "s3cret" not in r.stderr + r.stdout
    assert not list(tmp_path.iterdir())


def test_capacity_faults_reach_the_target(tmp_path):
    r = subprocess.run(
        bench_cmd(
            "capacity",
            "--scenario",
            str(HERE / "data" / "one-turn.yaml"),
            "--target-profiles",
            FAST,
            "--levels",
            "2",
            "--level-duration",
            "4s",
            "--level-warmup",
            "1",
            "--slo",
            "ttfc_ms:p95<=1000",
            "--target-faults",
            "stall=1.0:3",
            "--stall-timeout",
            "0.3",
            "--out",
            str(tmp_path),
        ),
        capture_output=True,
        text=True,
        timeout=120,
        env=bench_env(),
    )
    # every request stalls: no TTFC p95 to judge the one SLO by, so the sweep is undecided (exit 3), not a pass
    assert r.returncode == 3 and "capacity undecided" in r.stderr, r.stderr[-2000:]
    level = json.loads(next(tmp_path.glob("capacity-*/capacity.json")).read_text())["levels"][0]
    assert level["error_rate"] == 1.0, level


# --- every run states its own timing uncertainty ------------------------------------------------------


def test_a_run_states_its_timing_uncertainty(tmp_path):
    r = subprocess.run(
        bench_cmd("run", "--out", str(tmp_path), "--target-profiles", FAST, "-t", "5s", "-u", "4", "-r", "4", "-q"),
        capture_output=True,
        text=True,
        timeout=120,
        env=bench_env(),
    )
    assert r.returncode == 0, r.stderr[-3000:]
    run = next(p for p in tmp_path.iterdir() if p.is_dir() and not p.is_symlink())
    lines = [json.loads(x) for x in (run / "timing.jsonl").read_text().splitlines()]
    assert len(lines) >= 3 and sum(len(x["lag_us"]) for x in lines) >= 200  # about 100 probe samples a second
    t = json.loads((run / "summary.json").read_text())["timing"]
    assert 0 <= t["lag_p50_ms"] <= t["lag_p99_ms"] <= t["uncertainty_ms"] <= t["lag_max_ms"]
    assert "Timing uncertainty of this run" in (run / "report.html").read_text()
    assert "Timing uncertainty of this run" in (run / "summary.md").read_text()


def test_untrusted_when_the_lag_is_large_against_the_slo_or_ttfc():
    from bench.analysis.timing import untrusted_reason

    unc = {"lag_p99_ms": 12.0}
    assert "latency SLO" in untrusted_reason(unc, [100.0], [500.0])  # 12 > 10 % of 100
    assert "TTFC p50" in untrusted_reason(unc, [1000.0], [40.0])  # 12 > 25 % of 40
    assert untrusted_reason(unc, [1000.0], [500.0]) is None
    assert untrusted_reason(None, [10.0], [1.0]) is None


def test_report_warns_when_2xx_answers_hold_no_content(tmp_path):
    """A column of ``truncated`` after 200s is a format the decoder did not understand: say so."""
    from bench.analysis.report import build_summary

    rows = [row("m/m", None, t=i, error="truncated", detail="the stream ended with no content part") for i in range(8)]
    for r in rows:
        r[IDX["content_type"]] = "application/x-ndjson"
        r[IDX["protocol"]] = "auto"
    run = write_run(tmp_path / "run", rows)
    summary, _ = build_summary(run)
    assert any("is this the right protocol" in w and "application/x-ndjson" in w for w in summary["warnings"])


@pytest.mark.parametrize("block_ms", [50, 200, 1000])
def test_timing_probe_sees_a_blocked_loop(block_ms):
    """The kernel timer's missed expirations count: a loop blocked 1,000 ms read as 1.16 ms of lag before.
    (In a child process: bench.load imports Locust, which must not monkey-patch the pytest process.)"""
    import sys

    code = (
        f"import time\nfrom bench.load.lagprobe import KernelTimer\nt = KernelTimer.start(10_000_000)\n"
        f"print('none' if t is None else '')\nt and t.wait()\ntime.sleep({block_ms} / 1000)\nprint(t.wait() if t else 0)\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr[-1500:]
    first, late = r.stdout.split("\n")[:2]
    if first == "none":
        pytest.skip("no timerfd on this system")
    # the block began just after an expiry: the next one fell due one period into it
    assert int(late) / 1e6 >= (block_ms - 10) * 0.9, late

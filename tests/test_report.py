"""Reports from a real run, checked against numbers computed here independently; pages rendered in Chromium."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
import pytest
from conftest import FAST, bench_cmd, bench_env

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
needs_chromium = pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed (.ci/run installs it)")


@pytest.fixture(scope="module")
def faulty_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("report")
    r = subprocess.run(
        bench_cmd(
            "run",
            "--out",
            str(out),
            "--target-profiles",
            FAST,
            "-t",
            "8s",
            "-u",
            "8",
            "-r",
            "8",
            "--warmup",
            "2",
            "--target-faults",
            "500=0.08,429=0.04",
            "-q",
        ),
        capture_output=True,
        text=True,
        timeout=120,
        env=bench_env(),
    )
    assert r.returncode == 0, r.stderr[-3000:]
    return next(p for p in out.iterdir() if p.is_dir() and not p.is_symlink())


def measured(run_dir: Path) -> pd.DataFrame:
    df = pd.read_parquet(run_dir / "requests.parquet")
    df = df[df["t_wall_start"] >= df["t_wall_start"].min() + 2.0]
    return df[df["error"] != "cancelled"]


def window_of(e: pd.DataFrame) -> float:
    """The measured window: first start on the wire to the last end, streams cut off at the end included."""
    wire = e[e["error"] != "not_sent"]
    return float(
        (wire["t_wall_start"] + (wire["connect_ms"].fillna(0) + wire["e2e_ms"].fillna(0)) / 1000).max()
        - wire["t_wall_start"].min()
    )


def measured_all(run_dir: Path) -> pd.DataFrame:
    df = pd.read_parquet(run_dir / "requests.parquet")
    return df[df["t_wall_start"] >= df["t_wall_start"].min() + 2.0]


def test_summary_numbers_match_numpy(faulty_run):
    summary = json.loads((faulty_run / "summary.json").read_text())
    df = measured(faulty_run)
    every = pd.read_parquet(faulty_run / "requests.parquet")
    every = every[every["t_wall_start"] >= every["t_wall_start"].min() + 2.0]
    assert summary["measured_requests"] + summary["warmup_requests"] == summary["records"]
    for model, g in df.groupby("model"):
        s = summary["models"][model]
        ok = g[g["error"].isna()]
        e = every[every["model"] == model]
        # TTFC: successes, and streams the run's end cut off after their first part (known values, not dropped)
        cut = e[(e["error"] == "cancelled") & e["ttfc_ms"].notna()]
        ttfc = np.concatenate([ok["ttfc_ms"].to_numpy(), cut["ttfc_ms"].to_numpy()])
        for q in (50, 90, 95, 99):
            assert s["ttfc_ms"][f"p{q}"] == pytest.approx(np.percentile(ttfc, q), rel=1e-9)
        assert s["ttfc_ms"]["max"] == pytest.approx(ttfc.max())
        assert s["e2e_ms"]["p95"] == pytest.approx(np.percentile(ok["e2e_ms"], 95))
        assert s["requests"] == len(g) and s["errors"] == int(g["error"].notna().sum())
        assert s["error_rate"] == pytest.approx(g["error"].notna().mean())
        assert s["errors_by_class"] == {k: int(v) for k, v in g["error"].value_counts().items()}
        window = window_of(e)
        streamed = e.loc[e["chunks"] > 0, "output_tokens"].sum()  # failed and cut-off streams' tokens count too
        assert s["output_tps"] == pytest.approx(streamed / window, rel=1e-9)
        flat = np.fromfile(faulty_run / "gaps.u32", dtype="<u4")
        gaps = np.concatenate([flat[o : o + c] for o, c in zip(ok["gaps_offset"], ok["gaps_count"])]) / 1000
        assert s["gaps_ms"]["p99"] == pytest.approx(np.percentile(gaps, 99))
    classes = set(df["error"].dropna())
    assert {"server_error", "rate_limited"} <= classes


def test_goodput_matches_an_independent_count(faulty_run):
    """goodput: successful requests meeting every per-request SLO, per second; conversation goodput: conversations all of whose turns did."""
    summary = json.loads((faulty_run / "summary.json").read_text())
    assert summary["slos"] == ["ttfc_ms:p95<=1000", "gaps_ms:p99<=200", "error_rate<=1%"]
    df = measured(faulty_run)
    shares = []
    for model, g in df.groupby("model"):
        s = summary["models"][model]
        meets = g["error"].isna() & (g["ttfc_ms"] <= 1000) & (g["gap_p99_ms"].isna() | (g["gap_p99_ms"] <= 200))
        every = measured_all(faulty_run)
        window = window_of(every[every["model"] == model])
        assert s["goodput"] == pytest.approx(meets.sum() / window, rel=1e-9)
        assert s["goodput_share"] == pytest.approx(meets.mean())
        per_conversation = {c: all(meets[g["conversation_id"] == c]) for c in set(g["conversation_id"])}
        assert s["conversation_goodput"] == pytest.approx(sum(per_conversation.values()) / len(per_conversation))
        shares.append(s["conversation_goodput"])
    assert any(0 < x < 1 for x in shares), shares  # the injected 500s and 429s fail some conversations, not all


def test_report_outputs_exist(faulty_run):
    for name in ("report.html", "summary.md", "summary.csv", "summary.json", "METRICS.md"):
        assert (faulty_run / name).is_file(), name
    for chart in ("ttfc_cdf", "over_time", "ttfc_vs_prompt", "gaps_cdf", "errors"):
        assert (faulty_run / "charts" / f"{chart}.png").stat().st_size > 1000
        assert (faulty_run / "charts" / f"{chart}.svg").is_file()
    md = (faulty_run / "summary.md").read_text()
    assert "TTFC p95" in md and len(md) < 4000
    csv = pd.read_csv(faulty_run / "summary.csv")
    assert set(csv["model"]) == set(measured(faulty_run)["model"]) | {"all models"}
    every = csv[csv["model"] == "all models"].iloc[0]
    assert every["requests"] == csv.loc[csv["model"] != "all models", "requests"].sum()
    assert "in the warm-up" in (faulty_run / "report.html").read_text() and "UTC" in (faulty_run / "report.html").read_text()


def test_untrusted_banner_when_generator_saturated(faulty_run, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(faulty_run, copy)
    meta = json.loads((copy / "run.json").read_text())
    meta["collector"]["cpu_max"] = 99.0
    (copy / "run.json").write_text(json.dumps(meta))
    r = subprocess.run(bench_cmd("report", str(copy)), capture_output=True, text=True, timeout=120, env=bench_env())
    assert r.returncode == 0
    assert json.loads((copy / "summary.json").read_text())["untrusted"] is True
    assert 'id="untrusted"' in (copy / "report.html").read_text()
    assert 'id="untrusted"' not in (faulty_run / "report.html").read_text()


def chromium_dom(url: str, budget_ms: int = 5000) -> str:
    cmd = [
        CHROMIUM,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={Path('/tmp') / f'bench-chromium-{time.monotonic_ns()}'}",
        f"--virtual-time-budget={budget_ms}",
        "--dump-dom",
        url,
    ]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=90)
    assert r.returncode == 0, r.stderr[-2000:]
    return r.stdout


@needs_chromium
def test_report_renders_in_chromium(faulty_run):
    dom = chromium_dom((faulty_run / "report.html").resolve().as_uri(), 1000)
    assert dom.count("<svg") >= 5
    assert 'id="headline"' in dom
    for model in measured(faulty_run)["model"].unique():
        assert model in dom


@needs_chromium
def test_live_tab_renders_in_locust_web_ui(target, tmp_path):
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cmd = [
        "locust",
        "-f",
        "locustfile.py",
        "--host",
        target.url,
        "--web-host",
        "127.0.0.1",
        "--web-port",
        str(port),
        "--autostart",
        "-u",
        "4",
        "-r",
        "4",
        "-t",
        "20s",
        "--autoquit",
        "1",
        "--results-dir",
        str(tmp_path / "live"),
        "--auth",
        "jwt",
    ]
    p = subprocess.Popen(
        cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=bench_env(), cwd=Path(__file__).parent.parent
    )
    try:
        deadline = time.monotonic() + 20
        rows = []
        while time.monotonic() < deadline:
            try:
                data = httpx.get(f"http://127.0.0.1:{port}/stats/requests", timeout=2).json()
                rows = data.get("extended_stats", [{}])[0].get("data", [])
                if rows:
                    break
            except (httpx.HTTPError, ValueError):
                pass
            time.sleep(0.5)
        assert rows and {"model", "ttfc_p50", "ttfc_p95", "decode_tps_p50", "output_tps", "errors"} <= set(rows[0])
        dom = chromium_dom(f"http://127.0.0.1:{port}/?tab=bench-streams", 6000)
        assert "TTFC p95 ms" in dom and "Decode p50 tok/s" in dom
        assert rows[0]["model"] in dom
    finally:
        p.terminate()
        p.wait(30)


@pytest.mark.parametrize("case", ["all-in-warmup", "no-success", "one-model-empty", "server-only"])
def test_report_holds_for_empty_runs(tmp_path, case):
    """Every path of the report with nothing (or part of nothing) to show: a line or a report, never a traceback."""
    from synth import lognormal, row, write_run

    if case == "no-success":
        rows = [row("m/a", None, t=i * 0.1, error="server_error", status=500) for i in range(30)]
    elif case == "one-model-empty":
        rows = [row("m/a", v, t=i * 0.1) for i, v in enumerate(lognormal(40, 100))]
        rows += [row("m/b", None, t=i * 0.1, error="unauthorized", status=401) for i in range(5)]
    else:
        rows = [row("m/a", v, t=i * 0.01) for i, v in enumerate(lognormal(30, 100))]
    run = write_run(tmp_path / "r", rows)
    if case == "server-only":
        t0 = time.time()
        (run / "server-metrics.jsonl").write_text(
            "".join(
                json.dumps(
                    {"t": t0 + k, "samples": {"bench_requests_running{model=m/a}": 1.0, "bench_requests_waiting{model=m/a}": 0.0}}
                )
                + "\n"
                for k in range(5)
            )
        )
    args = ["report", str(run)] + (["--warmup", "1000"] if case in ("all-in-warmup", "server-only") else [])
    r = subprocess.run(bench_cmd(*args), capture_output=True, text=True, timeout=120, env=bench_env())
    assert r.returncode == 0 and "Traceback" not in r.stderr, r.stderr[-2000:]
    assert (run / "report.html").is_file()
    if case in ("all-in-warmup", "server-only"):
        assert "no measured requests" in r.stdout

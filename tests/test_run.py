"""End to end: ``bench run`` and plain Locust against the real target, bounded and on loopback."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import FAST, SECRET, bench_cmd, bench_env

from bench.scenario import load_scenario

DATA = Path(__file__).parent / "data"

METRICS_COLUMNS = [
    "run_id",
    "request_id",
    "conversation_id",
    "turn",
    "model",
    "t_wall_start",
    "ttfb_ms",
    "ttfc_ms",
    "e2e_ms",
    "output_chars",
    "output_tokens",
    "token_source",
    "chunks",
    "prompt_chars",
    "status",
    "error",
    "worker",
    "ttfv_ms",
    "tpot_ms",
    "ttfc_sched_ms",
    "gaps_offset",
    "gaps_count",
    "intended_delay_ms",
    "gap_p99_ms",
]


def run_bench(tmp_path: Path, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    cmd = bench_cmd("run", "--out", str(tmp_path), "--target-profiles", FAST, "-q", *args)
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=bench_env())


def only_run(tmp_path: Path) -> Path:
    runs = [p for p in tmp_path.iterdir() if p.is_dir() and not p.is_symlink()]
    assert len(runs) == 1
    return runs[0]


@pytest.fixture(scope="module")
def default_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("run")
    r = run_bench(tmp, "-t", "8s", "-u", "8", "-r", "8")
    assert r.returncode == 0, r.stderr[-3000:]
    return only_run(tmp), r


def test_run_writes_records_metadata_and_report(default_run):
    run_dir, r = default_run
    for name in ("requests.parquet", "run.json", "report.html", "summary.md", "summary.json", "summary.csv"):
        assert (run_dir / name).is_file(), name
    df = pd.read_parquet(run_dir / "requests.parquet")
    assert set(METRICS_COLUMNS) <= set(df.columns)
    meta = json.loads((run_dir / "run.json").read_text())
    assert meta["records"] == len(df) == meta["requests_sent"]
    assert df["model"].nunique() >= 3
    ok = df[df["error"].isna()]
    assert len(ok) > 20 and (ok["ttfc_ms"] > 0).all() and (ok["e2e_ms"] >= ok["ttfc_ms"]).all()
    assert df["request_id"].is_unique
    gaps = np.fromfile(run_dir / "gaps.u32", dtype="<u4")
    assert (
        df["gaps_count"].sum() == gaps.size and (df["gaps_offset"].diff().dropna() == df["gaps_count"].iloc[:-1].to_numpy()).all()
    )
    assert (ok["gaps_count"] == ok["chunks"] - 1).all()
    row = ok.iloc[0]
    own = gaps[row["gaps_offset"] : row["gaps_offset"] + row["gaps_count"]] / 1000
    assert row["gap_max_ms"] == pytest.approx(own.max()) and row["icl_ms"] == pytest.approx(own.mean(), rel=0.01, abs=0.01)
    assert "report:" in r.stdout and "TTFC p50" in r.stdout
    for model in df["model"].unique():
        assert model in r.stdout


def test_multi_turn_prompts_grow_with_real_replies(default_run):
    run_dir, _ = default_run
    df = pd.read_parquet(run_dir / "requests.parquet")
    scenario = {c.name: c for c in load_scenario("default").conversations}
    checked = 0
    for _, g in df[df["error"].isna()].groupby("conversation_id"):
        g = g.sort_values("turn")
        turns = scenario[g["conversation"].iloc[0]].turns
        for (_, a), (_, b) in zip(g.iterrows(), g.iloc[1:].iterrows()):
            if b["turn"] == a["turn"] + 1:
                assert b["prompt_chars"] == a["prompt_chars"] + a["output_chars"] + len(turns[b["turn"]].user)
                assert b["prompt_messages"] == a["prompt_messages"] + 2
                checked += 1
    assert checked >= 3


def test_no_secret_in_any_output(default_run):
    run_dir, r = default_run
    for path in run_dir.rglob("*"):
        if path.is_file():
            assert SECRET.encode() not in path.read_bytes(), path
    assert SECRET not in r.stdout + r.stderr


def test_plain_locust_two_processes_delivers_every_record(target, tmp_path):
    out = tmp_path / "plain"
    cmd = [
        "locust",
        "-f",
        "locustfile.py",
        "--host",
        target.url,
        "--headless",
        "-u",
        "8",
        "-r",
        "8",
        "-t",
        "6s",
        "--processes",
        "2",
        "--results-dir",
        str(out),
        "--auth",
        "jwt",
        "--scenario",
        "default",
        "--only-summary",
    ]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=90, env=bench_env(), cwd=Path(__file__).parent.parent)
    assert r.returncode in (0, 1), r.stderr[-2000:]
    col = json.loads((out / "collector.json").read_text())
    assert len(col["workers"]) == 2 and all(w["final"] for w in col["workers"].values())
    # Locust's exit finalizes the folder itself: Parquet and run.json, with bench run's warm-up rule
    assert (out / "requests.parquet").is_file() and (out / "run.json").is_file()
    assert "bench report" in r.stderr
    meta = json.loads((out / "run.json").read_text())
    assert meta["warmup_s"] == pytest.approx(2.0)  # -u 8 at -r 8/s: 1 s of ramp-up plus 1 s, as bench run
    rep = subprocess.run(bench_cmd("report", str(out)), capture_output=True, text=True, timeout=120, env=bench_env())
    assert rep.returncode == 0, rep.stderr
    df = pd.read_parquet(out / "requests.parquet")
    assert col["sent"] == col["records"] == len(df) > 10
    assert df["worker"].nunique() == 2
    assert set(df["error"].dropna()) <= {"cancelled"}  # streams in flight at the end are kept, as cancelled


def test_plain_locust_with_bad_credentials_stops_at_the_preflight_with_bench_runs_line(target, tmp_path):
    """A wrong JWT secret: before, one plain-Locust user sent 11,133 requests in 5 s, every one a 401."""
    import httpx

    wrong = bench_env(BENCH_JWT_SECRET="not-the-target-secret-" + "x" * 20)
    httpx.delete(f"{target.url}/_bench/truth", timeout=10)
    cmd = ["locust", "-f", "locustfile.py", "--host", target.url, "--headless", "-u", "4", "-r", "4", "-t", "5s"]
    cmd += ["--results-dir", str(tmp_path / "plain"), "--auth", "jwt", "--scenario", str(DATA / "one-turn.yaml")]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=90, env=wrong, cwd=Path(__file__).parent.parent)
    assert r.returncode == 2, (r.returncode, r.stderr[-2000:])
    plain = [x for x in r.stderr.splitlines() if x.startswith("error: ")]
    assert len(plain) == 1 and "Traceback" not in r.stderr, r.stderr[-2000:]
    sent = httpx.get(f"{target.url}/_bench/truth", timeout=10).json()
    assert len(sent) == 1, len(sent)  # the preflight's one request per model, and nothing after it
    b = subprocess.run(
        bench_cmd("run", "--host", target.url, "--auth", "jwt", "--scenario", str(DATA / "one-turn.yaml"), "-t", "3s")
        + ["--out", str(tmp_path / "b")],
        capture_output=True,
        text=True,
        timeout=90,
        env=wrong,
    )
    assert b.returncode == 2 and [x for x in b.stderr.splitlines() if x.startswith("error: ")] == plain, (plain, b.stderr)


def test_plain_locust_web_ui_sigterm_leaves_a_whole_run_folder(target, tmp_path):
    """A web-UI run stopped by SIGTERM mid-test (as a container stop does) still writes run.json,
    with the streams in flight kept as cancelled and the observed ramp-up as its warm-up."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    out = tmp_path / "webui"
    scenario = tmp_path / "busy.yaml"  # no think time: every user is mid-stream almost all the time
    scenario.write_text(
        "name: busy\nmodels: [{model: mistralai/Mistral-7B-Instruct-v0.3}]\n"
        "conversations:\n  - {name: c, turns: ['Explain queueing.', 'And in one sentence?']}\n"
    )
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
        "6",
        "-r",
        "3",
        "--results-dir",
        str(out),
        "--auth",
        "jwt",
        "--scenario",
        str(scenario),
    ]
    proc = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=bench_env(), cwd=Path(__file__).parent.parent
    )
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:  # until records are flowing and every user runs
            prog = out / "progress.json"
            if prog.is_file():
                try:
                    p = json.loads(prog.read_text())
                except ValueError:
                    p = {}
                if p.get("records", 0) >= 5 and p.get("users") == 6:
                    break
            time.sleep(0.2)
        else:
            pytest.fail("the web-UI run never got going")
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    meta = json.loads((out / "run.json").read_text())
    df = pd.read_parquet(out / "requests.parquet")
    assert meta["records"] == len(df) == meta["requests_sent"] >= 5, err[-2000:]
    assert (df["error"] == "cancelled").any()  # the streams in flight at SIGTERM are records too
    assert "observed ramp-up" in meta["warmup_rule"] and 0 < meta["warmup_s"] <= (meta["ended"] - meta["started"]) / 3 + 0.01
    assert "bench report" in err


def test_project_options_are_on_locusts_parser():
    """Locust prints --help before it imports a locustfile, so check its parser after the import."""
    r = subprocess.run(bench_cmd("locust-help"), capture_output=True, text=True, timeout=60, cwd=Path(__file__).parent.parent)
    for opt in ("--scenario", "--models", "--results-dir", "--auth", "--token-file", "--load-mode", "--stall-timeout"):
        assert opt in r.stdout


@pytest.mark.parametrize(
    "args,needle",
    [
        (["-u", "-3"], "--users -3: expected a number at least 1"),
        (["-t", "soon"], "--duration 'soon'"),
        (["--scenario", "nope"], "scenario file not found"),
        (["--models", "nobody/none"], "does not exist"),
        (["--host", "http://127.0.0.1:9"], "cannot connect"),
        (["--host", "ftp://x"], "--host"),
        (["--tokenizer", "no-such-tokenizer.json"], "not found"),
        (["--warmup", "50", "-t", "3s"], "--warmup 50 must be shorter than the run"),
        (["--arrival-rate", "-1"], "--arrival-rate -1: expected a positive number"),
        (["--header", "no colon here"], "--header"),
        (["--route-template", "/api/{nope}/chat"], "unknown placeholder"),
    ],
)
def test_bad_input_refused_before_load(tmp_path, args, needle):
    r = run_bench(tmp_path, *args, timeout=60)
    assert r.returncode == 2
    assert needle in r.stderr
    assert "Traceback" not in r.stderr
    assert not [p for p in tmp_path.iterdir() if p.is_dir()]  # refused before any load: no run folder left behind


def test_preflight_rejected_token_sends_no_load(target, tmp_path):
    httpx = pytest.importorskip("httpx")
    httpx.delete(f"{target.url}/_bench/truth")
    cmd = bench_cmd("run", "--host", target.url, "--auth", "bearer", "--out", str(tmp_path), "-q", "-t", "5s")
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=60, env=bench_env(BENCH_TOKEN="not-a-valid-token"))
    assert r.returncode == 2 and "401 from" in r.stderr and "rejected" in r.stderr
    seen = httpx.get(f"{target.url}/_bench/truth").json()
    assert 1 <= len(seen) <= 3 and all(len(t["request_id"]) == 36 for t in seen)  # the preflight's own, UUIDs
    assert "not-a-valid-token" not in r.stderr


def test_preflight_says_when_no_credentials_were_found(target, tmp_path):
    cmd = bench_cmd("run", "--host", target.url, "--auth", "none", "--out", str(tmp_path), "-q", "-t", "5s")
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=60, env=bench_env())
    assert r.returncode == 2 and "no credentials found" in r.stderr and "BENCH_TOKEN" in r.stderr, r.stderr


def test_preflight_refuses_a_stream_that_does_not_decode(tmp_path):
    """A 200 whose body is not a stream the harness understands stops the run before any load."""
    r = run_bench(tmp_path, "--target-faults", "garbage=1.0", "-t", "5s", timeout=60)
    assert r.returncode == 2 and "did not decode" in r.stderr and "--protocol" in r.stderr, r.stderr
    assert "no load was sent" in r.stderr and len(r.stderr.strip().splitlines()) <= 2


def test_ui_message_stream_run_end_to_end(tmp_path):
    """The app on AI SDK 5: every request decodes, the detected format and content type are recorded."""
    r = run_bench(tmp_path, "--target-flavor", "ui-stream", "-t", "5s", "-u", "4", "-r", "4", "--no-report")
    assert r.returncode == 0, r.stderr[-3000:]
    run = only_run(tmp_path)
    df = pd.read_parquet(run / "requests.parquet")
    live = df[df["error"] != "cancelled"]
    assert len(live) > 5 and live["error"].isna().all(), live["error"].value_counts()
    assert set(live["protocol"]) == {"ui-message-stream"} and set(live["content_type"]) == {"text/event-stream"}
    assert (live["chunks"] > 0).all()
    truth = {json.loads(x)["request_id"]: json.loads(x) for x in (run / "target-truth.jsonl").read_text().splitlines()}
    assert all(truth[rid]["parts"] == n for rid, n in zip(live["request_id"], live["chunks"]))


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_interrupt_keeps_records_and_report_builds(tmp_path, sig):
    # one-second replies: some are always in flight when the signal comes
    slow = str(Path(__file__).parent / "data" / "slow-profiles.yaml")
    cmd = bench_cmd("run", "--out", str(tmp_path), "--target-profiles", slow, "-q", "-t", "60s", "-u", "6")
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=bench_env())
    time.sleep(9)
    p.send_signal(sig)
    out, err = p.communicate(timeout=90)
    assert p.returncode == (130 if sig == signal.SIGINT else 143), err[-2000:]  # a cancelled CI job is not green
    assert f"interrupted ({sig.name}) after" in err and "s of 60 s" in err
    run_dir = only_run(tmp_path)
    meta = json.loads((run_dir / "run.json").read_text())
    assert meta["interrupted"] is True and meta["duration_s"] < 30 and meta["planned_duration_s"] == 60
    assert meta["warnings"][0].startswith(f"interrupted ({sig.name}) after")
    df = pd.read_parquet(run_dir / "requests.parquet")
    assert meta["records"] == len(df) == meta["requests_sent"]
    assert (df["error"] == "cancelled").sum() >= 1
    assert (run_dir / "report.html").is_file()


def test_step_shape_runs_and_stops_by_itself(target, tmp_path):
    out = tmp_path / "steps"
    cmd = [
        "locust",
        "-f",
        "locustfile.py,bench/load/shapes.py",
        "--host",
        target.url,
        "--headless",
        "--steps",
        "2:3s,4:3s",
        "--drain",
        "1",
        "--results-dir",
        str(out),
        "--auth",
        "jwt",
        "--only-summary",
    ]
    t0 = time.monotonic()
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=60, env=bench_env(), cwd=Path(__file__).parent.parent)
    assert r.returncode in (0, 1), r.stderr[-2000:]
    assert time.monotonic() - t0 < 40
    col = json.loads((out / "collector.json").read_text())
    assert col["sent"] == col["records"] > 5
    rep = subprocess.run(bench_cmd("report", str(out)), capture_output=True, text=True, timeout=120, env=bench_env())
    assert rep.returncode == 0, rep.stderr
    df = pd.read_parquet(out / "requests.parquet")
    assert df["user"].nunique() >= 3  # the second step added users


def test_tokenizer_counts_tokens_in_a_run(tmp_path):
    from test_stream import word_tokenizer

    r = run_bench(tmp_path / "out", "--tokenizer", str(word_tokenizer(tmp_path)), "-t", "4s", "-u", "4", "-r", "4", "--no-report")
    assert r.returncode == 0, r.stderr[-3000:]
    df = pd.read_parquet(only_run(tmp_path / "out") / "requests.parquet")
    ok = df[df["error"].isna()]
    assert len(ok) and (ok["token_source"] == "tokenizer:words").all()
    # full stops are tokens of their own, so the tokenizer counts more than the parts (the exact count is test_stream's)
    assert ok["output_tokens"].sum() > ok["chunks"].sum() and (ok["output_tokens"] != ok["chunks"]).mean() > 0.5
    # the prompt is counted too: every message of the history, so it grows turn by turn
    assert ok["prompt_tokens"].notna().all() and (ok["prompt_tokens"] > 0).all()
    grew = [
        g.sort_values("turn")["prompt_tokens"].is_monotonic_increasing for _, g in ok.groupby("conversation_id") if len(g) > 1
    ]
    assert grew and all(grew)


def test_run_over_https_with_a_private_ca(tls_files, tmp_path):
    """A staging deployment behind TLS signed by a private CA: --ca-file verifies it; without it the
    preflight stops with a hint; --insecure runs and says so in run.json."""
    from conftest import SECRET

    from bench.target import TargetProcess

    with TargetProcess(["--profiles", FAST, "--tls-cert", tls_files["cert"], "--tls-key", tls_files["key"]], secret=SECRET) as t:
        base = ["run", "--host", t.url, "--auth", "jwt", "-t", "4s", "-u", "3", "-r", "3", "-q", "--no-report"]
        ok = subprocess.run(
            bench_cmd(*base, "--out", str(tmp_path / "ca"), "--ca-file", tls_files["ca"]),
            capture_output=True,
            text=True,
            timeout=120,
            env=bench_env(),
        )
        refused = subprocess.run(
            bench_cmd(*base, "--out", str(tmp_path / "none")), capture_output=True, text=True, timeout=120, env=bench_env()
        )
        insecure = subprocess.run(
            bench_cmd(*base, "--out", str(tmp_path / "insecure"), "--insecure"),
            capture_output=True,
            text=True,
            timeout=120,
            env=bench_env(),
        )
    assert ok.returncode == 0, ok.stderr[-2000:]
    df = pd.read_parquet(only_run(tmp_path / "ca") / "requests.parquet")
    live = df[df["error"] != "cancelled"]
    assert len(live) and live["error"].isna().all() and (df["connect_ms"].notna().sum() >= 1)
    assert refused.returncode == 2 and "--ca-file" in refused.stderr
    assert insecure.returncode == 0, insecure.stderr[-2000:]
    meta = json.loads((only_run(tmp_path / "insecure") / "run.json").read_text())
    assert any("--insecure" in w for w in meta["warnings"]) and meta["route"]["tls"]["insecure"] is True


def test_history_like_the_real_client_and_sibling_routes_and_headers(tmp_path):
    """A reasoning model's next turn carries only the visible reply by default (as useChat sends it);
    --history full sends the <think> block too. The same run can go through a sibling route
    (provider=model with a route template), and --header values from the environment reach the
    server and no output."""
    scenario = tmp_path / "two-turns.yaml"
    scenario.write_text(
        "name: two-turns\nthink_time: {kind: fixed, seconds: 0}\nconversations:\n"
        "  - {name: c, turns: ['Explain queueing.', 'And in one sentence?']}\n"
    )
    base = ["--scenario", str(scenario), "-t", "5s", "-u", "2", "-r", "2", "--no-report", "--on-error", "next-turn"]
    r1 = run_bench(tmp_path / "visible", *base, "--models", "deepseek-ai/DeepSeek-R1-Distill-Qwen-32B")
    r2 = run_bench(tmp_path / "full", *base, "--models", "deepseek-ai/DeepSeek-R1-Distill-Qwen-32B", "--history", "full")
    assert r1.returncode == 0 and r2.returncode == 0, (r1.stderr[-2000:], r2.stderr[-2000:])

    def second_turn_growth(run: Path) -> float:
        df = pd.read_parquet(run / "requests.parquet")
        df = df[df["error"].isna()]
        pairs = df.pivot_table(index="conversation_id", columns="turn", values="prompt_chars").dropna(subset=[0, 1])
        assert len(pairs), "no conversation reached its second turn"
        return float((pairs[1] - pairs[0]).mean())

    assert second_turn_growth(only_run(tmp_path / "full")) > second_turn_growth(only_run(tmp_path / "visible")) + 50

    env = bench_env(GATEWAY_KEY="gw-secret-0123456789")
    r3 = subprocess.run(
        bench_cmd(
            "run",
            "--out",
            str(tmp_path / "sib"),
            "--target-profiles",
            FAST,
            "-q",
            "-t",
            "4s",
            "-u",
            "2",
            "-r",
            "2",
            "--models",
            "cloudflare=mistralai/Mistral-7B-Instruct-v0.3,huggingface=google/gemma-2-27b-it",
            "--route-template",
            "/api/ai/{provider}/{model}/chat?chat_id={chat_id}",
            "--header",
            "X-Gateway-Key: @env:GATEWAY_KEY",
            "--header",
            "X-Tenant: blue",
        ),
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert r3.returncode == 0, r3.stderr[-2000:]
    run = only_run(tmp_path / "sib")
    df = pd.read_parquet(run / "requests.parquet")
    assert set(df["model"]) == {"cloudflare=mistralai/Mistral-7B-Instruct-v0.3", "huggingface=google/gemma-2-27b-it"}
    assert df.loc[df["error"] != "cancelled", "error"].isna().all()
    for path in run.rglob("*"):
        if path.is_file():
            assert b"gw-secret-0123456789" not in path.read_bytes(), path
    assert json.loads((run / "run.json").read_text())["route"]["headers"] == ["X-Gateway-Key", "X-Tenant"]


def test_server_metrics_scraped_and_shown(tmp_path):
    """No think time and six users: streams are running at every scrape of the target's /metrics."""
    r = run_bench(tmp_path, "-t", "6s", "-u", "6", "-r", "6", "--scenario", str(Path(__file__).parent / "data" / "one-turn.yaml"))
    assert r.returncode == 0, r.stderr[-2000:]
    run = only_run(tmp_path)
    lines = (run / "server-metrics.jsonl").read_text().splitlines()
    assert (
        len(lines) >= 3 and "bench_requests_running{model=mistralai/Mistral-7B-Instruct-v0.3}" in json.loads(lines[-1])["samples"]
    )
    summary = json.loads((run / "summary.json").read_text())
    assert summary["server"]["running"]["max"] >= 1 and summary["server"]["tokens_per_s"]["mean"] > 0
    assert (run / "charts" / "server.png").is_file() and 'id="server"' in (run / "report.html").read_text()


def test_same_seed_replays_the_same_sequence_per_user(tmp_path):
    """Two runs with --seed 7: each user (by index) sends the same conversations to the same models in
    the same order; a third run with another seed does not."""

    def sequences(out: Path, seed: str) -> dict[int, list[tuple]]:
        r = run_bench(out, "-t", "6s", "-u", "4", "-r", "4", "--seed", seed, "--no-report", "--scenario", "short-qa")
        assert r.returncode == 0, r.stderr[-2000:]
        df = pd.read_parquet(only_run(out) / "requests.parquet").sort_values("t_start_ns")
        return {u: list(zip(g["conversation"], g["turn"], g["model"])) for u, g in df.groupby("user")}

    a, b, c = sequences(tmp_path / "a", "7"), sequences(tmp_path / "b", "7"), sequences(tmp_path / "c", "8")
    assert set(a) == set(b) == {0, 1, 2, 3}
    for u in a:
        n = min(len(a[u]), len(b[u]))
        assert n >= 3 and a[u][:n] == b[u][:n], (u, a[u][:n], b[u][:n])
    assert any(a[u][:3] != c[u][:3] for u in a)

"""Faults survived, workers lost, open-loop arrivals held, bad input refused, secrets kept."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from pathlib import Path

import httpx
import pandas as pd
import psutil
import pytest
import yaml
from conftest import FAST, bench_cmd, bench_env, token
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bench.errors import InputError
from bench.scenario import load_scenario

ROOT = Path(__file__).resolve().parent.parent
DATA = Path(__file__).parent / "data"


def test_faults_on_the_wire_are_classified_and_users_carry_on(tmp_path):
    faults = "500=0.06,429=0.05,stall=0.05:3,drop=0.05:2,malformed=0.04:2,error_part=0.04:2,garbage=0.04"
    r = subprocess.run(
        bench_cmd(
            "run",
            "--out",
            str(tmp_path),
            "--target-profiles",
            FAST,
            "-t",
            "10s",
            "-u",
            "10",
            "-r",
            "10",
            "--target-faults",
            faults,
            "--stall-timeout",
            "1",
            "-q",
        ),
        capture_output=True,
        text=True,
        timeout=120,
        env=bench_env(),
    )
    assert r.returncode == 0, r.stderr[-2000:]
    run_dir = next(p for p in tmp_path.iterdir() if p.is_dir() and not p.is_symlink())
    df = pd.read_parquet(run_dir / "requests.parquet")
    classes = set(df["error"].dropna())
    assert {"server_error", "rate_limited", "stall", "truncated", "decode_error", "stream_error"} <= classes, classes
    assert df["error"].isna().sum() > 20  # work went on around the failures
    late = df[df["t_wall_start"] > df["t_wall_start"].min() + 6]
    assert len(late) > 10  # users kept sending after their failures
    meta = json.loads((run_dir / "run.json").read_text())
    assert meta["records"] == meta["requests_sent"] == len(df)


def test_worker_killed_mid_run(target, tmp_path):
    out = tmp_path / "killed"
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
        "12s",
        "--processes",
        "2",
        "--results-dir",
        str(out),
        "--auth",
        "jwt",
        "--only-summary",
        "--scenario",
        str(DATA / "one-turn.yaml"),
    ]  # no think time: every user has a stream in flight at the kill
    p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=bench_env(), cwd=ROOT)
    time.sleep(6)
    workers = psutil.Process(p.pid).children()
    assert len(workers) == 2
    workers[0].send_signal(signal.SIGKILL)
    _, err = p.communicate(timeout=120)
    col = json.loads((out / "collector.json").read_text())
    finals = [w["final"] for w in col["workers"].values()]
    assert sorted(finals) == [False, True], col
    assert any("no final report" in w for w in col["warnings"])
    survivor = next(w for w in col["workers"].values() if w["final"])
    assert survivor["sent"] == survivor["received"]
    rep = subprocess.run(bench_cmd("report", str(out)), capture_output=True, text=True, timeout=120, env=bench_env())
    assert rep.returncode == 0, rep.stderr
    meta = json.loads((out / "run.json").read_text())
    assert any("no final report" in w for w in meta["warnings"])
    # what the dead worker had in flight (or finished but never reported) is recorded, outcome unknown
    df = pd.read_parquet(out / "requests.parquet")
    lost = df[df["error"] == "worker_lost"]
    assert len(lost) == col["worker_lost"] > 0 and lost["worker"].nunique() == 1
    assert meta["records"] == len(df) == meta["requests_sent"]  # nothing unaccounted for


def test_open_loop_keeps_its_rate_when_the_server_slows(tmp_path):
    """Conversations arrive at 6/s whether replies take 0.1 s or 2 s; time lost waiting is recorded."""
    counts = {}
    for name, profile in (("fast", FAST), ("slow", str(DATA / "slow-profiles.yaml"))):
        out = tmp_path / name
        r = subprocess.run(
            bench_cmd(
                "run",
                "--out",
                str(out),
                "--target-profiles",
                profile,
                "-t",
                "8s",
                "-u",
                "60",
                "-r",
                "60",
                "--load-mode",
                "open",
                "--arrival-rate",
                "6",
                "--scenario",
                str(DATA / "one-turn.yaml"),
                "-q",
                "--no-report",
            ),
            capture_output=True,
            text=True,
            timeout=120,
            env=bench_env(),
        )
        assert r.returncode == 0, r.stderr[-2000:]
        df = pd.read_parquet(next(p for p in out.iterdir() if p.is_dir() and not p.is_symlink()) / "requests.parquet")
        counts[name] = len(df)
        assert (df["intended_delay_ms"] >= 0).all()
    assert 30 <= counts["fast"] <= 70 and 30 <= counts["slow"] <= 70, counts  # 6/s for ~8 s, Poisson
    assert abs(counts["fast"] - counts["slow"]) <= 25, counts


def test_open_loop_records_coordinated_omission(tmp_path):
    """Two users for 6 arrivals/s of 1 s streams: arrivals queue in the generator, and it shows."""
    r = subprocess.run(
        bench_cmd(
            "run",
            "--out",
            str(tmp_path),
            "--target-profiles",
            str(DATA / "slow-profiles.yaml"),
            "-t",
            "8s",
            "-u",
            "2",
            "-r",
            "2",
            "--load-mode",
            "open",
            "--arrival-rate",
            "6",
            "--scenario",
            str(DATA / "one-turn.yaml"),
            "-q",
            "--no-report",
        ),
        capture_output=True,
        text=True,
        timeout=120,
        env=bench_env(),
    )
    assert r.returncode == 0, r.stderr[-2000:]
    df = pd.read_parquet(next(p for p in tmp_path.iterdir() if p.is_dir() and not p.is_symlink()) / "requests.parquet")
    ok = df[df["error"].isna()]
    assert (ok["ttfc_sched_ms"] - ok["ttfc_ms"]).max() > 1000
    assert (ok["ttfc_sched_ms"] >= ok["ttfc_ms"] - 0.01).all()


yaml_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4),
    max_leaves=12,
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(doc=st.one_of(st.text(max_size=200), yaml_values.map(lambda v: yaml.safe_dump(v))))
def test_scenario_loader_only_raises_input_error(tmp_path, doc):
    p = tmp_path / "fuzz.yaml"
    p.write_text(doc, encoding="utf-8")
    try:
        load_scenario(p)
    except InputError as exc:
        assert str(p) in str(exc)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_scenario_loader_mutations_of_a_valid_file(tmp_path, data):
    text = (ROOT / "scenarios" / "default.yaml").read_text()
    i = data.draw(st.integers(0, len(text) - 1))
    j = data.draw(st.integers(i, min(len(text), i + 20)))
    junk = data.draw(st.text(max_size=10))
    p = tmp_path / "mut.yaml"
    p.write_text(text[:i] + junk + text[j:], encoding="utf-8")
    try:
        load_scenario(p)
    except InputError as exc:
        assert "line" in str(exc) or "not valid YAML" in str(exc) or str(p) in str(exc)


def test_bearer_token_never_written(gateway_target, tmp_path):
    secret_token = token()
    r = subprocess.run(
        bench_cmd("run", "--host", gateway_target.url, "--auth", "bearer", "--out", str(tmp_path), "-t", "4s", "-u", "3", "-q"),
        capture_output=True,
        text=True,
        timeout=90,
        env=bench_env(BENCH_TOKEN=secret_token),
    )
    assert r.returncode == 0, r.stderr[-2000:]
    assert secret_token not in r.stdout + r.stderr
    run_dir = next(p for p in tmp_path.iterdir() if p.is_dir() and not p.is_symlink())
    for path in run_dir.rglob("*"):
        if path.is_file():
            assert secret_token.encode() not in path.read_bytes(), path
    meta = json.loads((run_dir / "run.json").read_text())
    assert meta["records"] > 0 and "BENCH_TOKEN" not in meta["command"]


def test_token_file_and_missing_token(gateway_target, tmp_path):
    f = tmp_path / "token"
    f.write_text(token() + "\n")
    target = gateway_target
    r = subprocess.run(
        bench_cmd(
            "run",
            "--host",
            target.url,
            "--auth",
            "bearer",
            "--token-file",
            str(f),
            "--out",
            str(tmp_path / "o"),
            "-t",
            "3s",
            "-u",
            "2",
            "-q",
            "--no-report",
        ),
        capture_output=True,
        text=True,
        timeout=90,
        env=bench_env(),
    )
    assert r.returncode == 0, r.stderr[-2000:]
    r = subprocess.run(
        bench_cmd("run", "--host", target.url, "--auth", "bearer", "--out", str(tmp_path / "p"), "-t", "3s", "-q"),
        capture_output=True,
        text=True,
        timeout=90,
        env=bench_env(),
    )
    assert r.returncode == 2 and "BENCH_TOKEN" in r.stderr


@pytest.mark.parametrize(
    "args,needle",
    [
        (["--target-faults", "explode=0.1"], "unknown fault"),
        (["--target-faults", "500=2"], "between 0 and 1"),
        (["-r", "0"], "--spawn-rate"),
    ],
)
def test_more_bad_values(tmp_path, args, needle):
    r = subprocess.run(
        bench_cmd("run", "--out", str(tmp_path), "-q", "-t", "3s", *args),
        capture_output=True,
        text=True,
        timeout=60,
        env=bench_env(),
    )
    assert r.returncode == 2 and needle in r.stderr, r.stderr


def test_non_http_host_is_refused_before_load(tmp_path):
    import socket
    import threading

    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(8)
    port = srv.getsockname()[1]
    stop = threading.Event()

    def serve():
        srv.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = srv.accept()
            except OSError:
                continue
            conn.sendall(b"SSH-2.0-OpenSSH_9.0\r\n")
            conn.close()

    th = threading.Thread(target=serve, daemon=True)
    th.start()
    try:
        r = subprocess.run(
            bench_cmd("run", "--host", f"http://127.0.0.1:{port}", "--auth", "none", "--out", str(tmp_path), "-q", "-t", "3s"),
            capture_output=True,
            text=True,
            timeout=60,
            env=bench_env(),
        )
    finally:
        stop.set()
        th.join(2)
        srv.close()
    assert r.returncode == 2 and "HTTP" in r.stderr and "no load was sent" in r.stderr, r.stderr


def test_session_cookie_end_to_end(target, tmp_path):
    f = tmp_path / "cookie"
    f.write_text(token())
    r = subprocess.run(
        bench_cmd(
            "run",
            "--host",
            target.url,
            "--auth",
            "cookie",
            "--cookie-file",
            str(f),
            "--out",
            str(tmp_path / "o"),
            "-t",
            "3s",
            "-u",
            "2",
            "-q",
            "--no-report",
        ),
        capture_output=True,
        text=True,
        timeout=90,
        env=bench_env(),
    )
    assert r.returncode == 0, r.stderr[-2000:]
    df = pd.read_parquet(next(p for p in (tmp_path / "o").iterdir() if not p.is_symlink()) / "requests.parquet")
    assert len(df) > 0 and (df["error"].isna() | (df["error"] == "cancelled")).all()


def test_load_drop_flags_only_a_fall_nobody_asked_for():
    from bench.load.drop import load_drop

    ramp = [(1, 4, 16, "spawning"), (2, 8, 16, "spawning"), (3, 16, 16, "running"), (4, 16, 16, "running")]
    assert load_drop(ramp) is None  # users climbing to the target
    steps = ramp + [(5, 8, 8, "running"), (6, 8, 8, "running"), (7, 16, 16, "running")]
    assert load_drop(steps) is None  # a step shape (or the web UI) moved the target with the users
    stopping = ramp + [(5, 0, 16, "stopping")]
    assert load_drop(stopping) is None  # the end of the run
    lost = ramp + [(5, 16, 16, "running"), (6, 8, 16, "running"), (7, 8, 16, "running"), (9, 8, 16, "running")]
    msg = load_drop(lost)
    assert msg and "from 16 to 8 users at 6 s" in msg and "reduced to the end of the run (3 s)" in msg
    # users back after 15 s (a worker rejoined): the recovery is when they came back, not the run's end
    back = ramp + [(5, 16, 16, "running"), (6, 8, 16, "running"), (21, 16, 16, "running"), (44, 16, 16, "running")]
    msg = load_drop(back)
    assert msg and "stayed reduced for 15 s (back to 16 users at 21 s)" in msg, msg


def test_worker_clock_keeps_the_exchange_with_the_shortest_round_trip():
    from bench.load.clock import WorkerClock, clock_warnings

    c = WorkerClock()
    assert c.best() is None and clock_warnings({"w": None})  # never answered: said, not assumed zero
    c.add(100.0, 105.2, 100.4)  # 400 ms round trip: offset 5.0 +- 0.2
    c.add(200.0, 205.0005, 200.001)  # 1 ms round trip: offset 5.0000 +- 0.0005
    offset, rtt = c.best()
    assert offset == pytest.approx(5.0, abs=1e-6) and rtt == pytest.approx(0.001)
    s = c.summary()
    assert s["uncertainty_s"] == pytest.approx(0.0005) and s["exchanges"] == 2
    warnings = clock_warnings({"w": s})
    assert len(warnings) == 1 and "+5.000 s off" in warnings[0]  # far off, but known precisely
    slow = WorkerClock()
    slow.add(0.0, 0.1, 0.2)
    assert any("only to" in w for w in clock_warnings({"w": slow.summary()}))  # 100 ms of uncertainty is said


def test_a_full_disk_stops_the_run_in_one_line_and_keeps_every_record(target, tmp_path):
    """--out on a nearly full 3 MB tmpfs: the spool write fails, the run stops after the retry window with one
    line on the terminal, the rows go to the rescue folder in the system temp folder, bench exits 1 naming
    where the records are; once space is free, bench report builds the folder with every record. Before: a
    40-line traceback after 128 s, the line only in locust.log on the full disk, rows lost."""
    import os
    import shutil

    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("mounting a tmpfs needs root (CI runs as root)")
    disk = tmp_path / "disk"
    disk.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", str(disk)], capture_output=True).returncode:
        pytest.skip("cannot mount a tmpfs here")
    try:
        fill = disk / "fill"
        with open(fill, "wb") as f:  # leave ~120 KB: the run starts, then its records stop fitting
            f.write(b"\0" * (3 * 1024 * 1024 - 120 * 1024))
        httpx.delete(target.url + "/_bench/truth", timeout=5)
        out = disk / "out"
        r = subprocess.run(
            bench_cmd("run", "--host", target.url, "--auth", "jwt", "--scenario", str(DATA / "one-turn.yaml"))
            + ["--models", "qwen/Qwen2.5-72B-Instruct", "-u", "8", "-t", "60s", "--out", str(out), "--no-report"],
            capture_output=True,
            text=True,
            timeout=180,
            env=bench_env(),
        )
        truth = httpx.get(target.url + "/_bench/truth", timeout=10).json()
        assert r.returncode == 1, r.stderr[-2000:]
        assert "Traceback" not in r.stderr, r.stderr[-3000:]
        errors = [x for x in r.stderr.splitlines() if x.startswith("error: ")]
        assert any("records could not be written" in x and "kept in" in x for x in errors), r.stderr[-2000:]
        assert "could not be finished" in errors[-1] and "bench report" in errors[-1], errors
        run_dir = next(p for p in out.iterdir() if p.is_dir() and not p.is_symlink())
        fill.unlink()  # space again
        rep = subprocess.run(bench_cmd("report", str(run_dir)), capture_output=True, text=True, timeout=120, env=bench_env())
        assert rep.returncode == 0, rep.stderr[-2000:]
        df = pd.read_parquet(run_dir / "requests.parquet")
        meta = json.loads((run_dir / "run.json").read_text())
        assert any("disk was full" in w for w in meta["warnings"]), meta["warnings"]
        received = {t["request_id"] for t in truth} - {p["request_id"] for p in meta.get("preflight") or []}
        missing = received - set(df["request_id"])
        # bench run's own preflight request is in the truth; its log was in the run.json the full disk refused
        assert len(received) > 20 and len(missing) <= 1, (len(received), len(missing))
    finally:
        subprocess.run(["umount", "-l", str(disk)], capture_output=True)

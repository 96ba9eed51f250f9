"""Other hosts: only the run's own workers join its master (``bench.load.workerauth``), and the web UI
neither listens beyond loopback nor sends the run's credentials to a host it names, unless asked.

A plain Locust master with the run's secret, on loopback; three workers: one with the secret, one
with a wrong one, one with none (a stray Locust process, as an orphaned worker or another run's is).
Only the first gets users; the other two are told to quit, their messages reach no record, and the
run says whom it refused and why.
"""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import pandas as pd
from conftest import bench_env

from bench.launch import free_loopback_port

ROOT = Path(__file__).resolve().parent.parent
ONE_TURN = str(Path(__file__).parent / "data" / "one-turn.yaml")


def _locust(*args: str, secret: str | None) -> list[str]:
    return ["locust", "-f", "locustfile.py", "--scenario", ONE_TURN, "--auth", "jwt", *args]


def _env(secret: str | None) -> dict:
    env = bench_env()
    env.pop("BENCH_RUN_SECRET", None)
    if secret is not None:
        env["BENCH_RUN_SECRET"] = secret
    return env


def test_a_worker_without_the_run_secret_is_refused_and_reported(target, tmp_path):
    port = str(free_loopback_port())
    out = tmp_path / "run"
    master = subprocess.Popen(
        _locust(
            "--master",
            "--master-bind-host",
            "127.0.0.1",
            "--master-bind-port",
            port,
            "--headless",
            "--expect-workers",
            "1",
            "--host",
            target.url,
            "-u",
            "4",
            "-r",
            "4",
            "-t",
            "6s",
            "--only-summary",
            "--results-dir",
            str(out),
            secret="s3cret",
        ),
        env=_env("s3cret"),
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    worker = ["--worker", "--master-host", "127.0.0.1", "--master-port", port]
    strangers = [
        subprocess.Popen(_locust(*worker, secret=s), env=_env(s), cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        for s in ("wrong", None)
    ]
    time.sleep(3)  # the strangers connect first: were they admitted, the master would start with one of them
    own = subprocess.Popen(
        _locust(*worker, secret="s3cret"), env=_env("s3cret"), cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    try:
        _, err = master.communicate(timeout=90)
        own.wait(30)
        # told to quit: neither stays around to join the next run on this machine
        for p in strangers:
            p.wait(30)
    finally:
        for p in (master, own, *strangers):
            if p.poll() is None:
                p.kill()
    col = json.loads((out / "collector.json").read_text())
    auth = col["worker_auth"]
    assert auth["authenticated"] and auth["verified"] == 1, auth
    reasons = sorted(r["reason"] for r in auth["refused"])
    assert len(reasons) == 2 and reasons[0].startswith("no secret") and reasons[1] == "wrong secret", auth
    assert list(col["workers"]) and len(col["workers"]) == 1, col["workers"]
    assert any("refused 2 worker(s)" in w for w in col["warnings"]), col["warnings"]
    df = pd.read_parquet(out / "requests.parquet")
    assert len(df) > 0 and df["worker"].nunique() == 1 and df["worker"].iloc[0] in col["workers"]
    meta = json.loads((out / "run.json").read_text())
    assert any("refused 2 worker(s)" in w for w in meta["warnings"])
    assert "s3cret" not in (out / "run.json").read_text() + (out / "collector.json").read_text() + err


def test_a_master_without_a_secret_says_its_workers_were_not_authenticated(target, tmp_path):
    """Plain Locust across machines without BENCH_RUN_SECRET still runs (as Locust does) and says so."""
    port = str(free_loopback_port())
    out = tmp_path / "run"
    args = ("--host", target.url, "-u", "2", "-r", "2", "-t", "3s", "--only-summary", "--results-dir", str(out))
    master = subprocess.Popen(
        _locust(
            "--master",
            "--master-bind-host",
            "127.0.0.1",
            "--master-bind-port",
            port,
            "--headless",
            "--expect-workers",
            "1",
            *args,
            secret=None,
        ),
        env=_env(None),
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    worker = subprocess.Popen(
        _locust("--worker", "--master-host", "127.0.0.1", "--master-port", port, secret=None),
        env=_env(None),
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        master.wait(90)
        worker.wait(30)
    finally:
        for p in (master, worker):
            if p.poll() is None:
                p.kill()
    col = json.loads((out / "collector.json").read_text())
    assert col["worker_auth"]["authenticated"] is False and col["worker_auth"]["refused"] == []
    assert any("workers were not authenticated" in w and "BENCH_RUN_SECRET" in w for w in col["warnings"])
    assert len(pd.read_parquet(out / "requests.parquet")) > 0


def test_bench_run_processes_authenticates_its_own_workers(tmp_path):
    from conftest import FAST, bench_cmd

    r = subprocess.run(
        bench_cmd(
            "run",
            "--out",
            str(tmp_path),
            "--scenario",
            ONE_TURN,
            "--target-profiles",
            FAST,
            "--processes",
            "2",
            "-u",
            "4",
            "-t",
            "4s",
            "--no-report",
        ),
        capture_output=True,
        text=True,
        timeout=180,
        env=bench_env(),
        cwd=ROOT,
    )
    assert r.returncode == 0, r.stderr[-2000:]
    run_dir = (tmp_path / "latest").resolve()
    meta = json.loads((run_dir / "run.json").read_text())
    auth = meta["collector"]["worker_auth"]
    assert auth == {"authenticated": True, "verified": 2, "refused": []}, auth
    assert not any("authenticated" in w or "refused" in w for w in meta["warnings"]), meta["warnings"]


def _wait_http(url: str, timeout: float = 30) -> None:
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            httpx.get(url, timeout=1)
            return
        except httpx.HTTPError:
            time.sleep(0.2)
    raise AssertionError(f"{url} did not come up")


def test_the_web_ui_keeps_the_host_given_at_start(target, tmp_path):
    """POST /swarm naming another host (as anyone who reaches the page can) starts no load there: the run
    says why; with --allow-host-change the page may choose. The UI listens on 127.0.0.1 by default."""
    import socket

    import httpx
    import psutil

    # a listener standing in for "elsewhere": it must never see a request
    elsewhere = socket.socket()
    elsewhere.bind(("127.0.0.1", 0))
    elsewhere.listen(16)
    elsewhere.settimeout(0.1)
    other = f"http://127.0.0.1:{elsewhere.getsockname()[1]}"
    for allow in (False, True):
        web = str(free_loopback_port())
        out = tmp_path / f"allow-{allow}"
        cmd = _locust("--host", target.url, "--web-port", web, "--results-dir", str(out), secret=None)
        cmd += ["--allow-host-change"] if allow else []
        ui = subprocess.Popen(cmd, env=_env(None), cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        try:
            _wait_http(f"http://127.0.0.1:{web}/")
            listening = {c.laddr for c in psutil.Process(ui.pid).net_connections("tcp") if c.status == "LISTEN"}
            assert all(a.ip == "127.0.0.1" for a in listening if a.port == int(web)), listening
            r = httpx.post(f"http://127.0.0.1:{web}/swarm", data={"user_count": 1, "spawn_rate": 1, "host": other}, timeout=10)
            assert r.status_code == 200
            reached = 0
            deadline = time.monotonic() + 4
            while time.monotonic() < deadline:
                try:
                    conn, _ = elsewhere.accept()
                    reached += 1
                    conn.close()
                except TimeoutError:
                    pass
        finally:
            ui.terminate()
            _, err = ui.communicate(timeout=60)
        if allow:
            assert reached > 0  # the page chose the host, as asked: the preflight went there
        else:
            assert reached == 0, err[-2000:]
            assert f"the web UI asked to load {other}" in err and "--allow-host-change" in err, err[-2000:]
    elsewhere.close()


def test_a_master_killed_mid_run_is_an_interrupted_run_with_its_loss_counted(tmp_path):
    """SIGKILL the Locust master of ``bench run --processes 2``: its workers notice within a second, keep
    their rows (streams in flight as ``cancelled``) in the run folder and exit; bench says so in one line,
    exits 1, and run.json counts what has no record. Before: exit 0, ``interrupted: false``, no warning,
    20 of 165 requests without a record, the workers retrying for 60 s."""
    import signal

    import psutil
    from conftest import FAST, bench_cmd

    bench = subprocess.Popen(
        bench_cmd("run", "--out", str(tmp_path), "--scenario", ONE_TURN, "--target-profiles", FAST)
        + ["--processes", "2", "-u", "8", "-t", "30s", "--no-report"],
        env=bench_env(),
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        master = None
        while time.monotonic() < deadline and master is None:
            for child in psutil.Process(bench.pid).children():
                try:
                    if "locust" in " ".join(child.cmdline()) and len(child.children()) == 2:
                        master = child
                except psutil.NoSuchProcess:
                    pass
            time.sleep(0.2)
        assert master is not None, "no Locust master with two workers appeared"
        workers = master.children()
        time.sleep(6)  # load running on both workers, streams in flight
        master.send_signal(signal.SIGKILL)
        out, err = bench.communicate(timeout=120)
    finally:
        if bench.poll() is None:
            bench.kill()
    assert bench.returncode == 1, err[-2000:]
    assert "error: the Locust master died (SIGKILL)" in err, err[-2000:]
    # the workers are gone: no orphan left to retry (or join the next run)
    time.sleep(0.5)
    assert not [w for w in workers if w.is_running() and w.status() != psutil.STATUS_ZOMBIE]
    run_dir = (tmp_path / "latest").resolve()
    meta = json.loads((run_dir / "run.json").read_text())
    died = meta["master_died"]
    assert meta["interrupted"] and meta["interrupted_by"] == "master died" and died["how"] == "SIGKILL"
    assert meta["warnings"][0].startswith("the Locust master died (SIGKILL)")
    assert len(died["workers"]) == 2 and died["kept_by_workers"] > 0  # the in-flight streams at least
    df = pd.read_parquet(run_dir / "requests.parquet")
    assert len(df) == died["records"] and (df["error"] == "cancelled").sum() > 0
    # every request the target received is a record, or counted as having none
    truth = [json.loads(line) for line in (run_dir / "target-truth.jsonl").read_text().splitlines() if line]
    received = {t["request_id"] for t in truth} - {p["request_id"] for p in meta.get("preflight") or []}
    assert len(received - set(df["request_id"])) <= died["unrecorded"], (len(received - set(df["request_id"])), died)
    assert died["sent_at_least"] >= len(received) - 2  # the last progress line or the workers' own counts
    assert not list(run_dir.glob("*.spool"))  # all merged into requests.parquet
    print({k: v for k, v in died.items() if k != "workers"}, "target received", len(received))


def test_two_processes_runs_at_once_each_hold_only_their_own_records(tmp_path):
    """Before: the second master could not bind *:5557 and its workers joined the first run (55,487 foreign
    records). Now each master is on loopback and a free port, and admits only workers with its own secret."""
    from conftest import FAST, bench_cmd

    runs = []
    for name in ("a", "b"):
        out = tmp_path / name
        runs.append(
            (
                out,
                subprocess.Popen(
                    bench_cmd("run", "--out", str(out), "--scenario", ONE_TURN, "--target-profiles", FAST)
                    + ["--processes", "2", "-u", "4", "-t", "6s", "--no-report"],
                    env=bench_env(),
                    cwd=ROOT,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.PIPE,
                    text=True,
                ),
            )
        )
    for _out, p in runs:
        _, err = p.communicate(timeout=180)
        assert p.returncode == 0, err[-2000:]
    seen = []
    for out, _ in runs:
        run_dir = (out / "latest").resolve()
        meta = json.loads((run_dir / "run.json").read_text())
        workers = set(meta["collector"]["workers"])
        df = pd.read_parquet(run_dir / "requests.parquet")
        assert len(workers) == 2 and set(df["worker"]) <= workers, (workers, set(df["worker"]))
        assert meta["collector"]["worker_auth"]["refused"] == [] and meta["records"] == len(df) > 0
        seen.append(workers)
    assert not seen[0] & seen[1]


def test_a_worker_on_another_host_keeps_its_rows_when_the_master_goes_silent(target, tmp_path):
    """Not forked by the master (as on another machine): 15 s without a heartbeat and the worker keeps its
    rows in worker-<id>.spool and exits (Locust's own worker waited 60 s, then quit with them in memory)."""
    import signal

    port = str(free_loopback_port())
    out = tmp_path / "run"
    env = _env("s3cret")
    master = subprocess.Popen(
        _locust("--master", "--master-bind-host", "127.0.0.1", "--master-bind-port", port, "--headless", secret="s3cret")
        + ["--expect-workers", "1", "--host", target.url, "-u", "4", "-r", "4", "-t", "60s", "--results-dir", str(out)],
        env=env,
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    worker = subprocess.Popen(
        _locust("--worker", "--master-host", "127.0.0.1", "--master-port", port, secret="s3cret"),
        env=env,
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        time.sleep(6)
        master.send_signal(signal.SIGKILL)
        master.wait(10)
        t0 = time.monotonic()
        _, err = worker.communicate(timeout=40)
        took = time.monotonic() - t0
    finally:
        for p in (master, worker):
            if p.poll() is None:
                p.kill()
    assert worker.returncode == 3 and 14 <= took <= 25, (worker.returncode, took, err[-1500:])
    assert "no heartbeat from the Locust master for 15 s" in err and "records kept in" in err, err[-1500:]
    (info,) = [json.loads(f.read_text()) for f in out.glob("worker-*.json")]
    assert info["saved_rows"] > 0 and info["sent"] >= info["saved_rows"]
    assert list(out.glob("worker-*.spool"))

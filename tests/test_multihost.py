"""Across machines for real: hosts as network namespaces joined by a bridge.

The target, the master and two workers each run in a network namespace of their own (their own
interfaces and addresses, as separate machines would have), joined by a Linux bridge on a private
/24 that reaches nothing else. One worker's wall clock is made 5 s fast (``BENCH_TEST_CLOCK_OFFSET_S``,
the test hook for a machine without NTP) and the other worker is killed mid-run. Checks: every
request the target received is a record (the killed worker's unreported ones as ``worker_lost``),
each worker's clock offset is estimated and recorded, its stamps are corrected, and the load drop
is flagged. Needs root and iproute2 (CI runs as root); skipped with the reason otherwise.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pandas as pd
import pytest
from conftest import FAST

ROOT = Path(__file__).resolve().parent.parent
TAG = f"b{os.getpid() % 100000}"
SUBNET = f"10.213.{os.getpid() % 200 + 20}."
HOSTS = {"t": 1, "m": 2, "w1": 3, "w2": 4}
SECRET = {"BENCH_RUN_SECRET": "multi-host-run-secret"}  # the same value on the master and its workers


def sh(*args: str) -> None:
    subprocess.run(args, check=True, capture_output=True, timeout=20)


def ns(name: str) -> str:
    return f"{TAG}-{name}"


@pytest.fixture()
def hosts():
    if os.geteuid() != 0 or shutil.which("ip") is None:
        pytest.skip("network namespaces need root and iproute2 (CI runs as root)")
    made: list[str] = []
    bridge = f"{TAG}br"
    try:
        sh("ip", "link", "add", bridge, "type", "bridge")
        sh("ip", "addr", "add", f"{SUBNET}254/24", "dev", bridge)  # the test process reaches the target here
        sh("ip", "link", "set", bridge, "up")
        for name, octet in HOSTS.items():
            sh("ip", "netns", "add", ns(name))
            made.append(ns(name))
            a, b = f"{TAG}{name}a", f"{TAG}{name}b"
            sh("ip", "link", "add", a, "type", "veth", "peer", "name", b)
            sh("ip", "link", "set", a, "master", bridge)
            sh("ip", "link", "set", a, "up")
            sh("ip", "link", "set", b, "netns", ns(name))
            sh("ip", "-n", ns(name), "addr", "add", f"{SUBNET}{octet}/24", "dev", b)
            sh("ip", "-n", ns(name), "link", "set", b, "up")
            sh("ip", "-n", ns(name), "link", "set", "lo", "up")
    except (subprocess.CalledProcessError, OSError) as exc:
        for n in made:
            subprocess.run(["ip", "netns", "del", n], capture_output=True)
        subprocess.run(["ip", "link", "del", bridge], capture_output=True)
        pytest.skip(f"cannot build network namespaces here: {getattr(exc, 'stderr', b'') or exc}")
    yield {name: f"{SUBNET}{octet}" for name, octet in HOSTS.items()}
    for n in made:
        subprocess.run(["ip", "netns", "del", n], capture_output=True)
    subprocess.run(["ip", "link", "del", bridge], capture_output=True)


def in_ns(name: str, cmd: list[str], env: dict | None = None, **kw) -> subprocess.Popen:
    return subprocess.Popen(["ip", "netns", "exec", ns(name), *cmd], cwd=ROOT, env={**os.environ, **(env or {})}, **kw)


def test_master_two_workers_and_a_target_on_separate_hosts(hosts, tmp_path):
    addr = hosts
    port = 18080
    procs: list[subprocess.Popen] = []
    target = in_ns(
        "t",
        [
            sys.executable,
            "-m",
            "bench",
            "target",
            "--host",
            addr["t"],
            "--port",
            str(port),
            "--profiles",
            FAST,
            "--no-auth",
            "--seed",
            "1",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    procs.append(target)
    try:
        url = f"http://{addr['t']}:{port}"
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if httpx.get(url + "/_bench/health", timeout=1).status_code < 500:
                    break
            except httpx.HTTPError:
                time.sleep(0.2)
        else:
            pytest.fail("the target did not come up in its namespace")
        out = tmp_path / "run"
        common = ["-f", "locustfile.py", "--auth", "none", "--scenario", str(ROOT / "tests" / "data" / "one-turn.yaml")]
        master = in_ns(
            "m",
            [
                "locust",
                *common,
                "--master",
                "--master-bind-host",
                addr["m"],
                "--master-bind-port",
                "15557",
                "--expect-workers",
                "2",
                "--headless",
                "-u",
                "16",
                "-r",
                "16",
                "-t",
                "16s",
                "--host",
                url,
                "--results-dir",
                str(out),
                "--only-summary",
            ],
            env=SECRET,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        procs.append(master)
        wargs = ["locust", *common, "--worker", "--master-host", addr["m"], "--master-port", "15557"]
        # another host that reaches the master's port, without the run's secret: refused, given no users
        stranger = in_ns("t", wargs, env={"BENCH_RUN_SECRET": ""}, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        procs.append(stranger)
        time.sleep(2)
        skewed = in_ns(
            "w1", wargs, env={"BENCH_TEST_CLOCK_OFFSET_S": "5", **SECRET}, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        doomed = in_ns("w2", wargs, env=SECRET, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        procs += [skewed, doomed]
        time.sleep(9)  # spawn, then streams in flight on both workers
        doomed.send_signal(signal.SIGKILL)
        _, err = master.communicate(timeout=120)
        assert master.returncode in (0, 1), err[-3000:]
        truth = httpx.get(url + "/_bench/truth", timeout=10).json()
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait(10)
    received = {t["request_id"] for t in truth}
    meta = json.loads((out / "run.json").read_text())
    df = pd.read_parquet(out / "requests.parquet")
    ids = set(df["request_id"])
    lost = df[df["error"] == "worker_lost"]
    # every request the target received is a record (or the master's preflight, listed in run.json); the
    # killed worker's unreported ones are worker_lost
    preflight = {p["request_id"] for p in meta.get("preflight") or []}
    assert len(preflight) == 1 and preflight <= received, meta.get("preflight")
    received -= preflight
    assert received <= ids, (len(received - ids), len(received), len(ids))
    assert len(lost) > 0 and len(ids - received) <= 2
    assert meta["records"] == len(df)
    # clock offsets estimated per worker (NTP-style) and recorded with their bound
    clocks = {w: v.get("clock") for w, v in meta["collector"]["workers"].items()}
    print(
        f"records {len(df)} (worker_lost {len(lost)}), target received {len(received)}; clocks "  # pytest -s shows it
        + "; ".join(f"{c['offset_s']:+.6f} s +- {c['uncertainty_s'] * 1000:.2f} ms" for c in clocks.values() if c)
    )
    offsets = sorted(c["offset_s"] for c in clocks.values() if c)
    assert len(offsets) == 2, clocks
    assert abs(offsets[0]) < 0.05 and abs(offsets[1] - 5) < 0.05, clocks
    assert all(c["uncertainty_s"] < 0.05 for c in clocks.values() if c)
    # stamps on the master's clock: the window is the run's, not stretched by the fast clock
    span = df["t_wall_start"].max() - df["t_wall_start"].min()
    assert span < 17, span
    # the load drop is flagged
    assert any("users" in w and "fell" in w for w in meta["warnings"]), meta["warnings"]
    # the stranger was refused, said so, and told to quit; no record is its
    auth = meta["collector"]["worker_auth"]
    assert auth["verified"] == 2 and len(auth["refused"]) == 1 and auth["refused"][0]["reason"].startswith("no secret"), auth
    assert any("refused 1 worker(s)" in w for w in meta["warnings"])
    assert stranger.wait(30) is not None
    assert set(df["worker"]) <= set(meta["collector"]["workers"])


def test_the_web_ui_is_not_reachable_from_another_host_by_default(hosts):
    """Plain Locust's web UI on the master's host: loopback there answers, the next host cannot connect."""
    cmd = ["locust", "-f", "locustfile.py", "--auth", "none", "--web-port", "18089"]  # no --host: no preflight to pass
    cmd += ["--scenario", str(ROOT / "tests" / "data" / "one-turn.yaml")]
    ui = in_ns("m", cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    probe = [sys.executable, "-c", "import sys, httpx; httpx.get(sys.argv[1], timeout=2); print('reached')"]
    try:
        for _ in range(60):
            local = subprocess.run(
                ["ip", "netns", "exec", ns("m"), *probe, "http://127.0.0.1:18089/"], capture_output=True, text=True
            )
            if local.returncode == 0:
                break
            time.sleep(0.5)
        assert local.returncode == 0 and "reached" in local.stdout, local.stderr[-500:]
        remote = subprocess.run(
            ["ip", "netns", "exec", ns("w1"), *probe, f"http://{hosts['m']}:18089/"], capture_output=True, text=True
        )
        assert remote.returncode != 0 and "reached" not in remote.stdout
        assert "ConnectError" in remote.stderr or "refused" in remote.stderr, remote.stderr[-500:]
    finally:
        ui.terminate()
        ui.wait(30)

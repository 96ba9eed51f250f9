"""Bad input that used to get through: a traceback, a refusal after the load began, an option silently ignored."""

from __future__ import annotations

import json
import socket
import subprocess
from pathlib import Path

import pytest
from conftest import FAST, bench_cmd, bench_env

DATA = Path(__file__).parent / "data"


def bench(*args: str, timeout: float = 90) -> subprocess.CompletedProcess:
    return subprocess.run(bench_cmd(*args), capture_output=True, text=True, timeout=timeout, env=bench_env())


@pytest.mark.parametrize(
    "case",
    [
        "out-through-a-file",
        "out-is-a-file",
        "token-file-missing",
        "adaptive-negative",
        "chat-id-without-persist",
        "capacity-on-a-reader-slo",
    ],
)
def test_refused_with_one_line_before_any_load(tmp_path, case):
    out = tmp_path / "results"
    if case == "out-through-a-file":  # FileNotFoundError / NotADirectoryError from mkdir before
        f = tmp_path / "plain-file"
        f.write_text("x")
        args = ["run", "--out", str(f / "deeper" / "results"), "-t", "3s"]
    elif case == "out-is-a-file":
        f = tmp_path / "file"
        f.write_text("x")
        args = ["run", "--out", str(f), "-t", "3s"]
    elif case == "token-file-missing":
        args = ["run", "--out", str(out), "--token-file", "/nonexistent/token", "-t", "3s"]
    elif case == "chat-id-without-persist":  # the app reads chat_id only when it persists: said, not dropped
        args = ["run", "--out", str(out), "--chat-id", "7", "-t", "3s"]
    elif case == "capacity-on-a-reader-slo":  # a level would read it as unmet: refused, not a capacity too low
        args = ["capacity", "--out", str(out), "--slo", "read_stall_share:p95<=10%", "--levels", "1,2"]
    else:
        args = ["capacity", "--out", str(out), "--adaptive", "-1", "--levels", "1,2"]
    r = bench(*args)
    assert r.returncode == 2, (r.returncode, r.stderr[-1500:])
    assert "Traceback" not in r.stderr and "run " not in r.stderr.split("error")[0]  # no run started
    lines = [x for x in r.stderr.strip().splitlines() if x.strip()]
    assert lines and any(f in r.stderr for f in ("--out", "--token-file", "--adaptive", "--chat-id", "--slo")), r.stderr
    assert not out.exists() or not any(out.iterdir())


def test_target_port_in_use_is_one_line():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        r = bench("target", "--port", str(port), "--no-auth", "--profiles", FAST, timeout=30)
    assert r.returncode == 2 and "already in use" in r.stderr and "Traceback" not in r.stderr, r.stderr[-1500:]


def test_ignored_options_are_said_in_the_console_and_run_json(tmp_path):
    r = bench(
        "run",
        "--out",
        str(tmp_path),
        "--target-profiles",
        FAST,
        "--scenario",
        str(DATA / "one-turn.yaml"),
        "-t",
        "3s",
        "-u",
        "2",
        "--speedup",
        "3",
        "--max-tokens",
        "8",
        "--arrival-rate",
        "5",
        "--no-report",
    )
    assert r.returncode == 0, r.stderr[-2000:]
    for flag in ("--speedup 3 ignored", "--max-tokens 8 ignored", "--arrival-rate 5 ignored"):
        assert f"warning: {flag}" in r.stderr, r.stderr[-2000:]
    run = next(p for p in tmp_path.iterdir() if p.is_dir() and not p.is_symlink())
    warnings = json.loads((run / "run.json").read_text())["warnings"]
    assert sum(any(w.startswith(f) for w in warnings) for f in ("--speedup", "--max-tokens", "--arrival-rate")) == 3


def test_history_reads_run_folders_of_two_harness_versions(tmp_path):
    """An older folder lacks a column the history reads (here tpot_ms, as folders before it was added): it is read
    with the column as nulls (a pyarrow dataset scan stopped with an error before)."""
    import pyarrow.parquet as pq
    from synth import lognormal, row, write_run

    new = write_run(tmp_path / "r" / "new", [row("m/a", v, t=i * 0.1) for i, v in enumerate(lognormal(40, 100, seed=1))])
    old = write_run(tmp_path / "r" / "a-old", [row("m/a", v, t=i * 0.1) for i, v in enumerate(lognormal(40, 100, seed=2))])
    t = pq.read_table(old / "requests.parquet")
    pq.write_table(t.drop([c for c in ("tpot_ms", "retry_ms") if c in t.column_names]), old / "requests.parquet")
    for d, started in ((old, 1000.0), (new, 2000.0)):
        meta = json.loads((d / "run.json").read_text())
        meta.update(started=started, scenario={"name": "s", "sha256": "same"})
        (d / "run.json").write_text(json.dumps(meta))
    r = bench("history", str(tmp_path / "r"), "--out", str(tmp_path / "h"))
    assert r.returncode == 0 and "Traceback" not in r.stderr, r.stderr[-2000:]
    assert "2 runs" in r.stdout


def test_a_bench_folder_in_the_working_directory_does_not_replace_the_harness(tmp_path):
    """A user's own `bench/` package (or a second checkout) in the folder bench run starts from: the target and
    the Locust child are started with `python -P`, so they import the installed harness, not the decoy."""
    import sys

    decoy = tmp_path / "work" / "bench"
    decoy.mkdir(parents=True)
    (decoy / "__init__.py").write_text("raise SystemExit('decoy bench package imported')\n")
    (decoy / "target").mkdir()
    (decoy / "target" / "__init__.py").write_text("raise SystemExit('decoy bench.target imported')\n")
    script = Path(sys.executable).parent / "bench"  # the console script, as a user types `bench`
    r = subprocess.run(
        [str(script), "run", "--out", str(tmp_path / "out"), "--target-profiles", FAST, "-t", "3s", "-u", "2", "-q"]
        + ["--scenario", str(DATA / "one-turn.yaml"), "--no-report"],
        capture_output=True,
        text=True,
        timeout=120,
        env=bench_env(),
        cwd=tmp_path / "work",
    )
    assert r.returncode == 0 and "decoy" not in r.stderr, r.stderr[-2000:]
    run = next(p for p in (tmp_path / "out").iterdir() if p.is_dir() and not p.is_symlink())
    meta = json.loads((run / "run.json").read_text())
    assert meta["records"] > 0 and "decoy" not in (run / "locust.log").read_text()

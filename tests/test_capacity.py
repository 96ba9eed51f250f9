"""Capacity plans that do not contradict their own levels: a level that misses out of order is run
again or leaves the capacity undecided, a sweep that never reaches the limit says so, a miss while
the generator fell behind is not judged, an interrupted sweep writes the plan of what finished, and
"nothing found" is not exit 0."""

from __future__ import annotations

import json
import signal
import subprocess
import threading
import time
from pathlib import Path

import httpx
import pandas as pd
import pytest
from conftest import FAST, SECRET, bench_cmd, bench_env

from bench.decisions.capacity import _outcome, _plan_warnings, find_capacity
from bench.slo import parse_slo

DATA = Path(__file__).parent / "data"
SLO = "ttfc_ms:p95<=200"


def _row(level: float, ok: bool, p95: float, **kw) -> dict:
    status = "met" if ok else "missed"
    return {
        "model": "m/a",
        "level": level,
        "attempt": 1,
        "interrupted": False,
        "untrusted": None,
        "ttfc_ms_p50": p95 / 2,
        "ttfc_ms_p95": p95,
        "slo_ok": ok,
        "slo_status": {SLO: status},
        "slo_observed": {SLO: p95},
        "slo_ci": {},
        "slo_censored": {},
        "slo_undecided": [],
        "e2e_mean_ms": 100.0,
        **kw,
    }


def test_a_miss_below_a_met_level_is_a_contradiction_not_a_capacity():
    slos = [parse_slo(SLO)]
    levels = pd.DataFrame([_row(32, True, 100), _row(48, False, 2291), _row(64, True, 102), _row(128, True, 101)])
    c = find_capacity(levels, slos)["m/a"]
    assert c["capacity"] is None and "not monotonic" in c["bound"], c
    assert c["contradiction"] == {"missed": [48.0], "met_above": [64.0, 128.0]}
    assert _outcome({"m/a": c}, None) == "undecided"
    # run again and met: the recheck is judged, the first attempt named
    rechecked = pd.concat([levels, pd.DataFrame([_row(48, True, 101, attempt=2)])])
    c = find_capacity(rechecked, slos)["m/a"]
    assert c["capacity"] == 128 and c["bound"] == "at least" and c["rechecked"] == {"48": ["missed", "ok"]}, c
    assert any("limit was not reached" in w for w in _plan_warnings({"m/a": c}, [32, 48, 64, 128]))


def test_a_miss_while_the_generator_fell_behind_is_not_judged():
    slos = [parse_slo(SLO)]
    behind = "the load generator's scheduling lag reached 8.1 ms (p99), over 5% of the lowest TTFC p50"
    levels = pd.DataFrame([_row(32, True, 100), _row(48, False, 2291, untrusted=behind), _row(64, False, 900)])
    c = find_capacity(levels, slos)["m/a"]
    assert c["first_failing_level"] == 64 and c["last_passing_level"] == 32 and 48.0 in c["unjudged_levels"], c
    assert c["untrusted_levels"] == {"48": behind}
    assert any("not judged" in w for w in _plan_warnings({"m/a": c}, [32, 48, 64]))


def test_the_knee_is_against_the_lowest_level_and_names_it():
    slos = [parse_slo(SLO)]
    rows = [_row(x, True, 2 * p50) for x, p50 in ((1, 40), (2, 41), (4, 45), (8, 90))]
    c = find_capacity(pd.DataFrame(rows), slos)["m/a"]
    assert c["knee_floor_level"] == 1 and 4 < c["knee"] < 8, c
    c = find_capacity(pd.DataFrame(rows[2:]), slos)["m/a"]  # without the low levels the floor is level 4's
    assert c["knee_floor_level"] == 4


def test_nothing_found_is_undecided():
    slos = [parse_slo(SLO)]
    few = _row(4, False, 100, slo_status={SLO: "too few"})
    c = find_capacity(pd.DataFrame([few]), slos)
    assert c["m/a"]["capacity"] is None and _outcome(c, None) == "undecided"
    assert _outcome({}, None) == "undecided" and _outcome(c, {"signal": "SIGINT"}) == "interrupted"


@pytest.fixture
def target():
    from bench.target import TargetProcess

    with TargetProcess(["--profiles", FAST], secret=SECRET) as t:
        yield t


def _sweep(target, out: Path, run_id: str, levels: str, *extra: str, timeout: float = 240) -> subprocess.Popen:
    return subprocess.Popen(
        bench_cmd(
            "capacity",
            "--host",
            target.url,
            "--auth",
            "jwt",
            "--scenario",
            str(DATA / "one-turn.yaml"),
            "--levels",
            levels,
            "--level-duration",
            "5s",
            "--level-warmup",
            "1",
            "--slo",
            SLO,
            "--out",
            str(out / run_id),
            *extra,
        ),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=bench_env(),
    )


def _faults_during(target, sweep_dir: Path, plan: list[tuple[str, str]], stop: threading.Event) -> None:
    """Set the target's faults as each level's folder appears: one level made to fail out of order."""
    for folder, spec in plan:
        while not any(sweep_dir.glob(f"capacity-*/{folder}")):
            if stop.wait(0.02):
                return
        httpx.put(f"{target.url}/_bench/faults", content=spec, timeout=5).raise_for_status()


SLOW = "slow_headers=1.0:0.35"  # every first chunk 350 ms late: TTFC p95 over the 200 ms SLO


@pytest.mark.parametrize("recheck", ["0", "1"])
def test_a_level_failing_out_of_order_is_rechecked_or_reported(target, tmp_path, recheck):
    plan = [("level-4", SLOW), ("level-6", "")] + ([("level-4-attempt-2", SLOW)] if recheck == "0" else [])
    stop = threading.Event()
    watcher = threading.Thread(target=_faults_during, args=(target, tmp_path / "sweep", plan, stop), daemon=True)
    watcher.start()
    p = _sweep(target, tmp_path, "sweep", "2,4,6", "--recheck", recheck)
    try:
        stdout, stderr = p.communicate(timeout=240)
    finally:
        stop.set()
        p.kill()
    sweep_dir = next((tmp_path / "sweep").glob("capacity-*"))
    result = json.loads((sweep_dir / "capacity.json").read_text())
    c = result["capacity"]["mistralai/Mistral-7B-Instruct-v0.3"]
    md = (sweep_dir / "capacity.md").read_text()
    if recheck == "0":  # the contradiction stands: no capacity below a passing level, exit 3 (undecided)
        assert p.returncode == 3, (p.returncode, stderr[-2000:])
        assert c["capacity"] is None and c["contradiction"] == {"missed": [4.0], "met_above": [6.0]}, c
        assert "not monotonic" in md and "capacity undecided" in stderr
    else:  # run again with the fault gone: met, the capacity is at least the top level, and the limit not reached
        assert p.returncode == 0, (p.returncode, stderr[-2000:])
        assert (sweep_dir / "level-4-attempt-2" / "run.json").is_file()
        assert c["rechecked"] == {"4": ["missed", "ok"]} and c["capacity"] == 6 and c["bound"] == "at least", c
        assert "limit was not reached" in md and "attempt 2" in md
    assert "Little's law" in md or result["people"]["mistralai/Mistral-7B-Instruct-v0.3"] is None


def test_an_interrupted_sweep_writes_the_plan_of_its_finished_levels(target, tmp_path):
    p = _sweep(target, tmp_path, "cut", "2,4,6")
    deadline = time.monotonic() + 120
    while not any((tmp_path / "cut").glob("capacity-*/level-4")) and time.monotonic() < deadline and p.poll() is None:
        time.sleep(0.05)
    time.sleep(2.5)  # into level 4's load
    p.send_signal(signal.SIGINT)  # what Ctrl-C at the terminal sends
    stdout, stderr = p.communicate(timeout=120)
    assert p.returncode == 130, (p.returncode, stderr[-2000:])
    sweep_dir = next((tmp_path / "cut").glob("capacity-*"))
    result = json.loads((sweep_dir / "capacity.json").read_text())
    assert result["outcome"] == "interrupted" and result["interrupted"]["during_level"] == 4, result.get("interrupted")
    assert result["warnings"][0].startswith("interrupted (SIGINT) during level 4")
    judged = {r["level"]: r["interrupted"] for r in result["levels"]}
    assert judged.get(2.0) is False and judged.get(4.0) in (True, None), judged
    assert not (sweep_dir / "level-6").exists()
    assert (sweep_dir / "capacity.md").is_file() and (sweep_dir / "capacity.html").is_file()
    assert "connection refused" not in stderr and "Traceback" not in stderr, stderr[-2000:]


def test_adaptive_reruns_only_the_undecided_levels_that_bound_the_capacity():
    from bench.decisions.capacity import _undecided_bounds

    slos = [parse_slo(SLO)]
    rows = [
        _row(2, True, 100),
        _row(4, True, 190, slo_undecided=[SLO]),  # met, but its interval holds the bound: undecided
        _row(8, False, 400),
        _row(16, False, 900, slo_undecided=[SLO]),  # undecided, but not next to the capacity
    ]
    levels = pd.DataFrame(rows)
    assert _undecided_bounds(levels, slos, {2.0: 1, 4.0: 1, 8.0: 1, 16.0: 1}) == [4.0]
    assert _undecided_bounds(levels, slos, {2.0: 1, 4.0: 2, 8.0: 1, 16.0: 1}) == []  # already run again: not a third time

"""What a prefix cache hides: --cache-salt against one standing target that keeps a prefix cache
(bench/target/cache.py), its hit rate read from the target's own counters, the gate's warning."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import httpx
import pytest
from conftest import FAST, SECRET, bench_cmd, bench_env

from bench.load.route import SALT_FORMAT, salted
from bench.options import cache_salt

DATA = Path(__file__).parent / "data"
PROBE = "Reply with the single word: ok"[:24]  # the preflight's one request (bench/preflight.py), sent as it is


def test_salt_goes_in_front_of_the_first_user_message_only():
    msgs = [{"role": "system", "content": "s"}, {"role": "user", "content": "hi"}, {"role": "user", "content": "again"}]
    out = salted(msgs, "0123456789")
    assert out[1]["content"] == SALT_FORMAT.format(salt="0123456789") + "hi" and out[2] == msgs[2] and out[0] == msgs[0]
    assert msgs[1]["content"] == "hi"  # the history the user keeps is not changed
    assert cache_salt("none", "r1") is None and cache_salt("request", "r1") == ""
    assert cache_salt("run", "r1") == cache_salt("run", "r1") != cache_salt("run", "r2") and len(cache_salt("run", "r1")) == 10


def _run(target_url: str, out: Path, run_id: str, salt: str) -> Path:
    r = subprocess.run(
        bench_cmd(
            "run",
            "--host",
            target_url,
            "--auth",
            "jwt",
            "--scenario",
            str(DATA / "two-turn-cache.yaml"),
            "--seed",
            "7",
            "-u",
            "2",
            "-r",
            "2",
            "-t",
            "4s",
            "--warmup",
            "0",
            "--cache-salt",
            salt,
            "--server-metrics",
            target_url + "/metrics",
            "--run-id",
            run_id,
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
    return out / run_id


@pytest.fixture(scope="module")
def standing_target():
    from bench.target import TargetProcess

    with TargetProcess(["--profiles", FAST], secret=SECRET) as t:
        yield t


def _truth(url: str) -> list[dict]:
    return httpx.get(f"{url}/_bench/truth", timeout=10).json()


def _clear(url: str) -> None:
    httpx.delete(f"{url}/_bench/truth", timeout=10)


def test_cache_salt_run_gives_each_run_its_own_prefixes_and_none_reproduces_the_bytes(standing_target, tmp_path):
    url = standing_target.url
    heads: dict[str, set[str]] = {}
    runs = {}
    for run_id, salt in (("none-1", "none"), ("none-2", "none"), ("run-1", "run"), ("run-2", "run")):
        _clear(url)
        runs[run_id] = _run(url, tmp_path, run_id, salt)
        heads[run_id] = {t["first_user_head"] for t in _truth(url)} - {PROBE}
    # each user's conversations follow from the seed; how many it got through in 4 s is the machine's
    same = lambda a, b: len(a & b) >= 0.7 * min(len(a), len(b)) > 0  # noqa: E731
    # none: the scenario's own first messages, the same in both runs
    assert same(heads["none-1"], heads["none-2"]), heads
    assert all(h.startswith("Conversation ") for h in heads["none-1"] | heads["none-2"])
    # run: one nonce per run in front of every conversation's first message; the same conversations
    salt1, salt2 = (cache_salt("run", r) for r in ("run-1", "run-2"))
    assert all(h.startswith(f"[{salt1}] ") for h in heads["run-1"]) and all(h.startswith(f"[{salt2}] ") for h in heads["run-2"])
    strip = lambda hs, s: {h[len(f"[{s}] ") :] for h in hs}  # noqa: E731
    assert same(strip(heads["run-1"], salt1), strip(heads["run-2"], salt2))
    for run_id, salt in (("none-1", "none"), ("run-1", "run")):
        meta = json.loads((runs[run_id] / "run.json").read_text())
        assert meta["route"]["cache_salt"]["mode"] == salt
    # the target's own counters: the second unsalted run reads the prefixes the first one warmed
    summaries = {}
    for run_id in runs:
        r = subprocess.run(bench_cmd("report", str(runs[run_id])), capture_output=True, text=True, timeout=120, env=bench_env())
        assert r.returncode == 0, r.stderr[-2000:]
        summaries[run_id] = json.loads((runs[run_id] / "summary.json").read_text())["prefix_cache"]
    assert summaries["none-2"]["hit_rate"] > summaries["run-2"]["hit_rate"] + 0.2, summaries
    # the gate says so when the two runs saw different caches, or replayed the same bytes
    r = subprocess.run(
        bench_cmd("compare", str(runs["none-1"]), str(runs["none-2"]), "--out", str(tmp_path / "cmp")),
        capture_output=True,
        text=True,
        timeout=120,
        env=bench_env(),
    )
    assert r.returncode in (0, 1, 3), r.stderr[-2000:]
    result = json.loads((tmp_path / "cmp" / "compare.json").read_text())
    assert any("prefix cache hit rate" in w for w in result["warnings"]), result["warnings"]
    assert any("--cache-salt none" in w for w in result["warnings"]), result["warnings"]
    assert "prefix cache hit rate" in (tmp_path / "cmp" / "compare.md").read_text()

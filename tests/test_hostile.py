"""Hostile and broken servers: every request sent ends in one record, classified; nothing echoed leaks."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
from conftest import bench_cmd, bench_env
from hypothesis import given, settings
from hypothesis import strategies as st

from bench.load.decode import decode_all, decoder_for

HERE = Path(__file__).parent

_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(
            st.sampled_from(
                [
                    "choices",
                    "delta",
                    "content",
                    "type",
                    "delta",
                    "error",
                    "usage",
                    "finish_reason",
                    "reasoning_content",
                    "messageMetadata",
                    "completionTokens",
                    "x",
                ]
            ),
            inner,
            max_size=4,
        )
    ),
    max_leaves=12,
)


@settings(max_examples=3000, deadline=None)
@given(
    st.lists(_json, min_size=1, max_size=4),
    st.sampled_from(["auto", "openai", "ui", "sse", "aisdk"]),
    st.sampled_from(["data: ", "0:", "d:", "g:", "3:", "data: 0:"]),
)
def test_decoder_never_raises_on_any_json_shape(values, protocol, prefix):
    """Grammar-based: JSON of every shape in every framing (``"choices": 5`` raised TypeError before)."""
    body = b"".join(prefix.encode() + json.dumps(v).encode() + (b"\n\n" if prefix.startswith("data") else b"\n") for v in values)
    d = decoder_for(protocol)
    d.feed(body)
    d.finish()  # no exception is the assertion; the class is one of METRICS.md's
    assert d.error in (None, "decode_error", "stream_error", "truncated")


@pytest.mark.parametrize(
    "body",
    [
        b'data: {"choices": 5}\n\n',
        b'data: {"choices": true}\n\n',
        b'data: {"choices": 1.5}\n\n',
        b"0:" + b"[" * 50_000 + b"\n",
        b'data: {"a":' + b"[" * 50_000 + b"}\n\n",
        b'd:{"usage":' + b"[" * 50_000 + b"}\n",
        b"data: 0:" + b"[" * 50_000 + b"\n\n",
    ],
)
def test_decoder_classifies_the_shapes_that_used_to_raise(body):
    d = decode_all(body)
    assert d.error == "decode_error", (d.error, d.error_detail)


def _server(mode: str, tmp: Path):
    port_file, count = tmp / f"{mode}.port", tmp / f"{mode}.count"
    p = subprocess.Popen([sys.executable, str(HERE / "hostile_server.py"), mode, str(port_file), str(count)])
    for _ in range(100):
        if port_file.exists() and port_file.read_text():
            return p, f"http://127.0.0.1:{port_file.read_text()}", count
        time.sleep(0.1)
    p.kill()
    raise RuntimeError("hostile server did not start")


def run_against(
    mode: str, tmp: Path, *args: str, env: dict | None = None
) -> tuple[subprocess.CompletedProcess, Path, pd.DataFrame, int]:
    """``bench run --host`` against a hostile server of ``mode``, server stopped after: (result, run folder,
    records, requests the server received)."""
    proc, url, count = _server(mode, tmp)
    try:
        r = subprocess.run(
            bench_cmd("run", "--host", url, "--route", "openai", "--out", str(tmp / "out"), "--no-report", *args),
            capture_output=True,
            text=True,
            timeout=120,
            env=env or bench_env(),
        )
        assert r.returncode == 0, r.stderr[-2000:]
    finally:
        proc.terminate()
        proc.wait(10)
    run_dir = next(p for p in (tmp / "out").iterdir() if p.is_dir() and not p.is_symlink())
    return r, run_dir, pd.read_parquet(run_dir / "requests.parquet"), len(count.read_text().split())


@pytest.mark.parametrize("mode,cls", [("choices-int", "decode_error"), ("deep-json", "decode_error"), ("echo", "server_error")])
def test_hostile_server_one_record_per_request(tmp_path, mode, cls):
    """Before: 2,516 requests reached a "choices": 5 server and 0 records existed."""
    env = bench_env(BENCH_TOKEN="s3cret-token-value-123", GATEWAY_KEY="gw-secret-value-456")
    r, run_dir, df, received = run_against(
        mode, tmp_path, "--models", "m", "-t", "4s", "-u", "3", "-r", "3", "--header", "api-key: @env:GATEWAY_KEY", env=env
    )
    meta = json.loads((run_dir / "run.json").read_text())
    assert len(df) == received - len(meta.get("preflight", [])) - (0 if meta.get("preflight") else 1), (len(df), received)
    cut = (df["error"] == "cancelled").sum()  # in flight when the run ended: kept, not failures
    assert len(df) > 3 and (df["error"] == cls).sum() >= len(df) - 1 - cut, df["error"].value_counts()
    assert "internal_error" not in set(df["error"].dropna())
    if mode == "echo":  # what the server echoed back never reaches the records, run.json or the console
        for text in (r.stdout + r.stderr, (run_dir / "run.json").read_text(), df.to_json()):
            assert "s3cret-token-value-123" not in text and "gw-secret-value-456" not in text


@pytest.mark.parametrize(
    "flag,value",
    [("--first-chunk-timeout", "nan"), ("--total-timeout", "inf"), ("--stall-timeout", "1e309"), ("--arrival-rate", "inf")],
)
def test_non_finite_numbers_are_refused_before_any_load(tmp_path, flag, value):
    """NaN passes every '<= 0' check: these sent thousands of requests that left no record."""
    r = subprocess.run(
        bench_cmd("run", "--out", str(tmp_path), "-t", "3s", flag, value),
        capture_output=True,
        text=True,
        timeout=60,
        env=bench_env(),
    )
    assert r.returncode == 2 and "finite" in r.stderr and "Traceback" not in r.stderr, r.stderr[-1500:]
    assert not any(tmp_path.iterdir())  # no run folder


def test_infinite_scenario_weight_is_refused_with_its_line(tmp_path):
    bad = tmp_path / "inf.yaml"
    bad.write_text(
        "name: inf\nmodels: [{model: mistralai/Mistral-7B-Instruct-v0.3}]\nconversations:\n"
        "  - {name: q, weight: .inf, turns: [hi]}\n"
    )
    r = subprocess.run(
        bench_cmd("run", "--out", str(tmp_path / "o"), "-t", "3s", "--scenario", str(bad)),
        capture_output=True,
        text=True,
        timeout=60,
        env=bench_env(),
    )
    assert r.returncode == 2 and "inf.yaml" in r.stderr and "weight" in r.stderr and "Traceback" not in r.stderr, r.stderr[-1500:]


def test_openai_route_without_models_asks_the_server(tmp_path):
    """--route openai without --models: the ids of GET /v1/models, not the scenario's Neptun ids."""
    _, _, df, _ = run_against("ok", tmp_path, "-t", "3s", "-u", "2")
    assert set(df["model"]) == {"m"} and len(df) > 3


@pytest.mark.parametrize("mode", ["closing", "closing-at-once"])
def test_a_server_closing_after_every_stream_causes_no_false_failures(tmp_path, mode):
    """394 of 792 requests once failed as 'truncated' against such a server; none of them had reached it."""
    scenario = tmp_path / "zero-think.yaml"
    scenario.write_text(
        "name: zero-think\nthink_time: {kind: fixed, seconds: 0}\nconversations:\n  - {name: q, turns: [a, b, c]}\n"
    )
    _, run_dir, df, received = run_against(
        mode, tmp_path, "--models", "m", "--scenario", str(scenario), "-t", "8s", "-u", "4", "-r", "4"
    )
    live = df[df["error"] != "cancelled"]
    assert len(live) >= 500, len(live)
    assert live["error"].isna().all(), live["error"].value_counts()
    meta = json.loads((run_dir / "run.json").read_text())
    retried = int(df["retry_ms"].notna().sum())
    # every record is a request the server got; a first attempt it may have read before closing is a recorded retry
    assert len(df) + len(meta["preflight"]) <= received <= len(df) + len(meta["preflight"]) + retried, (
        received,
        len(df),
        retried,
    )
    if mode == "closing":
        assert retried > 0  # the retries are recorded, not hidden

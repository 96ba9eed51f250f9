"""What the real Neptun app does (shared spec: neptun-route-facts.md, from its source), met by the harness.

The embedded target's default flavour answers as the app's latest code does: Nitro's 401, ZodError
400s, ``is_playground`` required, DeepSeek R1's thinking as one ``<details>`` part, streams that go
silent when the backend fails. Against it (and, for auth, a target started with a known secret):
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pandas as pd
import pytest
from conftest import FAST, bench_cmd, bench_env, request_context, token

from bench.load.decode import decoder_for
from bench.load.route import RouteConfig, cookie_header
from bench.load.stream import Outcome, classify_http_error
from bench.records import IDX, build_row

DATA = Path(__file__).parent / "data"
ONE_TURN = str(DATA / "one-turn.yaml")


def only_run(out: Path) -> Path:
    return next(p for p in out.iterdir() if p.is_dir() and not p.is_symlink())


def run(out: Path, *args: str, env: dict | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(
        bench_cmd("run", "--out", str(out), *args), capture_output=True, text=True, timeout=timeout, env=env or bench_env()
    )


def test_cookie_forms_a_browser_gives():
    assert cookie_header("Fe26.2**abc*def") == "neptun-session=Fe26.2**abc*def"
    assert cookie_header("Cookie: neptun-session=Fe26.2**x; theme=dark") == "neptun-session=Fe26.2**x; theme=dark"
    assert cookie_header("neptun-session=v") == "neptun-session=v"
    assert cookie_header("opaque", "my-session") == "my-session=opaque"


def test_bare_cookie_authenticates_and_a_stray_token_does_not_break_the_run(target, tmp_path):
    """BENCH_COOKIE holds the session value alone; a stale BENCH_TOKEN beside it is not what the app reads."""
    env = bench_env(BENCH_COOKIE=token(), BENCH_TOKEN="stale-token-that-the-app-never-reads")
    r = run(tmp_path / "a", "--host", target.url, "--scenario", ONE_TURN, "-t", "3s", "-u", "2", "--no-report", env=env)
    assert r.returncode == 0, r.stderr[-2000:]
    df = pd.read_parquet(only_run(tmp_path / "a") / "requests.parquet")
    assert len(df) > 5 and df.loc[df["error"] != "cancelled", "error"].isna().all(), df["error"].value_counts()
    meta = json.loads((only_run(tmp_path / "a") / "run.json").read_text())
    assert meta["auth"] == "cookie" and meta["preflight"] and meta["preflight"][0]["status"] == 200


def test_auto_auth_keeps_what_the_target_accepts(tmp_path):
    """A rejected cookie first, a good token second (a deployment whose gateway takes bearer tokens: the
    documented flavour; the app itself never reads one): the preflight says so and the run goes on with the token."""
    from conftest import SECRET

    from bench.target import TargetProcess

    env = bench_env(BENCH_COOKIE="neptun-session=expired", BENCH_TOKEN=token())
    with TargetProcess(["--flavor", "documented", "--profiles", FAST], secret=SECRET) as gateway:
        r = run(tmp_path / "b", "--host", gateway.url, "--scenario", ONE_TURN, "-t", "3s", "-u", "2", "--no-report", env=env)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "session cookie from BENCH_COOKIE was rejected; trying the token from BENCH_TOKEN" in r.stderr
    meta = json.loads((only_run(tmp_path / "b") / "run.json").read_text())
    assert meta["auth"] == "bearer" and [p["status"] for p in meta["preflight"]] == [401, 200]
    df = pd.read_parquet(only_run(tmp_path / "b") / "requests.parquet")
    assert "unauthorized" not in set(df["error"].dropna())


def test_no_session_says_the_server_wants_a_cookie(target, tmp_path):
    r = run(tmp_path / "c", "--host", target.url, "--scenario", ONE_TURN, "-t", "3s", env=bench_env(BENCH_JWT_SECRET=""))
    assert r.returncode == 2 and "wants a session cookie" in r.stderr and "BENCH_COOKIE" in r.stderr, r.stderr[-1500:]
    assert "Traceback" not in r.stderr and not (tmp_path / "c").exists() or not any((tmp_path / "c").iterdir())


def test_a_retired_model_fails_the_preflight_naming_the_allowed_ones(tmp_path):
    r = run(tmp_path, "--models", "meta-llama/Llama-3.3-70B-Instruct", "-t", "3s")
    assert r.returncode == 2, r.stderr[-1500:]
    assert "model 'meta-llama/Llama-3.3-70B-Instruct' does not exist here (allowed: " in r.stderr and "google" in r.stderr


def test_nitro_and_zod_bodies_are_classified():
    unauthorized = json.dumps(
        {"error": True, "url": "/x", "statusCode": 401, "statusMessage": "Server Error", "message": "Unauthorized"}
    )
    assert classify_http_error(401, unauthorized.encode()) == ("unauthorized", "401 Server Error Unauthorized")
    zod = json.dumps(
        {
            "statusCode": 400,
            "statusMessage": "Bad Request.",
            "data": {
                "name": "ZodError",
                "issues": [
                    {
                        "code": "invalid_enum_value",
                        "options": ["gemma-2-27b-it"],
                        "path": ["model_name"],
                        "message": "Invalid enum value.",
                    }
                ],
            },
        }
    )
    cls, detail = classify_http_error(400, zod.encode())
    assert cls == "invalid_model" and "model_name" in detail


def test_persist_sends_is_playground_false_and_the_preflight_stays_in_the_playground(tmp_path):
    assert RouteConfig(playground=False, chat_id=5).path("google/gemma-2-27b-it").endswith("chat?chat_id=5&is_playground=false")
    assert RouteConfig().path("google/gemma-2-27b-it").endswith("chat?chat_id=-1&is_playground=true")
    r = run(
        tmp_path,
        "--persist",
        "--chat-id",
        "5",
        "--scenario",
        ONE_TURN,
        "--target-profiles",
        FAST,
        "-t",
        "3s",
        "-u",
        "2",
        "--no-report",
    )
    assert r.returncode == 0, r.stderr[-2000:]  # the app's schema accepts is_playground=false (it rejected it missing)
    df = pd.read_parquet(only_run(tmp_path) / "requests.parquet")
    assert len(df) > 3 and df.loc[df["error"] != "cancelled", "error"].isna().all()
    refused = run(tmp_path / "x", "--chat-id", "5", "-t", "3s")
    assert refused.returncode == 2 and "--persist" in refused.stderr


def test_dead_streams_count_as_stalls_at_default_settings(tmp_path):
    """Every third stream goes silent after its third part (exactly: ``1/3``, not drawn), as the app's
    do when the backend fails: the report's error rate is 33 % ± 5 in a 20 s run at default settings
    (it read 0 % before: every dead stream was 'cancelled'; with a share of 0.333 drawn at random the
    seed's own draw, 29.7 % of 300, was what the harness then read)."""
    r = run(
        tmp_path,
        "--scenario",
        ONE_TURN,
        "--target-profiles",
        FAST,
        "--target-faults",
        "silent=1/3:3",
        "-t",
        "20s",
        "-u",
        "12",
        "-r",
        "12",
        timeout=180,
    )
    assert r.returncode == 0, r.stderr[-2000:]
    df = pd.read_parquet(only_run(tmp_path) / "requests.parquet")
    # said in every output, not only counted: the console, summary.json (and so report.html and summary.md)
    assert "streams went silent" in r.stderr and "--stall-timeout" in r.stderr, r.stderr[-1500:]
    summary = json.loads((only_run(tmp_path) / "summary.json").read_text())
    assert any("streams went silent" in w for w in summary["warnings"])
    assert "streams went silent" in (only_run(tmp_path) / "summary.md").read_text()
    (model,) = summary["models"].values()
    assert abs(model["error_rate"] - 1 / 3) <= 0.05, (model["error_rate"], model["errors_by_class"])
    live = df[df["error"] != "cancelled"]
    assert live["error"].isin(["stall"]).sum() == live["error"].notna().sum()  # nothing else failed
    assert df["error_detail"].str.contains("dead stream|no content part for", na=False).sum() == (df["error"] == "stall").sum()


def test_r1_thinking_block_is_reasoning_and_the_rate_counts_its_tokens():
    """The app's R1 stream: the whole thinking as one <details> part (28 tokens), then the answer.
    TTFV is the first answer part; the decode rate leaves the first read's tokens out."""
    dec = decoder_for("aisdk")
    block = "<details>\n<summary>AI Thinking Process</summary>\n" + ("word " * 28).strip() + "\n</details>\n\n"
    o = Outcome(t_start=1_000_000_000, t_headers=1_010_000_000, decoder=dec)
    t = 1_500_000_000
    n = dec.feed(("0:" + json.dumps(block) + "\n").encode())
    o.stamps += [t, n]
    for _ in range(20):  # 20 answer parts of one token, 20 ms apart: 50 tok/s
        t += 20_000_000
        o.stamps += [t, dec.feed(("0:" + json.dumps(" word") + "\n").encode())]
    dec.usage_completion = 48  # 28 in the block + 20
    o.t_end = t
    ctx = request_context()
    row = build_row(o, ctx)
    assert row[IDX["ttfv_ms"]] == pytest.approx(520.0) and row[IDX["ttfc_ms"]] == pytest.approx(500.0)
    assert row[IDX["decode_tps"]] == pytest.approx(50.0, rel=0.05)
    assert dec.visible_text() == (" word" * 20).lstrip()  # what useChat sends back: no thinking block


def test_exact_fault_fractions_hit_every_nth_request_and_bad_ones_are_refused():
    """``1/3`` is every third request in arrival order (a check's answer carries no draw of its own);
    a share is still drawn; a zero denominator or a share above 1 is refused in one line."""
    import random

    from bench.errors import InputError
    from bench.target.faults import FaultShares

    shares = FaultShares.parse("silent=1/3:3,500=0.5")
    rng = random.Random(1)
    plans = [shares.draw(rng) for _ in range(30)]
    assert [i for i, p in enumerate(plans) if p.silent_after == 3] == list(range(2, 30, 3))
    assert 5 <= sum(p.status == 500 for p in plans) <= 25  # drawn
    for bad in ("drop=1/0", "drop=3/2", "drop=a/3"):
        with pytest.raises(InputError, match="--faults"):
            FaultShares.parse(bad)

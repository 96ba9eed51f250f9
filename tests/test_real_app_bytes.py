"""Bytes the Neptun app's real chat handler sent (tests/data/real-app/*.json, made by capture.py:
the app's own handler and guard bundled on the real h3, @huggingface/inference and zod packages by
standin.mjs, the reference target in TGI mode as its model server), read by the harness, and the
reference target's deployed flavour held against them.

What the capture showed that the target had wrong: DeepSeek R1's answer after the thinking block
comes in paragraph-sized parts (the app flushes its buffer at "\\n\\n" or at punctuation followed by
whitespace, and tokens carry their leading space), not sentence-sized ones.
"""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path

import httpx
import pytest
from conftest import FAST, request_context

from bench.load.decode import decoder_for
from bench.load.stream import Outcome, classify_http_error
from bench.records import IDX, build_row
from bench.target.engine import r1_parts

FIXTURES = Path(__file__).parent / "data" / "real-app"
BLOCK_HEAD = "<details>\n<summary>AI Thinking Process</summary>\n"


def fixture(name: str) -> dict:
    return json.loads((FIXTURES / f"{name}.json").read_text())


def body(f: dict) -> bytes:
    return b"".join(base64.b64decode(c[1]) for c in f["chunks"])


def parts(f: dict) -> list[str]:
    return [json.loads(line[2:]) for line in body(f).decode().splitlines() if line.startswith("0:")]


def record(f: dict) -> list:
    """The fixture's reads fed to the decoder at the times they arrived, and the record built from them."""
    dec = decoder_for("aisdk")
    t0 = 1_000_000_000
    o = Outcome(t_start=t0, t_headers=t0 + int(f["chunks"][0][0] * 1e6) - 1, decoder=dec)
    for t_ms, data in f["chunks"]:
        t = t0 + int(t_ms * 1e6)
        n = dec.feed(base64.b64decode(data))
        if n:
            o.stamps += [t, n]
    o.t_end = t0 + int(f["chunks"][-1][0] * 1e6)
    ctx = request_context()
    return build_row(o, ctx)


def test_the_real_handler_streams_ai_sdk_text_parts_with_no_finish_part():
    for name in ("plain-200", "r1-200"):
        f = fixture(name)
        assert f["status"] == 200 and f["headers"]["content-type"] == "text/plain; charset=utf-8", f["headers"]
        lines = body(f).decode().splitlines()
        assert lines and all(line.startswith("0:") for line in lines), lines[:3]  # no d:/e: finish, no usage
        row = record(f)
        assert row[IDX["error"]] is None and row[IDX["chunks"]] == len(lines)
        assert row[IDX["output_chars"]] == sum(len(p) for p in parts(f))  # every character decoded


def test_r1_thinking_is_one_block_after_the_whole_thought_and_ttfv_is_the_first_answer_part():
    f = fixture("r1-200")
    p = parts(f)
    assert p[0].startswith(BLOCK_HEAD) and p[0].endswith("\n</details>\n\n"), p[0][:80]
    row = record(f)
    first, second = f["chunks"][0][0], f["chunks"][1][0]
    assert row[IDX["ttfc_ms"]] == pytest.approx(first, abs=0.01)  # the block: after the whole thought
    assert row[IDX["ttfv_ms"]] == pytest.approx(second, abs=0.01)  # the first answer part is what a reader sees
    # the answer: paragraphs, each flushed at "\n\n" or at punctuation followed by whitespace
    flushed = re.compile(r"(\n\n|[.!?]\s)$")
    assert all(flushed.search(x) for x in p[1:-1]), [x[-12:] for x in p[1:-1]]
    assert sum(len(x) for x in p[1:]) / max(1, len(p) - 1) > 150  # paragraphs, not sentences


def test_the_targets_r1_answer_parts_follow_the_apps_rule():
    words = [" one", " two.", " three", " four.\n\n", " five", " six.", "\n", " seven", " eight."]
    got = [t for t, _ in r1_parts(words)]
    assert got == [" one two. three four.\n\n", " five six.\n", " seven eight."]


def test_the_targets_deployed_flavour_answers_as_the_real_handler(target):
    """Same content type, no finish part, R1's block first and paragraph-sized answer parts after it."""
    from conftest import token

    hdr = {"Cookie": f"neptun-session={token()}", "Content-Type": "application/json"}
    path = "/api/ai/huggingface/deepseek-ai/DeepSeek-R1-Distill-Qwen-32B/chat?chat_id=-1&is_playground=true"
    msgs = {"messages": [{"role": "user", "content": "How do I read a file in Python? " * 3}]}
    with httpx.Client(base_url=target.url, timeout=30) as c:
        r = c.post(path, json=msgs, headers=hdr | {"X-Bench-Fault": "tokens=400"})
    assert r.status_code == 200 and r.headers["content-type"] == fixture("r1-200")["headers"]["content-type"]
    lines = r.text.splitlines()
    assert all(line.startswith("0:") for line in lines)
    p = [json.loads(line[2:]) for line in lines]
    assert p[0].startswith(BLOCK_HEAD) and p[0].endswith("\n</details>\n\n")
    assert all(re.search(r"(\n\n|[.!?]\s)$", x) for x in p[1:-1]), [x[-12:] for x in p[1:-1]]
    assert sum(len(x) for x in p[1:]) / max(1, len(p) - 1) > 150, [len(x) for x in p]


def test_a_backend_failure_mid_stream_leaves_the_response_open_and_silent_and_the_target_does_the_same(target):
    f = fixture("backend-fails-mid-stream")
    assert f["status"] == 200 and not f["ended"] and len(parts(f)) == 6, f  # six parts, then nothing: no close
    from conftest import token

    hdr = {"Cookie": f"neptun-session={token()}", "Content-Type": "application/json", "X-Bench-Fault": "silent=6"}
    path = "/api/ai/huggingface/qwen/Qwen2.5-72B-Instruct/chat?chat_id=-1&is_playground=true"
    got = b""
    with httpx.Client(base_url=target.url) as c:
        with c.stream("POST", path, json={"messages": [{"role": "user", "content": "hi"}]}, headers=hdr, timeout=2.0) as r:
            with pytest.raises(httpx.ReadTimeout):
                for data in r.iter_raw():
                    got += data
    assert got.count(b"\n") == 6 and all(line.startswith(b"0:") for line in got.splitlines())


@pytest.mark.parametrize(
    "name,cls,words",
    [
        ("no-session-401", "unauthorized", []),
        ("retired-model-400", "invalid_model", ["model_name", "Qwen2.5-72B-Instruct"]),
        ("no-is-playground-400", "bad_request", ["is_playground"]),
        ("empty-body-400", "bad_request", ["Invalid body"]),
        ("backend-fails-first", "server_error", []),
    ],
)
def test_the_real_handlers_error_answers_are_classified(name, cls, words):
    f = fixture(name)
    got, detail = classify_http_error(f["status"], body(f))
    assert got == cls, (got, detail)
    assert all(w in detail for w in words), detail


def test_fixtures_were_made_by_the_committed_script():
    """Every fixture names its case as capture.py does, and the stand-in carries no code of the app."""
    script = (FIXTURES / "capture.py").read_text()
    for f in FIXTURES.glob("*.json"):
        assert f'"{f.stem}"' in script, f.stem
    standin = (FIXTURES / "standin.mjs").read_text()
    assert "getSanitizedMessageContent" not in standin and "buildQwen25Prompt(" not in standin
    assert FAST  # the capture's backend profiles are the tests' own


def test_the_target_in_front_of_a_tgi_backend_parts_the_stream_as_the_real_handler():
    """`bench target --upstream URL --upstream-protocol tgi`: the route-like target in front of a TGI token
    stream, as the app sits in front of Hugging Face. The same shapes the real handler sent (R1: one block,
    then paragraph parts; a plain model: one part a token, the backend's text exactly; a backend dying
    mid-stream: parts, then silence)."""
    from conftest import SECRET, token

    from bench.target import TargetProcess

    hdr = {"Cookie": f"neptun-session={token()}", "Content-Type": "application/json"}
    msgs = {"messages": [{"role": "user", "content": "How do I read a file in Python?"}]}
    chat = "/api/ai/huggingface/{}/chat?chat_id=-1&is_playground=true"
    with TargetProcess(["--no-auth", "--profiles", FAST, "--seed", "3"]) as backend:
        args = ["--profiles", FAST, "--upstream", backend.url, "--upstream-protocol", "tgi"]
        with TargetProcess(args, secret=SECRET) as route, httpx.Client(base_url=route.url, timeout=30) as c:
            r = c.post(chat.format("deepseek-ai/DeepSeek-R1-Distill-Qwen-32B"), json=msgs, headers=hdr)
            assert r.status_code == 200 and r.headers["content-type"] == "text/plain; charset=utf-8"
            p = [json.loads(line[2:]) for line in r.text.splitlines()]
            assert p[0].startswith(BLOCK_HEAD) and p[0].endswith("\n</details>\n\n") and len(p) >= 2, p[:2]
            assert all(re.search(r"(\n\n|[.!?]\s)$", x) for x in p[1:-1]), [x[-12:] for x in p[1:-1]]
            httpx.delete(backend.url + "/_bench/truth")
            r = c.post(chat.format("qwen/Qwen2.5-72B-Instruct"), json=msgs, headers=hdr | {"X-Request-ID": "plain-1"})
            p = [json.loads(line[2:]) for line in r.text.splitlines()]
            up = httpx.get(backend.url + "/_bench/truth").json()
            mine = httpx.get(route.url + "/_bench/truth?ids=plain-1").json()
            assert len(up) == 1 and len(p) == up[0]["parts"] and mine[0]["text_crc"] == up[0]["text_crc"], (len(p), up)
            httpx.put(backend.url + "/_bench/faults", content="drop=1.0:6").raise_for_status()
            got = b""
            with c.stream("POST", chat.format("qwen/Qwen2.5-72B-Instruct"), json=msgs, headers=hdr, timeout=2.0) as s:
                assert s.status_code == 200
                with pytest.raises(httpx.ReadTimeout):
                    for data in s.iter_raw():
                        got += data
            assert got.count(b"\n") == len(parts(fixture("backend-fails-mid-stream"))) == 6

"""The reference target over real HTTP: every error, auth case, stream format, fault and the knee."""

from __future__ import annotations

import json
import statistics
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import jwt
import pytest
from conftest import FAST, SECRET, token

from bench.target import TargetProcess

MODEL = "mistralai/Mistral-7B-Instruct-v0.3"
R1 = "deepseek-ai/DeepSeek-R1-Distill-Qwen-32B"
BODY = {"messages": [{"role": "user", "content": "hello"}]}


def chat(base, model=MODEL, body=BODY, headers=None, query="chat_id=-1&is_playground=true", method="POST", timeout=10.0):
    url = f"{base}/api/ai/huggingface/{model}/chat?{query}"
    return httpx.request(method, url, json=body, headers=headers or {}, timeout=timeout)


def parts(text: str) -> list[str]:
    return [json.loads(line[2:]) for line in text.splitlines() if line.startswith("0:")]


def test_stream_format_deployed(target, auth_headers):
    r = chat(target.url, headers=auth_headers)
    assert r.status_code == 200
    assert r.headers["content-type"] == "text/plain; charset=utf-8"
    assert r.headers.get("transfer-encoding") == "chunked"
    lines = r.text.splitlines()
    assert lines and all(line.startswith("0:") for line in lines)
    assert len(parts(r.text)) >= 1 and "".join(parts(r.text)).strip()


def test_stream_format_documented(documented_target):
    r = chat(documented_target.url)
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/event-stream")
    last = r.text.splitlines()[-1]
    assert last.startswith("d:") and json.loads(last[2:])["usage"]["completionTokens"] >= 1


def test_same_conversation_same_reply(target, auth_headers):
    assert parts(chat(target.url, headers=auth_headers).text) == parts(chat(target.url, headers=auth_headers).text)


@pytest.mark.parametrize(
    "model,field",
    [
        ("nobody/none", "model_publisher"),
        ("meta-llama/Llama-3.3-70B-Instruct", "model_publisher"),
        ("mistralai/Mistral-7B-Instruct-v0.1", "model_name"),
    ],
)
def test_model_errors_as_the_app_sends_them(target, auth_headers, model, field):
    """The app's latest code: an unknown or retired model is a ZodError naming the field, with the allowed values."""
    r = chat(target.url, model=model, headers=auth_headers)
    assert r.status_code == 400
    body = r.json()
    assert body["statusMessage"] == "Bad Request." and body["data"]["name"] == "ZodError"
    issue = next(i for i in body["data"]["issues"] if i["path"] == [field])
    assert issue["code"] == "invalid_enum_value" and issue["options"]


def test_known_parts_that_do_not_belong_together(target, auth_headers):
    r = chat(target.url, model="mistralai/gemma-2-27b-it", headers=auth_headers)
    assert r.status_code == 400 and r.json()["statusMessage"] == "Invalid model name- or publisher"


def test_is_playground_is_required(target, auth_headers):
    r = chat(target.url, headers=auth_headers, query="chat_id=-1")
    assert r.status_code == 400 and r.json()["data"]["issues"][0]["path"] == ["is_playground"]


def test_documented_invalid_model_message(documented_target):
    r = chat(documented_target.url, model="nobody/none")
    assert r.json() == {"statusCode": 400, "statusMessage": "Invalid model name or publisher"}


@pytest.mark.parametrize("query", ["chat_id=abc", "chat_id=1.5", "", "chat_id="])
def test_chat_id_must_be_integer(target, auth_headers, query):
    r = chat(target.url, headers=auth_headers, query=query)
    assert r.status_code == 400 and r.json()["statusCode"] == 400


def test_playground_and_negative_chat_id_accepted(target, auth_headers):
    assert chat(target.url, headers=auth_headers, query="chat_id=-1&is_playground=true").status_code == 200


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"messages": []},
        {"messages": [{"role": "system", "content": "x"}]},
        {"messages": [{"role": "user", "content": "   "}]},
        {"messages": [{"role": "user"}]},
        {"messages": "hi"},
    ],
)
def test_bad_body(target, auth_headers, body):
    r = chat(target.url, headers=auth_headers, body=body)
    assert r.status_code == 400
    assert r.json() == {"statusCode": 400, "statusMessage": "Bad Request. Invalid body(message | messages)."}


def test_other_methods_refused(target, auth_headers):
    for method in ("GET", "PUT", "DELETE"):
        assert chat(target.url, headers=auth_headers, method=method).status_code == 405


def test_body_too_large_and_too_many_messages(target, auth_headers):
    big = {"messages": [{"role": "user", "content": "x" * (5 * 1024 * 1024)}]}
    assert chat(target.url, headers=auth_headers, body=big).status_code == 413
    many = {"messages": [{"role": "user", "content": "x"}] * 5000}
    r = chat(target.url, headers=auth_headers, body=many)
    assert r.status_code == 413 and r.json()["statusCode"] == 413
    assert chat(target.url, headers=auth_headers).status_code == 200  # still serving


def test_jwt_cases(target):
    """The deployed flavour reads the session cookie only (the app never reads Authorization); the
    JWT in it is the sealed session's stand-in, verified for real."""
    cookie = lambda t: {"Cookie": f"neptun-session={t}"}  # noqa: E731
    ok = chat(target.url, headers=cookie(token()))
    assert ok.status_code == 200
    expired = chat(target.url, headers=cookie(token(exp_in=-10)))
    forged = chat(target.url, headers=cookie(token(secret="wrong-secret-wrong-secret-wrong-secret!")))
    none_alg = jwt.encode({"sub": "t", "exp": int(time.time()) + 60}, None, algorithm="none")
    alg_none = chat(target.url, headers=cookie(none_alg))
    no_exp = jwt.encode({"sub": "t"}, SECRET, algorithm="HS256")
    missing_exp = chat(target.url, headers=cookie(no_exp))
    missing = chat(target.url)
    bearer_only = chat(target.url, headers={"Authorization": f"Bearer {token()}"})  # a valid token, where the app never looks
    for r in (expired, forged, alg_none, missing_exp, missing, bearer_only):
        assert r.status_code == 401 and r.reason_phrase == "Server Error"  # Nitro's error handler, as the app answers
        body = r.json()
        assert body["statusMessage"] == "Server Error" and body["message"] == "Unauthorized" and body["error"] is True


def test_session_cookie(target):
    r = chat(target.url, headers={"Cookie": f"neptun-session={token()}"})
    assert r.status_code == 200
    assert chat(target.url, headers={"Cookie": "neptun-session=garbage"}).status_code == 401


def test_r1_think_block_and_sentence_parts(target, auth_headers):
    r = chat(target.url, model=R1, headers=auth_headers | {"X-Bench-Fault": "tokens=80"})
    ps = parts(r.text)
    text = "".join(ps)
    assert ps[0].startswith("<details>\n<summary>AI Thinking Process</summary>") and ps[0].endswith("</details>\n\n")
    assert "</details>" not in "".join(ps[1:]) and text.split("</details>", 1)[1].strip()  # the thinking is one part
    assert len(ps) < 80 / 3  # sentence-sized parts, not one per token
    assert all(p.endswith((".", "\n", "!", "?")) for p in ps[:-1])


def test_openai_route_stream_with_usage(target, auth_headers):
    body = {"model": MODEL, "messages": BODY["messages"], "stream": True, "stream_options": {"include_usage": True}}
    r = httpx.post(f"{target.url}/v1/chat/completions", json=body, headers=auth_headers, timeout=10)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
    events = [e[6:] for e in r.text.split("\n\n") if e.startswith("data: ")]
    assert events[-1] == "[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    assert chunks[-1]["usage"]["completion_tokens"] == sum(
        1 for c in chunks if c["choices"] and c["choices"][0]["delta"].get("content")
    )
    models = httpx.get(f"{target.url}/v1/models", timeout=5).json()
    assert MODEL in [m["id"] for m in models["data"]]


def test_openai_route_non_stream_and_unknown_model(target, auth_headers):
    r = httpx.post(
        f"{target.url}/v1/chat/completions", json={"model": MODEL, "messages": BODY["messages"]}, headers=auth_headers, timeout=10
    )
    assert r.json()["choices"][0]["message"]["content"]
    r = httpx.post(
        f"{target.url}/v1/chat/completions",
        json={"model": "x/y", "messages": BODY["messages"], "stream": True},
        headers=auth_headers,
        timeout=10,
    )
    assert r.status_code == 404


def test_fault_500_and_429(target, auth_headers):
    r = chat(target.url, headers=auth_headers | {"X-Bench-Fault": "500"})
    assert r.status_code == 500 and r.json() == {"statusCode": 500, "statusMessage": "Internal Server Error"}
    r = chat(target.url, headers=auth_headers | {"X-Bench-Fault": "429=3"})
    assert r.status_code == 429 and r.headers["retry-after"] == "3"


def test_fault_drop_cuts_the_body(target, auth_headers):
    with pytest.raises(httpx.RemoteProtocolError):
        chat(target.url, headers=auth_headers | {"X-Bench-Fault": "drop=2,tokens=10"})


def test_fault_stall_malformed_error_part_garbage_slow_headers(target, auth_headers):
    t0 = time.monotonic()
    r = chat(target.url, headers=auth_headers | {"X-Bench-Fault": "stall=0.4,tokens=5"})
    assert r.status_code == 200 and time.monotonic() - t0 >= 0.4
    r = chat(target.url, headers=auth_headers | {"X-Bench-Fault": "malformed=1,tokens=5"})
    assert '0:"unterminated' in r.text
    r = chat(target.url, headers=auth_headers | {"X-Bench-Fault": "error_part=2,tokens=10"})
    assert r.text.splitlines()[-1].startswith("3:") and len(parts(r.text)) == 2
    r = chat(target.url, headers=auth_headers | {"X-Bench-Fault": "garbage"})
    assert r.text.startswith("<html>")
    with pytest.raises(httpx.ReadTimeout):
        chat(target.url, headers=auth_headers | {"X-Bench-Fault": "slow_headers=1.0"}, timeout=0.3)


def test_unknown_fault_header_is_400(target, auth_headers):
    assert chat(target.url, headers=auth_headers | {"X-Bench-Fault": "explode"}).status_code == 400


def _ttfc(url: str, headers: dict) -> float:
    """Seconds from sending the request to the first body byte, on a plain socket (no client set-up cost)."""
    import socket

    host, port = url.split("//")[1].rsplit(":", 1)
    body = json.dumps(BODY).encode()
    head = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    req = (
        f"POST /api/ai/huggingface/test/knee/chat?chat_id=-1&is_playground=true HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
        f"{head}Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    ).encode() + body
    with socket.create_connection((host, int(port)), timeout=30) as sock:
        t0 = time.monotonic()
        sock.sendall(req)
        buf = b""
        while True:
            data = sock.recv(65536)
            if not data:
                return float("nan")
            buf += data
            end = buf.find(b"\r\n\r\n")
            if end >= 0 and len(buf) > end + 4:
                t = time.monotonic() - t0
                while sock.recv(65536):  # drain to the end so the slot is released normally
                    pass
                return t


def test_queueing_knee(target, auth_headers):
    """max_batch 4, 20 tokens of 10 ms: at 8 concurrent requests half of them wait a whole reply."""
    hdr = auth_headers | {"X-Bench-Fault": "tokens=20"}

    def level(n: int) -> float:
        """Third quartile of TTFC with n requests in flight at once."""
        with ThreadPoolExecutor(n) as pool:
            return statistics.quantiles(list(pool.map(lambda _: _ttfc(target.url, hdr), range(n))), n=4)[-1]

    low = level(2)
    high = level(8)
    assert low < 0.1
    assert high > low + 0.12  # waits about one reply (~0.2 s) in the queue


def test_truth_matches_what_the_client_saw(target, auth_headers):
    rid = f"truth-{time.monotonic_ns()}"
    t_send = time.monotonic_ns()
    with httpx.stream(
        "POST",
        f"{target.url}/api/ai/huggingface/{MODEL}/chat?chat_id=-1&is_playground=true",
        json=BODY,
        headers=auth_headers | {"X-Request-ID": rid, "X-Bench-Fault": "ttft_ms=150,tokens=5"},
        timeout=10,
    ) as r:
        first = None
        for chunk in r.iter_raw():
            if chunk and first is None:
                first = time.monotonic_ns()
    rows = httpx.get(f"{target.url}/_bench/truth", params={"ids": rid}, timeout=5).json()
    assert len(rows) == 1
    t = rows[0]
    assert t["status"] == 200 and t["parts"] == 5 and t["tokens"] == 5
    assert t_send <= t["recv_ns"] <= t["first_ns"] <= first
    assert (first - t["first_ns"]) / 1e6 < 50  # same host, same clock
    assert 140 <= (t["first_ns"] - t["recv_ns"]) / 1e6 < 400


def test_the_documented_flavour_takes_a_bearer_jwt_as_the_spec_says():
    with TargetProcess(["--flavor", "documented", "--profiles", FAST], secret=SECRET) as t:
        assert chat(t.url, headers={"Authorization": f"Bearer {token()}"}).status_code == 200
        assert chat(t.url, headers={"Cookie": f"neptun-session={token()}"}).status_code == 200
        assert chat(t.url).status_code == 401


def test_a_target_does_not_outlive_a_killed_parent():
    """The target runs in its own session (a Ctrl-C at the terminal is the harness's to handle), so a `bench`
    killed with SIGKILL must not leave it behind: it gets SIGTERM when its parent dies."""
    import os
    import signal
    import subprocess
    import sys
    from pathlib import Path

    code = (
        "from bench.target import TargetProcess; t = TargetProcess(['--no-auth']); "
        "print(t.url, t.proc.pid, flush=True); import time; time.sleep(60)"
    )
    parent = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True, cwd=Path(__file__).parent.parent)
    try:
        url, pid = parent.stdout.readline().split()
        assert httpx.get(url + "/_bench/health", timeout=5).status_code == 200
    finally:
        parent.send_signal(signal.SIGKILL)
        parent.wait(10)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            return
        time.sleep(0.1)
    os.kill(int(pid), signal.SIGKILL)
    raise AssertionError("the target outlived its SIGKILLed parent")

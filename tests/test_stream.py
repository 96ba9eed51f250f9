"""The measuring hot path against the real target: true timings, every error class, accuracy."""

from __future__ import annotations

import json
import socket
import ssl
from pathlib import Path

import gevent
import httpx
import numpy as np
import pytest
from conftest import token
from geventhttpclient import HTTPClient

from bench.load.route import RouteConfig
from bench.load.stream import Outcome, Timeouts, stream_request
from bench.records import COLUMNS, RequestContext, build_row

MODEL = "mistralai/Mistral-7B-Instruct-v0.3"
MSGS = [{"role": "user", "content": "hello"}]


def client_for(url: str, first_chunk: float = 10.0, connect: float = 2.0) -> HTTPClient:
    return HTTPClient.from_url(url, concurrency=1, connection_timeout=connect, network_timeout=first_chunk)


def send(
    url,
    fault: str = "",
    model: str = MODEL,
    timeouts: Timeouts = Timeouts(2, 10, 5, 30),
    body: bytes | None = None,
    rid: str = "r",
    route: RouteConfig = RouteConfig(),
    auth: bool = True,
    protocol: str = "auto",
) -> Outcome:
    headers = {"Content-Type": "application/json", "Accept-Encoding": "identity", "X-Request-ID": rid}
    if auth:
        headers["Cookie"] = f"neptun-session={token()}"
    if fault:
        headers["X-Bench-Fault"] = fault
    c = client_for(url, timeouts.first_chunk, timeouts.connect)
    try:
        return stream_request(Outcome(), c, route.path(model), body or route.body(model, MSGS), headers, timeouts, protocol)
    finally:
        c.close()


def ms(a: int, b: int) -> float:
    return (a - b) / 1e6


def truth_of(target, rid: str) -> dict:
    return httpx.get(f"{target.url}/_bench/truth", params={"ids": rid}, timeout=10).json()[0]


def test_first_part_timed_when_it_arrives(target):
    """First part at ~300 ms, the rest a second later: the first stamp is the first part's, not the stream's end.

    Checked against the target's own stamps on the same clock, not wall-clock bounds a loaded
    machine can break: the client saw the first part after the server wrote it, and well before
    the server wrote the second.
    """
    o = send(target.url, "ttft_ms=300,stall=1.0,tokens=10,step_ms=1", rid="first-part")
    assert o.error is None, o.detail
    t = truth_of(target, "first-part")
    assert t["first_ns"] <= o.stamps[0] < t["first_ns"] + 200_000_000  # seen after it was written, long before the stall ended
    assert o.stamps[0] - o.t_start >= 300_000_000  # not before the server's own 300 ms
    assert o.t_end >= t["last_ns"] and sum(o.stamps[1::2]) == 10


def test_success_record_fields(target):
    o = send(target.url, "tokens=30,step_ms=5")
    ctx = RequestContext("run", "r", "w", 1, "c", "conv", 0, MODEL, "", o.t_start - 1_000_000, 0.0, 5, 1, "auto")
    row = dict(zip(COLUMNS, build_row(o, ctx)))
    assert row["error"] is None and row["status"] == 200
    assert row["chunks"] == 30 and row["output_tokens"] == 30 and row["token_source"] == "chunks"
    assert row["ttfb_ms"] <= row["ttfc_ms"] <= row["e2e_ms"]
    assert row["ttfc_sched_ms"] == pytest.approx(row["ttfc_ms"] + 1.0, abs=0.01)
    gaps = np.frombuffer(row["gaps_us"], dtype=np.uint32)
    assert len(gaps) == 29 and 3000 < np.median(gaps) < 15000
    assert row["tpot_ms"] == pytest.approx((row["e2e_ms"] - row["ttfc_ms"]) / 29, rel=1e-6)
    assert row["decode_tps"] == pytest.approx(1000 / row["tpot_ms"], rel=1e-6)


def test_usage_from_finish_part(documented_target):
    o = send(documented_target.url, "tokens=12", auth=False)
    row = dict(zip(COLUMNS, build_row(o, RequestContext("r", "r", "w", 1, "c", "c", 0, MODEL, "", 0, 0.0, 5, 1, "auto"))))
    assert row["token_source"] == "usage" and row["output_tokens"] == 12


def test_openai_route_decoded(target):
    o = send(target.url, "tokens=8", route=RouteConfig(kind="openai"))
    assert o.error is None and o.decoder.usage_completion == 8 and o.decoder.done


def test_reasoning_model_ttfv_after_ttfc(target):
    o = send(target.url, "tokens=60,step_ms=3", model="deepseek-ai/DeepSeek-R1-Distill-Qwen-32B")
    row = dict(zip(COLUMNS, build_row(o, RequestContext("r", "r", "w", 1, "c", "c", 0, MODEL, "", 0, 0.0, 5, 1, "auto"))))
    assert row["ttfv_ms"] > row["ttfc_ms"] + 20


@pytest.mark.parametrize(
    "fault,expected",
    [
        ("500", "server_error"),
        ("429", "rate_limited"),
        ("drop=3,tokens=10", "truncated"),
        ("error_part=2,tokens=10", "stream_error"),
        ("malformed=2,tokens=10", "decode_error"),
        ("garbage", "decode_error"),
    ],
)
def test_fault_classes(target, fault, expected):
    o = send(target.url, fault)
    assert o.error == expected, (o.error, o.detail)


def test_http_error_classes(target):
    assert send(target.url, model="nobody/none").error == "invalid_model"
    assert (
        send(target.url, model="meta-llama/Llama-3.3-70B-Instruct").error == "invalid_model"
    )  # the app's latest code: a ZodError
    assert send(target.url, auth=False).error == "unauthorized"
    bad = json.dumps({"messages": [{"role": "user", "content": " "}]}).encode()
    assert send(target.url, body=bad).error == "bad_request"


def test_timeouts_classes(target):
    t = Timeouts(connect=2, first_chunk=0.3, stall=0.3, total=1.0)
    assert send(target.url, "slow_headers=1.0", timeouts=t).error == "timeout_first_chunk"
    assert send(target.url, "ttft_ms=800", timeouts=t).error == "timeout_first_chunk"
    assert send(target.url, "stall=1.0,tokens=5", timeouts=t).error == "stall"
    assert send(target.url, "never_end=0.05,tokens=2", timeouts=t).error == "timeout_total"


@pytest.mark.parametrize("fault", ["stall=2.0,tokens=5,pad=0.1", "stall=2.0,tokens=5,trickle=0.1"])
def test_stall_timed_from_the_last_content_part(target, fault):
    """2 s without a content part, padded with data parts or a byte-by-byte trickle: still a stall at 0.5 s."""
    t = Timeouts(connect=2, first_chunk=5, stall=0.5, total=10)
    o = send(target.url, fault, timeouts=t)
    assert o.error == "stall", (o.error, o.detail)
    assert 0.45e9 <= o.t_end - o.stamps[-2] < 1.5e9  # given up 0.5 s after the last content part, not after the last byte
    assert o.bytes_in > 0 and "0.5 s" in o.detail


def test_stall_padded_with_sse_keepalives(target):
    """The OpenAI route is SSE: its padding is ``: keep-alive`` comments."""
    t = Timeouts(connect=2, first_chunk=5, stall=0.5, total=10)
    o = send(target.url, "stall=2.0,tokens=5,pad=0.1", timeouts=t, route=RouteConfig(kind="openai"))
    assert o.error == "stall", (o.error, o.detail)
    assert o.bytes_in > 200  # the comments did arrive


def test_padding_shorter_than_the_stall_timeout_is_no_stall(target):
    o = send(target.url, "stall=0.6,tokens=5,pad=0.1", timeouts=Timeouts(connect=2, first_chunk=5, stall=2.0, total=10))
    assert o.error is None and sum(o.stamps[1::2]) == 5


def test_connection_handshake_timed_apart_from_ttfb(target):
    """A new connection's handshake is connect_ms, before t_start; a kept-alive one has none."""
    c = client_for(target.url)
    path, body = RouteConfig().path(MODEL), RouteConfig().body(MODEL, MSGS)
    h = {"Cookie": f"neptun-session={token()}", "X-Bench-Fault": "tokens=3", "X-Request-ID": "conn-1"}
    first = stream_request(Outcome(), c, path, body, h, Timeouts())
    second = stream_request(Outcome(), c, path, body, {**h, "X-Request-ID": "conn-2"}, Timeouts())
    c.close()
    assert first.error is None and second.error is None
    assert first.t_connect and 0 < first.connect_ms < 1000 and first.t_connect < first.t_start
    assert second.t_connect == 0 and second.connect_ms is None
    # t_start is just before the request bytes: the server received them after it, on the same clock
    assert first.t_start <= truth_of(target, "conn-1")["recv_ns"]


def test_last_line_without_newline_is_timed():
    """A body ending in ``0:"hi"`` with no newline: a success with one part, stamped at the read that ended it."""
    import threading

    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(1)

    def serve():
        conn, _ = srv.accept()
        data = b""
        while b"\r\n\r\n" not in data:
            data += conn.recv(65536)
        head, _, rest = data.partition(b"\r\n\r\n")
        length = int(
            next(v for k, v in (line.split(b":", 1) for line in head.split(b"\r\n")[1:]) if k.lower() == b"content-length")
        )
        while len(rest) < length:
            rest += conn.recv(65536)
        conn.sendall(
            b"HTTP/1.1 200 OK\r\nContent-Type: text/plain; charset=utf-8\r\nTransfer-Encoding: chunked\r\n\r\n"
            b'6\r\n0:"hi"\r\n0\r\n\r\n'
        )
        conn.close()

    th = threading.Thread(target=serve, daemon=True)
    th.start()
    o = send(f"http://127.0.0.1:{srv.getsockname()[1]}", auth=False)
    th.join(5)
    srv.close()
    assert o.error is None and o.decoder.text == "hi", (o.error, o.detail)
    assert o.stamps[1::2] == [1] and o.t_start < o.stamps[0] <= o.t_end


def test_connect_error():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    o = send(f"http://127.0.0.1:{port}")
    assert o.error == "connect_error"


def test_cancelled_in_flight(target):
    o = Outcome()
    c = client_for(target.url)
    headers = {"Cookie": f"neptun-session={token()}", "X-Bench-Fault": "tokens=50,step_ms=20"}
    g = gevent.spawn(stream_request, o, c, RouteConfig().path(MODEL), RouteConfig().body(MODEL, MSGS), headers, Timeouts())
    gevent.sleep(0.3)
    g.kill()
    assert o.error == "cancelled" and o.t_end > 0 and o.stamps  # kept what it saw


def test_geventhttpclient_private_parts_exist(target):
    """The attributes bench/load/ghc.py reads are there on this geventhttpclient, on a real response."""
    from bench.load import ghc

    c = client_for(target.url)
    pool = ghc.pool_of(c)
    assert isinstance(ghc.kept_alive(pool), list)
    path, body = RouteConfig().path(MODEL), RouteConfig().body(MODEL, MSGS)
    h = {"Cookie": f"neptun-session={token()}", "X-Bench-Fault": "tokens=3", "Content-Type": "application/json"}
    resp = c.request("POST", path, body=body, headers=h)
    assert isinstance(ghc.body_buffer(resp), bytearray) and ghc.raw_socket(resp) is not None
    sock, _ = ghc.detach(resp)
    assert sock is not None and ghc.raw_socket(resp) is None
    sock.close()
    c.close()


def test_connection_reused_after_clean_stream_and_dropped_after_error(target):
    c = client_for(target.url)
    path, body = RouteConfig().path(MODEL), RouteConfig().body(MODEL, MSGS)
    h = {"Cookie": f"neptun-session={token()}", "X-Bench-Fault": "tokens=3"}
    for _ in range(3):
        assert stream_request(Outcome(), c, path, body, h, Timeouts()).error is None
    assert stream_request(Outcome(), c, path, body, {**h, "X-Bench-Fault": "drop=1,tokens=3"}, Timeouts()).error == "truncated"
    assert stream_request(Outcome(), c, path, body, h, Timeouts()).error is None
    c.close()


def accuracy_run(
    target_args: list[str], streams: int, kind: str = "neptun", ca: str | None = None, target_p99: float = 2.0
) -> list[tuple[float, float]]:
    """``streams`` concurrent streams, 20 parts/s each, measured in a process of its own; per attempt
    the client TTFC error against the server's own stamps (p50, p99). Every request must decode
    every part and every character the server sent (its CRC-32 of the text)."""
    import os
    import subprocess
    import sys

    from conftest import FAST, SECRET

    from bench.target import TargetProcess

    cpus = os.cpu_count() or 1
    probe = [sys.executable, str(Path(__file__).parent / "accuracy_probe.py")]
    if cpus > 1:
        probe = ["taskset", "-c", "0", *probe]
    results = []
    with TargetProcess(["--profiles", FAST, *target_args], secret=SECRET, cpu=cpus - 1 if cpus > 1 else None) as target:
        for attempt in range(3):
            out = subprocess.run(
                [*probe, target.url, str(streams), str(attempt), token(), kind, *([ca] if ca else [])],
                capture_output=True,
                text=True,
                timeout=90,
                cwd=Path(__file__).parent,
            )
            assert out.returncode == 0, out.stderr[-2000:]
            seen = json.loads(out.stdout)
            truth = {
                t["request_id"]: t
                for t in httpx.get(
                    f"{target.url}/_bench/truth", timeout=10, verify=ssl.create_default_context(cafile=ca) if ca else True
                ).json()
            }
            assert all(err is None for _, _, err, _, _ in seen), [x for x in seen if x[2]][:3]
            assert all(parts == truth[rid]["parts"] and crc == truth[rid]["text_crc"] for rid, _, _, parts, crc in seen)
            err = np.array([(first - truth[rid]["first_ns"]) / 1e6 for rid, first, _, _, _ in seen])
            assert (err >= 0).all()  # the client cannot see a part before the server wrote it
            results.append((float(np.percentile(err, 50)), float(np.percentile(err, 99))))
            if results[-1][1] < target_p99:
                break
    return results


def test_ttfc_matches_target_truth_at_100_streams():
    """100 concurrent streams, 20 parts/s each: client TTFC vs the server's own stamps.

    Measured as a load generator runs: a target and a measuring process of their own, pinned to
    different cores where there are two. The 2 ms p99 figure is the benchmark's
    (benchmarks/stream_formats.py, benchmarks/generator_capacity.py): on a shared CI machine one
    attempt's p99 read 0.8-4.7 ms, so a timed test only guards against a systematic lag (p50 under
    1 ms, every part seen after it was written) and gross error (p99 under 10 ms).
    """
    from conftest import OtherWork

    with OtherWork() as other:
        results = accuracy_run([], 100)
    other.bound(min(p50 for p50, _ in results) < 1.0, f"TTFC error p50 under 1 ms: {results}")
    other.bound(min(p99 for _, p99 in results) < 10.0, f"TTFC error p99 under 10 ms: {results}")


@pytest.mark.parametrize(
    "flavor,kind",
    [("documented", "neptun"), ("ui-stream", "neptun"), ("deployed", "openai")],
    ids=["aisdk-v4-documented", "ui-message-stream", "openai-sse"],
)
def test_every_stream_format_decodes_exactly_and_on_time(flavor, kind):
    """Each format the route (or an OpenAI server) sends, 50 streams: every part and character, never
    seen before it was written, TTFC error bounded. The 2 ms figure is a benchmark's
    (benchmarks/stream_formats.py): on a shared machine a timed test only guards against gross error."""
    from conftest import OtherWork

    with OtherWork() as other:
        results = accuracy_run(["--flavor", flavor], 50, kind, target_p99=2.0)
    other.bound(min(p99 for _, p99 in results) < 15.0, f"TTFC error p99 under 15 ms: {results}")


@pytest.mark.parametrize(
    "flavor,kind",
    [("deployed", "neptun"), ("documented", "neptun"), ("ui-stream", "neptun"), ("deployed", "openai")],
    ids=["aisdk-v4-deployed", "aisdk-v4-documented", "ui-message-stream", "openai-sse"],
)
def test_every_stream_format_over_https(tls_files, flavor, kind):
    """The same over TLS (a private CA): every part and character; TTFC error bounded (figures: the benchmark)."""
    results = accuracy_run(
        ["--flavor", flavor, "--tls-cert", tls_files["cert"], "--tls-key", tls_files["key"]],
        50,
        kind,
        ca=tls_files["ca"],
        target_p99=2.0,
    )
    assert min(p99 for _, p99 in results) < 15.0, results


def test_tls_handshake_is_connect_ms_not_ttfb(tls_files):
    """Over HTTPS the first request of a connection pays the handshake: recorded as connect_ms, kept out of TTFB."""
    from conftest import FAST, SECRET

    from bench.target import TargetProcess

    with TargetProcess(["--profiles", FAST, "--tls-cert", tls_files["cert"], "--tls-key", tls_files["key"]], secret=SECRET) as t:
        assert t.url.startswith("https://")
        c = HTTPClient.from_url(t.url, concurrency=1, network_timeout=10, ssl_options={"ca_certs": tls_files["ca"]})
        path, body = RouteConfig().path(MODEL), RouteConfig().body(MODEL, MSGS)
        h = {"Cookie": f"neptun-session={token()}", "X-Bench-Fault": "tokens=3", "Content-Type": "application/json"}
        first = stream_request(Outcome(), c, path, body, {**h, "X-Request-ID": "tls-1"}, Timeouts())
        second = stream_request(Outcome(), c, path, body, {**h, "X-Request-ID": "tls-2"}, Timeouts())
        c.close()
        truth = {
            x["request_id"]: x
            for x in httpx.get(f"{t.url}/_bench/truth", verify=ssl.create_default_context(cafile=tls_files["ca"])).json()
        }
    assert first.error is None and second.error is None, (first.detail, second.detail)
    assert first.connect_ms > 0 and second.connect_ms is None
    assert first.t_start <= truth["tls-1"]["recv_ns"]  # the request went out after the handshake, not before


def word_tokenizer(tmp_path: Path) -> Path:
    """A real tokenizer.json built offline: one token per word or run of punctuation."""
    from tokenizers import Tokenizer, models, pre_tokenizers

    tok = Tokenizer(models.WordLevel({"[UNK]": 0}, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    path = tmp_path / "words" / "tokenizer.json"
    path.parent.mkdir()
    tok.save(str(path))
    return path


def test_tokenizer_counts_output_tokens_when_no_usage(target, tmp_path):
    import re

    from bench.tokens import load_tokenizer

    counter = load_tokenizer(str(word_tokenizer(tmp_path)))
    o = send(target.url, "tokens=25,step_ms=2")
    assert o.error is None and o.decoder.usage_completion is None
    row = dict(
        zip(COLUMNS, build_row(o, RequestContext("r", "r", "w", 1, "c", "c", 0, MODEL, "", 0, 0.0, 5, 1, "auto"), counter))
    )
    words = len(re.findall(r"\w+|[^\w\s]+", o.decoder.text))  # what the Whitespace pre-tokenizer splits on, counted here
    assert row["token_source"] == "tokenizer:words" and row["output_tokens"] == words and words != row["chunks"]
    assert row["tpot_ms"] == pytest.approx((row["e2e_ms"] - row["ttfc_ms"]) / (words - 1), rel=1e-6)


def test_unreadable_tokenizer_is_a_clear_error(tmp_path):
    from bench.errors import InputError
    from bench.tokens import load_tokenizer

    bad = tmp_path / "tokenizer.json"
    bad.write_text("{not json")
    with pytest.raises(InputError, match="could not be loaded"):
        load_tokenizer(str(bad))
    with pytest.raises(InputError, match="not found"):
        load_tokenizer(str(tmp_path / "absent.json"))


def test_tpot_matches_the_servers_own_token_timing(target):
    """50 tokens 20 ms apart: the harness's TPOT equals the server's (last part - first part) / 49 within 0.05 ms,
    as it matched a real llama.cpp server's own per-token timing."""
    from bench.records import COLUMNS, RequestContext, build_row

    o = send(target.url, "tokens=50,step_ms=20", rid="tpot-1")
    row = dict(zip(COLUMNS, build_row(o, RequestContext("r", "tpot-1", "w", 1, "c", "c", 0, MODEL, "", 0, 0.0, 5, 1, "auto"))))
    t = truth_of(target, "tpot-1")
    server_tpot = (t["last_ns"] - t["first_ns"]) / 1e6 / (t["tokens"] - 1)
    assert row["output_tokens"] == t["tokens"] == 50
    assert abs(row["tpot_ms"] - server_tpot) < 0.05, (row["tpot_ms"], server_tpot)


def test_max_tokens_bounds_the_reply_on_the_openai_route(target):
    body = RouteConfig(kind="openai", max_tokens=7).body(MODEL, MSGS)
    assert json.loads(body)["max_tokens"] == 7
    o = send(target.url, route=RouteConfig(kind="openai"), body=body)
    assert o.error is None and o.decoder.usage_completion == 7


def test_sentence_sized_parts_counted_by_characters_not_as_one_token(target):
    """DeepSeek R1 on the route streams sentence-sized parts. Without usage or a tokenizer, one token per
    part would make it look several times slower than a same-speed model: tokens are estimated from
    characters (token_source estimate:chars), within a factor of the server's own count."""
    from bench.records import COLUMNS, RequestContext, build_row

    o = send(target.url, "tokens=80,step_ms=2", model="deepseek-ai/DeepSeek-R1-Distill-Qwen-32B", rid="r1-est")
    row = dict(zip(COLUMNS, build_row(o, RequestContext("r", "r1-est", "w", 1, "c", "c", 0, MODEL, "", 0, 0.0, 5, 1, "auto"))))
    truth = truth_of(target, "r1-est")
    assert row["token_source"] == "estimate:chars" and row["output_tokens"] > 2 * row["chunks"]
    assert 0.5 < row["output_tokens"] / truth["tokens"] < 2.0, (row["output_tokens"], truth["tokens"])
    plain = send(target.url, "tokens=30,step_ms=2")
    assert (
        dict(zip(COLUMNS, build_row(plain, RequestContext("r", "p", "w", 1, "c", "c", 0, MODEL, "", 0, 0.0, 5, 1, "auto"))))[
            "token_source"
        ]
        == "chunks"
    )  # word-sized parts stay one token each

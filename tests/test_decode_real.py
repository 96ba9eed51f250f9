"""Bytes someone else's code produced: the real AI SDK (4.3.19, 5.0.277) and OpenAI-compatible
servers' variations, decoded character for character under any split of the bytes.

The AI SDK fixtures in tests/data/aisdk/ were written by the SDK itself (``streamText`` on a mock
model, then ``toDataStreamResponse`` / ``toUIMessageStreamResponse``); gen-v4.mjs and gen-v5.mjs
there make them again (npm install ai@4 / ai@5 in a scratch folder, node gen-*.mjs).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_decode import feed_split

from bench.load.decode import decode_all

AISDK = Path(__file__).resolve().parent / "data" / "aisdk"


def fixture(name: str) -> tuple[bytes, dict]:
    return (AISDK / f"{name}.body").read_bytes(), json.loads((AISDK / f"{name}.headers.json").read_text())


@settings(max_examples=200, deadline=None)
@given(data=st.data())
def test_ui_message_stream_v5_any_split(data):
    raw, headers = fixture("ui5-plain")
    assert headers["x-vercel-ai-ui-message-stream"] == "v1"
    d = feed_split(raw, data.draw(st.lists(st.integers(0, len(raw)), max_size=12)))
    assert d.error is None and d.done and d.detected == "ui-message-stream"
    assert d.texts == ["Hello", ", wörld", ' "quoted"\n', " 🚀"]


def test_ui_message_stream_reasoning_counts_for_ttfc_not_ttfv():
    raw, _ = fixture("ui5-reasoning")
    d = decode_all(raw)
    assert d.error is None and d.texts == ["Let me think", " about it.", "Answer", " here."]
    assert d.reasoning_parts == 2 and d.first_visible == 2  # sources, text-start/-end and step parts ignored


def test_ui_message_stream_error_part_is_a_stream_error():
    raw, _ = fixture("ui5-error")
    d = decode_all(raw)
    assert d.error == "stream_error" and "An error occurred." in d.error_detail and d.texts == ["Part"]


def test_ui_message_stream_cut_off_is_truncated_and_keepalives_ignored():
    raw, _ = fixture("ui5-plain")
    cut = raw[: raw.index(b'data: {"type":"finish-step"}')]
    d = decode_all(cut)
    assert d.error == "truncated" and "finish part" in d.error_detail
    padded = raw.replace(b"\n\ndata:", b"\n\n: keep-alive\n\ndata:")
    assert decode_all(padded).texts == decode_all(raw).texts and decode_all(padded).error is None


def test_ui_message_stream_ignores_unknown_and_tool_parts():
    events = [
        {"type": "start"},
        {"type": "tool-input-start", "toolCallId": "x", "toolName": "t"},
        {"type": "data-weather", "data": {}},
        {"type": "file", "url": "u", "mediaType": "image/png"},
        {"type": "text-delta", "id": "0", "delta": "ok"},
        {"type": "some-future-part"},
        {"type": "finish"},
    ]
    raw = b"".join(b"data: " + json.dumps(e).encode() + b"\n\n" for e in events)
    d = decode_all(raw)
    assert d.error is None and d.texts == ["ok"] and d.done


@settings(max_examples=200, deadline=None)
@given(data=st.data())
def test_ai_sdk_v4_data_stream_any_split(data):
    raw, headers = fixture("v4-data")
    assert headers["x-vercel-ai-data-stream"] == "v1"
    d = feed_split(raw, data.draw(st.lists(st.integers(0, len(raw)), max_size=12)))
    assert d.error is None and d.detected == "aisdk-data"
    assert d.texts == ["Hello", ", wörld", ' "quoted"\n', " 🚀"] and d.usage_completion == 4 and d.usage_prompt == 12


def chunk(delta: dict | None = None, finish: str | None = None, usage: dict | None = None, choices: bool = True) -> dict:
    obj: dict = {"id": "c", "object": "chat.completion.chunk"}
    obj["choices"] = [{"index": 0, "delta": delta or {}, "finish_reason": finish}] if choices else []
    if usage:
        obj["usage"] = usage
    return obj


def sse(events: list, sep: bytes = b"\n", done: bool = True, extra: bytes = b"") -> bytes:
    out = b""
    for e in events:
        out += extra + b"data: " + json.dumps(e).encode() + sep + sep
    return out + (b"data: [DONE]" + sep + sep if done else b"")


OPENAI_CASES = {
    "role-only first chunk": sse(
        [chunk({"role": "assistant"}), chunk({"content": "Hi"}), chunk({"content": "!"}), chunk(finish="stop")]
    ),
    "usage only in the last chunk, empty choices": sse(
        [
            chunk({"content": "Hi"}),
            chunk({"content": "!"}),
            chunk(finish="stop"),
            chunk(usage={"prompt_tokens": 3, "completion_tokens": 2}, choices=False),
        ]
    ),
    "CRLF line endings": sse([chunk({"content": "Hi"}), chunk({"content": "!"}), chunk(finish="stop")], sep=b"\r\n"),
    "event: and id: lines": sse(
        [chunk({"content": "Hi"}), chunk({"content": "!"}), chunk(finish="stop")], extra=b"event: message\nid: 7\n"
    ),
    "no [DONE], ends with finish_reason": sse(
        [chunk({"content": "Hi"}), chunk({"content": "!"}), chunk(finish="stop")], done=False
    ),
}


@pytest.mark.parametrize("case", list(OPENAI_CASES))
def test_openai_server_variants(case):
    d = decode_all(OPENAI_CASES[case])
    assert d.error is None and d.texts == ["Hi", "!"] and d.detected == "openai", (d.error, d.error_detail)
    if "usage" in case:
        assert d.usage_completion == 2 and d.usage_prompt == 3


def test_openai_reasoning_content_counts_for_ttfc_not_ttfv():
    raw = sse([chunk({"reasoning_content": "hmm"}), chunk({"content": "Hi"}), chunk(finish="stop")])
    d = decode_all(raw)
    assert d.texts == ["hmm", "Hi"] and d.reasoning_parts == 1 and d.first_visible == 1


def test_openai_cut_before_its_end_is_truncated():
    raw = sse([chunk({"content": "Hi"})], done=False)
    assert decode_all(raw).error == "truncated"


def test_tgi_stream_as_tgis_own_client_reads_it():
    """The reference target's TGI token stream (what --backend-protocol tgi|hf reads in tests) is parsed
    by the client TGI itself ships (``text-generation``, its pydantic models validating every event),
    and the harness's decoder reads the same text, the same token count and the proper end from it."""
    import urllib.request

    from text_generation import Client

    from bench.target import TargetProcess

    body = {"inputs": "[INST]hi[/INST]", "parameters": {"max_new_tokens": 20}}
    with TargetProcess(["--profiles", str(Path(__file__).parent / "data" / "delivery-profiles.yaml"), "--no-auth"]) as t:
        theirs = list(Client(t.url).generate_stream(body["inputs"], max_new_tokens=20))
        req = urllib.request.Request(
            t.url + "/generate_stream", data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(req, timeout=30) as resp:
            raw = resp.read()
    text = "".join(r.token.text for r in theirs if not r.token.special)
    assert theirs[-1].generated_text is not None and theirs[-1].token.special
    d = decode_all(raw, "tgi")
    assert d.error is None and d.done and d.detected == "tgi"
    assert d.text == text and d.usage_completion == sum(not r.token.special for r in theirs) == 20

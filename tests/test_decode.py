"""The stream decoder: every framing, any split of the bytes, and no exception on garbage."""

from __future__ import annotations

import json

from hypothesis import given, settings
from hypothesis import strategies as st

from bench.load.decode import StreamDecoder, decode_all

ERRORS = {None, "decode_error", "stream_error", "truncated"}


def aisdk(texts: list[str]) -> bytes:
    return b"".join(b"0:" + json.dumps(t, ensure_ascii=False).encode() + b"\n" for t in texts)


def openai(texts: list[str], usage: int | None = None) -> bytes:
    out = b'data: {"choices":[{"index":0,"delta":{"role":"assistant","content":""}}]}\n\n'
    for t in texts:
        out += b"data: " + json.dumps({"choices": [{"index": 0, "delta": {"content": t}}]}).encode() + b"\n\n"
    if usage is not None:
        out += b'data: {"choices":[],"usage":{"completion_tokens":%d,"prompt_tokens":7}}\n\n' % usage
    return out + b"data: [DONE]\n\n"


def feed_split(data: bytes, cuts: list[int], protocol: str = "auto") -> StreamDecoder:
    d = StreamDecoder(protocol)
    prev = 0
    for c in sorted(set(cuts)) + [len(data)]:
        d.feed(data[prev:c])
        prev = c
    d.finish()
    return d


texts_st = st.lists(st.text(min_size=1, max_size=12).filter(lambda t: t != ""), min_size=1, max_size=12)


@settings(max_examples=300, deadline=None)
@given(texts=texts_st, data=st.data())
def test_aisdk_any_split_same_text(texts, data):
    raw = aisdk(texts)
    cuts = data.draw(st.lists(st.integers(0, len(raw)), max_size=10))
    d = feed_split(raw, cuts)
    assert d.error is None
    assert d.texts == texts


@settings(max_examples=200, deadline=None)
@given(texts=texts_st, data=st.data())
def test_openai_any_split_same_text(texts, data):
    raw = openai(texts, usage=len(texts))
    cuts = data.draw(st.lists(st.integers(0, len(raw)), max_size=10))
    d = feed_split(raw, cuts)
    assert d.error is None and d.done
    assert d.text == "".join(texts) and d.usage_completion == len(texts) and d.usage_prompt == 7


@settings(max_examples=200, deadline=None)
@given(texts=texts_st, data=st.data())
def test_sse_wrapped_aisdk_any_split(texts, data):
    raw = b"".join(b"data: 0:" + json.dumps(t).encode() + b"\n\n" for t in texts)
    cuts = data.draw(st.lists(st.integers(0, len(raw)), max_size=8))
    d = feed_split(raw, cuts)
    assert d.error is None and d.texts == texts


@settings(max_examples=500, deadline=None)
@given(raw=st.binary(max_size=300), data=st.data())
def test_arbitrary_bytes_never_raise(raw, data):
    for protocol in ("auto", "aisdk", "sse", "openai"):
        cuts = data.draw(st.lists(st.integers(0, len(raw)), max_size=6))
        d = feed_split(raw, cuts, protocol)
        assert d.error in ERRORS


def test_multibyte_character_split_across_reads():
    raw = aisdk(["café 😀"])
    cut = raw.index("😀".encode()) + 2
    d = feed_split(raw, [cut])
    assert d.texts == ["café 😀"]


def test_error_part_and_not_protocol():
    assert decode_all(aisdk(["a"]) + b'3:"backend failed"\n').error == "stream_error"
    assert decode_all(b"<html><body>502</body></html>\n").error == "decode_error"
    assert decode_all(aisdk(["a"]) + b'0:"unterminated\n').error == "decode_error"


def test_half_line_at_end_is_truncated():
    d = decode_all(aisdk(["a"]) + b'0:"b')
    assert d.error == "truncated" and d.texts == ["a"]


def test_openai_without_done_is_truncated():
    raw = openai(["a", "b"]).replace(b"data: [DONE]\n\n", b"")
    assert decode_all(raw).error == "truncated"


def test_think_block_visible_index():
    d = decode_all(aisdk(["<think>\nhmm", " more.", "</think>\n\n", "Answer", " here"]))
    assert d.first_visible == 3
    d = decode_all(aisdk(["<thi", "nk>x</think>", "y"]))
    assert d.first_visible == 2
    d = decode_all(aisdk(["Hello", " world"]))
    assert d.first_visible == 0


def test_reasoning_field_is_not_visible():
    raw = (
        b'data: {"choices":[{"delta":{"reasoning_content":"think"}}]}\n\n'
        b'data: {"choices":[{"delta":{"content":"ok"}}]}\n\ndata: [DONE]\n\n'
    )
    d = decode_all(raw)
    assert d.texts == ["think", "ok"] and d.first_visible == 1 and d.reasoning_parts == 1


def test_finish_part_usage_and_other_parts_ignored():
    raw = (
        b'f:{"messageId":"x"}\n'
        + aisdk(["a"])
        + b'2:[{"k":1}]\nd:{"finishReason":"stop","usage":{"promptTokens":3,"completionTokens":9}}\n'
    )
    d = decode_all(raw)
    assert d.error is None and d.texts == ["a"] and d.usage_completion == 9 and d.usage_prompt == 3


def test_empty_parts_do_not_count():
    d = decode_all(aisdk(["", "a"]).replace(b'0:"a"', b'0:""\n0:"a"'))
    assert d.texts == ["a"]

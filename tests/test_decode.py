"""The stream decoder: every framing, any split of the bytes, and no exception on garbage."""

from __future__ import annotations

import json

from hypothesis import given, settings
from hypothesis import strategies as st

from bench.load.decode import PROTOCOLS, Decoder, decode_all, decoder_for
from bench.schema import Protocol

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


def feed_split(data: bytes, cuts: list[int], protocol: str = "auto") -> Decoder:
    d = decoder_for(protocol)
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
    for protocol in PROTOCOLS:
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


# --- one class per framing, one vocabulary -------------------------------------------------------------

UI = (
    b'data: {"type":"start"}\n\ndata: {"type":"text-start","id":"0"}\n\n'
    b'data: {"type":"text-delta","id":"0","delta":"Hi"}\n\ndata: {"type":"finish"}\n\ndata: [DONE]\n\n'
)
TGI = (
    b'data:{"token":{"id":1,"text":"Hi","logprob":0,"special":false},"generated_text":null,"details":null}\n\n'
    b'data:{"token":{"id":2,"text":"","logprob":0,"special":true},"generated_text":"Hi","details":null}\n\n'
)
BODIES = {
    Protocol.aisdk: aisdk(["Hi"]),
    Protocol.sse: b'data: 0:"Hi"\n\n',
    Protocol.ui: UI,
    Protocol.openai: openai(["Hi"]),
    Protocol.tgi: TGI,
}


def test_every_framing_has_its_class_and_auto_becomes_it():
    classes = set()
    for protocol, body in BODIES.items():
        told = decode_all(body, protocol)
        assert told.error is None and told.texts == ["Hi"], (protocol, told.error_detail)
        assert told.detected == protocol.recorded and type(told).protocol is protocol
        classes.add(type(told))
        auto = feed_split(body, [1, 7, len(body) // 2])
        assert type(auto) is type(told), protocol  # the auto decoder is now that framing's own class
        assert auto.detected == protocol.recorded and auto.texts == ["Hi"] and auto.error is None
    assert len(classes) == len(BODIES)
    # the names a record stores are the ones every release so far wrote
    assert [p.recorded for p in Protocol] == ["auto", "aisdk-data", "aisdk-data-sse", "ui-message-stream", "openai", "tgi"]
    assert PROTOCOLS == tuple(p.value for p in Protocol)


def test_no_framing_adds_state_of_its_own():
    """AutoDecoder becomes another class in place, which needs one slot layout for all of them."""

    def subclasses(c: type) -> list[type]:
        return [c] + [s for sub in c.__subclasses__() for s in subclasses(sub)]

    found = subclasses(Decoder)
    assert len(found) >= 8
    for cls in found[1:]:
        assert cls.__dict__.get("__slots__") == (), cls


def test_auto_tells_nothing_before_the_first_line_and_stamps_no_part_early():
    d = decoder_for()
    assert d.detected == "" and d.feed(b"\n\n: keep-alive\n") == 0 and d.detected == ""  # an SSE comment: which SSE?
    assert d.feed(b'\ndata: {"choices":[{"delta":{"content":"a"}}]}') == 0  # the event is not complete
    assert d.feed(b"\n\n") == 1 and d.detected == "openai"


def test_ui_header_is_a_hint_not_a_label():
    d = decoder_for()
    d.saw_ui_header()
    d.feed(b'data: {"type":"text-delta","delta":"a"}\n\ndata: {"type":"finish"}\n\n')
    assert d.finish() is None and d.detected == "ui-message-stream"
    d = decoder_for()
    d.saw_ui_header()  # an app that sets the header but sends AI SDK 4 lines is recorded as what it sent
    d.feed(aisdk(["a"]))
    assert d.finish() is None and d.detected == "aisdk-data"


def test_a_framing_told_refuses_another_ones_bytes():
    assert decode_all(b'data: {"delta":"a"}\n\n', "ui").error == "decode_error"  # a UI part has a type
    assert decode_all(openai(["a"]), "sse").error == "decode_error"  # JSON chunks are not AI SDK parts
    assert decode_all(aisdk(["a"]), "openai").error == "decode_error"  # lines that are not SSE
    assert decode_all(b"", "openai").error == "truncated" and decode_all(b"").error is None
    try:
        decoder_for("vercel")
    except ValueError as exc:
        assert "aisdk" in str(exc)
    else:
        raise AssertionError("an unknown protocol was accepted")

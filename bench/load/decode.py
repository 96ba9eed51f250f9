"""Incremental decoders for the streams a chat route sends, one class per framing, safe under any split.

Five framings reach us, one ``Decoder`` subclass each, all behind ``feed(bytes) -> parts`` and
``finish() -> error class``, as httpx's ``_decoders.py`` has one class per content encoding:

* ``DataStreamDecoder``: the route's AI SDK 4 data stream (``0:"text"\\n`` lines, either content type);
* ``DataStreamSSEDecoder``: the same parts inside SSE ``data:`` events;
* ``UIMessageStreamDecoder``: the AI SDK 5 UI message stream (SSE events ``{"type":"text-delta",...}``);
* ``OpenAIDecoder``: OpenAI chat-completion chunks over SSE;
* ``TGIDecoder``: Hugging Face's token stream (``--backend-protocol tgi|hf``).

``AutoDecoder`` reads until the bytes tell (the first line; for SSE, the first event) and then becomes
that framing's class, so the read loop pays nothing for detection after the first part. Which framing
a stream was decoded in is ``detected``: the ``Protocol`` enum's record name, one vocabulary for the
option and the record. Lines are split on the raw ``\\n`` byte before any UTF-8 decoding, so a
character spread over two reads is never cut.

A decoder never raises on bad input: it sets ``error`` to an error class of METRICS.md
(``decode_error``, ``stream_error`` or ``truncated``) and the caller stops reading. That keeps the hot
loop free of exception handling and makes the fuzz contract simple. The text-part fast path (a
``0:"..."`` line without escapes is its own bytes) is the data stream's; at 200 streams a part costs
about 45 µs of client CPU, of which the decoder is a few (``benchmarks/hotpath.py``).
"""

from __future__ import annotations

import json
import re
from typing import Any, ClassVar

from bench.schema import ErrorClass, Protocol

PROTOCOLS = tuple(p.value for p in Protocol)  # the --protocol choices
# UI message stream parts that end the stream or fail it; every other type carries no reply text
_UI_TERMINAL = {"finish"}
_UI_FAILED = {"error", "abort"}
_AISDK_LINE = re.compile(rb"^[0-9a-z]:")
_SSE_FIELDS = (b"data:", b":", b"event:", b"id:", b"retry:")
MAX_LINE_BYTES = 16 * 1024 * 1024
_THINK, _END_THINK = "<think>", "</think>"
# reasoning blocks at the start of a reply, in the forms the app sends: the model's own <think>, and
# the Neptun route's rewrite of DeepSeek R1's thinking into one <details><summary>AI Thinking Process...
_BLOCKS = ((_THINK, _END_THINK), ("<details>", "</details>"))


class Decoder:
    """What every framing fills: the content parts in order, usage, the error and whether the end was proper.

    ``feed`` returns how many content parts the bytes completed, so the caller can stamp each
    with the time of the read that delivered it. All state lives in these slots, shared by every
    subclass (none adds any), which is what lets ``AutoDecoder`` become the class it detects.
    """

    protocol: ClassVar[Protocol] = Protocol.auto
    end_part: ClassVar[str] = ""  # the framing's last part, named in the error when a stream lacks it

    __slots__ = (
        "texts",
        "reasoning_parts",
        "usage_prompt",
        "usage_completion",
        "error",
        "error_detail",
        "done",
        "first_visible",
        "_buf",
        "_data",
        "_pre",
        "_reasoning_idx",
        "_ui_hint",
    )

    def __init__(self) -> None:
        self.texts: list[str] = []  # every content part, reasoning included, in order
        self.reasoning_parts = 0  # parts that came as a reasoning field (not counted visible)
        self.usage_prompt: int | None = None
        self.usage_completion: int | None = None
        self.error: str | None = None
        self.error_detail = ""
        self.done = False  # the framing's terminal part was seen
        self.first_visible: int | None = None  # index in ``texts`` of the first visible part
        self._reasoning_idx: list[int] = []  # parts that came as reasoning (a field or part type of their own)
        self._buf = bytearray()  # the bytes after the last newline
        self._data: list[bytes] = []  # SSE: the data lines of the event being read
        self._pre = ""  # the visible text so far, until the first visible part is known
        self._ui_hint = False

    # --- the contract -------------------------------------------------------------------------
    @property
    def detected(self) -> str:
        """The framing the stream was decoded in, as a record stores it; "" while not yet known."""
        return self.protocol.recorded

    def feed(self, data: bytes) -> int:
        if self.error:
            return 0
        before = len(self.texts)
        try:  # free when nothing raises (3.11's zero-cost try); the contract: never raise on any bytes
            self._feed(data)
        except Exception as exc:  # noqa: BLE001 (a nesting bomb's RecursionError, a shape no check foresaw)
            self._fail(ErrorClass.decode_error, f"undecodable part ({type(exc).__name__}: {str(exc)[:120]})")
        return len(self.texts) - before

    def finish(self) -> str | None:
        """Called at the clean end of the body: the error class if the stream did not end properly."""
        if self.error:
            return self.error
        try:
            self._finish()
        except Exception as exc:  # noqa: BLE001
            self._fail(ErrorClass.decode_error, f"undecodable end of stream ({type(exc).__name__}: {str(exc)[:120]})")
        if not self.error and self.protocol.has_terminal and not self.done:
            self._fail(ErrorClass.truncated, f"the stream ended without {self.end_part}")
        return self.error

    def saw_ui_header(self) -> None:
        """The response said ``x-vercel-ai-ui-message-stream``: a hint for detection, no more."""

    @property
    def text(self) -> str:
        return "".join(self.texts)

    def visible_text(self) -> str:
        """The reply as a user saw it: no reasoning parts, no leading ``<think>...</think>`` block.
        What the AI SDK's ``useChat`` sends back as the assistant message's text on the next turn."""
        if self._reasoning_idx:
            skip = set(self._reasoning_idx)
            text = "".join(t for i, t in enumerate(self.texts) if i not in skip)
        else:
            text = self.text
        stripped = text.lstrip()
        for open_tag, close_tag in _BLOCKS:
            if stripped.startswith(open_tag):
                end = stripped.find(close_tag)
                return stripped[end + len(close_tag) :].lstrip() if end >= 0 else ""
        return text

    # --- for the framings ---------------------------------------------------------------------
    def _feed(self, data: bytes) -> None:
        raise NotImplementedError

    def _finish(self) -> None:
        raise NotImplementedError

    def _lines(self, data: bytes) -> list[bytes] | None:
        """The complete lines ``data`` ends (the rest kept for the next read); None while there are none."""
        buf = self._buf
        if b"\n" not in data:
            buf += data
            if len(buf) > MAX_LINE_BYTES:
                self._fail(ErrorClass.decode_error, f"a part longer than {MAX_LINE_BYTES} bytes")
            return None
        if buf:
            buf += data
            lines = bytes(buf).split(b"\n")
            buf.clear()
        else:
            lines = data.split(b"\n")
        tail = lines.pop()
        if tail:
            buf += tail
        return lines

    def _fail(self, cls: str, detail: str) -> None:
        self.error, self.error_detail = cls, detail

    def _text(self, text: str, reasoning: bool = False) -> None:
        idx = len(self.texts)
        self.texts.append(text)
        if reasoning:
            self.reasoning_parts += 1
            self._reasoning_idx.append(idx)
            return
        if self.first_visible is None:
            self._pre += text
            s = self._pre.lstrip()
            for open_tag, close_tag in _BLOCKS:
                if s.startswith(open_tag):
                    end = s.find(close_tag)
                    if end >= 0 and s[end + len(close_tag) :].strip():
                        self.first_visible = idx
                    return
            if not any(o.startswith(s) for o, _ in _BLOCKS):  # not (the start of) an opening tag
                self.first_visible = idx

    def _aisdk_part(self, kind: bytes, payload: bytes) -> None:
        """One AI SDK 4 data-stream part (``kind:payload``), in lines or in SSE events."""
        try:
            value = json.loads(payload)
        except ValueError:
            self._fail(ErrorClass.decode_error, f"malformed {kind.decode()}: part {payload[:60]!r}")
            return
        if kind == b"0" or kind == b"g":
            if not isinstance(value, str):
                self._fail(ErrorClass.decode_error, f"{kind.decode()}: part is not a string")
            elif value:
                self._text(value, reasoning=kind == b"g")
        elif kind == b"3":
            self._fail(ErrorClass.stream_error, f"error part: {str(value)[:200]}")
        elif kind in (b"d", b"e") and isinstance(value, dict):
            usage = value.get("usage") or {}
            if isinstance(usage, dict):
                if isinstance(usage.get("completionTokens"), int):
                    self.usage_completion = usage["completionTokens"]
                if isinstance(usage.get("promptTokens"), int):
                    self.usage_prompt = usage["promptTokens"]
        # other part types (data, annotations, tool calls, step markers) carry no reply text


class DataStreamDecoder(Decoder):
    """The AI SDK 4 data stream: one ``kind:json`` part a line; ``0:`` is text. No terminal part."""

    protocol = Protocol.aisdk
    __slots__ = ()

    def _feed(self, data: bytes) -> None:
        buf = self._buf  # Decoder._lines, inline: this is the read loop's own path (one call less per read)
        if b"\n" not in data:
            buf += data
            if len(buf) > MAX_LINE_BYTES:
                self._fail(ErrorClass.decode_error, f"a part longer than {MAX_LINE_BYTES} bytes")
            return
        if buf:
            buf += data
            lines = bytes(buf).split(b"\n")
            buf.clear()
        else:
            lines = data.split(b"\n")
        tail = lines.pop()
        if tail:
            buf += tail
        for line in lines:
            if line[:2] == b"0:":  # the hot path: one text part
                try:
                    inner = line[3:-1]
                    if len(line) > 3 and line[2:3] == b'"' and line[-1:] == b'"' and b"\\" not in inner and b'"' not in inner:
                        text = inner.decode()  # no escapes: the JSON string is its own bytes
                    else:
                        text = json.loads(line[2:])
                except ValueError:
                    self._fail(ErrorClass.decode_error, f"malformed text part {line[:60]!r}")
                    return
                if not isinstance(text, str):
                    self._fail(ErrorClass.decode_error, f"text part is not a string: {line[:60]!r}")
                    return
                if text:
                    self._text(text)
                continue
            if line.endswith(b"\r"):
                line = line[:-1]
            if not line:
                continue
            if not _AISDK_LINE.match(line):
                self._fail(ErrorClass.decode_error, f"not an AI SDK data-stream line: {line[:60]!r}")
                return
            self._aisdk_part(line[:1], line[2:])
            if self.error:
                return

    def _finish(self) -> None:
        if self._buf.strip():
            # a last line without its newline: accept it if it parses, as the AI SDK client does
            line = bytes(self._buf)
            self._buf.clear()
            self._feed(line + b"\n")
            if self.error:
                self._fail(ErrorClass.truncated, "the body ended with a half line")


class _SSEDecoder(Decoder):
    """Server-sent events: ``data:`` lines up to a blank line make one event, handed to ``_event``."""

    __slots__ = ()

    def _feed(self, data: bytes) -> None:
        lines = self._lines(data)
        if lines is None:
            return
        for line in lines:
            self._sse_line(line)
            if self.error:
                return

    def _sse_line(self, line: bytes) -> None:
        if line.endswith(b"\r"):
            line = line[:-1]
        if not line:
            if self._data:
                self._dispatch()
            return
        if line.startswith(b"data:"):
            payload = line[5:]
            self._data.append(payload[1:] if payload[:1] == b" " else payload)
        elif not line.startswith(_SSE_FIELDS):
            self._fail(ErrorClass.decode_error, f"not an SSE line: {line[:60]!r}")
        # comments (keep-alives), event:, id: and retry: carry nothing for us

    def _dispatch(self) -> None:
        payload = b"\n".join(self._data)
        self._data = []
        if payload == b"[DONE]":
            self.done = True
        else:
            self._event(payload)

    def _finish(self) -> None:
        if self._buf.strip():
            self._fail(ErrorClass.truncated, "the body ended inside an event")
        elif self._data:
            self._dispatch()

    def _event(self, payload: bytes) -> None:
        raise NotImplementedError

    def _json(self, payload: bytes) -> dict[str, Any] | None:
        try:
            obj = json.loads(payload)
        except ValueError:
            self._fail(ErrorClass.decode_error, f"malformed JSON chunk {payload[:60]!r}")
            return None
        if not isinstance(obj, dict):
            self._fail(ErrorClass.decode_error, "chunk is not a JSON object")
            return None
        return obj


class DataStreamSSEDecoder(_SSEDecoder):
    """The AI SDK 4 data stream's parts, each the payload of one SSE event."""

    protocol = Protocol.sse
    __slots__ = ()

    def _event(self, payload: bytes) -> None:
        if _AISDK_LINE.match(payload):
            self._aisdk_part(payload[:1], payload[2:])
        else:
            self._fail(ErrorClass.decode_error, f"not an AI SDK part in an SSE event: {payload[:60]!r}")


class UIMessageStreamDecoder(_SSEDecoder):
    """The AI SDK 5 UI message stream: one JSON part per event, ``type`` saying which."""

    protocol = Protocol.ui
    end_part = "a finish part or data: [DONE]"
    __slots__ = ()

    def _event(self, payload: bytes) -> None:
        obj = self._json(payload)
        if obj is None:
            return
        kind = obj.get("type")
        if not isinstance(kind, str):
            self._fail(ErrorClass.decode_error, f"a UI message part without a type: {payload[:60]!r}")
        elif kind == "text-delta" or kind == "reasoning-delta":
            delta = obj.get("delta")
            if not isinstance(delta, str):
                self._fail(ErrorClass.decode_error, f"{kind} part without a string delta")
            elif delta:
                self._text(delta, reasoning=kind == "reasoning-delta")
        elif kind in _UI_FAILED:
            text = obj.get("errorText") or obj.get("reason") or kind
            self._fail(ErrorClass.stream_error, f"{kind} part: {str(text)[:200]}")
        elif kind in _UI_TERMINAL:
            self.done = True
            meta = obj.get("messageMetadata")
            usage = meta.get("usage") if isinstance(meta, dict) else None
            if isinstance(usage, dict):  # an app may put the SDK's usage into the message metadata
                if isinstance(usage.get("outputTokens"), int):
                    self.usage_completion = usage["outputTokens"]
                if isinstance(usage.get("inputTokens"), int):
                    self.usage_prompt = usage["inputTokens"]
        # start, start-step, text-start/-end, reasoning-start/-end, finish-step, source-*, file, data-*,
        # tool-*, message-metadata and any part type added later carry no reply text


class OpenAIDecoder(_SSEDecoder):
    """OpenAI chat-completion chunks: ``choices[].delta.content`` (and reasoning), usage, ``[DONE]``."""

    protocol = Protocol.openai
    end_part = "a finish_reason or data: [DONE]"
    __slots__ = ()

    def _event(self, payload: bytes) -> None:
        obj = self._json(payload)
        if obj is None:
            return
        if "error" in obj:
            err = obj["error"]
            self._fail(ErrorClass.stream_error, str(err.get("message", err) if isinstance(err, dict) else err)[:200])
            return
        usage = obj.get("usage")
        if isinstance(usage, dict):
            if isinstance(usage.get("completion_tokens"), int):
                self.usage_completion = usage["completion_tokens"]
            if isinstance(usage.get("prompt_tokens"), int):
                self.usage_prompt = usage["prompt_tokens"]
        choices = obj.get("choices") or ()
        if not isinstance(choices, (list, tuple)):
            self._fail(ErrorClass.decode_error, f"choices is not a list: {str(choices)[:60]}")
            return
        for choice in choices:
            if isinstance(choice, dict) and choice.get("finish_reason"):
                self.done = True  # a proper end even where a server sends no [DONE] (usage may still follow)
            delta = choice.get("delta") if isinstance(choice, dict) else None
            if not isinstance(delta, dict):
                continue
            reasoning = delta.get("reasoning_content") or delta.get("reasoning")
            if isinstance(reasoning, str) and reasoning:
                self._text(reasoning, reasoning=True)
            content = delta.get("content")
            if isinstance(content, str) and content:
                self._text(content)


class TGIDecoder(_SSEDecoder):
    """Hugging Face's text-generation stream (TGI ``/generate_stream``, the Inference API):
    ``{"token": {"id", "text", "logprob", "special"}, "generated_text", "details"}``. Special tokens
    (the end of sequence) carry no reply text; the last event has ``generated_text``."""

    protocol = Protocol.tgi
    end_part = "its last event (generated_text)"
    __slots__ = ()

    def _event(self, payload: bytes) -> None:
        obj = self._json(payload)
        if obj is None:
            return
        if "error" in obj:
            self._fail(ErrorClass.stream_error, str(obj["error"])[:200])
            return
        token = obj.get("token")
        if not isinstance(token, dict):
            self._fail(ErrorClass.decode_error, f"a TGI event without a token object: {str(token)[:60]}")
            return
        text = token.get("text")
        if not token.get("special"):
            # one event per generated token: the count is the server's own (an empty text is a token too)
            self.usage_completion = (self.usage_completion or 0) + 1
            if isinstance(text, str) and text:
                self._text(text)
        if obj.get("generated_text") is not None:
            self.done = True
            details = obj.get("details")
            if isinstance(details, dict) and isinstance(details.get("generated_tokens"), int):
                self.usage_completion = details["generated_tokens"]


class AutoDecoder(Decoder):
    """Reads the first line, then becomes the data-stream decoder or (SSE) ``_AutoSSEDecoder``.

    No part can complete before the bytes tell, so every part is still stamped with the read that
    completed it, and the object the caller holds is from then on the framing's own class.
    """

    __slots__ = ()

    @property
    def detected(self) -> str:
        return ""

    def saw_ui_header(self) -> None:
        self._ui_hint = True

    def _feed(self, data: bytes) -> None:
        if b"\n" not in data:  # the first line is not complete yet
            self._buf += data
            if len(self._buf) > MAX_LINE_BYTES:
                self._fail(ErrorClass.decode_error, f"a part longer than {MAX_LINE_BYTES} bytes")
            return
        pending = (bytes(self._buf) + data).lstrip(b"\r\n")  # blank lines before the first tell nothing
        self._buf.clear()
        end = pending.find(b"\n")
        if end < 0:
            self._buf += pending
            return
        self._become(self._framing(pending[:end]))
        self._feed(pending)

    def _finish(self) -> None:
        if self._buf.strip():  # a first line without its newline
            pending = bytes(self._buf)
            self._buf.clear()
            self._become(self._framing(pending))
            self._feed(pending)
            self._finish()

    def _become(self, cls: type[Decoder]) -> None:
        self.__class__ = cls  # type: ignore[assignment]  # the same slots: the object is now that framing's

    def _framing(self, first_line: bytes) -> type[Decoder]:
        if not first_line.startswith(_SSE_FIELDS):
            return DataStreamDecoder
        return UIMessageStreamDecoder if self._ui_hint else _AutoSSEDecoder


class _AutoSSEDecoder(_SSEDecoder):
    """SSE whose first event's payload tells the framing: an AI SDK part, a JSON object with
    ``choices`` (OpenAI), with ``token`` (TGI), with a string ``type`` (the UI stream)."""

    __slots__ = ()

    @property
    def detected(self) -> str:
        return ""

    def _event(self, payload: bytes) -> None:
        self.__class__ = _event_framing(payload)  # type: ignore[assignment]  # the same slots
        self._event(payload)


def _event_framing(payload: bytes) -> type[_SSEDecoder]:
    if _AISDK_LINE.match(payload):
        return DataStreamSSEDecoder
    if payload[:1] == b"{":
        try:
            obj = json.loads(payload)
        except ValueError:
            return OpenAIDecoder  # which reports the malformed chunk
        if isinstance(obj, dict) and "choices" not in obj:
            if "token" in obj:
                return TGIDecoder
            if isinstance(obj.get("type"), str):
                return UIMessageStreamDecoder
    return OpenAIDecoder  # chunks, an error object, or a payload none of them reads (it says so)


_DECODERS: dict[Protocol, type[Decoder]] = {
    Protocol.auto: AutoDecoder,
    Protocol.aisdk: DataStreamDecoder,
    Protocol.sse: DataStreamSSEDecoder,
    Protocol.ui: UIMessageStreamDecoder,
    Protocol.openai: OpenAIDecoder,
    Protocol.tgi: TGIDecoder,
}


def decoder_for(protocol: Protocol | str = Protocol.auto) -> Decoder:
    """A new decoder for one stream in ``protocol`` (a ``Protocol`` or its option name)."""
    try:
        return _DECODERS[Protocol(protocol)]()
    except ValueError:
        raise ValueError(f"unknown protocol {protocol!r}; expected one of {PROTOCOLS}") from None


def decode_all(data: bytes, protocol: Protocol | str = Protocol.auto) -> Decoder:
    """Decode a whole body at once (tests, post-processing)."""
    d = decoder_for(protocol)
    d.feed(data)
    d.finish()
    return d

"""Incremental decoders for the streams a chat route sends, safe under any split of the bytes.

Five framings reach us: the route's AI SDK 4 data stream (``0:"text"\\n`` lines, either content
type), the same parts inside SSE ``data:`` events, the AI SDK 5 UI message stream (SSE events
``{"type":"text-delta","delta":...}``, header ``x-vercel-ai-ui-message-stream: v1``), OpenAI
chat-completion chunks over SSE, and (``--backend-protocol tgi|hf``) Hugging Face's token stream. ``StreamDecoder`` detects which from the bytes unless told, and
says what it found in ``detected``. Lines are split on the raw ``\\n`` byte before any UTF-8
decoding, so a character spread over two reads is never cut.

The decoder never raises on bad input: it sets ``error`` to an error class of METRICS.md
(``decode_error`` or ``stream_error``) and the caller stops reading. That keeps the hot loop
free of exception handling and makes the fuzz contract simple.
"""

from __future__ import annotations

import json
import re
from typing import Any

from bench.schema import ErrorClass

PROTOCOLS = ("auto", "aisdk", "sse", "openai", "ui", "tgi")
# UI message stream parts that carry no reply text: accepted and passed over (and any type not known yet)
_UI_TERMINAL = {"finish"}
_UI_FAILED = {"error", "abort"}
_AISDK_LINE = re.compile(rb"^[0-9a-z]:")
MAX_LINE_BYTES = 16 * 1024 * 1024
_THINK, _END_THINK = "<think>", "</think>"
# reasoning blocks at the start of a reply, in the forms the app sends: the model's own <think>, and
# the Neptun route's rewrite of DeepSeek R1's thinking into one <details><summary>AI Thinking Process...
_BLOCKS = ((_THINK, _END_THINK), ("<details>", "</details>"))


class StreamDecoder:
    """Feed raw body bytes; read back content parts, usage, errors and whether the end was proper.

    ``feed`` returns how many content parts the bytes completed, so the caller can stamp each
    with the time of the read that delivered it.
    """

    __slots__ = (
        "protocol",
        "texts",
        "reasoning_parts",
        "usage_prompt",
        "usage_completion",
        "error",
        "error_detail",
        "done",
        "first_visible",
        "_buf",
        "_sse",
        "_data",
        "_pre",
        "saw_openai",
        "detected",
        "_reasoning_idx",
    )

    def __init__(self, protocol: str = "auto") -> None:
        if protocol not in PROTOCOLS:
            raise ValueError(f"unknown protocol {protocol!r}; expected one of {PROTOCOLS}")
        self.protocol = protocol
        self.texts: list[str] = []  # every content part, reasoning included, in order
        self.reasoning_parts = 0  # parts that came as a reasoning field (not counted visible)
        self.usage_prompt: int | None = None
        self.usage_completion: int | None = None
        self.error: str | None = None
        self.error_detail = ""
        self.done = False  # a terminal part ([DONE]) was seen
        self.first_visible: int | None = None  # index in ``texts`` of the first visible part
        self._reasoning_idx: list[int] = []  # parts that came as reasoning (a field or part type of their own)
        self.saw_openai = protocol in ("openai", "ui", "tgi")  # a protocol with a terminal part: without it, truncated
        self.detected = {
            "aisdk": "aisdk-data",
            "sse": "aisdk-data-sse",
            "openai": "openai",
            "ui": "ui-message-stream",
            "tgi": "tgi",
        }.get(protocol, "")
        self._buf = bytearray()
        self._sse = protocol in ("sse", "openai", "ui", "tgi")
        self._data: list[bytes] = []
        self._pre = ""

    # --- public -----------------------------------------------------------------------------
    def feed(self, data: bytes) -> int:
        if self.error:
            return 0
        before = len(self.texts)
        try:  # free when nothing raises (3.11's zero-cost try); the contract: never raise on any bytes
            return self._feed(data, before)
        except Exception as exc:  # noqa: BLE001 (a nesting bomb's RecursionError, a shape no check foresaw)
            self._fail(ErrorClass.decode_error, f"undecodable part ({type(exc).__name__}: {str(exc)[:120]})")
            return len(self.texts) - before

    def _feed(self, data: bytes, before: int) -> int:
        buf = self._buf
        if b"\n" not in data:
            buf += data
            if len(buf) > MAX_LINE_BYTES:
                self._fail(ErrorClass.decode_error, f"a part longer than {MAX_LINE_BYTES} bytes")
            return 0
        if buf:
            buf += data
            lines = bytes(buf).split(b"\n")
            buf.clear()
        else:
            lines = data.split(b"\n")
        tail = lines.pop()
        if tail:
            buf += tail
        if self._sse:
            for line in lines:
                self._sse_line(line)
                if self.error:
                    break
        else:
            for i, line in enumerate(lines):
                if line[:2] == b"0:":  # the hot path: one text part
                    try:
                        inner = line[3:-1]
                        if len(line) > 3 and line[2:3] == b'"' and line[-1:] == b'"' and b"\\" not in inner and b'"' not in inner:
                            text = inner.decode()  # no escapes: the JSON string is its own bytes
                        else:
                            text = json.loads(line[2:])
                    except ValueError:
                        self._fail(ErrorClass.decode_error, f"malformed text part {line[:60]!r}")
                        break
                    if not isinstance(text, str):
                        self._fail(ErrorClass.decode_error, f"text part is not a string: {line[:60]!r}")
                        break
                    if text:
                        self._text(text)
                else:
                    self._other_line(line)
                    if self.error:
                        break
                    if self._sse:  # auto-detected SSE on this line: the rest are SSE lines too
                        for rest in lines[i + 1 :]:
                            self._sse_line(rest)
                            if self.error:
                                break
                        break
        return len(self.texts) - before

    def finish(self) -> str | None:
        """Called at the clean end of the body: the error class if the stream did not end properly."""
        try:
            return self._finish()
        except Exception as exc:  # noqa: BLE001
            self._fail(ErrorClass.decode_error, f"undecodable end of stream ({type(exc).__name__}: {str(exc)[:120]})")
            return self.error

    def _finish(self) -> str | None:
        if self.error:
            return self.error
        if self._buf.strip():
            if self._sse:
                self._fail(ErrorClass.truncated, "the body ended inside an event")
            else:
                # a last line without its newline: accept it if it parses, as the AI SDK client does
                line = bytes(self._buf)
                self._buf.clear()
                self.feed(line + b"\n")
                if self.error:
                    self.error = ErrorClass.truncated
                    self.error_detail = "the body ended with a half line"
            return self.error
        if self._sse and self._data:
            self._dispatch()
        if self.saw_openai and not self.done and not self.error:
            end = {
                "ui-message-stream": "a finish part or data: [DONE]",
                "tgi": "its last event (generated_text)",
            }.get(self.detected, "a finish_reason or data: [DONE]")
            self._fail(ErrorClass.truncated, f"the stream ended without {end}")
        return self.error

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

    # --- internals ----------------------------------------------------------------------------
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

    def _other_line(self, line: bytes) -> None:
        if line.endswith(b"\r"):
            line = line[:-1]
        if not line:
            return
        if self.protocol == "auto" and not self.texts and (line.startswith((b"data:", b":", b"event:", b"id:", b"retry:"))):
            self._sse = True
            self._sse_line(line)
            return
        if not self.detected:
            self.detected = "aisdk-data"
        if not _AISDK_LINE.match(line):
            self._fail(ErrorClass.decode_error, f"not an AI SDK data-stream line: {line[:60]!r}")
            return
        self._aisdk_part(line[:1], line[2:])

    def _aisdk_part(self, kind: bytes, payload: bytes) -> None:
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
        elif line.startswith(b":") or line.startswith((b"event:", b"id:", b"retry:")):
            return
        else:
            self._fail(ErrorClass.decode_error, f"not an SSE line: {line[:60]!r}")

    def _dispatch(self) -> None:
        payload = b"\n".join(self._data)
        self._data = []
        if payload == b"[DONE]":
            self.done = True
            return
        if payload[:1] == b"{":
            self._json_event(payload)
        elif _AISDK_LINE.match(payload):
            if not self.detected:
                self.detected = "aisdk-data-sse"
            self._aisdk_part(payload[:1], payload[2:])
        else:
            self._fail(ErrorClass.decode_error, f"unknown SSE payload {payload[:60]!r}")

    def _json_event(self, payload: bytes) -> None:
        try:
            obj = json.loads(payload)
        except ValueError:
            self._fail(ErrorClass.decode_error, f"malformed JSON chunk {payload[:60]!r}")
            return
        if not isinstance(obj, dict):
            self._fail(ErrorClass.decode_error, "chunk is not a JSON object")
            return
        kind = obj.get("type")
        if self.detected == "tgi" or (not self.detected and "token" in obj and "choices" not in obj):
            self._tgi_event(obj)
        elif isinstance(kind, str) and "choices" not in obj and self.detected != "openai":
            self._ui_part(kind, obj)
        else:
            self._openai_chunk(obj)

    def _ui_part(self, kind: str, obj: dict[str, Any]) -> None:
        """One part of the AI SDK 5 UI message stream."""
        self.saw_openai = True  # it ends with a finish part or [DONE]; without either it was cut off
        self.detected = "ui-message-stream"
        if kind == "text-delta" or kind == "reasoning-delta":
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

    def _tgi_event(self, obj: dict[str, Any]) -> None:
        """One event of Hugging Face's text-generation stream (TGI ``/generate_stream``, the Inference
        API): ``{"token": {"id", "text", "logprob", "special"}, "generated_text", "details"}``; special
        tokens (the end of sequence) carry no reply text; the last event has ``generated_text``."""
        self.saw_openai = True
        self.detected = "tgi"
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

    def _openai_chunk(self, obj: dict[str, Any]) -> None:
        self.saw_openai = True
        self.detected = "openai"
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


def decode_all(data: bytes, protocol: str = "auto") -> StreamDecoder:
    """Decode a whole body at once (tests, post-processing)."""
    d = StreamDecoder(protocol)
    d.feed(data)
    d.finish()
    return d

"""The reference target: the Neptun chat route (and an OpenAI-compatible twin) over real HTTP.

It speaks the route as deployed or as documented (``flavor``), streams on the schedule of
``engine.py``, injects faults on demand, and keeps the server's own truth per request (stamps on
the same monotonic clock a client on this host reads) so the harness can measure its own error.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import random
import re
import time
import uuid
import zlib
from collections import OrderedDict
from dataclasses import asdict, dataclass, field
from pathlib import Path

from aiohttp import web

from bench.errors import InputError
from bench.target.auth import AuthConfig
from bench.target.cache import PrefixCache
from bench.target.engine import ModelEngine, Plan, make_plan
from bench.target.faults import FAULT_HEADER, FaultPlan, FaultShares, parse_header
from bench.target.profiles import Profiles, load_profiles

ROUTE = "/api/ai/huggingface/{publisher}/{name}/chat"
SIBLING_ROUTE = r"/api/ai/{provider:cloudflare|openrouter|ollama}/{model:.+}/chat"
INVALID_MODEL = {
    "deployed": "Invalid model name- or publisher",
    "documented": "Invalid model name or publisher",
    "ui-stream": "Invalid model name- or publisher",
}
CONTENT_TYPES = {"plain": "text/plain; charset=utf-8", "event-stream": "text/event-stream"}
BAD_BODY = "Bad Request. Invalid body(message | messages)."
_INT = re.compile(r"^-?\d+$")

SALT = re.compile(r"^\[[0-9a-f]{10}\] ")  # bench.load.route.SALT_FORMAT: the harness's --cache-salt nonce


@dataclass
class TargetConfig:
    """Everything that shapes the target's behaviour. Secrets live only in ``auth``."""

    flavor: str = "deployed"  # deployed | documented | ui-stream (the app once on AI SDK 5: the UI message stream)
    content_type: str | None = None  # plain | event-stream; default follows the flavor
    framing: str = "aisdk"  # aisdk: 0:"text" lines; sse: each part as an SSE data: event
    finish_part: bool = False  # send d:{finishReason, usage} at the end (AI SDK finish part)
    auth: AuthConfig = field(default_factory=AuthConfig)
    profiles_path: str | None = None
    seed: int = 0
    faults: str | None = None
    max_body_bytes: int = 4 * 1024 * 1024
    max_messages: int = 1000
    truth_limit: int = 1_000_000
    # the app in front of a model server (as Neptun calls Hugging Face): the route streams what the
    # upstream's OpenAI-compatible /v1/chat/completions streams, after app_overhead_ms of its own work
    upstream: str | None = None
    app_overhead_ms: float = 0.0
    # "openai": /v1/chat/completions; "tgi": Hugging Face's token stream (/models/{model}), re-parted as the
    # app does it (R1's thinking held to one <details> block, the answer flushed at paragraphs; tags buffered)
    upstream_protocol: str = "openai"

    def resolved_content_type(self) -> str:
        key = self.content_type or ("plain" if self.flavor == "deployed" else "event-stream")  # ui-stream: SSE
        return CONTENT_TYPES[key]


@dataclass(slots=True)
class Truth:
    """The server's own account of one request, on the host's monotonic clock (ns)."""

    request_id: str
    route: str
    model: str
    status: int = 0
    faults: str = ""
    recv_ns: int = 0
    recv_wall: float = 0.0
    headers_ns: int = 0
    first_due_ns: int = 0
    first_ns: int = 0
    last_ns: int = 0
    last_due_ns: int = 0
    parts: int = 0
    tokens: int = 0
    prompt_tokens: int = 0
    queue_wait_ms: float = 0.0
    outcome: str = ""
    text_crc: int = 0  # CRC-32 of the reply text sent, so a client can prove it decoded every character
    cached_tokens: int = 0  # prompt tokens the prefix cache had seen (bench/target/cache.py)
    first_user_head: str = ""  # the first 24 characters of the first user message (a --cache-salt nonce shows here)
    prompt_crc: int = 0  # CRC-32 of a TGI request's ``inputs`` (the prompt a route or the harness built)


def _error(
    status: int,
    message: str,
    headers: dict[str, str] | None = None,
    data: object = None,
    reason: str | None = None,
    detail: str | None = None,
) -> web.Response:
    obj: dict = {"statusCode": status, "statusMessage": message}
    if detail is not None:
        obj["message"] = detail
    if data is not None:
        obj["data"] = data
    return web.Response(status=status, reason=reason, text=json.dumps(obj), content_type="application/json", headers=headers)


def _nitro_unauthorized(url: str) -> web.Response:
    """What the app answers without a valid session: Nitro's error handler, status line 'Server Error'."""
    body = json.dumps({"error": True, "url": url, "statusCode": 401, "statusMessage": "Server Error", "message": "Unauthorized"})
    return web.Response(status=401, reason="Server Error", text=body, content_type="application/json")


def _zod_model_error(publisher: str, name: str, publishers: list[str], names: list[str]) -> web.Response:
    """The app's 400 for a model it does not know (retired ones included): a ZodError naming the field."""
    issues = []
    if publisher not in publishers:
        issues.append(
            {
                "received": publisher,
                "code": "invalid_enum_value",
                "options": publishers,
                "path": ["model_publisher"],
                "message": f"Invalid enum value. Expected {' | '.join(repr(p) for p in publishers)}, received {publisher!r}",
            }
        )
    if name not in names:
        issues.append(
            {
                "received": name,
                "code": "invalid_enum_value",
                "options": names,
                "path": ["model_name"],
                "message": f"Invalid enum value. Expected {' | '.join(repr(n) for n in names)}, received {name!r}",
            }
        )
    return _error(
        400,
        "Bad Request.",
        detail="Invalid routeParams(model_publisher, model_name).",
        data={"issues": issues, "name": "ZodError"},
    )


def _openai_error(status: int, message: str, kind: str) -> web.Response:
    body = json.dumps({"error": {"message": message, "type": kind, "code": status}})
    return web.Response(status=status, text=body, content_type="application/json")


class Framer:
    """Bytes of the route's stream: AI SDK data-stream lines, optionally inside SSE events."""

    def __init__(self, sse: bool, finish_part: bool) -> None:
        self.sse = sse
        self.finish_part = finish_part

    def _wrap(self, line: bytes) -> bytes:
        return b"data: " + line + b"\n\n" if self.sse else line + b"\n"

    def start(self) -> bytes:
        return b""

    def text(self, text: str) -> bytes:
        return self._wrap(b"0:" + json.dumps(text, ensure_ascii=False).encode())

    def error(self, message: str) -> bytes:
        return self._wrap(b"3:" + json.dumps(message).encode())

    def malformed(self) -> bytes:
        return self._wrap(b'0:"unterminated')

    def padding(self) -> bytes:
        """Bytes without content: a keep-alive comment in SSE, a data part in the AI SDK stream."""
        return b": keep-alive\n\n" if self.sse else b'2:[{"progress":"thinking"}]\n'

    def finish(self, prompt_tokens: int, tokens: int) -> bytes:
        if not self.finish_part:
            return b""
        usage = {"promptTokens": prompt_tokens, "completionTokens": tokens}
        return self._wrap(b"d:" + json.dumps({"finishReason": "stop", "usage": usage}).encode())


class UIFramer(Framer):
    """Bytes of the AI SDK 5 UI message stream, as ``toUIMessageStreamResponse`` writes them
    (tests/data/aisdk/ui5-*.body), plus SSE keep-alive comments: one before the first part and
    one every ``keepalive_every`` parts, which carry no content and must not count as chunks.
    A reasoning model's ``<think>...</think>`` text goes out as reasoning parts."""

    HEADERS = {"x-vercel-ai-ui-message-stream": "v1", "x-accel-buffering": "no"}

    def __init__(self, keepalive_every: int = 10) -> None:
        super().__init__(sse=True, finish_part=True)
        self.keepalive_every = keepalive_every
        self.parts = 0
        self.mode: str | None = None  # None, "reasoning" or "text": the part block that is open

    @staticmethod
    def _event(obj: dict) -> bytes:
        return b"data: " + json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode() + b"\n\n"

    def start(self) -> bytes:
        return self._event({"type": "start"}) + self._event({"type": "start-step"}) + b": keep-alive\n\n"

    def _open(self, mode: str) -> bytes:
        out = b""
        if self.mode and self.mode != mode:
            out += self._event({"type": f"{self.mode}-end", "id": self.mode[0] + "0"})
        if self.mode != mode:
            out += self._event({"type": f"{mode}-start", "id": mode[0] + "0"})
            self.mode = mode
        return out

    def text(self, text: str) -> bytes:
        out = b""
        self.parts += 1
        if self.keepalive_every and self.parts % self.keepalive_every == 0:
            out += b": keep-alive\n\n"
        if text.lstrip().startswith("<think>") and self.mode is None:
            text = text.lstrip()[len("<think>") :]
            self.mode = "reasoning"
            out += self._event({"type": "reasoning-start", "id": "r0"})
        if self.mode == "reasoning":
            before, sep, after = text.partition("</think>")
            if before:
                out += self._event({"type": "reasoning-delta", "id": "r0", "delta": before})
            if not sep:
                return out
            text = after
        if text:
            out += self._open("text") + self._event({"type": "text-delta", "id": "t0", "delta": text})
        return out

    def error(self, message: str) -> bytes:
        return self._event({"type": "error", "errorText": message})

    def malformed(self) -> bytes:
        return b'data: {"type":"text-delta","delta":\n\n'

    def padding(self) -> bytes:
        return b": keep-alive\n\n"

    def finish(self, prompt_tokens: int, tokens: int) -> bytes:
        out = self._event({"type": f"{self.mode}-end", "id": self.mode[0] + "0"}) if self.mode else b""
        return (
            out
            + self._event({"type": "finish-step"})
            + self._event({"type": "finish", "finishReason": "stop"})
            + b"data: [DONE]\n\n"
        )


class OpenAIFramer(Framer):
    """Bytes of an OpenAI chat-completions stream: SSE chunks, optional usage, ``[DONE]``."""

    def __init__(self, model: str, include_usage: bool) -> None:
        super().__init__(sse=True, finish_part=True)
        self.model = model
        self.include_usage = include_usage
        self.id = "chatcmpl-" + uuid.uuid4().hex[:16]
        self.created = int(time.time())

    def _chunk(self, delta: dict, finish: str | None = None, usage: dict | None = None) -> bytes:
        obj = {"id": self.id, "object": "chat.completion.chunk", "created": self.created, "model": self.model}
        obj["choices"] = [] if usage else [{"index": 0, "delta": delta, "finish_reason": finish}]
        if usage:
            obj["usage"] = usage
        return b"data: " + json.dumps(obj).encode() + b"\n\n"

    def start(self) -> bytes:
        return self._chunk({"role": "assistant", "content": ""})

    def text(self, text: str) -> bytes:
        return self._chunk({"content": text})  # json.dumps below keeps ASCII escapes, as OpenAI does

    def error(self, message: str) -> bytes:
        return b"data: " + json.dumps({"error": {"message": message}}).encode() + b"\n\n"

    def malformed(self) -> bytes:
        return b'data: {"choices": [\n\n'

    def finish(self, prompt_tokens: int, tokens: int) -> bytes:
        out = self._chunk({}, finish="stop")
        if self.include_usage:
            usage = {"prompt_tokens": prompt_tokens, "completion_tokens": tokens, "total_tokens": prompt_tokens + tokens}
            out += self._chunk({}, usage=usage)
        return out + b"data: [DONE]\n\n"


class _AppParts:
    """The Neptun handler's parts from backend tokens (its chat.ts, both branches), in Python."""

    HEAD = "<details>\n<summary>AI Thinking Process</summary>\n"

    def __init__(self, reasoning: bool) -> None:
        self.reasoning = reasoning
        self.first = True
        self.in_think = False
        self.think = ""
        self.buffer = ""

    @staticmethod
    def _strip_tags(text: str) -> str:
        return re.sub(r"<\|[^|]*\|>|</?[a-zA-Z_][^>]*>", "", text)

    def _block(self) -> str:
        inner = re.sub(r"</?think>", "", self.think).strip()
        return f"{self.HEAD}{inner}\n</details>\n\n" if inner else ""

    def feed(self, token: str) -> list[str]:
        if not token:
            return []
        if not self.reasoning:
            if re.search(r"<[^>]*>|<\|.*?\|>", token) or self.buffer:
                self.buffer += token
                if ">" in self.buffer:
                    clean, self.buffer = self._strip_tags(self.buffer), ""
                    return [clean] if clean else []
                return []
            return [token]
        out: list[str] = []
        if self.first and "<think>" not in token:
            self.in_think = True
        self.first = False
        if "</think>" in token:
            self.think += token
            if block := self._block():
                out.append(block)
            self.think, self.in_think = "", False
        elif "<think>" in token:
            self.in_think, self.think = True, token
        elif self.in_think:
            self.think += token
        else:
            self.buffer += token
            if self.buffer.endswith("\n\n") or re.search(r"[.!?]\s$", self.buffer):
                out.append(self.buffer)
                self.buffer = ""
        return out

    def flush(self) -> list[str]:
        out = []
        if self.think and (block := self._block()):
            out.append(block)
        if self.buffer:
            out.append(self._strip_tags(self.buffer) if not self.reasoning else self.buffer)
        self.think = self.buffer = ""
        return out


class TgiFramer(Framer):
    """Bytes of Hugging Face text-generation-inference's token stream (``/generate_stream``, and the
    Inference API's ``/models/{model}`` with ``stream: true``, which the Neptun app calls): one SSE event
    per token, the last one with ``generated_text``."""

    def __init__(self) -> None:
        super().__init__(sse=True, finish_part=True)
        self.index = 0
        self.generated: list[str] = []

    def _token(self, text: str, special: bool = False, generated: str | None = None) -> bytes:
        self.index += 1
        token = {"id": 1000 + self.index, "text": text, "logprob": -0.25, "special": special}
        obj = {"index": self.index, "token": token, "generated_text": generated, "details": None, "top_tokens": None}
        return b"data:" + json.dumps(obj, ensure_ascii=False).encode() + b"\n\n"

    def start(self) -> bytes:
        return b""

    def text(self, text: str) -> bytes:
        self.generated.append(text)
        return self._token(text)

    def error(self, message: str) -> bytes:
        return b"data:" + json.dumps({"error": message, "error_type": "generation"}).encode() + b"\n\n"

    def malformed(self) -> bytes:
        return b'data:{"token": {\n\n'

    def padding(self) -> bytes:
        return b":\n\n"

    def finish(self, prompt_tokens: int, tokens: int) -> bytes:
        return self._token("<|im_end|>", special=True, generated="".join(self.generated))


class Target:
    """The aiohttp application and the state behind it (engines, truth, fault RNG)."""

    def __init__(self, config: TargetConfig, profiles: Profiles | None = None) -> None:
        self.config = config
        self.profiles = profiles or load_profiles(config.profiles_path)
        self.engines = {name: ModelEngine(p) for name, p in self.profiles.models.items()}
        self.fault_shares = FaultShares.parse(config.faults)
        self.rng = random.Random(config.seed)
        self.truth: OrderedDict[str, Truth] = OrderedDict()
        self.content_type = config.resolved_content_type()
        self.app = web.Application(client_max_size=config.max_body_bytes)
        self.app.router.add_post(ROUTE, self.route_chat)
        self.app.router.add_post(SIBLING_ROUTE, self.route_chat)  # the app's sibling routes, same body and stream
        self.app.router.add_post("/v1/chat/completions", self.openai_chat)
        self.app.router.add_get("/v1/models", self.openai_models)
        # a model server as the app calls it (Hugging Face's Inference API / TGI): --backend-mode tgi
        self.app.router.add_post("/generate_stream", self.tgi_stream)
        self.app.router.add_post("/", self.tgi_stream)  # TGI's compat route, where its own Python client posts (stream: true)
        self.app.router.add_post("/models/{owner}/{name}", self.tgi_stream)
        self.app.router.add_post("/hf-inference/models/{owner}/{name}", self.tgi_stream)
        self.app.router.add_get("/_bench/health", self.health)
        self.app.router.add_get("/_bench/truth", self.get_truth)
        self.app.router.add_delete("/_bench/truth", self.clear_truth)
        self.app.router.add_get("/_bench/stats", self.stats)
        self.app.router.add_put("/_bench/faults", self.set_faults)
        self.app.router.add_get("/metrics", self.metrics)
        self.tokens_total: dict[str, int] = {}
        self.prefix_cache = PrefixCache()

    # --- control plane -------------------------------------------------------------------
    async def health(self, request: web.Request) -> web.Response:
        return web.json_response({"ok": True, "models": sorted(self.profiles.models)})

    async def stats(self, request: web.Request) -> web.Response:
        return web.json_response(
            {name: {"active": e.active, "queued": e.queued, "max_batch": e.profile.max_batch} for name, e in self.engines.items()}
        )

    async def metrics(self, request: web.Request) -> web.Response:
        """The server's own view in Prometheus text, as vLLM and llama.cpp expose theirs: streams being
        decoded, requests waiting for a slot, tokens produced."""
        lines = [
            "# HELP bench_requests_running Streams being decoded (a slot of max_batch each).",
            "# TYPE bench_requests_running gauge",
        ]
        lines += [f'bench_requests_running{{model="{m}"}} {e.active}' for m, e in self.engines.items()]
        lines += ["# HELP bench_requests_waiting Requests queued for a slot.", "# TYPE bench_requests_waiting gauge"]
        lines += [f'bench_requests_waiting{{model="{m}"}} {e.queued}' for m, e in self.engines.items()]
        lines += ["# HELP bench_generation_tokens_total Tokens streamed.", "# TYPE bench_generation_tokens_total counter"]
        lines += [f'bench_generation_tokens_total{{model="{m}"}} {self.tokens_total.get(m, 0)}' for m in self.engines]
        lines += self.prefix_cache.prometheus(list(self.engines))
        return web.Response(text="\n".join(lines) + "\n", content_type="text/plain", charset="utf-8")

    async def get_truth(self, request: web.Request) -> web.Response:
        ids = request.query.get("ids")
        if ids:
            rows = [asdict(self.truth[i]) for i in ids.split(",") if i in self.truth]
        else:
            rows = [asdict(t) for t in self.truth.values()]
        return web.json_response(rows)

    async def set_faults(self, request: web.Request) -> web.Response:
        """Replace the share-based faults while the target runs (the body: a --faults spec, empty for none):
        an incident rehearsed in the middle of a run, or one level of a capacity sweep made to fail."""
        spec = (await request.text()).strip()
        try:
            shares = FaultShares.parse(spec or None)
        except (InputError, ValueError) as exc:
            return _error(400, f"Bad faults: {exc}")
        self.fault_shares = shares
        return web.json_response({"ok": True, "faults": spec})

    async def clear_truth(self, request: web.Request) -> web.Response:
        self.truth.clear()
        return web.json_response({"ok": True})

    def write_truth(self, path: str | Path) -> None:
        with open(path, "w") as fh:
            for t in self.truth.values():
                fh.write(json.dumps(asdict(t)) + "\n")

    def _truth(self, request: web.Request, route: str, model: str) -> Truth:
        rid = request.headers.get("X-Request-ID") or uuid.uuid4().hex
        t = Truth(request_id=rid, route=route, model=model, recv_ns=time.monotonic_ns(), recv_wall=time.time())
        self.truth[rid] = t
        if len(self.truth) > self.config.truth_limit:
            self.truth.popitem(last=False)
        return t

    def _faults(self, request: web.Request) -> FaultPlan | web.Response:
        raw = request.headers.get(FAULT_HEADER)
        if raw:
            try:
                return parse_header(raw)
            except ValueError as exc:
                return _error(400, f"Bad {FAULT_HEADER} header: {exc}")
        return self.fault_shares.draw(self.rng)

    # --- the route -----------------------------------------------------------------------
    async def route_chat(self, request: web.Request) -> web.StreamResponse:
        info = request.match_info
        model = info["model"] if "model" in info else f"{info['publisher']}/{info['name']}"
        truth = self._truth(request, "route", model)
        resp = await self._route_checks(request, model)
        if isinstance(resp, web.Response):
            truth.status, truth.outcome = resp.status, "rejected"
            return resp
        messages, faults = resp
        truth.faults = ",".join(faults.names)
        if self.config.flavor == "ui-stream":
            framer: Framer = UIFramer()
        else:
            framer = Framer(self.config.framing == "sse", self.config.finish_part)
        if self.config.upstream:
            return await self._proxy(request, truth, model, messages, framer)
        return await self._stream(request, truth, model, messages, faults, framer, self.content_type)

    async def _proxy(self, request: web.Request, truth: Truth, model: str, messages: list, framer: Framer) -> web.StreamResponse:
        """The route as the app serves it: its own work first (session, persistence, prompt building:
        ``app_overhead_ms``), then the upstream's stream re-framed part by part."""
        import aiohttp

        if self.config.app_overhead_ms:
            await asyncio.sleep(self.config.app_overhead_ms / 1000)
        if getattr(self, "_session", None) is None:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=None, sock_read=300))
        if self.config.upstream_protocol == "tgi":
            return await self._proxy_tgi(request, truth, model, messages, framer)
        url = str(self.config.upstream).rstrip("/") + "/v1/chat/completions"
        body = {"model": model, "messages": messages, "stream": True}
        async with self._session.post(url, json=body, headers={"X-Request-ID": truth.request_id + "-up"}) as up:
            if up.status != 200:
                truth.status, truth.outcome = 502, f"upstream:{up.status}"
                return _error(500, "Server Error", detail=f"upstream answered {up.status}")
            resp = await self._relay_open(request, truth)
            start = framer.start()
            if start:
                await resp.write(start)
            async for line in up.content:
                if not line.startswith(b"data: "):
                    continue
                payload = line[6:].strip()
                if payload == b"[DONE]":
                    break
                try:
                    chunk = json.loads(payload)
                    text = (chunk["choices"][0].get("delta") or {}).get("content")
                except (ValueError, KeyError, IndexError, TypeError):
                    continue
                if not text:
                    continue
                await self._relay_part(resp, truth, framer, text)
            finish = framer.finish(0, truth.parts)
            if finish:
                await resp.write(finish)
            truth.outcome = "ok"
            await resp.write_eof()
            return resp

    async def _relay_open(self, request: web.Request, truth: Truth) -> web.StreamResponse:
        """The route's 200 in front of an upstream: headers out, stamped in the truth."""
        resp = web.StreamResponse(status=200, headers={"Content-Type": self.content_type, "Cache-Control": "no-cache"})
        resp.enable_chunked_encoding()
        await resp.prepare(request)
        truth.headers_ns, truth.status = time.monotonic_ns(), 200
        return resp

    async def _relay_part(self, resp: web.StreamResponse, truth: Truth, framer: Framer, text: str) -> None:
        """One part relayed from the upstream, with the truth's stamps and text checksum."""
        await resp.write(framer.text(text))
        now = time.monotonic_ns()
        truth.first_ns = truth.first_ns or now
        truth.last_ns = now
        truth.parts += 1
        truth.text_crc = zlib.crc32(text.encode(), truth.text_crc)

    async def _proxy_tgi(self, request: web.Request, truth: Truth, model: str, messages: list, framer: Framer):
        """The app's handler in front of Hugging Face's text-generation stream, part for part as its code
        does (and as its real handler was seen to, tests/data/real-app/): a prompt from the messages, each
        backend token one part, tokens holding tags buffered until the tag closes and sent without it; for a
        reasoning model the whole thinking held until ``</think>`` and sent as one ``<details>`` part, the
        answer flushed at a paragraph's end or at punctuation followed by whitespace. A backend that fails
        after the first part leaves the response open and silent, as the app's does."""
        import aiohttp

        from bench.neptunapp import hf_model_id, tgi_body

        profile = self.engines[model].profile
        url = str(self.config.upstream).rstrip("/") + "/models/" + hf_model_id(model)
        # the app's prompt and parameters: its instruction, sanitising and the model's template
        body = tgi_body(model, messages, profile.max_new_tokens, stream=True)
        async with self._session.post(url, json=body, headers={"X-Request-ID": truth.request_id + "-up"}) as up:
            if up.status != 200:
                truth.status, truth.outcome = 500, f"upstream:{up.status}"
                return _error(500, "Server Error", detail=f"upstream answered {up.status}")
            resp = await self._relay_open(request, truth)
            parts = _AppParts(reasoning=profile.reasoning)

            ended = False
            try:
                async for line in up.content:
                    if not line.startswith(b"data:"):
                        continue
                    try:
                        event = json.loads(line[5:])
                    except ValueError:
                        continue
                    if not isinstance(event, dict) or "error" in event:
                        raise ConnectionError(str(event.get("error") if isinstance(event, dict) else event))
                    got = event.get("token")
                    token: dict = got if isinstance(got, dict) else {}
                    if token.get("special"):
                        ended = True
                        continue
                    for text in parts.feed(str(token.get("text") or "")):
                        await self._relay_part(resp, truth, framer, text)
                ended = True
            except (TimeoutError, aiohttp.ClientError, ConnectionError):
                ended = False
            if not ended:  # the app's stream errors after its headers: nobody ends the response
                truth.outcome = "silent"
                while not request.transport or not request.transport.is_closing():
                    await asyncio.sleep(0.5)
                return resp
            for text in parts.flush():
                await self._relay_part(resp, truth, framer, text)
            truth.outcome = "ok"
            await resp.write_eof()
            return resp

    async def _route_checks(self, request: web.Request, model: str):
        deployed = self.config.flavor == "deployed"  # the app's latest code (see shared spec: neptun-route-facts)
        if not self.config.auth.check(request.headers.get("Authorization"), request.cookies):
            return _nitro_unauthorized(str(request.rel_url)) if deployed else _error(401, "Invalid user session")
        if deployed and model not in self.engines:
            known = sorted(self.engines)
            publisher, _, name = model.partition("/")
            publishers = sorted({m.split("/")[0] for m in known})
            names = sorted({m.split("/", 1)[-1] for m in known})
            if publisher not in publishers or name not in names:
                return _zod_model_error(publisher, name, publishers, names)
            return _error(400, INVALID_MODEL[self.config.flavor])
        if model in self.profiles.retired:
            return _error(400, "Service not available anymore.")
        if model not in self.engines:
            return _error(400, INVALID_MODEL[self.config.flavor])
        chat_id = request.query.get("chat_id", "")
        if not _INT.match(chat_id):
            return _error(400, "Bad Request. Invalid chat_id.")
        if deployed and request.query.get("is_playground") not in ("true", "false"):
            return _error(
                400,
                "Bad Request.",
                detail="Invalid queryParams(chat_id, is_playground).",
                data={
                    "issues": [
                        {
                            "code": "invalid_type",
                            "expected": "boolean",
                            "received": "null",
                            "path": ["is_playground"],
                            "message": "Expected boolean, received null",
                        }
                    ],
                    "name": "ZodError",
                },
            )
        body = await self._read_json(request)
        if isinstance(body, web.Response):
            return body
        messages = body.get("messages") if isinstance(body, dict) else None
        if not isinstance(messages, list) or not messages:
            return _error(400, BAD_BODY)
        if len(messages) > self.config.max_messages:
            return _error(413, f"Too many messages (at most {self.config.max_messages}).")
        for m in messages:
            if not isinstance(m, dict) or m.get("role") not in ("user", "assistant"):
                return _error(400, BAD_BODY)
            content = m.get("content")
            if not isinstance(content, str) or not content.strip():
                return _error(400, BAD_BODY)
        faults = self._faults(request)
        if isinstance(faults, web.Response):
            return faults
        return messages, faults

    async def _read_json(self, request: web.Request):
        try:
            raw = await request.read()
        except web.HTTPRequestEntityTooLarge:
            return _error(413, f"Request body larger than {self.config.max_body_bytes} bytes.")
        try:
            return json.loads(raw)
        except ValueError:
            return _error(400, BAD_BODY)

    # --- the OpenAI-compatible twin ------------------------------------------------------
    async def openai_models(self, request: web.Request) -> web.Response:
        data = [{"id": name, "object": "model", "owned_by": name.split("/")[0]} for name in sorted(self.engines)]
        return web.json_response({"object": "list", "data": data})

    async def openai_chat(self, request: web.Request) -> web.StreamResponse:
        body = await self._read_json(request)
        model = body.get("model", "") if isinstance(body, dict) else ""
        truth = self._truth(request, "openai", model)
        if isinstance(body, web.Response):
            truth.status = body.status
            return body
        if not self.config.auth.check(request.headers.get("Authorization"), request.cookies, bearer=True):
            truth.status = 401
            return _openai_error(401, "Invalid API key", "invalid_request_error")
        if model not in self.engines:
            truth.status = 404
            return _openai_error(404, f"The model '{model}' does not exist", "invalid_request_error")
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            truth.status = 400
            return _openai_error(400, "messages must be a non-empty list", "invalid_request_error")
        faults = self._faults(request)
        if isinstance(faults, web.Response):
            return faults
        if body.get("max_tokens") or body.get("max_completion_tokens"):
            faults.tokens = faults.tokens or int(body.get("max_completion_tokens") or body["max_tokens"])
        truth.faults = ",".join(faults.names)
        if not body.get("stream"):
            return await self._complete(truth, model, messages, faults)
        include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
        return await self._stream(
            request, truth, model, messages, faults, OpenAIFramer(model, include_usage), "text/event-stream"
        )

    async def tgi_stream(self, request: web.Request) -> web.StreamResponse:
        """TGI's token stream: ``{"inputs": PROMPT, "parameters": {...}}`` to ``/generate_stream`` (the model:
        ``"model"`` in the body, else the first profile) or to ``/models/{owner}/{name}`` with ``"stream": true``.
        One token a part, a reasoning model's thinking inside ``<think>`` tokens: the raw stream a route such as
        Neptun's turns into its own parts (``bench target --upstream`` in front of this one)."""
        body = await self._read_json(request)
        wanted = (
            f"{request.match_info['owner']}/{request.match_info['name']}"
            if "owner" in request.match_info
            else (body.get("model", "") if isinstance(body, dict) else "")
        )
        model = next((m for m in self.engines if m.lower() == str(wanted).lower()), None)
        if model is None and "owner" not in request.match_info:
            model = next(iter(self.engines))
        truth = self._truth(request, "tgi", model or str(wanted))
        if isinstance(body, web.Response):
            truth.status = body.status
            return body
        if not self.config.auth.check(request.headers.get("Authorization"), request.cookies, bearer=True):
            truth.status = 401
            return web.json_response({"error": "Authorization header is correct, but the token seems invalid"}, status=401)
        if model is None:
            truth.status = 404
            return web.json_response({"error": f"Model {wanted} does not exist"}, status=404)
        inputs = body.get("inputs")
        if not isinstance(inputs, str) or not inputs:
            truth.status = 422
            return web.json_response({"error": "Input validation error: `inputs` must be a non-empty string"}, status=422)
        truth.prompt_crc = zlib.crc32(inputs.encode())  # a test proves two senders built the same prompt
        faults = self._faults(request)
        if isinstance(faults, web.Response):
            return faults
        params = body.get("parameters") if isinstance(body.get("parameters"), dict) else {}
        if params.get("max_new_tokens"):  # a bound, as TGI takes it (the reply may end before it)
            faults.token_cap = int(params["max_new_tokens"])
        truth.faults = ",".join(faults.names)
        messages = [{"role": "user", "content": inputs}]
        return await self._stream(request, truth, model, messages, faults, TgiFramer(), "text/event-stream", raw=True)

    async def _complete(self, truth: Truth, model: str, messages: list, faults: FaultPlan) -> web.Response:
        parts = []
        plan = self._plan(model, messages, faults)
        engine = self.engines[model]
        await engine.acquire()
        try:
            async for _, text, _, _ in engine.schedule(plan, random.Random(self.rng.random()), faults.ttft_ms, faults.step_ms):
                parts.append(text)
        finally:
            engine.release()
        truth.status, truth.tokens, truth.outcome = 200, plan.tokens, "ok"
        usage = {
            "prompt_tokens": plan.prompt_tokens,
            "completion_tokens": plan.tokens,
            "total_tokens": plan.prompt_tokens + plan.tokens,
        }
        msg = {"role": "assistant", "content": "".join(parts)}
        return web.json_response(
            {
                "id": "chatcmpl-x",
                "object": "chat.completion",
                "model": model,
                "choices": [{"index": 0, "message": msg, "finish_reason": "stop"}],
                "usage": usage,
            }
        )

    # --- streaming, shared by both routes ------------------------------------------------
    def _plan(self, model: str, messages: list, faults: FaultPlan, truth: Truth | None = None, raw: bool = False) -> Plan:
        cached, _ = self.prefix_cache.lookup(model, messages)
        if truth is not None:
            truth.cached_tokens = cached
            first = next((m for m in messages if isinstance(m, dict) and m.get("role") == "user"), None)
            truth.first_user_head = str(first.get("content", ""))[:24] if first else ""
        # the reply is drawn from the last message; a --cache-salt nonce in front of it changes no answer
        last = [
            {**m, "content": SALT.sub("", m["content"], count=1)}
            if isinstance(m, dict) and isinstance(m.get("content"), str)
            else m
            for m in messages[-1:]
        ]
        key = json.dumps(last, sort_keys=True) + str(len(messages))
        prompt_chars = sum(len(str(m.get("content", ""))) for m in messages if isinstance(m, dict))
        profile = self.engines[model].profile
        if faults.token_cap and faults.token_cap < profile.max_new_tokens:
            profile = dataclasses.replace(profile, max_new_tokens=faults.token_cap)
        return make_plan(profile, self.config.seed, key, prompt_chars, faults.tokens, raw=raw)

    async def _stream(
        self, request, truth: Truth, model, messages, faults: FaultPlan, framer: Framer, content_type: str, raw: bool = False
    ):
        if faults.status == 500:
            truth.status, truth.outcome = 500, "fault:500"
            return _error(500, "Internal Server Error")
        if faults.status == 429:
            truth.status, truth.outcome = 429, "fault:429"
            return _error(429, "Too Many Requests", {"Retry-After": str(int(faults.retry_after))})
        engine = self.engines[model]
        plan = self._plan(model, messages, faults, truth, raw=raw)
        truth.prompt_tokens = plan.prompt_tokens
        rng = random.Random(self.rng.random())
        t_queue = time.monotonic_ns()
        await engine.acquire()
        try:
            truth.queue_wait_ms = (time.monotonic_ns() - t_queue) / 1e6
            if faults.slow_headers_s:
                await asyncio.sleep(faults.slow_headers_s)
            resp = web.StreamResponse(
                status=200,
                headers={
                    "Content-Type": content_type,
                    "Cache-Control": "no-cache",
                    "X-Request-ID": truth.request_id,
                    **getattr(framer, "HEADERS", {}),
                },
            )
            resp.enable_chunked_encoding()
            await resp.prepare(request)
            truth.headers_ns, truth.status = time.monotonic_ns(), 200
            truth.outcome = await self._write_parts(request, resp, truth, plan, faults, framer, engine, rng)
            if truth.outcome == "dropped":
                return resp
            await resp.write_eof()
            return resp
        except (ConnectionResetError, asyncio.CancelledError):
            truth.outcome = "client_gone"
            raise
        finally:
            engine.release()

    async def _stall(self, resp, framer: Framer, faults: FaultPlan) -> None:
        """A silence between content parts, bare or padded with bytes that carry no content
        (data parts, keep-alive comments, a part trickled byte by byte): a client must time the
        stall from the last content part, not from the last byte."""
        end = time.monotonic() + (faults.stall_s or 0.0)
        if faults.trickle_s:
            data = framer.text(" trickled")
            for k in range(len(data)):
                if k == len(data) - 1:  # the last byte completes the part: only after the stall
                    await asyncio.sleep(max(0.0, end - time.monotonic()))
                else:
                    await asyncio.sleep(min(faults.trickle_s, max(0.0, end - time.monotonic())))
                await resp.write(data[k : k + 1])
            return
        while faults.pad_s and time.monotonic() + faults.pad_s < end:
            await asyncio.sleep(faults.pad_s)
            await resp.write(framer.padding())
        await asyncio.sleep(max(0.0, end - time.monotonic()))

    async def _write_parts(self, request, resp, truth, plan, faults, framer, engine, rng) -> str:
        if faults.garbage:
            await resp.write(b"<html><body>502 Bad Gateway</body></html>\n")
            return "fault:garbage"
        start = framer.start()
        if start:
            await resp.write(start)
        i = -1
        async for i, text, ntok, due in engine.schedule(plan, rng, faults.ttft_ms, faults.step_ms):
            if i == 0 and faults.huge_part:
                text = "x" * faults.huge_part
            data = framer.text(text)
            now = time.monotonic_ns()  # stamped as the part is handed to the socket
            await resp.write(data)
            if i == 0:
                truth.first_ns, truth.first_due_ns = now, int(due * 1e9)
            truth.last_ns, truth.last_due_ns = now, int(due * 1e9)
            truth.parts += 1
            truth.tokens += ntok
            self.tokens_total[truth.model] = self.tokens_total.get(truth.model, 0) + ntok
            truth.text_crc = zlib.crc32(text.encode(), truth.text_crc)
            done = i + 1
            if faults.stall_s and i == 0:
                await self._stall(resp, framer, faults)
            if faults.drop_after is not None and done >= faults.drop_after:
                request.transport.close()  # no closing zero-length chunk: the body is cut off
                return "dropped"
            if faults.silent_after is not None and done >= faults.silent_after:
                truth.outcome = "fault:silent"
                await asyncio.Event().wait()  # h3 sent the headers, the backend's stream failed, nobody ends the response
            if faults.malformed_after is not None and done == faults.malformed_after:
                await resp.write(framer.malformed())
            if faults.error_after is not None and done >= faults.error_after:
                await resp.write(framer.error("The model backend failed mid-stream."))
                return "fault:error_part"
        if faults.never_end_s:
            n = 0
            while True:  # until the client gives up and the write fails
                await asyncio.sleep(faults.never_end_s)
                await resp.write(framer.text(f" more{n}"))
                n += 1
        finish = framer.finish(plan.prompt_tokens, truth.tokens)
        if finish:
            await resp.write(finish)
        return "ok" if i >= 0 else "empty"

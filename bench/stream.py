"""Send one chat request and time its stream at the socket: the measuring hot path.

geventhttpclient writes the request and parses the status line and headers (its llhttp parser
is C); from there this module reads the socket itself, stamps the monotonic clock right after
each ``recv`` returns, lets the same parser undo the chunked framing, and hands the body bytes
to the incremental decoder. Nothing waits for a buffer to fill (Locust's ``iter_content``
waits for 1 KiB), and nothing but the decoder runs per read.
"""

from __future__ import annotations

import json
import socket
from dataclasses import dataclass, field
from time import monotonic_ns

from gevent import GreenletExit
from geventhttpclient import HTTPClient
from geventhttpclient.response import HTTPParseError

from bench.decode import StreamDecoder

READ_SIZE = 256 * 1024


@dataclass(frozen=True)
class Timeouts:
    """Seconds. ``first_chunk`` runs from the request's start to its first content part."""

    connect: float = 10.0
    first_chunk: float = 60.0
    stall: float = 30.0
    total: float = 300.0


@dataclass(slots=True)
class Outcome:
    """Everything observed about one request; filled as it happens, so a cancel keeps what was seen."""

    t_start: int = 0
    t_headers: int = 0
    t_end: int = 0
    status: int = 0
    error: str | None = None
    detail: str = ""
    stamps: list[int] = field(default_factory=list)  # flat: read time, parts completed by that read, ...
    decoder: StreamDecoder | None = None
    bytes_in: int = 0
    content_type: str = ""


def classify_http_error(status: int, body: bytes) -> tuple[str, str]:
    """Error class of METRICS.md for a non-2xx answer, and a short detail from its body."""
    message = ""
    try:
        obj = json.loads(body)
        if isinstance(obj, dict):
            raw = obj.get("statusMessage") or obj.get("message") or obj.get("error") or ""
            message = str(raw.get("message", raw) if isinstance(raw, dict) else raw)
    except ValueError:
        message = body[:200].decode("utf-8", "replace")
    low = message.lower()
    if status in (401, 403):
        cls = "unauthorized"
    elif status == 429:
        cls = "rate_limited"
    elif status >= 500:
        cls = "server_error"
    elif status == 400 and "invalid model" in low:
        cls = "invalid_model"
    elif status == 400 and "not available anymore" in low:
        cls = "retired_model"
    elif status == 404 and "model" in low:
        cls = "invalid_model"
    else:
        cls = "bad_request"
    return cls, f"{status} {message}".strip()[:300]


def _discard(resp) -> None:
    """Close a connection whose response did not end cleanly, so the pool never reuses it."""
    sock, pool = resp._sock, getattr(resp, "_pool", None)
    resp._sock = None
    if hasattr(resp, "_pool"):
        resp._pool = None
    if sock is not None:
        if pool is not None:
            pool.release_socket(sock)
        else:
            sock.close()


def stream_request(o: Outcome, client: HTTPClient, path: str, body: bytes, headers: dict[str, str],
                   timeouts: Timeouts, protocol: str = "auto") -> Outcome:
    """Send ``body`` to ``path`` and read the answer into ``o``. Never raises but ``GreenletExit``."""
    dec = o.decoder = StreamDecoder(protocol)
    now = monotonic_ns
    o.t_start = t0 = now()
    first_deadline = t0 + int(timeouts.first_chunk * 1e9)
    total_deadline = t0 + int(timeouts.total * 1e9)
    try:
        resp = client.request("POST", path, body=body, headers=headers)
    except GreenletExit:
        o.error, o.t_end = "cancelled", now()
        raise
    except (socket.timeout, TimeoutError):
        o.t_end = now()
        waited = (o.t_end - t0) / 1e9
        # the client's network timeout is the first-chunk timeout; a shorter wait was the connect
        o.error = "timeout_first_chunk" if waited >= timeouts.first_chunk * 0.99 else "connect_error"
        o.detail = f"no response after {waited:.2f} s"
        return o
    except (OSError, HTTPParseError) as exc:
        o.t_end = now()
        o.error, o.detail = ("truncated" if isinstance(exc, HTTPParseError) else "connect_error"), f"{type(exc).__name__}: {exc}"[:300]
        return o
    o.t_headers = now()
    o.status = resp.status_code
    o.content_type = resp.get("content-type") or ""
    try:
        if o.status >= 300:
            try:
                raw = resp.read()
            except (OSError, HTTPParseError):
                raw = b""
            o.t_end = now()
            o.error, o.detail = classify_http_error(o.status, raw)
            o.bytes_in = len(raw)
            return o
        _read_body(o, resp, dec, timeouts, first_deadline, total_deadline)
    except GreenletExit:
        o.error, o.t_end = "cancelled", now()
        _discard(resp)
        raise
    return o


def _read_body(o: Outcome, resp, dec: StreamDecoder, timeouts: Timeouts, first_deadline: int, total_deadline: int) -> None:
    now = monotonic_ns
    stamps = o.stamps
    buf = resp._body_buffer
    sock = resp._sock
    stall_ns = int(timeouts.stall * 1e9)
    seen = False
    ts = o.t_headers
    if buf:  # body bytes that came with the headers
        data = bytes(buf)
        del buf[:]
        o.bytes_in += len(data)
        n = dec.feed(data)
        if n:
            stamps.append(ts)
            stamps.append(n)
            seen = True
    while not resp.message_complete and not dec.error:
        if sock is None:
            break
        t = now()
        limit = min(t + stall_ns if seen else first_deadline, total_deadline) - t
        if limit <= 0:
            o.error = "timeout_total" if t >= total_deadline else ("stall" if seen else "timeout_first_chunk")
            break
        sock.settimeout(limit / 1e9)
        try:
            data = sock.recv(READ_SIZE)
        except (socket.timeout, TimeoutError):
            t = now()
            o.error = "timeout_total" if t >= total_deadline - 1_000_000 else ("stall" if seen else "timeout_first_chunk")
            break
        except OSError as exc:
            o.error, o.detail = "truncated", f"{type(exc).__name__}: {exc}"[:300]
            break
        ts = now()
        if not data:
            o.error, o.detail = "truncated", "connection closed before the closing chunk"
            break
        o.bytes_in += len(data)
        try:
            resp.feed(data)
        except HTTPParseError as exc:
            o.error, o.detail = "decode_error", f"bad HTTP framing: {exc}"[:300]
            break
        if buf:
            chunk = bytes(buf)
            del buf[:]
            n = dec.feed(chunk)
            if n:
                stamps.append(ts)
                stamps.append(n)
                seen = True
    o.t_end = ts if not o.error else now()
    if o.error:
        if o.error in ("stall", "timeout_first_chunk", "timeout_total") and not o.detail:
            o.detail = "no chunk in time" if o.error != "timeout_total" else "the stream did not end in time"
        _discard(resp)
    else:
        if dec.error:
            if not resp.message_complete:
                _discard(resp)
        else:
            dec.finish()
        if dec.error:
            o.error, o.detail = dec.error, dec.error_detail
    if sock is not None and resp.message_complete:
        sock.settimeout(timeouts.first_chunk)

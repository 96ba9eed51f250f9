"""Send one chat request and time its stream at the socket: the measuring hot path.

geventhttpclient writes the request and parses the status line and headers (its llhttp parser
is C); from there this module reads the socket itself, stamps the monotonic clock right after
each ``recv`` returns, lets the same parser undo the chunked framing, and hands the body bytes
to the incremental decoder. Nothing waits for a buffer to fill (Locust's ``iter_content``
waits for 1 KiB), and nothing but the decoder runs per read.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from time import monotonic_ns
from typing import Any

from gevent import GreenletExit
from geventhttpclient import HTTPClient
from geventhttpclient.response import HTTPConnectionClosed, HTTPParseError

from bench.load import ghc
from bench.load.decode import Decoder, decoder_for
from bench.load.watchdog import WATCHDOG, Deadline
from bench.schema import ErrorClass, Protocol

READ_SIZE = 256 * 1024
HEAD_BYTES = 256  # of a body, kept in the record of a failed request
# What one answer may hold in memory. A hostile or broken server could otherwise take the generator down:
# a 10 GiB error body read whole raised MemoryError within 3 s, an endless 200 stream kept 2.8 GB of parts
# in 6.5 s. Past these the request is ``oversized`` (or, for an error body, classified from its head) and
# its connection closed. A real reply is far below them (a 32k-token answer is ~130 KiB and 32,000 parts).
MAX_ERROR_BODY = 64 * 1024
MAX_BODY_BYTES = 32 * 1024 * 1024
MAX_PARTS = 200_000


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

    t_connect: int = 0  # a new connection's TCP (and TLS) handshake began; 0 when a kept-alive one was reused
    t_start: int = 0  # just before the request bytes are written (after any handshake)
    t_headers: int = 0
    t_end: int = 0
    status: int = 0
    error: str | None = None
    detail: str = ""
    stamps: list[int] = field(default_factory=list)  # flat: read time, parts completed by that read, ...
    decoder: Decoder | None = None
    bytes_in: int = 0
    content_type: str = ""
    head: bytes = b""  # the first bytes of the body, kept so a failure can show what came back
    retry_ms: float | None = None  # a first attempt on a kept-alive connection the server was closing: how long it took

    @property
    def connect_ms(self) -> float | None:
        return (self.t_start - self.t_connect) / 1e6 if self.t_connect and self.t_start else None


def _zod_issues(obj: dict[str, Any]) -> list[dict[str, Any]]:
    """The issues of a ZodError in a Nitro error body (``data.issues``, or ``data`` the error itself)."""
    data = obj.get("data")
    if isinstance(data, dict):
        issues = data.get("issues")
        if isinstance(issues, list):
            return [i for i in issues if isinstance(i, dict)]
    return []


MODEL_FIELDS = ("model_name", "model_publisher")


def model_issue(body: bytes) -> tuple[str, list[str]] | None:
    """A 400 that rejects the model (the app's ZodError on ``model_name`` / ``model_publisher``):
    (what it said, the allowed values where it lists them)."""
    try:
        obj = json.loads(body)
    except ValueError:
        return None
    if not isinstance(obj, dict):
        return None
    for issue in _zod_issues(obj):
        path = issue.get("path")
        field_name = next((str(p) for p in (path if isinstance(path, list) else [path]) if str(p) in MODEL_FIELDS), None)
        if field_name:
            options = issue.get("options")
            allowed = [str(x) for x in options] if isinstance(options, list) else []
            return f"{field_name}: {str(issue.get('message', 'invalid'))[:200]}", allowed
    return None


def is_nitro_unauthorized(body: bytes) -> bool:
    """Nitro's error handler's 401 (``"message": "Unauthorized"``): what the app answers without a valid session."""
    try:
        obj = json.loads(body)
    except ValueError:
        return False
    return isinstance(obj, dict) and obj.get("statusCode") == 401 and str(obj.get("message", "")).lower() == "unauthorized"


def classify_http_error(status: int, body: bytes) -> tuple[str, str]:
    """Error class of METRICS.md for a non-2xx answer, and a short detail from its body.

    Read as the app writes it: Nitro's error JSON (``statusMessage`` is often only "Server Error"
    or "Bad Request.", the reason is in ``message`` or in a ZodError under ``data``)."""
    message = ""
    obj = None
    try:
        obj = json.loads(body)
        if isinstance(obj, dict):
            raw = obj.get("statusMessage") or obj.get("message") or obj.get("error") or ""
            message = str(raw.get("message", raw) if isinstance(raw, dict) else raw)
            inner = obj.get("message")
            if (
                isinstance(inner, str)
                and inner
                and inner != message
                and message in ("Server Error", "Bad Request.", "Bad Request")
            ):
                message = f"{message} {inner}".strip()  # Nitro: "Server Error" + "Unauthorized"
    except (ValueError, RecursionError):
        text = body[:200].decode("utf-8", "replace")
        message = "".join(c if c.isprintable() else "." for c in text)[:120]  # a binary body stays one short line
    low = message.lower()
    issue = model_issue(body) if status == 400 and isinstance(obj, dict) else None
    if status in (401, 403):
        cls = ErrorClass.unauthorized
    elif status == 429:
        cls = ErrorClass.rate_limited
    elif status >= 500:
        cls = ErrorClass.server_error
    elif issue is not None:
        cls = ErrorClass.invalid_model
        message = f"{message} {issue[0]}".strip()
    elif status == 400 and "invalid model" in low:
        cls = ErrorClass.invalid_model
    elif status == 400 and "not available anymore" in low:
        cls = ErrorClass.retired_model
    elif status == 404 and "model" in low:
        cls = ErrorClass.invalid_model
    else:
        cls = ErrorClass.bad_request
        if status == 400 and isinstance(obj, dict):
            message = f"{message} {_issues_line(obj)}".strip()  # which field the app refused, and why
    return cls, f"{status} {message}".strip()[:300]


def _issues_line(obj: dict[str, Any]) -> str:
    """A ZodError's issues in one line ("(is_playground: Expected boolean, received null)"), as h3 and
    Nitro carry them under ``data`` (the real handler's 400s for a query or body it refuses)."""
    out = []
    for i in _zod_issues(obj)[:3]:
        path = i.get("path")
        where = ".".join(str(x) for x in path) if isinstance(path, list) else ""
        out.append(f"{where + ': ' if where else ''}{str(i.get('message', ''))[:120]}".strip())
    return "(" + "; ".join(x for x in out if x) + ")" if any(out) else ""


def _discard(resp: Any) -> None:
    """Close a connection whose response did not end cleanly, so the pool never reuses it."""
    sock, pool = ghc.detach(resp)
    if sock is not None:
        if pool is not None:
            pool.release_socket(sock)
        else:
            sock.close()


def _connect(o: Outcome, client: HTTPClient) -> bool:
    """Open the connection before ``t_start`` when none is kept alive, so the handshake is timed
    on its own (``connect_ms``) and never lands in TTFB or TTFC. The pool hands the same socket
    to the request that follows. A kept-alive socket the server has closed meanwhile (Node's 5 s
    idle timeout) is found dead here, not inside the request: 61 of 91 such reconnects were timed
    in TTFC before. Returns True when a kept-alive connection is reused."""
    pool = ghc.pool_of(client)
    queued = ghc.kept_alive(pool)
    t = monotonic_ns()
    sock = pool.get_socket()  # checks the kept-alive one for liveness, or connects
    reused = any(sock is q for q in queued)
    pool.return_socket(sock)
    if not reused:
        o.t_connect = t
    return reused


_CLOSING = (ConnectionResetError, BrokenPipeError)  # with HTTPConnectionClosed: the server closed a kept-alive socket


def stream_request(
    o: Outcome,
    client: HTTPClient,
    path: str,
    body: bytes,
    headers: dict[str, str],
    timeouts: Timeouts,
    protocol: Protocol | str = Protocol.auto,
) -> Outcome:
    """Send ``body`` to ``path`` and read the answer into ``o``. Never raises but ``GreenletExit``."""
    dec = o.decoder = decoder_for(protocol)
    now = monotonic_ns
    for attempt in (0, 1):
        try:
            reused = _connect(o, client)
        except GreenletExit:
            o.error, o.t_end = ErrorClass.cancelled, now()
            raise
        except (OSError, TimeoutError) as exc:
            o.t_start = o.t_end = now()
            o.error, o.detail = ErrorClass.connect_error, f"{type(exc).__name__}: {exc}"[:300]
            return o
        o.t_start = t0 = now()
        first_deadline = t0 + int(timeouts.first_chunk * 1e9)
        total_deadline = t0 + int(timeouts.total * 1e9)
        try:
            with ghc.header_limits(first_deadline):  # headers end by the first-chunk deadline, within 64 KiB
                resp = client.request("POST", path, body=body, headers=headers)
        except GreenletExit:
            o.error, o.t_end = ErrorClass.cancelled, now()
            raise
        except TimeoutError as exc:
            o.t_end = now()
            waited = (o.t_end - t0) / 1e9
            # the connection is open (see _connect): a timeout here is the server not answering
            o.error = (
                ErrorClass.timeout_first_chunk
                if waited >= timeouts.first_chunk * 0.99 or o.t_connect
                else ErrorClass.connect_error
            )
            o.detail = f"no response after {waited:.2f} s" + (f" ({exc})" if str(exc) else "")
            return o
        except ghc.HeadersTooLarge as exc:
            o.t_end = now()
            o.error, o.detail = ErrorClass.oversized, str(exc)
            return o
        except (OSError, HTTPParseError) as exc:
            closing = isinstance(exc, (HTTPConnectionClosed, *_CLOSING))
            if attempt == 0 and reused and closing:
                # written to a kept-alive socket the server was closing (llama-server closes right after a
                # stream while advertising keep-alive): nothing was answered, so it is sent once more on a
                # fresh connection, as browsers do, and the first attempt is recorded (retry_ms), not hidden
                o.retry_ms = (now() - t0) / 1e6
                continue
            o.t_end = now()
            o.error, o.detail = (
                (ErrorClass.truncated if isinstance(exc, HTTPParseError) else ErrorClass.connect_error),
                f"{type(exc).__name__}: {exc}"[:300],
            )
            return o
        break
    o.t_headers = now()
    o.status = resp.status_code
    o.content_type = str(resp.get("content-type") or "")
    if resp.get("x-vercel-ai-ui-message-stream"):
        dec.saw_ui_header()
    try:
        if o.status >= 300:
            raw, whole = _error_body(resp, min(first_deadline, total_deadline))
            o.t_end = now()
            o.error, o.detail = classify_http_error(o.status, raw)
            if not whole:
                o.detail = f"{o.detail[:240]} [body cut at {len(raw):,} bytes]"
            o.bytes_in = len(raw)
            o.head = raw[:HEAD_BYTES]
            return o
        _read_body(o, resp, dec, timeouts, first_deadline, total_deadline)
    except GreenletExit:
        o.error, o.t_end = ErrorClass.cancelled, now()
        _discard(resp)
        raise
    return o


def _error_body(resp: Any, deadline: int) -> tuple[bytes, bool]:
    """An error answer's body, at most ``MAX_ERROR_BODY`` bytes and by ``deadline``; (bytes, whether it
    was whole). A body cut short leaves its connection closed, never back in the pool."""
    buf = ghc.body_buffer(resp)
    sock = ghc.raw_socket(resp)
    before = sock.gettimeout() if sock is not None else None
    try:
        while not resp.message_complete and len(buf) < MAX_ERROR_BODY and sock is not None:
            left = (deadline - monotonic_ns()) / 1e9
            if left <= 0:
                break
            sock.settimeout(left)
            data = sock.recv(READ_SIZE)
            if not data:
                break
            resp.feed(data)
    except (OSError, HTTPParseError):
        pass
    raw = bytes(buf[:MAX_ERROR_BODY])
    whole = bool(resp.message_complete) and len(buf) <= MAX_ERROR_BODY
    del buf[:]
    if not resp.message_complete:
        _discard(resp)
    elif sock is not None:
        sock.settimeout(before)  # kept alive for the next request: as the pool set it
    return raw, whole


def _read_body(o: Outcome, resp: Any, dec: Decoder, timeouts: Timeouts, first_deadline: int, total_deadline: int) -> None:
    """The read loop. The stall clock runs from the last *content* part: keep-alive comments,
    data parts or a byte-by-byte trickle between parts do not reset it."""
    now = monotonic_ns
    stamps = o.stamps
    buf = ghc.body_buffer(resp)
    sock = ghc.raw_socket(resp)
    stall_ns = int(timeouts.stall * 1e9)
    last_part = 0  # time of the read that completed the latest content part; 0 before the first
    ts = o.t_headers
    if buf:  # body bytes that came with the headers
        data = bytes(buf)
        del buf[:]
        o.bytes_in += len(data)
        o.head = data[:HEAD_BYTES]
        n = dec.feed(data)
        if n:
            stamps.append(ts)
            stamps.append(n)
            last_part = ts
    fast = ghc.plain_reader(sock) if sock is not None else None
    if fast is not None:
        hub, io, raw = fast
        deadline = Deadline()
        WATCHDOG.arm(deadline)
    try:
        while not resp.message_complete and not dec.error:
            if sock is None:
                break
            t = now()
            limit = min(last_part + stall_ns if last_part else first_deadline, total_deadline) - t
            if limit <= 0:
                o.error = (
                    ErrorClass.timeout_total
                    if t >= total_deadline
                    else (ErrorClass.stall if last_part else ErrorClass.timeout_first_chunk)
                )
                break
            try:
                if fast is not None:  # plain TCP: wait for readiness (no timer per read), then one recv
                    deadline.at = t + limit
                    deadline.waiting = True
                    try:
                        hub.wait(io)
                    finally:
                        deadline.waiting = False
                    try:
                        data = raw.recv(READ_SIZE)
                    except BlockingIOError:
                        continue  # readiness without bytes (rare): wait again
                else:
                    sock.settimeout(limit / 1e9)
                    data = sock.recv(READ_SIZE)
            except TimeoutError:
                t = now()
                o.error = (
                    ErrorClass.timeout_total
                    if t >= total_deadline - 1_000_000
                    else (ErrorClass.stall if last_part else ErrorClass.timeout_first_chunk)
                )
                break
            except OSError as exc:
                o.error, o.detail = ErrorClass.truncated, f"{type(exc).__name__}: {exc}"[:300]
                break
            ts = now()
            if not data:
                o.error, o.detail = ErrorClass.truncated, "connection closed before the closing chunk"
                break
            o.bytes_in += len(data)
            if o.bytes_in > MAX_BODY_BYTES or len(dec.texts) > MAX_PARTS:
                o.error = ErrorClass.oversized
                o.detail = f"the body went past {MAX_BODY_BYTES >> 20} MiB or {MAX_PARTS:,} parts: closed, not read on"
                break
            try:
                resp.feed(data)
            except HTTPParseError as exc:
                o.error, o.detail = ErrorClass.decode_error, f"bad HTTP framing: {exc}"[:300]
                break
            if buf:
                chunk = bytes(buf)
                del buf[:]
                if not o.head:
                    o.head = chunk[:HEAD_BYTES]
                n = dec.feed(chunk)
                if n:
                    stamps.append(ts)
                    stamps.append(n)
                    last_part = ts
    finally:
        if fast is not None:
            WATCHDOG.disarm(deadline)
    o.t_end = ts if not o.error else now()
    if o.error:
        if o.error in (ErrorClass.stall, ErrorClass.timeout_first_chunk, ErrorClass.timeout_total) and not o.detail:
            o.detail = (
                "the stream did not end in time"
                if o.error == ErrorClass.timeout_total
                else f"no content part for {timeouts.stall:g} s"
                if o.error == ErrorClass.stall
                else "no content part in time"
            )
        _discard(resp)
    else:
        if dec.error:
            if not resp.message_complete:
                _discard(resp)
        else:
            before = len(dec.texts)
            dec.finish()
            n = len(dec.texts) - before
            if n:  # a last line without its newline: timed at the read that ended the body
                stamps.append(ts)
                stamps.append(n)
        if dec.error:
            o.error, o.detail = dec.error, dec.error_detail
    if sock is not None and resp.message_complete:
        sock.settimeout(timeouts.first_chunk)

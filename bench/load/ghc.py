"""The private parts of geventhttpclient the hot path reads, in one place.

``stream_request`` reads a streamed body straight from the response's socket (one ``recv`` per
wake-up, stamped as it returns) instead of through ``HTTPResponse.read``, which copies and
re-buffers. That needs four private attributes; they are named only here, the versions they
are known on are pinned in ``pyproject.toml`` (geventhttpclient 2.6), and
``tests/test_stream.py::test_geventhttpclient_private_parts_exist`` fails on a release that
renames one, before any number goes wrong.
"""

from __future__ import annotations

from typing import Any


def body_buffer(resp: Any) -> bytearray:
    """Body bytes the response parser already read together with the headers."""
    buf: bytearray = resp._body_buffer
    return buf


def raw_socket(resp: Any) -> Any:
    """The connection's gevent socket (``None`` once released)."""
    return resp._sock


def detach(resp: Any) -> tuple[Any, Any]:
    """Take the socket and its pool from the response, so the response can no longer return it."""
    sock, pool = resp._sock, getattr(resp, "_pool", None)
    resp._sock = None
    if hasattr(resp, "_pool"):
        resp._pool = None
    return sock, pool


def pool_of(client: Any) -> Any:
    return client._connection_pool


def kept_alive(pool: Any) -> list[Any]:
    """The idle sockets the pool would hand out next."""
    return list(pool._socket_queue.queue)


def plain_reader(sock: Any) -> tuple[Any, Any, Any] | None:
    """(hub, readiness watcher, raw non-blocking socket) of a plain gevent TCP socket, for the read
    loop's wait-then-recv path; ``None`` for TLS (an SSL socket may hold decrypted bytes its file
    descriptor does not show as readable, so it keeps gevent's own ``recv``)."""
    import ssl

    from gevent.ssl import SSLSocket

    if isinstance(sock, (SSLSocket, ssl.SSLSocket)) or not hasattr(sock, "_read_event") or not hasattr(sock, "_sock"):
        return None
    return sock.hub, sock._read_event, sock._sock


# --- bounded response headers -------------------------------------------------------------------------
# geventhttpclient reads headers until they end, however many bytes and however long that takes: a header
# flood grew to 2.7 GB in 5 s, and headers sent one line every 0.5 s escaped every timeout (each recv
# returned in time). The response class the client builds is replaced by one whose header read has a byte
# bound and the request's first-chunk deadline, set per greenlet by ``header_limits``.
MAX_HEADER_BYTES = 64 * 1024


class HeadersTooLarge(Exception):
    """The response's headers went past ``MAX_HEADER_BYTES``."""


_LIMITS: dict[int, int] = {}  # id(greenlet) -> monotonic deadline (ns) for the headers of its current request


class header_limits:
    """``with header_limits(deadline_ns): client.request(...)``: the headers must end by then, within bounds."""

    __slots__ = ("key", "deadline")

    def __init__(self, deadline_ns: int) -> None:
        from gevent import getcurrent

        self.key, self.deadline = id(getcurrent()), deadline_ns

    def __enter__(self) -> None:
        _LIMITS[self.key] = self.deadline

    def __exit__(self, *exc: object) -> None:
        _LIMITS.pop(self.key, None)


def _install_bounded_headers() -> None:
    import errno
    import time

    import gevent
    from geventhttpclient import client as ghc_client
    from geventhttpclient.response import HTTPConnectionClosed, HTTPParseError, HTTPSocketPoolResponse

    if getattr(ghc_client.HTTPSocketPoolResponse, "_bench_bounded", False):  # type: ignore[attr-defined]
        return

    class BoundedResponse(HTTPSocketPoolResponse):
        _bench_bounded = True

        def _read_headers(self, pre_buffered: bytes = b"") -> None:
            deadline = _LIMITS.get(id(gevent.getcurrent()))
            if deadline is None:
                return super()._read_headers(pre_buffered)
            sock = self._sock
            assert sock is not None
            seen = len(pre_buffered)
            before = sock.gettimeout()
            try:
                if pre_buffered:
                    self.feed(pre_buffered)
                start = not pre_buffered
                # as geventhttpclient reads them (interim 1xx answers skipped), with a byte bound and a deadline
                while not self.headers_complete or self.get_code() < 200:
                    if seen > MAX_HEADER_BYTES:
                        raise HeadersTooLarge(f"response headers over {MAX_HEADER_BYTES // 1024} KiB")
                    left = (deadline - time.monotonic_ns()) / 1e9
                    if left <= 0:
                        raise TimeoutError("the response headers did not end in time")
                    sock.settimeout(min(left, before) if before else left)
                    try:
                        data = sock.recv(self.block_size)
                    except gevent.socket.error as e:
                        if e.errno == errno.ECONNRESET and start:
                            raise HTTPConnectionClosed("connection closed.") from e
                        raise
                    seen += len(data)
                    self.feed(data)
                    if not data:
                        if start:
                            raise HTTPConnectionClosed("connection closed.")
                        if self.headers_complete:
                            raise HTTPParseError("connection closed after interim response")
                        raise HTTPParseError("connection closed before end of the headers")
                    start = False
                sock.settimeout(before)
                if self.message_complete:
                    self.release()
            except BaseException:
                pool, self._pool, self._sock = self._pool, None, None
                if pool is not None:
                    pool.release_socket(sock)  # closed, never back to the pool: the connection is mid-answer
                else:
                    sock.close()
                raise

    ghc_client.HTTPSocketPoolResponse = BoundedResponse  # type: ignore[attr-defined,misc]  # the name client.request builds


_install_bounded_headers()

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

"""A server that answers every request badly, in one of four ways (by the request path's last part):

- ``huge-error``: ``500`` with ``Content-Length`` of 10 GiB, zeros sent as fast as they are read;
- ``endless``: a ``200`` AI SDK stream of parts, as fast as they are read, that never ends;
- ``header-flood``: a status line, then header lines without end, as fast as they are read;
- ``endless-headers``: a status line, then one header line every 0.5 s, forever.

Raw sockets and threads (no framework would send these). ``python tests/raw_hostile_server.py PORT``
serves until killed; tests use ``serve()``.
"""

from __future__ import annotations

import socket
import sys
import threading
import time

PART = b'0:"' + b"x" * 58 + b'"\n'


def _handle(conn: socket.socket) -> None:
    try:
        conn.settimeout(30)
        req = b""
        while b"\r\n\r\n" not in req:
            data = conn.recv(65536)
            if not data:
                return
            req += data
        line = req.split(b"\r\n", 1)[0].decode("latin-1")
        path = line.split(" ")[1] if " " in line else "/"
        mode = path.split("?")[0].rstrip("/").rsplit("/", 1)[-1]
        if mode == "chat":  # /api/ai/huggingface/<publisher>/<mode>/chat: the model name is the mode
            mode = path.split("?")[0].rstrip("/").rsplit("/", 2)[-2]
        if mode == "huge-error":
            conn.sendall(b"HTTP/1.1 500 Internal Server Error\r\nContent-Type: text/plain\r\nContent-Length: 10737418240\r\n\r\n")
            block = b"\0" * 65536
            while True:
                conn.sendall(block)
        elif mode == "endless":
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain; charset=utf-8\r\nTransfer-Encoding: chunked\r\n\r\n")
            chunk = PART * 1000
            frame = f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n"
            while True:
                conn.sendall(frame)
        elif mode == "header-flood":
            conn.sendall(b"HTTP/1.1 200 OK\r\n")
            block = b"X-Flood: " + b"a" * 1000 + b"\r\n"
            block *= 64
            while True:
                conn.sendall(block)
        elif mode == "endless-headers":
            conn.sendall(b"HTTP/1.1 200 OK\r\n")
            n = 0
            while True:
                conn.sendall(f"X-Slow-{n}: yes\r\n".encode())
                n += 1
                time.sleep(0.5)
        else:
            conn.sendall(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")
    except OSError:
        pass
    finally:
        conn.close()


def serve(port: int = 0) -> tuple[socket.socket, int]:
    srv = socket.socket()
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("127.0.0.1", port))
    srv.listen(64)

    def loop() -> None:
        while True:
            try:
                conn, _ = srv.accept()
            except OSError:
                return
            threading.Thread(target=_handle, args=(conn,), daemon=True).start()

    threading.Thread(target=loop, daemon=True).start()
    return srv, srv.getsockname()[1]


if __name__ == "__main__":
    serve(int(sys.argv[1]))
    while True:
        time.sleep(3600)

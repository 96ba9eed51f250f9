"""A TCP relay for tests: passes bytes through, or holds what the server sends until ``hold_bytes``
have gathered or ``hold_s`` has passed since the first byte held (a buffering proxy, as nginx with
``proxy_buffering on`` or a CDN). Runs its own asyncio loop in a thread; loopback only."""

from __future__ import annotations

import asyncio
import threading


class Relay:
    def __init__(self, upstream_port: int, hold_s: float = 0.0, hold_bytes: int = 8192) -> None:
        self.upstream_port, self.hold_s, self.hold_bytes = upstream_port, hold_s, hold_bytes
        self.port = 0
        self.flushes = 0
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Relay:
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("relay did not start")
        return self

    def __exit__(self, *exc) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        server = self._loop.run_until_complete(asyncio.start_server(self._client, "127.0.0.1", 0))
        self.port = server.sockets[0].getsockname()[1]
        self._ready.set()
        self._loop.run_forever()
        server.close()

    async def _client(self, cr: asyncio.StreamReader, cw: asyncio.StreamWriter) -> None:
        try:
            ur, uw = await asyncio.open_connection("127.0.0.1", self.upstream_port)
        except OSError:
            cw.close()
            return
        up = asyncio.ensure_future(self._pipe(cr, uw, hold=False))
        down = asyncio.ensure_future(self._pipe(ur, cw, hold=self.hold_s > 0))
        await asyncio.wait([up, down], return_when=asyncio.FIRST_COMPLETED)
        for t in (up, down):
            t.cancel()
        for w in (uw, cw):
            w.close()

    async def _pipe(self, r: asyncio.StreamReader, w: asyncio.StreamWriter, hold: bool) -> None:
        held = bytearray()
        deadline = None
        loop = asyncio.get_running_loop()
        while True:
            timeout = None if deadline is None else max(0.0, deadline - loop.time())
            try:
                data = await asyncio.wait_for(r.read(65536), timeout) if timeout is not None else await r.read(65536)
            except TimeoutError:
                data = None  # the hold time is up: flush
            if data == b"":
                if held:
                    w.write(bytes(held))
                    await w.drain()
                return
            if data is not None:
                if not hold:
                    w.write(data)
                    await w.drain()
                    continue
                if not held:
                    deadline = loop.time() + self.hold_s
                held += data
            if held and (data is None or len(held) >= self.hold_bytes):
                w.write(bytes(held))
                await w.drain()
                self.flushes += 1
                held.clear()
                deadline = None

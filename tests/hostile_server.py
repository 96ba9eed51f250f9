"""A small misbehaving OpenAI-compatible server for the hostile-server tests (loopback only).

    python tests/hostile_server.py MODE PORT_FILE COUNT_FILE

Modes: ``ok`` (a well-behaved server serving model ``m``), ``closing`` / ``closing-at-once``
(answers well, keeps HTTP/1.1 keep-alive implied, then closes the connection 5 ms after / right
after each stream), ``choices-int`` (``"choices": 5`` after the first answer), ``deep-json`` (a chunk nested
100,000 deep after the first), ``echo`` (a 500 whose body lists the request's headers, as gateway
debug pages do). The first request is answered properly so a preflight passes; every request
received is counted in COUNT_FILE (one line each), so a test can match records to requests.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from aiohttp import web

GOOD = (
    b'data: {"choices":[{"delta":{"content":"Hello"}}]}\n\n'
    b'data: {"choices":[{"delta":{"content":" there"},"finish_reason":"stop"}]}\n\ndata: [DONE]\n\n'
)


def main() -> None:
    mode, port_file, count_file = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3])
    seen = 0
    log = open(count_file, "a", buffering=1)

    async def models(request: web.Request) -> web.Response:
        return web.json_response({"data": [{"id": "m"}]})

    async def chat(request: web.Request) -> web.StreamResponse:
        nonlocal seen
        await request.read()
        seen += 1
        log.write(f"{seen}\n")
        if mode == "echo" and seen > 1:
            body = "headers received:\n" + "\n".join(f"{k}: {v}" for k, v in request.headers.items())
            return web.Response(status=500, text=body)
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)
        if seen == 1 or mode in ("echo", "ok", "closing", "closing-at-once"):
            await resp.write(GOOD)
        elif mode == "choices-int":
            await resp.write(b'data: {"choices":[{"delta":{"content":"Hi"}}]}\n\ndata: {"choices": 5}\n\n')
        elif mode == "deep-json":
            await resp.write(
                b'data: {"choices":[{"delta":{"content":"Hi"}}]}\n\ndata: {"a":' + b"[" * 100_000 + b"]" * 100_000 + b"}\n\n"
            )
        await resp.write_eof()
        if mode.startswith("closing"):  # keep-alive advertised (HTTP/1.1), then the connection closed, as llama-server does
            transport = request.transport
            if transport is not None:
                asyncio.get_running_loop().call_later(0.0 if mode == "closing-at-once" else 0.005, transport.close)
        return resp

    async def start() -> None:
        app = web.Application()
        app.router.add_get("/v1/models", models)
        app.router.add_post("/v1/chat/completions", chat)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port_file.write_text(str(site._server.sockets[0].getsockname()[1]))
        await asyncio.Event().wait()

    asyncio.run(start())


if __name__ == "__main__":
    main()

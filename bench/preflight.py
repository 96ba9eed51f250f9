"""One request per model before any load: is the host there, are the credentials good, do the models exist?

httpx is right here: a handful of control-plane calls, where its clear errors matter and its
per-part cost does not. Only the status and headers are read; the stream is closed at once.
"""

from __future__ import annotations

import json

import httpx

from bench.errors import PreflightError
from bench.route import Credentials, RouteConfig
from bench.stream import classify_http_error

_PROBE = [{"role": "user", "content": "Reply with the single word: ok"}]


def preflight(host: str, models: list[str], route: RouteConfig, creds: Credentials, timeout: float = 15.0) -> None:
    base = host.rstrip("/")
    try:
        with httpx.Client(timeout=timeout, trust_env=False) as client:
            for i, model in enumerate(models):
                headers = {"Content-Type": "application/json", "Accept-Encoding": "identity", "X-Request-ID": f"preflight-{i}"}
                headers.update(creds.headers())
                with client.stream("POST", base + route.path(model), content=route.body(model, _PROBE), headers=headers) as resp:
                    if resp.status_code < 300:
                        continue
                    body = resp.read()
                    cls, detail = classify_http_error(resp.status_code, body)
                    raise PreflightError(_message(host, model, cls, resp.status_code, detail, body))
    except httpx.ConnectError as exc:
        raise PreflightError(f"cannot connect to {host}: {exc}; no load was sent") from None
    except httpx.TimeoutException:
        raise PreflightError(f"{host} did not answer within {timeout:.0f} s; no load was sent") from None
    except (httpx.RemoteProtocolError, httpx.UnsupportedProtocol, httpx.InvalidURL) as exc:
        raise PreflightError(f"{host} does not speak HTTP as expected ({exc}); no load was sent") from None
    except httpx.TransportError as exc:  # reset or closed mid-request: not an HTTP server we can use
        raise PreflightError(f"{host} does not answer HTTP requests ({type(exc).__name__}: {exc}); no load was sent") from None


def _message(host: str, model: str, cls: str, status: int, detail: str, body: bytes) -> str:
    if cls == "unauthorized":
        return f"{status} from {host}: the credentials were rejected (check BENCH_TOKEN / BENCH_JWT_SECRET / BENCH_COOKIE); no load was sent"
    if cls == "invalid_model":
        return f"{status} from {host}: model {model!r} does not exist there ({detail}); no load was sent"
    if cls == "retired_model":
        return f"{status} from {host}: model {model!r} is retired ('Service not available anymore.'); no load was sent"
    try:
        json.loads(body)
    except ValueError:
        if status == 404:
            return f"404 from {host}: no chat route at this address (is --host the app's base URL?); no load was sent"
    return f"{status} from {host} for model {model!r}: {detail}; no load was sent"

"""One request per model before any load: is the host there, are the credentials good, do the
models exist, and does the stream decode into at least one content part?

httpx is right here: a handful of control-plane calls, where its clear errors matter and its
per-part cost does not. The body is read only until the first content part, then closed.
"""

from __future__ import annotations

import json
import uuid

import httpx

from bench.errors import PreflightError
from bench.load.decode import PROTOCOLS, decoder_for
from bench.load.route import Credentials, RouteConfig
from bench.load.stream import classify_http_error
from bench.schema import ErrorClass

_PROBE = [{"role": "user", "content": "Reply with the single word: ok"}]


def served_models(host: str, creds: Credentials, tls=None, timeout: float = 15.0) -> list[str]:
    """``GET /v1/models`` of an OpenAI-compatible server: every id it serves (``--route openai`` without --models)."""
    base = (host or "").rstrip("/")
    if not base:
        raise PreflightError("--route openai without --models needs --host to ask the server for its models")
    try:
        with httpx.Client(timeout=timeout, trust_env=False, verify=tls.httpx_verify() if tls else True) as client:
            resp = client.get(base + "/v1/models", headers=creds.headers())
    except httpx.HTTPError as exc:
        raise PreflightError(f"cannot list the models of {host} (GET /v1/models: {exc}); pass --models") from None
    try:
        ids = [m["id"] for m in resp.json()["data"] if isinstance(m, dict) and m.get("id")]
    except (ValueError, KeyError, TypeError):
        ids = []
    if resp.status_code >= 300 or not ids:
        raise PreflightError(f"{resp.status_code} from {host}/v1/models: no model list; pass --models")
    return ids


def preflight(
    host: str,
    models: list[str],
    route: RouteConfig,
    creds: Credentials,
    timeout: float = 15.0,
    protocol: str = "auto",
    tls=None,
    headers: dict[str, str] | None = None,
    log: list | None = None,
) -> dict[str, str]:
    """Raises PreflightError with one line when a model cannot be load-tested; returns, per model,
    the stream format it answered in.

    The probe always goes in playground mode (``chat_id=-1&is_playground=true``), also for a
    ``--persist`` run: a preflight must never write into a user's chat. ``log`` receives one entry
    per request sent (id, model, status, time to its first part), for ``run.json``: the server
    sees these requests, so a server-side join must be able to explain them.
    """
    import threading

    # httpx's timeouts are per read: headers sent one line every half second never time out. The probe
    # runs in a thread of its own, and a whole-probe deadline stops the run before any load.
    result: dict = {}

    def probe() -> None:
        try:
            result["found"] = _preflight(host, models, route, creds, timeout, protocol, tls, headers, log)
        except BaseException as exc:  # noqa: BLE001  # handed to the caller's thread as it is
            result["error"] = exc

    t = threading.Thread(target=probe, name="bench-preflight", daemon=True)
    t.start()
    t.join(timeout * len(models) + 5)
    if t.is_alive():
        raise PreflightError(
            f"{host} did not finish answering within {timeout:.0f} s (its headers or body never ended); no load was sent"
        )
    if "error" in result:
        raise result["error"]
    found: dict[str, str] = result["found"]
    return found


def _preflight(host, models, route, creds, timeout, protocol, tls, headers, log) -> dict[str, str]:
    import dataclasses
    import time

    base = host.rstrip("/")
    found: dict[str, str] = {}
    extra = headers or {}
    probe_route = dataclasses.replace(route, playground=True, chat_id=-1)
    log = log if log is not None else []
    try:
        with httpx.Client(timeout=timeout, trust_env=False, verify=tls.httpx_verify() if tls else True) as client:
            for model in models:
                rid = str(uuid.uuid4())
                headers = {"Content-Type": "application/json", "Accept-Encoding": "identity", "X-Request-ID": rid}
                headers.update(creds.headers())
                headers.update(extra)
                entry: dict = {
                    "request_id": rid,
                    "model": model,
                    "auth": creds.kind,
                    "started": time.time(),
                    "status": None,
                    "ttfc_ms": None,
                }
                log.append(entry)
                t0 = time.monotonic()
                with client.stream(
                    "POST", base + probe_route.path(model), content=probe_route.body(model, _PROBE), headers=headers
                ) as resp:
                    entry["status"] = resp.status_code
                    if resp.status_code >= 300:
                        body = _bounded_body(resp)
                        cls, detail = classify_http_error(resp.status_code, body)
                        entry["error"] = cls
                        raise PreflightError(_message(host, model, cls, resp.status_code, detail, body, creds), cls)
                    found[model] = _first_part(host, model, resp, protocol)
                    entry["ttfc_ms"] = round((time.monotonic() - t0) * 1000, 2)
    except httpx.ConnectError as exc:
        hint = " (a private CA: --ca-file; or --insecure)" if "CERTIFICATE" in str(exc).upper() else ""
        raise PreflightError(f"cannot connect to {host}: {exc}{hint}; no load was sent") from None
    except httpx.TimeoutException:
        raise PreflightError(f"{host} did not answer within {timeout:.0f} s; no load was sent") from None
    except (httpx.RemoteProtocolError, httpx.UnsupportedProtocol, httpx.InvalidURL) as exc:
        raise PreflightError(f"{host} does not speak HTTP as expected ({exc}); no load was sent") from None
    except httpx.TransportError as exc:  # reset or closed mid-request: not an HTTP server we can use
        raise PreflightError(f"{host} does not answer HTTP requests ({type(exc).__name__}: {exc}); no load was sent") from None
    return found


def _bounded_body(resp: httpx.Response) -> bytes:
    """An error answer's body, at most the load path's 64 KiB (a 10 GiB body is not read whole)."""
    from bench.load.stream import MAX_ERROR_BODY

    out = bytearray()
    for data in resp.iter_raw():
        out += data
        if len(out) >= MAX_ERROR_BODY:
            break
    return bytes(out[:MAX_ERROR_BODY])


def _first_part(host: str, model: str, resp: httpx.Response, protocol: str) -> str:
    """Read until the decoder yields one content part; a stream that never does stops the run here."""
    dec = decoder_for(protocol)
    head = b""
    ctype = resp.headers.get("content-type", "?")
    if resp.headers.get("x-vercel-ai-ui-message-stream"):
        dec.saw_ui_header()
    for data in resp.iter_raw():
        if len(head) < 200:
            head += data[: 200 - len(head)]
        if dec.feed(data) or dec.error:
            break
    else:
        dec.finish()
    if dec.texts:
        return dec.detected or protocol
    why = f"{dec.error}: {dec.error_detail}" if dec.error else "no content part"
    shown = head.decode("utf-8", "replace").replace("\n", "\\n")[:120]
    raise PreflightError(
        f"{resp.status_code} from {host} for model {model!r}, but its stream did not decode ({why}; "
        f"content-type {ctype}; it began {shown!r}): is --protocol right ({', '.join(PROTOCOLS)})? "
        "no load was sent"
    )


def _message(host: str, model: str, cls: str, status: int, detail: str, body: bytes, creds: Credentials | None = None) -> str:
    from bench.secrets import redact

    return redact(_message_text(host, model, cls, status, detail, body, creds))


def _message_text(
    host: str, model: str, cls: str, status: int, detail: str, body: bytes, creds: Credentials | None = None
) -> str:
    from bench.load.stream import is_nitro_unauthorized, model_issue

    if cls == ErrorClass.unauthorized:
        wants = (
            (
                "; this server wants a session cookie (Nitro's 'Unauthorized': the Neptun app reads only its "
                "neptun-session cookie, never Authorization), see the README's 'Getting a session'"
            )
            if is_nitro_unauthorized(body)
            else ""
        )
        if creds is None or creds.kind == "none":
            return (
                f"{status} from {host}: no credentials found (set BENCH_COOKIE or --cookie-file for the app's session "
                f"cookie; BENCH_TOKEN / BENCH_JWT_SECRET for a gateway){wants}; no load was sent"
            )
        if creds.kind == "cookie":
            return f"{status} from {host}: the session cookie was rejected: {creds.source} (expired, or another deployment's){' ' + wants[2:] if wants else ''}; no load was sent"
        return f"{status} from {host}: the credentials were rejected: {creds.source}{wants}; no load was sent"
    if cls == ErrorClass.invalid_model:
        issue = model_issue(body)
        if issue is not None:
            allowed = f" (allowed: {', '.join(issue[1])})" if issue[1] else f" ({issue[0]})"
            return f"{status} from {host}: model {model!r} does not exist here{allowed}; no load was sent"
        return f"{status} from {host}: model {model!r} does not exist there ({detail}); no load was sent"
    if cls == ErrorClass.retired_model:
        return f"{status} from {host}: model {model!r} is retired ('Service not available anymore.'); no load was sent"
    if 400 <= status < 500 and not body.strip():
        return (
            f"{status} with an empty body from {host} for model {model!r}: the server gave no reason; it may reject a "
            "header (X-Request-ID, Authorization, Accept-Encoding) or a body field (model, messages, stream, "
            "stream_options); no load was sent"
        )
    try:
        json.loads(body)
    except ValueError:
        if status == 404:
            return f"404 from {host}: no chat route at this address (is --host the app's base URL?); no load was sent"
        text = " ".join(body.decode("utf-8", "replace").split())  # an HTML page: one line, not its layout
        return f"{status} from {host} for model {model!r}: {text[:160]}; no load was sent"
    return f"{status} from {host} for model {model!r}: {detail}; no load was sent"

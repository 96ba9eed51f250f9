"""The route protocol on the client side: where to send a turn, what body, which credentials.

``neptun`` is the Neptun route (``/api/ai/huggingface/{publisher}/{model}/chat``); ``openai`` is
an OpenAI-compatible ``/v1/chat/completions``, so the same scenarios can be replayed against a
vLLM or TGI server, or the reference target's twin route, for comparison.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

import jwt

from bench.errors import InputError
from bench.secrets import read_secret, remember

NEPTUN_TEMPLATE = "/api/ai/huggingface/{publisher}/{name}/chat?chat_id={chat_id}"
PLACEHOLDERS = {"model", "publisher", "name", "provider", "chat_id"}


def check_template(template: str, where: str = "--route-template") -> str:
    """A route template's placeholders are known and it is a path: refused before any load otherwise."""
    import string

    if not template.startswith("/"):
        raise InputError(f"{where} {template!r}: must be a path starting with /")
    try:
        names = {f for _, f, _, _ in string.Formatter().parse(template) if f is not None}
    except ValueError as exc:
        raise InputError(f"{where} {template!r}: {exc}") from None
    unknown = names - PLACEHOLDERS
    if unknown:
        raise InputError(f"{where} {template!r}: unknown placeholder(s) {sorted(unknown)}; known: {sorted(PLACEHOLDERS)}")
    return template


@dataclass(frozen=True)
class RouteConfig:
    """Where a turn goes and what its body is. ``templates`` maps a model to its own route path
    (the app's sibling routes: cloudflare, openrouter, ollama); ``template`` is the default."""

    kind: str = "neptun"  # neptun | openai; for --backend also tgi | hf (Hugging Face's token stream)
    playground: bool = True  # is_playground=true: the deployment writes no chat history
    chat_id: int = -1
    template: str = ""
    templates: tuple[tuple[str, str], ...] = ()
    max_tokens: int = 0  # OpenAI route: max_tokens in the body (0: none)
    ignore_eos: bool = False

    def path(self, model: str) -> str:
        if self.kind == "openai" and not self.template and not self.templates:
            return "/v1/chat/completions"
        if self.kind == "tgi":  # one model per TGI server: none in the path
            return "/generate_stream"
        if self.kind == "hf":  # the Inference API's shape (a model's own path), as the app's client calls it
            return "/models/" + split_model(model)[1]
        template = dict(self.templates).get(model) or self.template or NEPTUN_TEMPLATE
        provider, model_id = split_model(model)
        publisher, _, name = model_id.partition("/")
        path = template.format(
            model=model_id, publisher=publisher, name=name or model_id, provider=provider, chat_id=self.chat_id
        )
        if "is_playground" not in path and self.kind != "openai":  # the app rejects a request without it (400)
            path += ("&" if "?" in path else "?") + ("is_playground=true" if self.playground else "is_playground=false")
        return path

    def body(self, model: str, messages: list[dict[str, str]], max_tokens: int = 0) -> bytes:
        limit = max_tokens or self.max_tokens  # a request's own bound (a trace row, a length mix) first
        if self.kind == "openai":
            obj: dict[str, Any] = {
                "model": split_model(model)[1],
                "messages": messages,
                "stream": True,
                "stream_options": {"include_usage": True},
            }
            if limit:
                obj["max_tokens"] = limit
            if self.ignore_eos:
                obj["ignore_eos"] = True
        elif self.kind in ("tgi", "hf"):  # what the app itself sends the model server (bench/neptunapp.py)
            from bench.neptunapp import tgi_body

            obj = tgi_body(split_model(model)[1], messages, limit, stream=self.kind == "hf")
        else:
            obj = {"messages": messages}
        return json.dumps(obj, ensure_ascii=False).encode()


def check_models(models: list[str], kind: str, template: str, templates: dict[str, str] | None = None) -> None:
    """The Neptun route's own path needs publisher/model; a route template or an OpenAI server takes any id."""
    for m in models:
        if not m or any(c.isspace() for c in m):
            raise InputError(f"--models: {m!r} is not a model id")
        uses_split = (templates or {}).get(m) or template or (NEPTUN_TEMPLATE if kind == "neptun" else "")
        if "{publisher}" in uses_split or "{name}" in uses_split:
            if split_model(m)[1].count("/") != 1:
                raise InputError(
                    f"--models: {m!r} is not publisher/model (the route's path needs both; "
                    "--route openai or --route-template takes any id)"
                )


def split_model(spec: str) -> tuple[str, str]:
    """``provider=model`` (one run comparing the app's sibling routes) -> (provider, model); else ("", spec)."""
    provider, sep, model = spec.partition("=")
    return (provider, model) if sep else ("", spec)


def parse_headers(items: list[str]) -> dict[str, str]:
    """``Name: value`` pairs; ``@env:VAR`` and ``@file:PATH`` values are secrets, read here and scrubbed."""
    from bench.secrets import read_secret

    out: dict[str, str] = {}
    for item in items or []:
        name, sep, value = item.partition(":")
        name, value = name.strip(), value.strip()
        if not sep or not name or not value or any(c in name for c in " \t\r\n"):
            raise InputError(f"--header {name or item!r}: expected 'Name: value', 'Name: @env:VAR' or 'Name: @file:PATH'")
        if value.startswith("@env:"):
            secret = read_secret(value[5:], None, f"header {name}")
            if not secret:
                raise InputError(f"--header {name}: environment variable {value[5:]} is not set")
            value = secret
        elif value.startswith("@file:"):
            value = read_secret("", value[6:], f"header {name}") or ""
        out[name] = value
    return out


SALT_FORMAT = "[{salt}] "  # in front of the first user message: short, and plain text any template passes on


def salted(messages: list[dict[str, str]], salt: str) -> list[dict[str, str]]:
    """The messages with ``salt`` in front of the first user message (a copy; the history kept for
    later turns stays unsalted, so a run's salt is added the same way to every turn)."""
    out = list(messages)
    for i, m in enumerate(out):
        if m.get("role") == "user":
            out[i] = {**m, "content": SALT_FORMAT.format(salt=salt) + m["content"]}
            break
    return out


class Credentials:
    """Produces the auth header or cookie for each request; never exposes its secret in repr."""

    def __init__(self, kind: str = "none", value: str | None = None, source: str = "") -> None:
        self.kind = kind
        self._value = value
        self.source = source  # where the secret came from, in words (never the secret)
        self._token: str | None = None
        self._token_exp = 0.0

    def __repr__(self) -> str:
        return f"Credentials(kind={self.kind!r})"

    def headers(self) -> dict[str, str]:
        if self.kind == "bearer":
            return {"Authorization": f"Bearer {self._value}"}
        if self.kind == "cookie":
            return {"Cookie": self._value or ""}
        if self.kind == "jwt":
            now = time.time()
            if self._token is None or now > self._token_exp - 300:
                self._token_exp = now + 3600
                import warnings

                with warnings.catch_warnings():  # a short secret: said once, in our words, by credentials_from
                    warnings.simplefilter("ignore")
                    self._token = jwt.encode({"sub": "bench", "exp": int(self._token_exp)}, self._value, algorithm="HS256")
                remember(self._token)
            # the minted token both ways: as a bearer (the documented route, a gateway) and as the session
            # cookie (the reference target's deployed flavour, which, as the app, reads nothing else)
            return {"Authorization": f"Bearer {self._token}", "Cookie": f"{DEFAULT_COOKIE}={self._token}"}
        return {}


DEFAULT_COOKIE = "neptun-session"  # the app's runtimeConfig.session.name (nuxt-auth-utils' default would be nuxt-session)
AUTO_ORDER = ("cookie", "bearer", "jwt")  # what the Neptun app reads first: only its session cookie


def cookie_header(value: str, name: str = DEFAULT_COOKIE) -> str:
    """A cookie as copied from a browser: the bare value (``Fe26.2**...``), ``name=value``, or a
    whole ``Cookie:`` header line; always returned as a Cookie header's value."""
    v = value.strip()
    if v.lower().startswith("cookie:"):
        v = v[7:].strip()
    if "=" not in v.split(";", 1)[0] or v.startswith("Fe26.2"):  # iron-sealed values hold no '=' before their '*'s
        return f"{name}={v}"
    return v


def _found(
    token_file: str | None, jwt_secret_file: str | None, cookie_file: str | None, cookie_name: str
) -> tuple[dict[str, str | None], dict[str, str]]:
    token = read_secret("BENCH_TOKEN", token_file, "token")
    secret = read_secret("BENCH_JWT_SECRET", jwt_secret_file, "JWT secret")
    cookie = read_secret("BENCH_COOKIE", cookie_file, "cookie")
    if cookie:
        cookie = cookie_header(cookie, cookie_name or DEFAULT_COOKIE)
        remember(cookie)
    found = {"bearer": token, "jwt": secret, "cookie": cookie}
    source = {
        "bearer": f"the token from {'--token-file ' + token_file if token_file else 'BENCH_TOKEN'}",
        "jwt": f"JWTs minted from the secret in {'--jwt-secret-file ' + jwt_secret_file if jwt_secret_file else 'BENCH_JWT_SECRET'}",
        "cookie": f"the session cookie from {'--cookie-file ' + cookie_file if cookie_file else 'BENCH_COOKIE'}",
    }
    return found, source


def credential_candidates(
    kind: str,
    token_file: str | None = None,
    jwt_secret_file: str | None = None,
    cookie_file: str | None = None,
    cookie_name: str = DEFAULT_COOKIE,
) -> list[Credentials]:
    """``--auth auto``: every credential present, in the order the app reads them (session cookie
    first); the preflight tries them in turn and the run keeps the first the target accepts, so a
    stray BENCH_TOKEN beside a valid cookie does not stop the run. Any other kind: just that one."""
    if kind != "auto":
        return [credentials_from(kind, token_file, jwt_secret_file, cookie_file, cookie_name)]
    found, source = _found(token_file, jwt_secret_file, cookie_file, cookie_name)
    out = [Credentials(k, found[k], source[k]) for k in AUTO_ORDER if found[k]]
    return out or [Credentials("none")]


def credentials_from(
    kind: str,
    token_file: str | None = None,
    jwt_secret_file: str | None = None,
    cookie_file: str | None = None,
    cookie_name: str = DEFAULT_COOKIE,
) -> Credentials:
    """Pick credentials from files or environment variables (BENCH_COOKIE, BENCH_TOKEN, BENCH_JWT_SECRET).

    ``auto`` takes the first one present, the session cookie first; asking for a kind whose secret
    is missing is an error.
    """
    found, source = _found(token_file, jwt_secret_file, cookie_file, cookie_name)
    if kind == "auto":
        kind = next((k for k in AUTO_ORDER if found[k]), "none")
    if kind == "none":
        return Credentials("none")
    if not found.get(kind):
        where = {
            "bearer": "BENCH_TOKEN or --token-file",
            "jwt": "BENCH_JWT_SECRET or --jwt-secret-file",
            "cookie": "BENCH_COOKIE or --cookie-file",
        }[kind]
        raise InputError(f"--auth {kind}: no secret found; set {where}")
    if kind == "jwt" and len((found[kind] or "").encode()) < 32:
        import sys

        sys.stderr.write("warning: the JWT secret is shorter than 32 bytes; HS256 wants at least 256 bits of key\n")
    return Credentials(kind, found[kind], source[kind])

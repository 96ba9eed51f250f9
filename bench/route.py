"""The route protocol on the client side: where to send a turn, what body, which credentials.

``neptun`` is the Neptun route (``/api/ai/huggingface/{publisher}/{model}/chat``); ``openai`` is
an OpenAI-compatible ``/v1/chat/completions``, so the same scenarios can be replayed against a
vLLM or TGI server, or the reference target's twin route, for comparison.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass

import jwt

from bench.errors import InputError
from bench.secrets import read_secret, remember


@dataclass(frozen=True)
class RouteConfig:
    kind: str = "neptun"  # neptun | openai
    playground: bool = True  # is_playground=true: the deployment writes no chat history
    chat_id: int = -1

    def path(self, model: str) -> str:
        if self.kind == "openai":
            return "/v1/chat/completions"
        query = f"chat_id={self.chat_id}" + ("&is_playground=true" if self.playground else "")
        return f"/api/ai/huggingface/{model}/chat?{query}"

    def body(self, model: str, messages: list[dict[str, str]]) -> bytes:
        if self.kind == "openai":
            obj = {"model": model, "messages": messages, "stream": True, "stream_options": {"include_usage": True}}
        else:
            obj = {"messages": messages}
        return json.dumps(obj, ensure_ascii=False).encode()


class Credentials:
    """Produces the auth header or cookie for each request; never exposes its secret in repr."""

    def __init__(self, kind: str = "none", value: str | None = None) -> None:
        self.kind = kind
        self._value = value
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
                self._token = jwt.encode({"sub": "bench", "exp": int(self._token_exp)}, self._value, algorithm="HS256")
                remember(self._token)
            return {"Authorization": f"Bearer {self._token}"}
        return {}


def credentials_from(kind: str, token_file: str | None = None, jwt_secret_file: str | None = None,
                     cookie_file: str | None = None) -> Credentials:
    """Pick credentials from files or environment variables (BENCH_TOKEN, BENCH_JWT_SECRET, BENCH_COOKIE).

    ``auto`` takes the first one present; asking for a kind whose secret is missing is an error.
    """
    token = read_secret("BENCH_TOKEN", token_file, "token")
    secret = read_secret("BENCH_JWT_SECRET", jwt_secret_file, "JWT secret")
    cookie = read_secret("BENCH_COOKIE", cookie_file, "cookie")
    if cookie and "=" not in cookie:
        cookie = f"nuxt-session={cookie}"
    found = {"bearer": token, "jwt": secret, "cookie": cookie}
    if kind == "auto":
        for k in ("bearer", "jwt", "cookie"):
            if found[k]:
                return Credentials(k, found[k])
        return Credentials("none")
    if kind == "none":
        return Credentials("none")
    if not found.get(kind):
        where = {"bearer": "BENCH_TOKEN or --token-file", "jwt": "BENCH_JWT_SECRET or --jwt-secret-file", "cookie": "BENCH_COOKIE or --cookie-file"}[kind]
        raise InputError(f"--auth {kind}: no secret found; set {where}")
    return Credentials(kind, found[kind])

"""Authentication as the route does it: the session cookie (deployed: the app never reads
``Authorization``), or a bearer JWT as well (documented: the spec's older description).

JWTs are verified for real with PyJWT, HS256 pinned, ``exp`` required, so a harness that sends
expired or forged tokens sees the same 401 it would see from the deployment.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import jwt

SESSION_COOKIE = "neptun-session"  # the app's runtimeConfig.session.name


@dataclass(frozen=True)
class AuthConfig:
    """``mode``: ``jwt`` (the session cookie holding a JWT, the sealed session's stand-in; with ``bearer``
    an ``Authorization: Bearer`` JWT too), ``none`` (accept everything)."""

    mode: str = "jwt"
    secret: str | None = None
    cookie_name: str = SESSION_COOKIE
    bearer: bool = False  # read Authorization: Bearer too (the documented flavour and the OpenAI twin)

    def check(self, authorization: str | None, cookies: Mapping[str, str], bearer: bool | None = None) -> bool:
        """``bearer``: this route reads a bearer token whatever the flavour (an OpenAI or TGI server's API key)."""
        if self.mode == "none":
            return True
        token = None
        if (self.bearer if bearer is None else bearer) and authorization and authorization[:7].lower() == "bearer ":
            token = authorization[7:].strip()
        elif self.cookie_name in cookies:
            token = cookies[self.cookie_name]
        if not token or not self.secret:
            return False
        try:
            jwt.decode(token, self.secret, algorithms=["HS256"], options={"require": ["exp"]})
        except jwt.PyJWTError:
            return False
        return True

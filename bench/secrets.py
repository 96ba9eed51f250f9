"""Where secrets come from: environment variables or files, never the command line.

Values read here are never logged or written; ``redact`` scrubs them from anything that is.
"""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import urlsplit

from bench.errors import InputError

_KNOWN: set[str] = set()


def read_secret(env: str, path: str | None, what: str) -> str | None:
    """The secret from ``path`` if given (first line, stripped), else from ``$env``, else None."""
    value: str | None
    if path:
        p = Path(path)
        if not p.is_file():
            raise InputError(f"{what} file {p} not found")
        value = p.read_text().strip()
        if not value:
            raise InputError(f"{what} file {p} is empty")
    else:
        value = os.environ.get(env) or None
    if value:
        _KNOWN.add(value)
    return value


def remember(value: str) -> None:
    """Register a secret made at run time (a minted JWT) so ``redact`` removes it too."""
    if value:
        _KNOWN.add(value)


def redact(text: str) -> str:
    for s in _KNOWN:
        if s and s in text:
            text = text.replace(s, "***")
    return text


def refuse_url_credentials(host: str | None) -> None:
    """Credentials in the URL would land in run.json, logs and ``ps``: refuse them, without echoing them."""
    if host:
        parts = urlsplit(host)
        if parts.username is not None or parts.password is not None:
            safe = f"{parts.scheme}://{parts.hostname}{':' + str(parts.port) if parts.port else ''}"
            raise InputError(
                f"--host {safe}: credentials in the URL are refused (they would be written to run.json and "
                "shown in process listings); use BENCH_TOKEN / --token-file, BENCH_COOKIE / --cookie-file "
                "or BENCH_JWT_SECRET / --jwt-secret-file"
            )

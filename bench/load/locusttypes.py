"""Locust's objects as the harness's typed code sees them.

Locust's ``EventHook.add_listener`` is untyped (a decorator that would make every listener untyped
under ``mypy --strict``), and its ``Environment.runner`` is ``None``, a local, master or worker runner
by role, so every use would narrow it first. Until the collector is split by role (issue #23), the
environment is ``LocustEnv`` (``Any``, said once here) and listeners register through :func:`on`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

LocustEnv = Any  # locust.env.Environment
F = TypeVar("F", bound=Callable[..., Any])


def on(hook: Any) -> Callable[[F], F]:
    """``@on(events.init)``: Locust's ``hook.add_listener``, keeping the listener's own type."""

    def register(fn: F) -> F:
        hook.add_listener(fn)
        return fn

    return register

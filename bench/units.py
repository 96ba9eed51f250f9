"""Units people type: durations (``90s``, ``2m``, ``1h30m``)."""

from __future__ import annotations

import re

from bench.errors import InputError

_DURATION = re.compile(r"^(?:(\d+(?:\.\d+)?)h)?(?:(\d+(?:\.\d+)?)m(?!s))?(?:(\d+(?:\.\d+)?)s?)?$")


def parse_duration(text: str) -> float:
    """``90``, ``90s``, ``2m``, ``1h30m``, ``1m30s`` -> seconds."""
    m = _DURATION.match(text.strip()) if text else None
    if not m or not any(m.groups()):
        raise InputError(f"--duration {text!r}: expected e.g. 30s, 2m, 1h30m")
    h, mi, s = (float(g) if g else 0.0 for g in m.groups())
    total = h * 3600 + mi * 60 + s
    if total <= 0:
        raise InputError(f"--duration {text!r} must be positive")
    return total

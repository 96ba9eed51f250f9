"""Faults the reference target can inject, by share of requests or per request by header.

One spec language serves both: ``--faults "500=0.02,429=0.01:3,stall=0.01:2.5,drop=0.01"`` gives
each fault a share of requests (and an optional parameter after ``:``), drawn at random from the
seed; a fraction ``drop=1/3:6`` is exact instead (every third request, in arrival order), for checks
whose answer must not carry the draw's own spread (50 random draws of a third give 33 % ± 13); the request header
``X-Bench-Fault: stall=0.3,ttft_ms=50`` forces faults and timing overrides on one request, so
tests can provoke each behaviour deterministically.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from bench.errors import InputError

FAULT_HEADER = "X-Bench-Fault"

# name -> (default parameter, meaning)
FAULT_KINDS: dict[str, tuple[float, str]] = {
    "500": (0.0, "answer 500 with the route's JSON error before streaming"),
    "429": (1.0, "answer 429 with Retry-After (parameter: seconds)"),
    "stall": (2.0, "pause mid-stream for N seconds (after the first part)"),
    "pad": (0.1, "during a stall, send padding every N seconds: a data part 2:[...] (AI SDK), a keep-alive comment (SSE)"),
    "trickle": (0.1, "during a stall, send the next part one byte every N seconds"),
    "drop": (3.0, "drop the connection after N parts, without the closing chunk"),
    "malformed": (2.0, "send a malformed part after N parts"),
    "garbage": (0.0, "answer with bytes that are not the protocol"),
    "error_part": (2.0, 'send an error part 3:"..." after N parts and end the stream'),
    "slow_headers": (2.0, "wait N seconds before sending the status line and headers"),
    "huge_part": (2_000_000.0, "send one text part of N bytes"),
    "never_end": (0.1, "keep streaming a part every N seconds until the client gives up"),
    "silent": (3.0, "after N parts send nothing more and keep the response open (the app when its backend fails mid-stream)"),
}
# Per-request timing overrides accepted in the header too.
OVERRIDES = {"ttft_ms", "step_ms", "tokens"}


@dataclass
class FaultPlan:
    """What to do to one request; all fields unset means a normal answer."""

    status: int | None = None
    retry_after: float = 1.0
    stall_s: float | None = None
    pad_s: float | None = None
    trickle_s: float | None = None
    drop_after: int | None = None
    malformed_after: int | None = None
    garbage: bool = False
    error_after: int | None = None
    slow_headers_s: float | None = None
    huge_part: int | None = None
    never_end_s: float | None = None
    silent_after: int | None = None
    ttft_ms: float | None = None
    step_ms: float | None = None
    tokens: int | None = None
    token_cap: int | None = None  # TGI's max_new_tokens: a bound on the drawn reply, not its length
    names: list[str] = field(default_factory=list)

    def apply(self, name: str, param: float | None) -> None:
        default = FAULT_KINDS[name][0] if name in FAULT_KINDS else None
        v: float = (default or 0.0) if param is None else param  # an override (ttft_ms, ...) always has its parameter
        self.names.append(name)
        if name == "500":
            self.status = 500
        elif name == "429":
            self.status, self.retry_after = 429, v
        elif name == "stall":
            self.stall_s = v
        elif name == "pad":
            self.pad_s = v
        elif name == "trickle":
            self.trickle_s = v
        elif name == "drop":
            self.drop_after = int(v)
        elif name == "malformed":
            self.malformed_after = int(v)
        elif name == "garbage":
            self.garbage = True
        elif name == "error_part":
            self.error_after = int(v)
        elif name == "slow_headers":
            self.slow_headers_s = v
        elif name == "huge_part":
            self.huge_part = int(v)
        elif name == "never_end":
            self.never_end_s = v
        elif name == "silent":
            self.silent_after = int(v)
        elif name == "ttft_ms":
            self.ttft_ms = param
        elif name == "step_ms":
            self.step_ms = param
        elif name == "tokens":
            self.tokens = int(param) if param is not None else None


def _split(item: str) -> tuple[str, str | None]:
    if "=" in item:
        k, v = item.split("=", 1)
        return k.strip(), v.strip()
    return item.strip(), None


def parse_header(value: str) -> FaultPlan:
    """``stall=0.3,drop=5,ttft_ms=40``: each named fault forced, with its parameter."""
    plan = FaultPlan()
    for item in filter(None, (x.strip() for x in value.split(","))):
        name, raw = _split(item)
        if name not in FAULT_KINDS and name not in OVERRIDES:
            raise ValueError(f"unknown fault {name!r}")
        plan.apply(name, float(raw) if raw not in (None, "") else None)
    return plan


@dataclass
class FaultShares:
    """Share of requests that get each fault, with its parameter: parsed from ``--faults``."""

    shares: list[tuple[str, float, float | None]] = field(default_factory=list)
    exact: set[str] = field(default_factory=set)  # faults given as N/D: every D/N-th request, not drawn
    _seen: int = 0

    @classmethod
    def parse(cls, spec: str | None) -> FaultShares:
        out = cls()
        if not spec:
            return out
        for item in filter(None, (x.strip() for x in spec.split(","))):
            name, raw = _split(item)
            if name not in FAULT_KINDS:
                raise InputError(f"--faults: unknown fault {name!r} (known: {', '.join(FAULT_KINDS)})")
            if raw is None:
                raise InputError(f"--faults: {name!r} needs a share, e.g. {name}=0.01")
            share_s, _, param_s = raw.partition(":")
            try:
                if "/" in share_s:
                    num, _, den = share_s.partition("/")
                    share = int(num) / int(den)
                    out.exact.add(name)
                else:
                    share = float(share_s)
                param = float(param_s) if param_s else None
            except ValueError:
                raise InputError(f"--faults: {item!r} is not NAME=SHARE[:PARAM] (SHARE 0.05 drawn, or 1/20 exact)") from None
            except ZeroDivisionError:
                raise InputError(f"--faults: {item!r} divides by zero") from None
            if not 0.0 <= share <= 1.0:
                raise InputError(f"--faults: share of {name!r} must be between 0 and 1, got {share}")
            out.shares.append((name, share, param))
        return out

    def draw(self, rng: random.Random) -> FaultPlan:
        plan = FaultPlan()
        n, self._seen = self._seen, self._seen + 1
        for name, share, param in self.shares:
            if name in self.exact:
                hit = int((n + 1) * share + 1e-9) > int(n * share + 1e-9)  # the k-th request of each 1/share
            else:
                hit = bool(share) and rng.random() < share
            if hit:
                plan.apply(name, param)
        return plan


def describe() -> str:
    return "\n".join(f"  {k:<13} {v[1]}" for k, v in FAULT_KINDS.items())

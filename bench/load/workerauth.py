"""Only the run's own workers join its master: a per-run secret, proven in the worker's first message.

Locust's master takes any process that reaches its port as a worker and gives it a share of the
users; it checks nothing but the Locust version. Before this gate, two ``--processes`` runs on one
machine crossed (55,487 foreign ``unauthorized`` records beside 109 real ones in the first run), and
workers orphaned by a dead master joined the next run on the machine (448,045 ``connect_error``
records in a run that sent 331 requests).

The secret comes from ``BENCH_RUN_SECRET`` in the environment of the master and of every worker
(``bench run --processes N`` makes one per run; across machines the user sets the same value, e.g.
from a Kubernetes Secret); it is never on a command line and never written down. A worker proves
it with an HMAC of its own Locust client id (the ZeroMQ identity its messages arrive under, so a
proof copied to another connection is worth nothing). The master acknowledges a new worker's
``client_ready`` at once (Locust's worker waits for that acknowledgement before its ``init``
hooks run, where the proof is sent) but does not register it; the worker joins, and gets users,
only once its proof checks. Every message from a worker that has not proven the secret (records,
heartbeats, start notices) is dropped, and the worker is told to quit; the run lists the strangers
in ``run.json`` and warns. A master without a secret accepts every worker, as Locust does, and warns.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import time
from dataclasses import dataclass, field
from typing import Any

SECRET_ENV = "BENCH_RUN_SECRET"
HELLO = "bench_hello"
GRACE_S = 10.0  # a new worker's heartbeats may come before its proof; after this, silence is a refusal


def run_secret() -> str | None:
    return os.environ.get(SECRET_ENV) or None


def proof(secret: str, client_id: str) -> str:
    return hmac.new(secret.encode(), client_id.encode(), hashlib.sha256).hexdigest()


def send_hello(runner: Any) -> None:
    """Worker: the first message after Locust's handshake, proving this run's secret."""
    secret = run_secret()
    runner.send_message(HELLO, {"w": runner.client_id, "proof": proof(secret, runner.client_id) if secret else None})


@dataclass
class Stranger:
    """A process that connected to the master without proving the run's secret."""

    client_id: str
    reason: str
    first_seen: float
    dropped: int = 0  # its messages that were thrown away

    def describe(self) -> dict[str, Any]:
        return {"id": self.client_id, "reason": self.reason, "first_seen": self.first_seen, "messages_dropped": self.dropped}


@dataclass
class WorkerGate:
    """Master: wraps the runner's message handler; lets through only workers that proved ``secret``."""

    runner: Any
    secret: str | None
    verified: set[str] = field(default_factory=set)
    held: dict[str, tuple[float, Any]] = field(default_factory=dict)  # client id -> (when, its client_ready)
    strangers: dict[str, Stranger] = field(default_factory=dict)
    _inner: Any = None

    @classmethod
    def install(cls, runner: Any) -> WorkerGate:
        """Before the master reads any worker's message (the top of Locust's ``init``: plain Locust's
        preflight waits on the network after it, and workers would be admitted meanwhile). Once per runner."""
        existing: WorkerGate | None = getattr(runner, "_bench_gate", None)
        if existing is not None:
            return existing
        gate = cls(runner, run_secret())
        runner._bench_gate = gate
        inner = runner.handle_message  # client_listener calls self.handle_message(client_id, msg)

        def handle(client_id: str, msg: Any) -> None:
            if gate.admit(client_id, msg):
                inner(client_id, msg)

        runner.handle_message = handle
        gate._inner = inner
        return gate

    def admit(self, client_id: str, msg: Any) -> bool:
        if self.secret is None or client_id in self.verified:
            return bool(msg.type != HELLO)
        if msg.type == "client_ready":
            if client_id not in self.strangers:
                self.held[client_id] = (time.monotonic(), msg)
                # without this acknowledgement the worker never reaches the hook that sends its proof; no
                # worker index is taken for it yet (a stranger must not shift the real workers' shares)
                self.runner.send_message("ack", client_id=client_id, data={"index": -1})
            return False
        if msg.type == HELLO:
            data = msg.data if isinstance(msg.data, dict) else {}
            given = data.get("proof")
            if isinstance(given, str) and hmac.compare_digest(given, proof(self.secret, client_id)):
                self.verified.add(client_id)
                held = self.held.pop(client_id, None)
                if held is not None:
                    self._inner(client_id, held[1])  # now Locust registers it, with its index, and gives it users
                return False
            self._refuse(client_id, "wrong secret" if given else f"no secret (is {SECRET_ENV} set for the worker?)")
            return False
        held = self.held.get(client_id)
        if held is not None and time.monotonic() - held[0] < GRACE_S:
            return False  # a heartbeat sent while the worker waited for its acknowledgement: dropped, not refused
        if client_id in self.strangers:
            self.strangers[client_id].dropped += 1
            return False
        self._refuse(client_id, f"sent {msg.type!r} without proving the run's secret")
        return False

    def _refuse(self, client_id: str, reason: str) -> None:
        s = self.strangers.get(client_id)
        if s is None:
            self.strangers[client_id] = s = Stranger(client_id, reason, time.time())
            self.held.pop(client_id, None)
            try:
                self.runner.send_message("quit", client_id=client_id)
            except Exception:  # noqa: BLE001  # a stranger that went away: nothing to tell
                pass
        s.dropped += 1

    def warnings(self) -> list[str]:
        out = []
        if self.secret is None:
            out.append(
                f"workers were not authenticated: {SECRET_ENV} was not set for the master, so any process that "
                "reached its port could join and take a share of the users (set the same value for the master "
                "and every worker)"
            )
        if self.strangers:
            ids = ", ".join(f"{s.client_id} ({s.reason})" for s in list(self.strangers.values())[:5])
            out.append(
                f"refused {len(self.strangers)} worker(s) that did not prove this run's secret: {ids}; "
                "none of their messages reached the results"
            )
        return out

    def describe(self) -> dict[str, Any]:
        return {
            "authenticated": self.secret is not None,
            "verified": len(self.verified),
            "refused": [s.describe() for s in self.strangers.values()],
        }

"""Deadlines of the streams being read, kept by one greenlet per process instead of a timer per read.

A gevent socket with a timeout arms and cancels a ``gevent.Timeout`` (a fresh timer watcher) around
every wait, and tries a ``recv`` that fails with EAGAIN before it waits: per streamed part, that
was about a tenth of the generator's CPU (issue #26's profile). The read loop now waits on the
socket's own readiness watcher with no timeout, reads once it is readable, and keeps its deadline
in a ``Deadline`` it updates as parts arrive. This watchdog looks at every armed deadline every
``TICK_S`` and, for one that has passed while its stream is waiting, wakes that stream with
``TimeoutError`` from the hub (as ``gevent.Timeout`` does). A timeout is therefore noticed up to
one tick late; timeouts are seconds long, and the record's stamps of parts are unaffected.
"""

from __future__ import annotations

from time import monotonic_ns
from typing import Any

import gevent
from gevent import getcurrent

TICK_S = 0.02


class Deadline:
    """One stream's deadline (monotonic ns) and whether it is parked waiting for its socket."""

    __slots__ = ("at", "fired", "greenlet", "waiting")

    def __init__(self) -> None:
        self.at = 0
        self.waiting = False
        self.fired = False
        self.greenlet: Any = getcurrent()


class Watchdog:
    def __init__(self) -> None:
        self.armed: set[Deadline] = set()
        self._greenlet: Any = None

    def arm(self, d: Deadline) -> None:
        self.armed.add(d)
        if self._greenlet is None or self._greenlet.dead:
            self._greenlet = gevent.spawn(self._run)

    def disarm(self, d: Deadline) -> None:
        self.armed.discard(d)

    def _run(self) -> None:
        hub = gevent.get_hub()
        while self.armed:
            gevent.sleep(TICK_S)
            now = monotonic_ns()
            for d in [d for d in self.armed if d.waiting and now >= d.at and not d.fired]:
                d.fired = True
                hub.loop.run_callback(_fire, d)
        self._greenlet = None


def _fire(d: Deadline) -> None:
    # runs in the hub: the stream may have woken up (and moved on) since the tick saw it waiting
    if d.waiting and not d.greenlet.dead:
        d.greenlet.throw(TimeoutError("deadline passed"))
    else:
        d.fired = False  # not thrown: the next tick may still fire it


WATCHDOG = Watchdog()

"""The scheduling-lag probe's clock: a kernel timer read through gevent like a socket.

A part's stamp is late by however long the event loop took to serve its socket; a timerfd that
fires every 10 ms and is waited on like a socket is late by the same delay, so its lateness is the
run's timing uncertainty, measured while it ran (``timing.jsonl``).
"""

from __future__ import annotations

import os
from time import monotonic_ns


class KernelTimer:
    """A periodic CLOCK_MONOTONIC timerfd, read through gevent like a socket (Linux; via ctypes)."""

    def __init__(self, fd: int, t0: int, period: int) -> None:
        self.fd, self.t0, self.period, self.count = fd, t0, period, 0
        self.missed = 0  # expiries the latest wait() found already passed besides the oldest

    @classmethod
    def start(cls, period: int) -> KernelTimer | None:
        import ctypes
        import ctypes.util

        try:
            libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
            fd = libc.timerfd_create(1, 0o4000)  # CLOCK_MONOTONIC, TFD_NONBLOCK
            if fd < 0:
                return None
            t0 = monotonic_ns() + period

            class Timespec(ctypes.Structure):
                _fields_ = [("tv_sec", ctypes.c_long), ("tv_nsec", ctypes.c_long)]

            class Itimerspec(ctypes.Structure):
                _fields_ = [("it_interval", Timespec), ("it_value", Timespec)]

            spec = Itimerspec(Timespec(period // 10**9, period % 10**9), Timespec(t0 // 10**9, t0 % 10**9))
            if libc.timerfd_settime(fd, 1, ctypes.byref(spec), None) != 0:  # TFD_TIMER_ABSTIME
                os.close(fd)
                return None
            return cls(fd, t0, period)
        except (OSError, AttributeError):
            return None

    def wait(self) -> int | None:
        """Block (cooperatively) until the timer fires; ns from the oldest expiry not yet served to now."""
        from gevent.socket import wait_read

        wait_read(self.fd)
        try:
            n = int.from_bytes(os.read(self.fd, 8), "little")
        except BlockingIOError:
            return None
        now = monotonic_ns()
        oldest = self.t0 + self.count * self.period  # the first expiry not served yet: a loop blocked for 1 s
        self.count += n  # missed n - 1 of them, and the lag is from the first (it read 1.16 ms from the last before)
        self.missed = n - 1
        return max(0, now - oldest)

"""Run the reference target: in this process (``serve``) or as a child process (``TargetProcess``).

A child process keeps the target's event loop off the load generator's cores and clock; it
announces its address on stdout (``READY http://host:port``) so callers can bind port 0.
"""

from __future__ import annotations

import asyncio
import gc
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from aiohttp import web

from bench.target.app import Target, TargetConfig

READY = "READY "


def tls_context(cert: str, key: str):
    """Server-side TLS from a PEM certificate chain and key (``--tls-cert/--tls-key``)."""
    import ssl

    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(cert, key)
    return ctx


async def _serve(target: Target, host: str, port: int, truth_file: str | None, ssl_context=None) -> None:
    runner = web.AppRunner(target.app, access_log=None, handle_signals=False)
    await runner.setup()
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(4096)
    site = web.SockSite(runner, sock, backlog=4096, ssl_context=ssl_context)
    await site.start()
    bound = sock.getsockname()[1]
    # Full collections over thousands of live streams stall every stream at once (tens of ms):
    # freeze start-up objects and collect the young generation less often.
    gc.collect()
    gc.freeze()
    gc.set_threshold(20_000, 50, 100)
    shown = f"[{host}]" if ":" in host else host
    print(f"{READY}{'https' if ssl_context else 'http'}://{shown}:{bound}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    if truth_file:
        target.write_truth(truth_file)
    await runner.cleanup()


def serve(
    config: TargetConfig,
    host: str = "127.0.0.1",
    port: int = 8000,
    truth_file: str | None = None,
    tls: tuple[str, str] | None = None,
) -> None:
    try:  # uvloop roughly halves the event loop's cost per streamed part; asyncio works too
        import uvloop

        runner: Callable[..., None] = uvloop.run
    except ImportError:
        runner = asyncio.run
    runner(_serve(Target(config), host, port, truth_file, tls_context(*tls) if tls else None))


def _die_with_parent() -> None:
    """In the child, before exec: a SIGTERM when the process that started it dies, even by SIGKILL (Linux's
    PR_SET_PDEATHSIG), so a killed `bench` leaves no target behind in its own session."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # 1 = PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass  # not Linux: the target outlives a SIGKILLed parent, as any child does


class TargetProcess:
    """The target as a child process, started with the given ``bench target`` arguments.

    The JWT secret travels in the environment, never in argv, so it does not show in ``ps``.
    """

    def __init__(
        self, args: list[str] | None = None, secret: str | None = None, cpu: int | None = None, log: Path | None = None
    ) -> None:
        env = dict(os.environ)
        if secret is not None:
            env["BENCH_JWT_SECRET"] = secret
        cmd = [sys.executable, "-P", "-m", "bench.target", "--host", "127.0.0.1", "--port", "0", *(args or [])]
        if cpu is not None and can_pin():
            cmd = ["taskset", "-c", str(cpu), *cmd]
        self._log_path = Path(log) if log else None
        self._log = open(log, "w") if log else subprocess.DEVNULL
        # its own session: a Ctrl-C at the terminal reaches the harness, which stops the target itself once the
        # records are kept (a capacity sweep interrupted mid-level still writes the plan of its finished levels)
        self.proc = subprocess.Popen(
            cmd, stdout=subprocess.PIPE, stderr=self._log, env=env, text=True, start_new_session=True, preexec_fn=_die_with_parent
        )
        self.url = self._wait_ready()

    def _wait_ready(self, timeout: float = 30.0) -> str:
        deadline = time.monotonic() + timeout
        assert self.proc.stdout is not None
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            if line.startswith(READY):
                return line[len(READY) :].strip()
            if not line and self.proc.poll() is not None:
                break
        self.stop()
        tail = ""
        if self._log_path is not None and self._log_path.is_file():
            tail = ": " + " ".join(self._log_path.read_text().strip().splitlines()[-2:])[-400:]
        raise RuntimeError(f"reference target did not start (exit code {self.proc.returncode}){tail}")

    def stop(self, timeout: float = 10.0) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if not isinstance(self._log, int):
            self._log.close()

    def __enter__(self) -> TargetProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def can_pin() -> bool:
    return (os.cpu_count() or 1) > 1 and any(Path(p, "taskset").exists() for p in os.environ.get("PATH", "").split(os.pathsep))

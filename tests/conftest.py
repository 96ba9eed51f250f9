"""Shared fixtures: a real reference target on loopback, JWTs for it, and scratch folders."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import jwt
import pytest

from bench.target import TargetProcess

HERE = Path(__file__).resolve().parent
SECRET = "test-secret-0123456789abcdef0123456789abcdef"
FAST = str(HERE / "fast-profiles.yaml")


class OtherWork:
    """CPU the rest of the machine used while a timed test ran: all busy time from /proc/stat minus
    this test process's and its waited-for children's (the target, the generator). A timing bound
    missed while other jobs took CPU is reported as a skip with the figures, not as a failure: the
    bounds themselves are the benchmarks' to hold (benchmarks/*.py, on a quiet machine)."""

    @staticmethod
    def _busy_s() -> float | None:
        try:
            fields = [float(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
        except (OSError, ValueError):
            return None
        idle = fields[3] + (fields[4] if len(fields) > 4 else 0.0)  # idle + iowait
        return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")

    @staticmethod
    def _own_s() -> float:
        import resource

        me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
        return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime

    def __enter__(self) -> OtherWork:
        self.t0, self.busy0, self.own0 = time.monotonic(), self._busy_s(), self._own_s()
        return self

    def __exit__(self, *exc: object) -> None:
        self.wall = time.monotonic() - self.t0
        busy = self._busy_s()
        if busy is None or self.busy0 is None or self.wall <= 0:
            self.cores = None
        else:
            self.cores = max(0.0, (busy - self.busy0) - (self._own_s() - self.own0)) / self.wall

    def bound(self, ok: bool, what: str, limit: float = 0.5) -> None:
        """Assert a timing bound; missed while other work used more than ``limit`` cores: skip, saying so."""
        if ok:
            return
        if self.cores is not None and self.cores > limit:
            pytest.skip(
                f"timing bound missed ({what}) while other work used {self.cores:.1f} of {os.cpu_count()} cores "
                f"over {self.wall:.0f} s: not this harness's timing; the functional checks above passed"
            )
        pytest.fail(f"timing bound missed on a quiet machine (other work {self.cores or 0:.2f} cores): {what}")


def token(secret: str = SECRET, exp_in: float = 3600, **kw) -> str:
    return jwt.encode({"sub": "t", "exp": int(time.time() + exp_in)}, secret, algorithm="HS256", **kw)


@pytest.fixture(scope="session")
def target():
    """The deployed flavour, fast profiles, JWT auth."""
    with TargetProcess(["--profiles", FAST, "--seed", "1"], secret=SECRET) as t:
        yield t


@pytest.fixture(scope="session")
def gateway_target():
    """A deployment that takes a bearer JWT (the documented route, or a gateway in front of the app); the
    deployed flavour, as the app, reads only the session cookie."""
    with TargetProcess(["--profiles", FAST, "--seed", "1", "--flavor", "documented"], secret=SECRET) as t:
        yield t


@pytest.fixture(scope="session")
def documented_target():
    with TargetProcess(["--profiles", FAST, "--flavor", "documented", "--finish-part", "--no-auth"]) as t:
        yield t


@pytest.fixture()
def auth_headers():
    return {"Cookie": f"neptun-session={token()}"}


def bench_env(**extra) -> dict:
    env = dict(os.environ)
    env.pop("BENCH_TOKEN", None)
    env.pop("BENCH_COOKIE", None)
    env["BENCH_JWT_SECRET"] = SECRET
    env.update(extra)
    return env


def bench_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "bench", *args]


@pytest.fixture(scope="session")
def tls_files(tmp_path_factory):
    """A private CA and a certificate for 127.0.0.1 signed by it, made with the openssl command."""
    import shutil
    import subprocess

    if not shutil.which("openssl"):
        pytest.skip("the openssl command is not installed")
    d = tmp_path_factory.mktemp("tls")

    def ossl(*args: str) -> None:
        subprocess.run(["openssl", *args], cwd=d, check=True, capture_output=True, timeout=60)

    ossl(
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        "-days",
        "2",
        "-subj",
        "/CN=bench test CA",
    )
    ossl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=127.0.0.1")
    (d / "san.ext").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    ossl(
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "server.pem",
        "-days",
        "2",
        "-extfile",
        "san.ext",
    )
    return {"ca": str(d / "ca.pem"), "cert": str(d / "server.pem"), "key": str(d / "server.key")}


def request_context(**kw):
    """A RequestContext for building one record by hand (decoder and record tests)."""
    from bench.records import RequestContext

    base = dict(
        run_id="r",
        request_id="q",
        worker="w",
        user=0,
        conversation_id="c",
        conversation="c",
        turn=0,
        model="m",
        tags="",
        t_intended=0,
        t_wall_start=0.0,
        prompt_chars=1,
        prompt_messages=1,
        protocol="aisdk",
    )
    return RequestContext(**(base | kw))

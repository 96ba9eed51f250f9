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


def token(secret: str = SECRET, exp_in: float = 3600, **kw) -> str:
    return jwt.encode({"sub": "t", "exp": int(time.time() + exp_in)}, secret, algorithm="HS256", **kw)


@pytest.fixture(scope="session")
def target():
    """The deployed flavour, fast profiles, JWT auth."""
    with TargetProcess(["--profiles", FAST, "--seed", "1"], secret=SECRET) as t:
        yield t


@pytest.fixture(scope="session")
def documented_target():
    with TargetProcess(["--profiles", FAST, "--flavor", "documented", "--finish-part", "--no-auth"]) as t:
        yield t


@pytest.fixture()
def auth_headers():
    return {"Authorization": f"Bearer {token()}"}


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

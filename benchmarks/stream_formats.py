"""Every stream format over HTTP and HTTPS: TTFC error against the target's own stamps, at 50 streams.

For each flavour of the reference target (AI SDK 4 data stream as deployed and as documented, the
AI SDK 5 UI message stream, OpenAI SSE), over HTTP and over HTTPS with a private CA made here with
openssl, runs ``tests/accuracy_probe.py`` (50 streams, 20 parts/s each, its own process on its own
core) three times and prints the error p50/p99 of each attempt; every part and character is
checked against the server's CRC.

    python benchmarks/stream_formats.py [--streams 50]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--streams", type=int, default=50)
    a = ap.parse_args()
    import pytest  # noqa: F401  (test_stream imports it)
    from test_stream import accuracy_run

    d = Path(tempfile.mkdtemp())

    def ossl(*args: str) -> None:
        subprocess.run(["openssl", *args], cwd=d, check=True, capture_output=True)

    ossl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.pem", "-days", "2", "-subj", "/CN=ca")
    ossl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "s.key", "-out", "s.csr", "-subj", "/CN=127.0.0.1")
    (d / "san.ext").write_text("subjectAltName=IP:127.0.0.1\n")
    ossl(
        "x509",
        "-req",
        "-in",
        "s.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "s.pem",
        "-days",
        "2",
        "-extfile",
        "san.ext",
    )
    cases = [("deployed", "neptun"), ("documented", "neptun"), ("ui-stream", "neptun"), ("deployed", "openai")]
    print(f"{'format':<28} {'transport':<9} attempts: TTFC error p50 / p99 (ms)")
    for flavor, kind in cases:
        for tls in (False, True):
            args = ["--flavor", flavor] + (["--tls-cert", str(d / "s.pem"), "--tls-key", str(d / "s.key")] if tls else [])
            res = accuracy_run(args, a.streams, kind, ca=str(d / "ca.pem") if tls else None, target_p99=0.0)
            name = {"deployed": "AI SDK 4 (deployed)", "documented": "AI SDK 4 (documented)", "ui-stream": "AI SDK 5 UI stream"}[
                flavor
            ]
            name = "OpenAI SSE" if kind == "openai" else name
            print(f"{name:<28} {'HTTPS' if tls else 'HTTP':<9} " + "  ".join(f"{p50:.2f} / {p99:.2f}" for p50, p99 in res))


if __name__ == "__main__":
    main()

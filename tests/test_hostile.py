"""Hostile or broken answers end in a classified record, within the timeouts, in bounded memory.

Before: a 10 GiB error body was read whole (MemoryError within 3 s), an endless 200 stream kept every
part (2.8 GB in 6.5 s), a header flood reached 2.7 GB in 5 s inside geventhttpclient, and headers that
never end (a line every 0.5 s) escaped every timeout. Each case here is read by the hot path
(``stream_request``) in a process of its own, whose peak resident memory is reported by the kernel.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from hostile_server import serve

ROOT = Path(__file__).resolve().parent.parent

CLIENT = textwrap.dedent(
    """
    import json, resource, sys, time
    from gevent import monkey; monkey.patch_all()
    from geventhttpclient import HTTPClient
    from bench.load.stream import Outcome, Timeouts, stream_request

    port, mode = int(sys.argv[1]), sys.argv[2]
    client = HTTPClient("127.0.0.1", port, connection_timeout=5, network_timeout=5, concurrency=2)
    timeouts = Timeouts(connect=5, first_chunk=3, stall=3, total=8)
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t0 = time.monotonic()
    o = stream_request(Outcome(), client, "/api/ai/huggingface/x/" + mode + "/chat", b"{}", {"Content-Type": "application/json"}, timeouts)
    took = time.monotonic() - t0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"error": o.error, "detail": o.detail, "status": o.status, "s": took,
                      "peak_mb": peak / 1024, "grew_mb": (peak - base) / 1024, "bytes_in": o.bytes_in}))
    """
)


@pytest.fixture(scope="module")
def hostile():
    srv, port = serve()
    yield port
    srv.close()


@pytest.mark.parametrize(
    ("mode", "error", "within_s", "detail"),
    [
        ("huge-error", "server_error", 3.5, "body cut at 65,536 bytes"),
        ("endless", "oversized", 8.5, "32 MiB"),
        ("header-flood", "oversized", 3.5, "headers over 64 KiB"),
        ("endless-headers", "timeout_first_chunk", 3.8, "no response after 3.0"),
    ],
)
def test_a_hostile_answer_is_classified_in_time_and_in_bounded_memory(hostile, mode, error, within_s, detail):
    r = subprocess.run([sys.executable, "-c", CLIENT, str(hostile), mode], capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert r.returncode == 0, r.stderr[-2000:]
    got = json.loads(r.stdout.strip().splitlines()[-1])
    print(mode, got)  # pytest -s shows the figures
    assert got["error"] == error, got
    assert detail in got["detail"] and got["detail"].isprintable(), got
    assert got["s"] <= within_s, got  # the configured timeouts hold (first chunk 3 s, total 8 s)
    assert got["peak_mb"] < 300, got  # the bound for the whole process

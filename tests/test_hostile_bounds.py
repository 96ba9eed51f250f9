"""Hostile or broken answers end in a classified record, within the timeouts, in bounded memory.

Before: a 10 GiB error body was read whole (MemoryError within 3 s), an endless 200 stream kept every
part (2.8 GB in 6.5 s), a header flood reached 2.7 GB in 5 s inside geventhttpclient, and headers that
never end (a line every 0.5 s) escaped every timeout. Each case here is read by the hot path
(``stream_request``) in a process of its own, whose peak resident memory is the kernel's
``VmHWM`` for that process image (``ru_maxrss`` is not: Linux carries the forking parent's across exec,
so inside a 500 MB pytest every case read 500 MB).
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from raw_hostile_server import serve

ROOT = Path(__file__).resolve().parent.parent

CLIENT = textwrap.dedent(
    """
    import json, sys, time

    def hwm_kib():  # this process image's own peak: ru_maxrss would carry the forking parent's (Linux keeps it across exec)
        for line in open("/proc/self/status"):
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
        raise SystemExit("no VmHWM in /proc/self/status")
    from gevent import monkey; monkey.patch_all()
    from geventhttpclient import HTTPClient
    from bench.load.stream import Outcome, Timeouts, stream_request

    port, mode = int(sys.argv[1]), sys.argv[2]
    client = HTTPClient("127.0.0.1", port, connection_timeout=5, network_timeout=5, concurrency=2)
    timeouts = Timeouts(connect=5, first_chunk=3, stall=3, total=8)
    base = hwm_kib()
    t0 = time.monotonic()
    o = stream_request(Outcome(), client, "/api/ai/huggingface/x/" + mode + "/chat", b"{}", {"Content-Type": "application/json"}, timeouts)
    took = time.monotonic() - t0
    peak = hwm_kib()
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


def _bad_files(d: Path) -> list[tuple[str, Path, str]]:
    """(option, file, what the one line says) for files a careless tool or an attacker could write."""
    cases = [
        (
            "--scenario",
            "latin1.yaml",
            "name: caf\xe9\nconversations:\n  - turns: ['h\xe9llo']\n".encode("latin-1"),
            "not UTF-8 text (byte 0xe9",
        ),
        ("--scenario", "deep.yaml", ("name: x\nconversations: " + "[" * 20000 + "]" * 20000 + "\n").encode(), "nest"),
        ("--scenario", "deep.json", ('{"name": "x", "conversations": ' + "[" * 20000 + "]" * 20000 + "}").encode(), "nest"),
        ("--scenario", "digits.yaml", ("name: x\nseed: " + "1" * 5000 + "\nconversations: []\n").encode(), "cannot be read"),
        (
            "--trace",
            "latin1.jsonl",
            '{"t": 0, "conversation_id": "caf\xe9", "turn": 0, "prompt": "hi"}\n'.encode("latin-1"),
            "not UTF-8 text",
        ),
        ("--trace", "deep.jsonl", ('{"t": 0, "x": ' + "[" * 20000 + "]" * 20000 + "}\n").encode(), "nested deeper"),
        (
            "--trace",
            "digits.jsonl",
            ('{"t": ' + "1" * 5000 + ', "conversation_id": "a", "turn": 0, "prompt": "hi"}\n').encode(),
            "cannot be read",
        ),
        ("--trace", "nan.jsonl", b'{"t": NaN, "conversation_id": "a", "turn": 0, "prompt": "hi"}\n', "finite"),
        ("--trace", "tokens-nan.jsonl", b'{"t": 0, "conversation_id": "a", "turn": 0, "input_tokens": NaN}\n', "input_tokens"),
        ("--target-profiles", "nan.yaml", b"models:\n  m/x:\n    ttft_ms: .nan\n", "ttft_ms"),
        ("--target-profiles", "latin1.yaml", "models:\n  m/caf\xe9:\n    ttft_ms: 5\n".encode("latin-1"), "not UTF-8 text"),
    ]
    out = []
    for opt, name, data, says in cases:
        f = d / name.replace(".", f"-{opt.strip('-')}.", 1)
        f.write_bytes(data)
        out.append((opt, f, says))
    return out


def test_bad_files_get_one_line_before_any_load(tmp_path):
    """Each: exit 2, one line naming the file (and line), no traceback, no run folder."""
    from conftest import bench_cmd, bench_env

    for opt, f, says in _bad_files(tmp_path):
        out = tmp_path / "out"
        r = subprocess.run(
            bench_cmd("run", opt, str(f), "-t", "2s", "--out", str(out), "--no-report"),
            capture_output=True,
            text=True,
            timeout=120,
            env=bench_env(),
            cwd=ROOT,
        )
        lines = [x for x in r.stderr.splitlines() if x.strip()]
        assert r.returncode == 2, (f.name, r.stderr[-1500:])
        assert "Traceback" not in r.stderr and lines[-1].startswith(f"error: {f}"), (f.name, r.stderr[-1500:])
        assert says in lines[-1], (f.name, lines[-1])
        assert not out.exists() or not any(out.iterdir()), f.name


def test_a_utf16_scenario_with_its_byte_order_mark_is_read(tmp_path):
    from bench.scenario import load_scenario

    f = tmp_path / "utf16.yaml"
    f.write_bytes("name: x\nconversations:\n  - name: a\n    turns: ['héllo']\n".encode("utf-16"))
    assert load_scenario(f).conversations[0].turns[0].user == "héllo"

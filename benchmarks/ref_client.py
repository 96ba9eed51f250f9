"""A minimal reference client (plain asyncio + aiohttp, no Locust) for the same streams.

The yardstick for the harness's own cost: same target, same schedule, same truth comparison.
Used by benchmarks/generator_capacity.py; runnable alone:

    python benchmarks/ref_client.py URL --streams 200 --seconds 10
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import time

import aiohttp

MODEL = "calib/model"
PATH = f"/api/ai/huggingface/{MODEL}/chat?chat_id=-1&is_playground=true"
BODY = json.dumps({"messages": [{"role": "user", "content": "probe"}]}).encode()


async def run(url: str, streams: int, seconds: float) -> dict:
    results: list[tuple[str, int, int]] = []  # request id, first-part time, parts
    stop = time.monotonic() + seconds
    conn = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(url, connector=conn, auto_decompress=False) as session:

        async def user(i: int) -> None:
            await asyncio.sleep(i / streams)
            n = 0
            while time.monotonic() < stop:
                rid = f"ref{i}-{n}"
                n += 1
                first = 0
                parts = 0
                async with session.post(
                    PATH,
                    data=BODY,
                    headers={"X-Request-ID": rid, "Content-Type": "application/json", "Accept-Encoding": "identity"},
                ) as resp:
                    buf = b""
                    async for data in resp.content.iter_any():
                        t = time.monotonic_ns()
                        buf += data
                        lines = buf.split(b"\n")
                        buf = lines.pop()
                        for line in lines:
                            if line.startswith(b"0:") and json.loads(line[2:]):
                                parts += 1
                                if not first:
                                    first = t
                results.append((rid, first, parts))

        r0, t0 = resource.getrusage(resource.RUSAGE_SELF), time.monotonic()
        await asyncio.gather(*(user(i) for i in range(streams)))
        r1, t1 = resource.getrusage(resource.RUSAGE_SELF), time.monotonic()
    cpu = (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)
    return {"wall": t1 - t0, "cpu": cpu, "results": results}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("url")
    ap.add_argument("--streams", type=int, default=200)
    ap.add_argument("--seconds", type=float, default=10.0)
    a = ap.parse_args()
    print(json.dumps(asyncio.run(run(a.url, a.streams, a.seconds))))


if __name__ == "__main__":
    main()

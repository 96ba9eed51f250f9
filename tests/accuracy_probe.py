"""Run N measured streams against URL in a process of its own and print each request's first-part time.

Used by test_stream.py so the accuracy check runs like a load generator does (its own process,
pinned to one core, collector frozen), not inside pytest's busy process. Prints, per request:
its id, the first part's stamp, the error class, the number of parts and the CRC-32 of the text.

    python accuracy_probe.py URL N SEED TOKEN [neptun|openai] [CA_FILE]
"""

from gevent import monkey

monkey.patch_all()  # as Locust does in every load generator: without it, TLS sockets block the whole process

import gc  # noqa: E402
import json
import random  # noqa: E402
import sys  # noqa: E402
import zlib  # noqa: E402

import gevent
from geventhttpclient import HTTPClient

from bench.load.route import RouteConfig
from bench.load.stream import Outcome, Timeouts, stream_request

MODEL = "mistralai/Mistral-7B-Instruct-v0.3"


def main() -> None:
    url, n, seed, token = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
    kind = sys.argv[5] if len(sys.argv) > 5 else "neptun"
    ca = sys.argv[6] if len(sys.argv) > 6 else None
    rng = random.Random(seed)
    route = RouteConfig(kind=kind)
    body = route.body(MODEL, [{"role": "user", "content": "hello"}])
    outs = [Outcome() for _ in range(n)]
    ids = [f"acc-{seed}-{i}" for i in range(n)]
    gc.collect()
    gc.freeze()

    def one(i: int) -> None:
        client = HTTPClient.from_url(url, concurrency=1, network_timeout=30, ssl_options={"ca_certs": ca} if ca else None)
        gevent.sleep(rng.uniform(0, 1.0))  # random starts, as the user class does: no lock-step bursts
        h = {
            "Cookie": f"neptun-session={token}",
            "X-Request-ID": ids[i],
            "X-Bench-Fault": "tokens=40,step_ms=50,ttft_ms=100",
            "Content-Type": "application/json",
        }
        stream_request(outs[i], client, route.path(MODEL), body, h, Timeouts())
        client.close()

    gevent.joinall([gevent.spawn(one, i) for i in range(n)], timeout=60)
    print(
        json.dumps(
            [
                [
                    rid,
                    o.stamps[0] if o.stamps else None,
                    o.error,
                    sum(o.stamps[1::2]),
                    zlib.crc32(o.decoder.text.encode()) if o.decoder else None,
                ]
                for rid, o in zip(ids, outs)
            ]
        )
    )


if __name__ == "__main__":
    main()

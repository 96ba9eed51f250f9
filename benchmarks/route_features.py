"""The figures the README quotes for what the route adds and for stream delivery, printed by the
same set-ups the tests use (tests/test_overhead.py, tests/test_delivery.py): a target serving the
route in front of another (0 and 30 ms of app work), the A/A case (the model server as both route and
backend: the route adds nothing), and a relay holding bytes for 200 ms or not.

    python benchmarks/route_features.py
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from conftest import SECRET  # noqa: E402
from relay import Relay  # noqa: E402
from test_delivery import DATA, _run_through  # noqa: E402
from test_overhead import _a_a, _measure  # noqa: E402

from bench.target import TargetProcess  # noqa: E402


def main() -> None:
    tmp = Path(tempfile.mkdtemp(prefix="route-features-"))
    for ms in (0.0, 30.0):
        o = _measure(tmp, ms)
        t, g = o["ttfc_ms"], o["gap_p50_ms"]
        print(
            f"app work {ms:g} ms: TTFC +{t['median']:.1f} ms [{t['low']:.1f}, {t['high']:.1f}] over {o['pairs']} pairs, "
            f"gap p50 {g['median']:+.1f} ms, share of TTFC {o['ttfc_share']:.0%}"
        )
    o, _ = _a_a(tmp / "a-a")
    t = o["ttfc_ms"]
    print(
        f"A/A (the model server as route and backend): TTFC {t['median']:+.2f} ms [{t['low']:+.2f}, {t['high']:+.2f}] over {o['pairs']} pairs"
    )
    for hold in (0.0, 0.2):
        with TargetProcess(["--profiles", str(DATA / "delivery-profiles.yaml")], secret=SECRET) as t:
            with Relay(int(t.url.rsplit(":", 1)[1]), hold_s=hold) as r:
                got = _run_through(r.url, tmp / f"relay-{hold:g}")
        d = got["summary"]["delivery"]
        ttfc = next(iter(got["summary"]["models"].values()))["ttfc_ms"]["p50"]
        print(
            f"relay holding {hold * 1000:.0f} ms: {d['counts']['buffered']}/{d['judged']} buffered, "
            f"{d['parts_per_read_p50']:.1f} parts per read, reads every {d['read_interval_ms_p50']:.0f} ms, TTFC p50 {ttfc:.0f} ms"
        )


if __name__ == "__main__":
    main()

"""Smoothness as a reader feels it: how much of a reply came later than its reader needed it.

TTFC and gap percentiles say how the stream was written; a user reads it. A reply whose parts
arrive in bursts (a buffering proxy, a framework that flushes late, a stalled batch) makes the
reader stop and wait even when its median gap is fine. The model here is a reader who starts at the
first part and reads at ``READING_CPS`` characters a second: 238 words a minute, the mean silent
reading rate of English non-fiction in Brysbaert's meta-analysis of 190 studies (2019, *Journal
of Memory and Language* 109), at 6 characters a word (5 letters, a space, some punctuation), so
23.8 characters a second (a faster reader needs the text sooner and finds more of it late).

Per request, with every part taken as the reply's mean part size (the records keep each part's
arrival, not its length; for the app's token-sized parts the sizes are close, for DeepSeek R1's
one thinking block they are not, and its figure is an average), the reader's backlog ``b`` (reading
time still ahead of them when a part arrives) follows Lindley's recursion
``b_i = max(0, b_{i-1} + d - g_i)``: ``d`` the time to read one part, ``g_i`` the gap before part
``i``. The reader waits before part ``i`` when ``g_i > b_{i-1} + d``. With ``S_i`` the running sum of
``d - g``, the reader's whole wait is ``-min(0, min S)``: one cumulative sum and one running minimum,
vectorised over the requests of a chunk.

* ``read_wait_ms``: the reader's total wait after the first part, per request;
* ``read_stall_share``: that wait over the whole reading session (wait plus the reply's reading
  time), per request: video streaming's rebuffering ratio, for text. ``read_stall_share:p95<=10%``
  says 95 % of replies kept their reader reading at least 90 % of the time.

What it shows (``tests/test_delivery.py``): a stream of token-sized parts every 20 ms outruns this
reader many times over, and so does the same stream held in 200 ms bursts by a buffering proxy
(flagged ``buffered`` all the same: TTFC and gaps measure the proxy); a model writing a part every
400 ms, or a proxy holding the stream for seconds, makes the reader wait.
"""

from __future__ import annotations

import numpy as np

READING_WPM = 238.0  # Brysbaert (2019): silent reading, English non-fiction
CHARS_PER_WORD = 6.0
READING_CPS = READING_WPM * CHARS_PER_WORD / 60.0  # 23.8 characters a second


def markdown(models: dict[str, dict[str, object]]) -> list[str]:
    """The reader's figures per model, for summary.md: only when some reader waited (a stream that
    outran its readers everywhere needs no table; the figures stay in summary.json)."""
    rows = []
    for model, m in models.items():
        w, s = m.get("read_wait_ms"), m.get("read_stall_share")
        if not isinstance(w, dict) or not isinstance(s, dict) or not w.get("n"):
            continue
        rows.append((model, w, s))
    if not any((w.get("p95") or 0) > 0 for _, w, _ in rows):
        return []
    lines = [
        f"#### What a reader met ({READING_WPM:.0f} words a minute, from the first part; bench/analysis/reading.py)",
        "",
        "| model | replies | wait p50 ms | wait p95 ms | stalled p50 | stalled p95 |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for model, w, s in rows:
        lines.append(f"| {model.split('/')[-1]} | {w['n']} | {w['p50']:.0f} | {w['p95']:.0f} | {s['p50']:.1%} | {s['p95']:.1%} |")
    return lines + [""]


def reader(gaps_us: np.ndarray, lens: np.ndarray, chars_per_part: np.ndarray, cps: float = READING_CPS) -> dict[str, np.ndarray]:
    """Per row (``lens[r]`` gaps each, row after row in ``gaps_us``): ``read_wait_ms`` and
    ``read_stall_share`` for a reader of ``cps`` characters a second, each part ``chars_per_part[r]`` long."""
    lens = np.asarray(lens, dtype=np.int64)
    rows = lens.size
    stall, wait = np.zeros(rows), np.zeros(rows)
    n = int(lens.sum())
    if n == 0:
        return {"read_stall_share": stall, "read_wait_ms": wait}
    d = np.asarray(chars_per_part, dtype=np.float64) / cps * 1000.0  # ms to read one part
    owner = np.repeat(np.arange(rows), lens)
    x = d[owner] - np.asarray(gaps_us, dtype=np.float64) / 1000.0
    s = np.cumsum(x)
    first = np.concatenate(([0], np.cumsum(lens)[:-1]))
    nonempty = lens > 0
    base = np.zeros(rows)
    base[nonempty] = s[first[nonempty]] - x[first[nonempty]]  # the running sum before each row's first gap
    s -= base[owner]  # S within its own row
    # a running minimum that restarts at each row: push every later row far below the earlier ones
    big = 2.0 * (float(np.abs(s).max()) + 1.0)
    m = np.minimum.accumulate(s - owner * big) + owner * big
    m = np.minimum(m, 0.0)  # the reader starts with nothing to wait for (S_0 = 0)
    last = first + lens - 1
    wait[nonempty] = -m[last[nonempty]]
    reading = (lens + 1) * d  # the whole reply's reading time
    with np.errstate(invalid="ignore", divide="ignore"):
        stall[:] = np.where(wait + reading > 0, wait / (wait + reading), 0.0)
    return {"read_stall_share": stall, "read_wait_ms": wait}

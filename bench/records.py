"""Per-request records: the one schema every later step reads, and how rows reach the disk.

In the load generator a row is a plain list in ``COLUMNS`` order (cheap to build, cheap to
msgpack); rows travel in batches to a spool file of msgpack frames. Only after the run, in
another process, ``finalize`` turns the spool into ``requests.parquet`` with pyarrow.
"""

from __future__ import annotations

from array import array
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import msgpack

from bench.stream import Outcome

COLUMNS: list[str] = [
    "run_id", "request_id", "worker", "user", "conversation_id", "conversation", "turn", "model", "tags",
    "t_wall_start", "t_start_ns", "intended_delay_ms", "status", "error", "error_detail", "protocol",
    "ttfb_ms", "ttfc_ms", "ttfc_sched_ms", "ttfv_ms", "e2e_ms", "tpot_ms", "decode_tps", "icl_ms",
    "chunks", "gaps_us", "output_chars", "output_tokens", "token_source",
    "prompt_chars", "prompt_tokens", "prompt_messages", "bytes_in",
]
IDX = {c: i for i, c in enumerate(COLUMNS)}


@dataclass(slots=True)
class RequestContext:
    """What the user knew about a request before sending it."""

    run_id: str
    request_id: str
    worker: str
    user: int
    conversation_id: str
    conversation: str
    turn: int
    model: str
    tags: str
    t_intended: int
    t_wall_start: float
    prompt_chars: int
    prompt_messages: int
    protocol: str


def _ms(a: int, b: int) -> float:
    return (a - b) / 1e6


def build_row(o: Outcome, c: RequestContext, count_tokens=None) -> list:
    """One row from what was observed. Light: a few loops over the part stamps, no sorting."""
    dec = o.decoder
    stamps = o.stamps
    chunks = sum(stamps[1::2])
    ttfc = ttfv = tpot = tps = icl = None
    gaps = array("I")
    t_first = stamps[0] if stamps else 0
    if stamps:
        ttfc = _ms(t_first, o.t_start)
        prev = None
        for k in range(0, len(stamps), 2):
            t, n = stamps[k], stamps[k + 1]
            if prev is not None:
                gaps.append(max(0, (t - prev) // 1000))
            gaps.extend([0] * (n - 1))
            prev = t
        if dec is not None and dec.first_visible is not None:
            seen = 0
            for k in range(0, len(stamps), 2):
                seen += stamps[k + 1]
                if seen > dec.first_visible:
                    ttfv = _ms(stamps[k], o.t_start)
                    break
        if chunks > 1:
            icl = _ms(stamps[-2], t_first) / (chunks - 1)
    text_len = len(dec.text) if dec is not None else 0
    if dec is not None and dec.usage_completion is not None:
        out_tokens, source = dec.usage_completion, "usage"
    elif count_tokens is not None and dec is not None and chunks:
        out_tokens, source = count_tokens(dec.text), f"tokenizer:{count_tokens.name}"
    else:
        out_tokens, source = chunks, "chunks"
    ok = o.error is None
    if ok and stamps and out_tokens > 1 and o.t_end > t_first:
        tpot = _ms(o.t_end, t_first) / (out_tokens - 1)
        tps = (out_tokens - 1) / ((o.t_end - t_first) / 1e9)
    prompt_tokens = dec.usage_prompt if dec is not None else None
    return [
        c.run_id, c.request_id, c.worker, c.user, c.conversation_id, c.conversation, c.turn, c.model, c.tags,
        c.t_wall_start, o.t_start, _ms(o.t_start, c.t_intended) if c.t_intended else 0.0,
        o.status, o.error, o.detail, c.protocol,
        _ms(o.t_headers, o.t_start) if o.t_headers else None, ttfc,
        _ms(t_first, c.t_intended) if stamps and c.t_intended else ttfc,
        ttfv, _ms(o.t_end, o.t_start) if o.t_end else None, tpot, tps, icl,
        chunks, gaps.tobytes(), text_len, out_tokens, source,
        c.prompt_chars, prompt_tokens, c.prompt_messages, o.bytes_in,
    ]


class Spool:
    """Append-only file of msgpack frames, each a list of rows. A torn last frame is ignored on read."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fh = open(self.path, "ab")
        self._packer = msgpack.Packer(use_bin_type=True)
        self.rows = 0

    def write(self, rows: list[list]) -> None:
        if rows:
            self._fh.write(self._packer.pack(rows))
            self._fh.flush()
            self.rows += len(rows)

    def close(self) -> None:
        self._fh.close()


def read_spool(path: Path) -> Iterator[list]:
    with open(path, "rb") as fh:
        unpacker = msgpack.Unpacker(fh, raw=False, use_list=True, max_buffer_size=1 << 30)
        try:
            for frame in unpacker:
                yield from frame
        except (msgpack.exceptions.ExtraData, ValueError):
            return

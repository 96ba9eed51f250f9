"""Per-request records: the one schema every later step reads, and how rows reach the disk.

In the load generator a row is a plain list in ``COLUMNS`` order (cheap to build, cheap to
msgpack); rows travel in batches to a spool file of msgpack frames. Only after the run, in
another process, ``finalize`` turns the spool into ``requests.parquet`` with pyarrow.
"""

from __future__ import annotations

import os
import struct
import zlib
from array import array
from collections.abc import Iterator
from dataclasses import dataclass, fields
from operator import attrgetter
from pathlib import Path
from typing import TYPE_CHECKING, Any

import msgpack

from bench.schema import NOT_LIVE as _NOT_LIVE
from bench.schema import START_FIELDS, ErrorClass, RequestRecord

if TYPE_CHECKING:
    from bench.load.arrivals import Arrival
    from bench.load.decode import Decoder
    from bench.load.stream import Outcome
    from bench.tokens import TokenCounter
from bench.secrets import redact  # what a server echoes back (a debug page listing headers) is scrubbed before it is kept

# the record's columns, in wire and disk order: declared once, as the fields of bench.schema.RequestRecord
COLUMNS: list[str] = [f.name for f in fields(RequestRecord)]
_ROW = attrgetter(*COLUMNS)
IDX = {c: i for i, c in enumerate(COLUMNS)}
Row = list[Any]  # one record on the wire: its values in COLUMNS order (msgpack packs a list cheaply)
StartNotice = tuple[Any, ...]  # START_FIELDS' values, as a worker sends them when a request starts
# Outcomes that say nothing about the target (cut off by the run's end, offered but never sent, in flight on a
# worker that died): kept as records, left out of error rates. Declared in bench.schema, re-exported for readers.
NOT_LIVE = _NOT_LIVE
CHARS_PER_TOKEN = 4.0  # the usual ratio for English text with a BPE tokenizer; only used without usage or a tokenizer
CHARS_PER_PART_ESTIMATE = 16  # parts averaging this many characters (4+ tokens) are counted by characters, not as one token


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
    prompt_tokens: int | None = None  # counted by the run's tokenizer, when one is loaded
    requested_tokens: int | None = None  # the reply bound asked for (max_tokens), to hold against what came
    trace_row: int | None = None  # the row of the replayed trace (--trace) this request is
    requested_input_tokens: int | None = None  # the prompt length asked for (--input-tokens, a trace's input_tokens)
    path: str = "route"
    pair_id: str | None = None


def _ms(a: int, b: int) -> float:
    return (a - b) / 1e6


def _first_read_tokens(
    dec: Decoder | None, parts: int, out_tokens: int, text_len: int, source: str, count_tokens: TokenCounter | None
) -> int:
    """Tokens the first read delivered: counted with the tokenizer, else the reply's tokens shared
    by characters (one part of one token stays one)."""
    if dec is None or not text_len:
        return min(parts, out_tokens)
    first_text = "".join(dec.texts[:parts])
    if len(first_text) < CHARS_PER_PART_ESTIMATE * parts:
        return min(parts, out_tokens)  # token-sized parts: one token each, exactly as before
    if source.startswith("tokenizer:") and count_tokens is not None:
        return max(1, min(out_tokens, count_tokens(first_text)))
    if source == "chunks":
        return parts
    wrapper = sum(len(w) for w in APP_WRAPPER if w in first_text)  # markup the app adds around R1's thinking: no model tokens
    share = (len(first_text) - wrapper) / max(1, text_len - wrapper)
    return max(parts if source != "usage" else 1, min(out_tokens, round(out_tokens * share)))


APP_WRAPPER = ("<details>\n<summary>AI Thinking Process</summary>\n", "\n</details>\n\n")


# A stream cut off by the run's end after this long without a part, and this many times its own largest gap
# before, was dead, not cut off. 1 s, not 3: against the app's own handler with 1 in 3 backends dying
# mid-stream, a 3 s floor left the dead streams of the run's last 3 s as `cancelled` (out of the error
# rate), and the rate read 23-29 % for 33 %; a live stream whose parts came every 5 ms is not silent for 1 s.
SILENT_FLOOR_S = 1.0
SILENT_FACTOR = 20


def silent_at_end(o: Outcome) -> str | None:
    """A stream the run's end cut off, silent far beyond its own rhythm: the app left it open after
    its backend failed (it never ends such a response). Recorded as ``stall``, not ``cancelled``:
    10 of 30 dead streams read as a 0 % error rate before."""
    stamps = o.stamps
    if o.error != ErrorClass.cancelled or not stamps or not o.t_end:
        return None
    silent = (o.t_end - stamps[-2]) / 1e9
    largest = max(((stamps[k] - stamps[k - 2]) / 1e9 for k in range(2, len(stamps), 2)), default=(stamps[0] - o.t_start) / 1e9)
    if silent >= SILENT_FLOOR_S and silent >= SILENT_FACTOR * largest:
        return f"silent for {silent:.1f} s when the run ended (largest gap before: {largest * 1000:.0f} ms): a dead stream"
    return None


def build_row(o: Outcome, c: RequestContext, count_tokens: TokenCounter | None = None) -> Row:
    """One row from what was observed. Light: a few loops over the part stamps, no sorting."""
    dec = o.decoder
    stamps = o.stamps
    chunks = sum(stamps[1::2])
    ttfc = ttfv = tpot = tps = icl = ttsc = None
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
            # time to second chunk: some servers flush a first token early, then the rest late
            ttsc = ttfc if stamps[1] > 1 else _ms(stamps[2], o.t_start)
    text_len = len(dec.text) if dec is not None else 0
    if dec is not None and dec.usage_completion is not None:
        out_tokens, source = dec.usage_completion, "usage"
    elif count_tokens is not None and dec is not None and chunks:
        out_tokens, source = count_tokens(dec.text), f"tokenizer:{count_tokens.name}"
    elif chunks and text_len >= CHARS_PER_PART_ESTIMATE * chunks:
        # parts that carry many tokens each (sentence-sized, as the route sends DeepSeek R1's): counting
        # parts would make a model look 10x slower; estimate from characters, and say so
        out_tokens, source = max(chunks, round(text_len / CHARS_PER_TOKEN)), "estimate:chars"
    else:
        out_tokens, source = chunks, "chunks"
    ok = o.error is None
    if ok and stamps and out_tokens > 1 and o.t_end > t_first:
        # the tokens after the first read, over the time after it: the first read may carry many
        # tokens (DeepSeek R1's whole thinking arrives as one part on the app's route: 28 tokens
        # counted as 1 made decode_tps read 97.6 tok/s against a true 49.7)
        first = _first_read_tokens(dec, stamps[1], out_tokens, text_len, source, count_tokens)
        if out_tokens > first:
            tpot = _ms(o.t_end, t_first) / (out_tokens - first)
            tps = (out_tokens - first) / ((o.t_end - t_first) / 1e9)
    prompt_tokens = dec.usage_prompt if dec is not None and dec.usage_prompt is not None else c.prompt_tokens
    head = redact(o.head.decode("utf-8", "replace")) if o.error is not None and o.head else None
    rec = RequestRecord(
        run_id=c.run_id,
        request_id=c.request_id,
        worker=c.worker,
        user=c.user,
        conversation_id=c.conversation_id,
        conversation=c.conversation,
        turn=c.turn,
        model=c.model,
        tags=c.tags,
        t_wall_start=c.t_wall_start,
        t_start_ns=o.t_start,
        intended_delay_ms=_ms(o.t_start, c.t_intended) if c.t_intended else 0.0,
        status=o.status,
        error=o.error,
        error_detail=redact(o.detail) if o.detail else o.detail,
        protocol=(dec.detected or c.protocol) if dec is not None else c.protocol,  # c.protocol: a Protocol's record name
        connect_ms=o.connect_ms,
        ttfb_ms=_ms(o.t_headers, o.t_start) if o.t_headers else None,
        ttfc_ms=ttfc,
        ttsc_ms=ttsc,
        ttfc_sched_ms=_ms(t_first, c.t_intended) if stamps and c.t_intended else ttfc,
        ttfv_ms=ttfv,
        e2e_ms=_ms(o.t_end, o.t_start) if o.t_end else None,
        tpot_ms=tpot,
        icl_ms=icl,
        decode_tps=tps,
        chunks=chunks,
        gaps_us=gaps.tobytes(),
        output_chars=text_len,
        output_tokens=out_tokens,
        token_source=source,
        prompt_chars=c.prompt_chars,
        prompt_tokens=prompt_tokens,
        prompt_messages=c.prompt_messages,
        bytes_in=o.bytes_in,
        content_type=o.content_type or None,
        body_head=head,
        requested_tokens=c.requested_tokens,
        trace_row=c.trace_row,
        requested_input_tokens=c.requested_input_tokens,
        retry_ms=o.retry_ms,
        path=c.path,
        pair_id=c.pair_id,
    )
    return list(_ROW(rec))


def not_sent_row(arrival: Arrival, run_id: str, worker: str, protocol: str) -> Row:
    """An open-loop arrival the run ended before any user was free to send: offered, never sent.

    Its ``intended_delay_ms`` is how long it waited; it has no start on the wire.
    """
    import uuid
    from time import monotonic_ns

    from bench.load.clock import wall

    now = monotonic_ns()
    conv, row = arrival.conversation, arrival.row
    if row is not None:  # a trace row: its own conversation, turn and requested lengths
        name, turn, tags, chars = (
            row.conversation,
            row.turn,
            "trace",
            len(row.prompt or "") or round((row.input_tokens or 0) * CHARS_PER_TOKEN),
        )
    else:
        assert conv is not None, "an arrival is a trace row or a conversation"
        name, turn, tags, chars = conv.name, 0, ",".join(conv.tags), len(conv.turns[0].user)
    ctx = RequestContext(
        run_id=run_id,
        request_id=str(uuid.uuid4()),
        worker=worker,
        user=-1,
        conversation_id=uuid.uuid4().hex[:12],
        conversation=name,
        turn=turn,
        model=arrival.model,
        tags=tags,
        t_intended=arrival.due,
        t_wall_start=wall() - (now - arrival.due) / 1e9,
        prompt_chars=chars,
        prompt_messages=1,
        protocol=protocol,
        trace_row=row.row if row is not None else None,
        requested_input_tokens=row.input_tokens if row is not None else None,
        requested_tokens=row.output_tokens if row is not None else None,
    )
    from bench.load.stream import Outcome  # here, not at import: readers of records never load the HTTP client

    o = Outcome(
        t_start=now,
        error=ErrorClass.not_sent,
        detail=f"waited {(now - arrival.due) / 1e6:,.0f} ms for a free user; the run ended first",
    )
    return build_row(o, ctx)


_START = attrgetter(*START_FIELDS)  # bench.schema.RequestRecord's start positions: the notice's wire order


def start_notice(c: RequestContext) -> StartNotice:
    """What a worker tells the master as a request starts, so a worker that dies loses no request."""
    return tuple(_START(c))


def lost_row(notice: StartNotice, run_id: str, worker: str, protocol: str) -> Row:
    """A request a worker started but never reported: it died (SIGKILL, OOM, a lost machine) meanwhile.

    The target may have answered it; its outcome is unknown, so it is neither a success nor a
    failure of the target (``worker_lost``, like ``cancelled`` left out of the error rate).
    """
    n = dict(zip(START_FIELDS, notice))
    ctx = RequestContext(
        run_id=run_id,
        request_id=n["request_id"],
        worker=worker,
        user=n["user"],
        conversation_id=n["conversation_id"],
        conversation=n["conversation"],
        turn=n["turn"],
        model=n["model"],
        tags=n["tags"],
        t_intended=0,
        t_wall_start=n["t_wall_start"],
        prompt_chars=n["prompt_chars"],
        prompt_messages=n["prompt_messages"],
        protocol=protocol,
        trace_row=n["trace_row"],
    )
    from bench.load.stream import Outcome  # here, not at import: readers of records never load the HTTP client

    o = Outcome(
        error=ErrorClass.worker_lost,
        detail=f"worker {worker} stopped reporting (killed?) with this request in flight; its outcome is unknown",
    )
    return build_row(o, ctx)


MAGIC = b"BSP1"  # starts every spool frame: MAGIC, payload length (u32 LE), CRC-32 of the payload, payload
_HEAD = struct.Struct("<4sII")


class Spool:
    """Append-only file of framed msgpack batches, each a list of rows.

    A frame is written whole or not at all: a failed write (a full disk) is cut back to the last
    whole frame and raises, so the caller keeps the rows and tries again. The frame header (magic,
    length, CRC) lets a reader find the next good frame after a damaged one.
    """

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fh = open(self.path, "ab")
        self._packer = msgpack.Packer(use_bin_type=True)
        self.rows = 0

    def write(self, rows: list[Row]) -> None:
        if not rows:
            return
        payload = self._packer.pack(rows)
        frame = _HEAD.pack(MAGIC, len(payload), zlib.crc32(payload)) + payload
        pos = self._fh.tell()
        try:
            self._fh.write(frame)
            self._fh.flush()
        except OSError:
            try:  # a torn frame must not stay: cut the file back to the last whole frame
                self._fh = _reopen_truncated(self._fh, self.path, pos)
            except OSError:
                pass
            raise
        self.rows += len(rows)

    def close(self) -> None:
        self._fh.close()


def rescue_dir(run_id: str) -> Path:
    """Where a run's records go when its folder's disk is full: the system temp folder (another file
    system, usually), one folder per run id; ``finalize_records`` reads it with the run folder."""
    import tempfile

    safe = "".join(c if c.isalnum() or c in "-_" else "_" for c in run_id)
    return Path(tempfile.gettempdir()) / f"bench-rescue-{safe}"


def _reopen_truncated(fh: Any, path: Path, pos: int) -> Any:
    try:
        fh.close()  # closing flushes what the failed write left buffered; it may fail again
    except OSError:
        pass
    os.truncate(path, pos)
    return open(path, "ab")


@dataclass
class SpoolCheck:
    """What reading a spool skipped: damaged frames are reported, never silently dropped."""

    rows: int = 0
    frames: int = 0
    bad_frames: int = 0
    skipped_bytes: int = 0
    torn_tail: int = 0  # bytes of a last frame cut off mid-write (a killed process): expected, not damage

    def warnings(self, path: Path) -> list[str]:
        out = []
        if self.bad_frames or self.skipped_bytes:
            out.append(
                f"{path.name}: {self.bad_frames} damaged frame(s), {self.skipped_bytes:,} bytes skipped; "
                f"{self.rows} rows read from {self.frames} good frames (rows of the damaged frames are lost)"
            )
        if self.torn_tail:
            out.append(f"{path.name}: the last {self.torn_tail:,} bytes were a frame cut off mid-write (ignored)")
        return out


def read_spool(path: Path, check: SpoolCheck | None = None) -> Iterator[Row]:
    """Rows of every good frame, in order; damaged frames are skipped up to the next frame header."""
    check = check if check is not None else SpoolCheck()
    data = Path(path).read_bytes()
    if data and not data.startswith(MAGIC):
        yield from _read_legacy(data, check)
        return
    pos, end = 0, len(data)
    while pos < end:
        if end - pos < _HEAD.size:
            check.torn_tail += end - pos
            return
        magic, length, crc = _HEAD.unpack_from(data, pos)
        start = pos + _HEAD.size
        if magic == MAGIC and start + length > end and data.find(MAGIC, start) < 0:
            check.torn_tail += end - pos  # the last frame, cut short
            return
        if magic == MAGIC and start + length <= end and zlib.crc32(data[start : start + length]) == crc:
            try:
                frame = msgpack.unpackb(data[start : start + length], raw=False, use_list=True)
            except (ValueError, msgpack.exceptions.ExtraData):
                frame = None
            if isinstance(frame, list):
                check.frames += 1
                check.rows += len(frame)
                yield from frame
                pos = start + length
                continue
        nxt = data.find(MAGIC, pos + 1)  # resynchronise on the next frame header
        nxt = end if nxt < 0 else nxt
        check.bad_frames += 1
        check.skipped_bytes += nxt - pos
        pos = nxt


def _read_legacy(data: bytes, check: SpoolCheck) -> Iterator[Row]:
    """Spools written before frames had headers: bare msgpack lists, read up to the first bad byte."""
    unpacker = msgpack.Unpacker(raw=False, use_list=True, max_buffer_size=1 << 30)
    unpacker.feed(data)
    try:
        for frame in unpacker:
            check.frames += 1
            check.rows += len(frame)
            yield from frame
    except (msgpack.exceptions.ExtraData, ValueError) as exc:
        check.bad_frames += 1
        check.skipped_bytes += len(data) - unpacker.tell()
        del exc

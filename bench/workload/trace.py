"""Request traces: arrival times, conversations and either messages or token counts, per row.

One reader for three layouts, told apart by their fields (JSON Lines or CSV, either layout):

- ours: ``t`` (seconds from the first arrival), ``conversation_id``, ``turn``, ``model``, and
  ``prompt`` (this turn's user message: earlier turns and the replies that actually streamed
  are sent as the history) or ``messages`` (sent exactly as given) or ``input_tokens``
  (a synthetic prompt of that length); ``output_tokens`` bounds the reply.
- Mooncake (FAST'25 traces): ``timestamp`` in milliseconds, ``input_length``, ``output_length``, and
  ``hash_ids`` (one id per 512-token block of the prompt; rows with the same leading ids get prompts that
  share exactly those blocks, token for token with ``--tokenizer``, so the trace's prefix sharing reaches
  the server's cache).
- Azure LLM inference traces: ``TIMESTAMP`` (a date-time), ``ContextTokens``, ``GeneratedTokens``.

Rows without a conversation are conversations of their own. Times are made relative to the
first arrival and sorted; turns of one conversation keep their order.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from bench.errors import InputError

TIME_S = ("t", "offset_s", "time_s")
TIME_MS = ("timestamp_ms",)
TIMESTAMP = ("timestamp",)  # a number: milliseconds (Mooncake); a string: a date-time (Azure)
CONVERSATION = ("conversation_id", "conversation", "session_id", "chat_id")
PROMPT = ("prompt", "message", "user")
INPUT_TOKENS = ("input_tokens", "input_length", "contexttokens", "prompt_tokens")
OUTPUT_TOKENS = ("output_tokens", "output_length", "generatedtokens", "max_tokens")


@dataclass(frozen=True, slots=True)
class TraceRow:
    """One request of a trace, as replayed: when (seconds from the trace's start), what, for whom."""

    row: int  # the row's number in the file (its line in JSON Lines, its data row in CSV): kept in the record
    t: float
    conversation: str
    turn: int
    model: str | None = None
    prompt: str | None = None
    messages: tuple | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None
    hash_ids: tuple[int, ...] | None = None  # Mooncake: one id per BLOCK_TOKENS-token block of the prompt


@dataclass(frozen=True)
class Trace:
    path: Path
    rows: tuple[TraceRow, ...]

    @property
    def span(self) -> float:
        return self.rows[-1].t - self.rows[0].t if self.rows else 0.0

    def rate(self) -> float:
        """Mean arrivals per second over the trace (for --trace-rate)."""
        return (len(self.rows) - 1) / self.span if len(self.rows) > 1 and self.span > 0 else 0.0

    def conversations(self) -> int:
        return len({r.conversation for r in self.rows})

    def window(self, start: float, end: float | None) -> Trace:
        """The rows arriving in [start, end) of trace time, shifted so the window starts at 0."""
        rows = tuple(
            TraceRow(
                r.row,
                r.t - start,
                r.conversation,
                r.turn,
                r.model,
                r.prompt,
                r.messages,
                r.input_tokens,
                r.output_tokens,
                r.hash_ids,
            )
            for r in self.rows
            if r.t >= start and (end is None or r.t < end)
        )
        if not rows:
            raise InputError(
                f"--trace-window {start:g}:{'' if end is None else f'{end:g}'}: no row of {self.path} arrives "
                f"in it (the trace spans 0 to {self.span:.1f} s)"
            )
        return Trace(self.path, rows)


def parse_window(text: str) -> tuple[float, float | None]:
    """``START:END`` in seconds of trace time; either side may be empty (``:600``, ``60:``)."""
    a, sep, b = (text or "").partition(":")
    try:
        start = float(a) if a.strip() else 0.0
        end = float(b) if b.strip() else None
    except ValueError:
        raise InputError(f"--trace-window {text!r}: expected START:END in seconds, e.g. 0:600 or 3600:") from None
    if not sep or start < 0 or (end is not None and end <= start):
        raise InputError(f"--trace-window {text!r}: expected START:END in seconds with 0 <= START < END")
    return start, end


def _pick(rec: dict, names: tuple[str, ...]):
    for n in names:
        if n in rec and rec[n] not in (None, ""):
            return n, rec[n]
    return None, None


def _int(where: str, field: str, v) -> int:
    try:
        f = float(v)
    except (TypeError, ValueError):
        raise InputError(f"{where}, field '{field}': expected a whole number, got {v!r}") from None
    if not math.isfinite(f) or f < 0 or f != int(f):
        raise InputError(f"{where}, field '{field}': expected a whole number >= 0, got {v!r}")
    return int(f)


def _hash_ids(where: str, v, input_tokens: int | None) -> tuple[int, ...] | None:
    """Mooncake's ``hash_ids``: the prompt's blocks of ``BLOCK_TOKENS`` tokens, equal ids for equal
    blocks (a shared system prompt, an earlier turn): as many blocks as ``input_length`` fills."""
    from bench.workload.synthetic import BLOCK_TOKENS

    if v in (None, "", []):
        return None
    if isinstance(v, str):  # CSV: "[1, 2, 3]" or "1 2 3"
        v = [x for x in v.strip("[] ").replace(",", " ").split() if x]
    if not isinstance(v, list):
        raise InputError(f"{where}, field 'hash_ids': expected a list of whole numbers, got {str(v)[:60]!r}")
    ids = tuple(_int(where, "hash_ids", x) for x in v)
    if input_tokens is None:
        raise InputError(f"{where}, field 'hash_ids': needs the row's input_length (the last block's size)")
    if not (len(ids) - 1) * BLOCK_TOKENS < input_tokens <= len(ids) * BLOCK_TOKENS:
        raise InputError(
            f"{where}, field 'hash_ids': {len(ids)} blocks of {BLOCK_TOKENS} tokens do not make an input_length of "
            f"{input_tokens} (expected {max(1, -(-input_tokens // BLOCK_TOKENS))} ids)"
        )
    return ids


def _time(where: str, rec: dict) -> float:
    """Seconds, on whatever origin the file uses (made relative to the first row later)."""
    name, v = _pick(rec, TIME_S)
    scale = 1.0
    if name is None:
        name, v = _pick(rec, TIME_MS)
        scale = 1e-3
    if name is None:
        name, v = _pick(rec, TIMESTAMP)
        if isinstance(v, str) and not _is_number(v):
            return _datetime(where, name, v)
        scale = 1e-3
    if name is None:
        raise InputError(f"{where}: no arrival time (one of {', '.join(TIME_S + TIME_MS + TIMESTAMP)})")
    try:
        t = float(v) * scale
    except (TypeError, ValueError):
        raise InputError(f"{where}, field '{name}': expected a number, got {v!r}") from None
    if not math.isfinite(t):
        raise InputError(f"{where}, field '{name}': expected a finite number, got {v!r}")
    return t


def _is_number(s: str) -> bool:
    try:
        float(s)
        return True
    except ValueError:
        return False


def _datetime(where: str, field: str, v: str) -> float:
    s = v.strip().replace("T", " ").removesuffix("Z")
    head, dot, frac = s.partition(".")
    if dot:  # Azure writes 7 fraction digits; datetime reads at most 6
        digits = "".join(c for c in frac if c.isdigit())
        s = f"{head}.{digits[:6]}{frac[len(digits) :]}"
    try:
        return datetime.fromisoformat(s).timestamp()
    except ValueError:
        raise InputError(f"{where}, field '{field}': expected a date-time such as 2023-11-16 18:15:46.68, got {v!r}") from None


def _records(path: Path):
    """(row number, where, record) for each row; JSON Lines or CSV by extension (CSV header keys lower-cased)."""
    from bench.inputfiles import DATA_BYTES, csv_rows, parse_json, read_text

    text = read_text(path, "trace", DATA_BYTES)
    if path.suffix.lower() == ".csv":
        for n, (line_no, rec) in enumerate(csv_rows(text, path), start=1):
            # a row longer than the header puts the rest under None, as a list: not a field of the trace
            fields = {(k or "").strip().lower(): (v or "").strip() for k, v in rec.items() if not isinstance(v, list)}
            yield n, f"{path}, line {line_no}", fields
        return
    for n, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        where = f"{path}, line {n}"
        rec = parse_json(line, where)
        if not isinstance(rec, dict):
            raise InputError(f"{where}: expected a JSON object per line")
        yield n, where, {k.lower(): v for k, v in rec.items()}


def _messages(where: str, v) -> tuple:
    if not isinstance(v, list) or not v:
        raise InputError(f"{where}, field 'messages': expected a non-empty list of {{role, content}}")
    out = []
    for i, m in enumerate(v):
        if (
            not isinstance(m, dict)
            or m.get("role") not in ("system", "user", "assistant")
            or not isinstance(m.get("content"), str)
        ):
            raise InputError(f"{where}, field 'messages.{i}': expected {{role: system|user|assistant, content: text}}")
        out.append({"role": m["role"], "content": m["content"]})
    return tuple(out)


def load_trace(path: str | Path) -> Trace:
    """Read and check a trace; every problem names the file, the line and the field."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"--trace {path}: file not found")
    raw = []
    for n, where, rec in _records(path):
        t = _time(where, rec)
        _, conv = _pick(rec, CONVERSATION)
        _, model = _pick(rec, ("model",))
        _, prompt = _pick(rec, PROMPT)
        msgs = _messages(where, rec["messages"]) if rec.get("messages") not in (None, "") else None
        name, v = _pick(rec, INPUT_TOKENS)
        input_tokens = _int(where, name, v) if name else None
        name, v = _pick(rec, OUTPUT_TOKENS)
        output_tokens = _int(where, name, v) if name else None
        hash_ids = _hash_ids(where, rec.get("hash_ids"), input_tokens) if prompt is None and msgs is None else None
        if prompt is None and msgs is None and not input_tokens:
            raise InputError(
                f"{where}: the row has no prompt, messages or input_tokens (input_length, ContextTokens): nothing to send"
            )
        if prompt is not None and (not isinstance(prompt, str) or not prompt.strip()):
            raise InputError(f"{where}, field 'prompt': expected non-blank text")
        if model is not None and (not isinstance(model, str) or not model.strip() or any(c.isspace() for c in model)):
            raise InputError(f"{where}, field 'model': {model!r} is not a model id")
        turn = rec.get("turn")
        if turn not in (None, ""):
            turn = _int(where, "turn", turn)
        raw.append(
            (
                t,
                n,
                where,
                str(conv) if conv is not None else f"row-{n}",
                turn,
                model,
                prompt,
                msgs,
                input_tokens,
                output_tokens,
                hash_ids,
            )
        )
    if not raw:
        raise InputError(f"{path}: the trace has no rows")
    raw.sort(key=lambda x: (x[0], x[1]))
    t0 = raw[0][0]
    rows: list[TraceRow] = []
    turns: dict[str, int] = {}
    last: dict[str, int] = {}
    for t, n, where, conv, turn, model, prompt, msgs, inp, out, hashes in raw:
        k = turns.get(conv, 0)
        if turn is not None:
            if conv in last and turn <= last[conv]:
                raise InputError(
                    f"{where}, field 'turn': turn {turn} of conversation {conv!r} arrives after turn "
                    f"{last[conv]}; a conversation's turns must arrive in order"
                )
            last[conv] = turn
        turns[conv] = k + 1
        rows.append(TraceRow(n, t - t0, conv, k, model, prompt, msgs, inp, out, hashes))
    return Trace(path, tuple(rows))


def trace_from_run(run_dir: Path, out: Path) -> int:
    """A run's own requests as a trace (ours): replay a production-like run against the next build.

    Each record becomes a row at its intended time, with its conversation, turn and model, and what
    to send: a replayed trace's own row (prompt, messages or token counts), else the turn's text
    from the run's scenario file, else its prompt length in tokens (counted, or 4 characters per
    token). Requests never sent are rows too: they were part of the offered load.
    """
    import pandas as pd

    from bench.records import CHARS_PER_TOKEN
    from bench.schema import read_run_json

    run_dir = Path(run_dir)
    if not (run_dir / "requests.parquet").is_file():
        raise InputError(f"{run_dir}: no requests.parquet (is it a run folder? bench report finalizes a plain Locust run)")
    meta = read_run_json(run_dir)
    wanted = [
        "conversation_id",
        "conversation",
        "turn",
        "model",
        "worker",
        "t_wall_start",
        "t_start_ns",
        "intended_delay_ms",
        "prompt_tokens",
        "prompt_chars",
        "requested_tokens",
        "trace_row",
    ]
    import pyarrow.parquet as pq

    present = set(pq.read_schema(run_dir / "requests.parquet").names)
    df = pd.read_parquet(run_dir / "requests.parquet", columns=[c for c in wanted if c in present])
    if "trace_row" not in df:
        df["trace_row"] = None
    texts = _scenario_turns(meta)
    source = (meta.get("workload") or {}).get("trace")
    original = {r.row: r for r in load_trace(source).rows} if source and Path(source).is_file() else {}
    # intended times on one clock: monotonic stamps where every record has one (one process), else wall stamps
    mono = "t_start_ns" in df and df["t_start_ns"].notna().all() and df["worker"].nunique() <= 1
    t = (df["t_start_ns"] / 1e9 if mono else df["t_wall_start"]) - df["intended_delay_ms"].fillna(0.0) / 1000.0
    df = df.assign(t=t - t.min()).sort_values(["t", "turn"])
    n = 0
    with Path(out).open("w", encoding="utf-8") as f:
        for r in df.itertuples(index=False):
            row: dict = {"t": round(float(r.t), 6), "conversation_id": r.conversation_id, "turn": int(r.turn), "model": r.model}
            src = original.get(int(r.trace_row)) if r.trace_row == r.trace_row and r.trace_row is not None else None
            if src is not None:
                row["conversation_id"] = src.conversation
                if src.prompt is not None:
                    row["prompt"] = src.prompt
                elif src.messages is not None:
                    row["messages"] = list(src.messages)
                else:
                    row["input_tokens"] = src.input_tokens
                    if src.hash_ids:
                        row["hash_ids"] = list(src.hash_ids)
                if src.output_tokens:
                    row["output_tokens"] = src.output_tokens
            else:
                text = texts.get((r.conversation, int(r.turn)))
                if text is not None:
                    row["prompt"] = text
                elif r.prompt_tokens == r.prompt_tokens and r.prompt_tokens is not None:
                    row["input_tokens"] = int(r.prompt_tokens)
                else:
                    row["input_tokens"] = max(1, round(float(r.prompt_chars) / CHARS_PER_TOKEN))
                bound = r.requested_tokens
                if bound == bound and bound is not None:
                    row["output_tokens"] = int(bound)
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
            n += 1
    return n


def _scenario_turns(meta: dict) -> dict[tuple[str, int], str]:
    from bench.scenario import load_scenario

    path = (meta.get("scenario") or {}).get("path")
    if not path or not Path(path).is_file():
        return {}
    try:
        sc = load_scenario(path)
    except InputError:
        return {}
    return {(c.name, i): t.user for c in sc.conversations for i, t in enumerate(c.turns)}


def bursty_trace(path: Path, n: int = 1000, span: float = 25.0, seed: int = 5) -> list[dict]:
    """A trace of ``n`` arrivals at uneven times, for tests, benchmarks and trying the replay.

    Gaps are lognormal (sigma 1.2: bursts and lulls), scaled to ``span`` seconds. 100 of the
    conversations have three turns about 3 s apart; the rest are single questions.
    """
    import random

    import numpy as np

    rng = random.Random(seed)
    times = np.cumsum([rng.lognormvariate(0, 1.2) for _ in range(n)])
    times = (times - times[0]) / (times[-1] - times[0]) * span
    starts = set(rng.sample(range(max(1, n - 300)), min(100, max(1, n - 300))))
    used: set[int] = set()
    rows = []
    for i, t in enumerate(times):
        if i in used:
            continue
        if i not in starts:
            rows.append({"t": round(float(t), 6), "conversation_id": f"single-{i}", "prompt": f"Question {i}."})
            continue
        conv = f"conv-{i}"
        rows.append({"t": round(float(t), 6), "conversation_id": conv, "turn": 0, "prompt": f"Question {i}, first."})
        for turn in (1, 2):  # later turns take the next free arrivals 3 s and 6 s on
            j = next((j for j in range(i + 1, n) if j not in used and j not in starts and times[j] >= t + 3.0 * turn), None)
            if j is None:
                break
            used.add(j)
            rows.append({"t": round(float(times[j]), 6), "conversation_id": conv, "turn": turn, "prompt": f"Follow-up {turn}."})
    rows.sort(key=lambda r: float(r["t"]))  # type: ignore[arg-type]
    Path(path).write_text("".join(json.dumps(r) + "\n" for r in rows))
    return rows

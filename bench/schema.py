"""What the stages hand each other and write to disk, declared once; imports no stage.

Four contracts live here:

* ``ErrorClass``: every outcome a request record can carry (METRICS.md, "Error classes"), as a
  ``StrEnum`` so a record still holds the plain string (Parquet, msgpack and JSON unchanged) while
  code names a member, not a literal spelled out in a dozen files. The groupings readers need
  (``NOT_LIVE``: says nothing about the target; ``TIMEOUTS``; ``KEEPS_FIRST_PART``) are derived
  from the members' declarations, and a test holds the enum against METRICS.md.
* ``Protocol``: the stream framings, carrying both the option's name and the name a record stores.
* ``RunMeta``: ``run.json``, a versioned pydantic model. Every writer (``bench run``, plain
  Locust's folder, capacity levels) goes through ``analysis.results.write_run_json``, which
  validates here; readers accept every older folder (``schema`` absent is version 1).
* ``RequestRecord``: one request's columns, their order on the wire and on disk, their Parquet types,
  which the report reads and which a worker's start notice carries.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from enum import StrEnum
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

RUN_SCHEMA = 2  # run.json: 1 (no "schema" key) up to 2026-12-01; 2 adds "schema" and validates on write
RUN_JSON = "run.json"
TIMING_FILE = "timing.jsonl"  # every load-generating process's scheduling lag (bench.load.collect writes it)


def default_warmup(run_s: float, ramp_s: float) -> float:
    """Seconds excluded from headline numbers when none are given: the ramp-up plus one second.

    At most a third of the run, so a short run still measures something. ``bench run`` and a
    plain Locust run use this one rule (the ramp from -u/-r, or as observed when a web UI or
    a shape started the users).
    """
    return round(max(0.0, min(run_s / 3, ramp_s + 1.0)), 3)


def read_run_json(run_dir: Path | str) -> dict[str, Any]:
    """run.json of any version as a dict (``schema`` filled in: 1 for folders written before it existed)."""
    path = Path(run_dir) / RUN_JSON
    if not path.is_file():
        return {}
    data = json.loads(path.read_text())
    return {"schema": 1, **data} if isinstance(data, dict) else {}


class ErrorClass(StrEnum):
    """One class per failed (or not measured) request; the value is what the record stores."""

    invalid_model = "invalid_model"  # 400: invalid model or publisher (a ZodError on the route's params)
    retired_model = "retired_model"  # 400: "Service not available anymore."
    bad_request = "bad_request"  # other 4xx from validation
    unauthorized = "unauthorized"  # 401/403
    rate_limited = "rate_limited"  # 429
    server_error = "server_error"  # 5xx
    connect_error = "connect_error"
    timeout_first_chunk = "timeout_first_chunk"
    stall = "stall"  # no content part for longer than the stall timeout, or a dead stream at the run's end
    timeout_total = "timeout_total"
    truncated = "truncated"  # the body ended before its proper end
    stream_error = "stream_error"  # an error part inside the stream
    decode_error = "decode_error"  # bytes that are not the protocol
    oversized = "oversized"  # beyond the harness's bounds: headers over 64 KiB, a body over 32 MiB or 200,000 parts
    internal_error = "internal_error"  # the harness itself raised: kept with the exception, never lost
    cancelled = "cancelled"  # cut off by the run's end
    not_sent = "not_sent"  # an open-loop arrival or trace row that was due and never sent
    worker_lost = "worker_lost"  # in flight on a worker that died

    @property
    def live(self) -> bool:
        """Says something about the target: counts in error rates."""
        return self not in _NOT_LIVE

    @property
    def timeout(self) -> bool:
        return self in _TIMEOUTS

    @property
    def keeps_first_part(self) -> bool:
        """A request of this class may have delivered its first part (its TTFC is real)."""
        return self in _KEEPS_FIRST_PART


_NOT_LIVE = frozenset({ErrorClass.cancelled, ErrorClass.not_sent, ErrorClass.worker_lost})
_TIMEOUTS = frozenset({ErrorClass.timeout_first_chunk, ErrorClass.stall, ErrorClass.timeout_total})
_KEEPS_FIRST_PART = frozenset(
    {
        ErrorClass.stall,
        ErrorClass.timeout_total,
        ErrorClass.truncated,
        ErrorClass.stream_error,
        ErrorClass.decode_error,
        ErrorClass.cancelled,
        ErrorClass.internal_error,
    }
)
# plain strings for readers that filter columns (pandas ``isin``, Arrow): the one list they all use
NOT_LIVE: tuple[str, ...] = tuple(sorted(e.value for e in _NOT_LIVE))
TIMEOUTS: tuple[str, ...] = tuple(sorted(e.value for e in _TIMEOUTS))


def error_class(text: str | None) -> ErrorClass | None:
    """The class of a stored error string; ``None`` for a success. Unknown strings raise ``ValueError``."""
    return None if text is None else ErrorClass(text)


class Protocol(StrEnum):
    """A stream framing: the value is the ``--protocol`` choice, ``recorded`` what a record's ``protocol``
    column says of a stream decoded in it (the names every release so far wrote)."""

    auto = "auto"  # detected from the bytes; a record says "auto" only when nothing was read to tell
    aisdk = "aisdk"  # AI SDK 4 data stream: 0:"text" lines
    sse = "sse"  # the same parts, each as an SSE data: event
    ui = "ui"  # AI SDK 5 UI message stream (SSE, header x-vercel-ai-ui-message-stream: v1)
    openai = "openai"  # OpenAI chat-completion chunks over SSE
    tgi = "tgi"  # Hugging Face's text-generation token stream (TGI, the Inference API)

    @property
    def recorded(self) -> str:
        return _RECORDED[self]

    @property
    def has_terminal(self) -> bool:
        """The framing has a last part of its own: a stream that ends without it was cut off."""
        return self in (Protocol.ui, Protocol.openai, Protocol.tgi)


_RECORDED = {
    Protocol.auto: "auto",
    Protocol.aisdk: "aisdk-data",
    Protocol.sse: "aisdk-data-sse",
    Protocol.ui: "ui-message-stream",
    Protocol.openai: "openai",
    Protocol.tgi: "tgi",
}


class ScenarioRef(BaseModel):
    model_config = ConfigDict(extra="allow")
    name: str | None = None
    path: str | None = None
    sha256: str | None = None


# Where the build under test names itself when --build-id is not given: ours first, then what common CI
# systems set for the commit being built (GitHub Actions, GitLab CI, Azure Pipelines).
BUILD_ENV = ("BENCH_BUILD_ID", "GITHUB_SHA", "CI_COMMIT_SHA", "BUILD_SOURCEVERSION")


class BuildRef(BaseModel):
    """The build under test (the app's revision, an image tag), not the harness's own ``git``."""

    id: str
    source: str  # "--build-id" or the environment variable it came from


def build_ref(flag: str | None, environ: Mapping[str, str]) -> BuildRef | None:
    if flag:
        return BuildRef(id=flag, source="--build-id")
    for name in BUILD_ENV:
        if environ.get(name):
            return BuildRef(id=environ[name], source=name)
    return None


class RunMeta(BaseModel):
    """``run.json``. The keys every reader relies on are typed; the rest (target, load, route,
    collector, environment, ...) are kept as written (``extra="allow"``) and grow without a bump."""

    model_config = ConfigDict(extra="allow", populate_by_name=True)

    schema_version: int = Field(RUN_SCHEMA, alias="schema")
    run_id: str
    started: float | None = None
    ended: float | None = None
    duration_s: float | None = None
    interrupted: bool = False
    host: str | None = None
    scenario: ScenarioRef | None = None
    models: list[str] | None = None
    slos: list[str] = Field(default_factory=list)  # the SLOs this run is judged by (--slo, else the scenario's)
    warmup_s: float = Field(0.0, ge=0)
    warnings: list[str] = Field(default_factory=list)
    collector: dict[str, Any] = Field(default_factory=dict)
    build: BuildRef | None = None  # the build under test; ``git`` (from the environment) is the harness's revision

    def to_json_dict(self) -> dict[str, Any]:
        return self.model_dump(by_alias=True, mode="json")

    @classmethod
    def read(cls, data: dict[str, Any]) -> RunMeta:
        """A run.json of any version (older ones have no ``schema``: version 1)."""
        return cls.model_validate({"schema": 1, **data})


# --- the request record -------------------------------------------------------------------------
@dataclass(frozen=True)
class Col:
    """How one record column is kept: its Parquet type (``gaps``: not a Parquet column, the raw gaps
    go to ``gaps.u32``), its place in a worker's start notice (``start``: position, None if not in
    it) and whether the report reads it by default (``read``)."""

    parquet: str
    start: int | None = None
    read: bool = True


def col(parquet: str, *, start: int | None = None, read: bool = True) -> Any:
    return field(default=None, metadata={"col": Col(parquet, start, read)})


@dataclass(slots=True)
class RequestRecord:
    """One request, as ``requests.parquet`` keeps it: the one declaration of the record's columns.

    Field order is the column order of the rows on the wire (msgpack lists, the CRC-framed spool) and
    on disk: append, never reorder. ``COLUMNS``, ``IDX``, the Parquet types, the report's read columns
    and the start notice's fields are all generated from these fields; the per-request metrics among
    them are the metric catalogue's (``bench.metrics``: a test holds the two together). Adding a
    column: a field here (at the end), and the line in ``records.build_row`` that fills it.
    """

    # what was known before the request
    run_id: str = col("string", read=False)
    request_id: str = col("string", start=0, read=False)
    worker: str = col("string", read=False)
    user: int = col("int64", start=6, read=False)
    conversation_id: str = col("string", start=4)
    conversation: str = col("string", start=3)
    turn: int = col("int32", start=5)
    model: str = col("string", start=2)
    tags: str = col("string", start=7, read=False)
    t_wall_start: float = col("float64", start=1)
    t_start_ns: int = col("int64", read=False)
    intended_delay_ms: float = col("float64")
    status: int = col("int32")
    error: str | None = col("string")
    error_detail: str | None = col("string")
    protocol: str = col("string")
    # the catalogue's per-request metrics (bench.metrics, scope "request"), in its order
    connect_ms: float | None = col("float64")
    ttfb_ms: float | None = col("float64")
    ttfc_ms: float | None = col("float64")
    ttsc_ms: float | None = col("float64")
    ttfc_sched_ms: float | None = col("float64")
    ttfv_ms: float | None = col("float64")
    e2e_ms: float | None = col("float64")
    tpot_ms: float | None = col("float64")
    icl_ms: float | None = col("float64")
    decode_tps: float | None = col("float64")
    # the details
    chunks: int = col("int32")
    gaps_us: bytes = col("gaps")  # uint32 microseconds, in gaps.u32 (gaps_offset, gaps_count in Parquet)
    output_chars: int = col("int64")
    output_tokens: int = col("int64")
    token_source: str = col("string")
    prompt_chars: int = col("int64", start=9)
    prompt_tokens: int | None = col("int64")
    prompt_messages: int = col("int32", start=10, read=False)
    bytes_in: int = col("int64", read=False)
    content_type: str | None = col("string")
    body_head: str | None = col("string")
    requested_tokens: int | None = col("int64")
    trace_row: int | None = col("int64", start=8)
    requested_input_tokens: int | None = col("int64")
    retry_ms: float | None = col("float64", read=False)
    path: str = col("string", read=False)  # route (the app's chat route) or backend (--backend: the model server)
    pair_id: str | None = col("string")  # --backend: the route and backend requests of one turn share it


RECORD_COLUMNS: dict[str, Col] = {f.name: f.metadata["col"] for f in fields(RequestRecord)}
START_FIELDS: tuple[str, ...] = tuple(
    sorted((n for n, c in RECORD_COLUMNS.items() if c.start is not None), key=lambda n: RECORD_COLUMNS[n].start or 0)
)
READ_COLUMNS: list[str] = [n for n, c in RECORD_COLUMNS.items() if c.read]

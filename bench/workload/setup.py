"""From options to the workload a process replays: the scenario, a trace, or synthetic prompts.

Validated with everything else before any load is sent (``bench run`` checks it once in its own
process; every load-generating process builds the same workload from the same options and seed).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from bench.errors import InputError
from bench.workload.synthetic import LengthDist, PromptMaker, parse_length, synthetic_pool
from bench.workload.trace import Trace, load_trace, parse_window

if TYPE_CHECKING:
    from bench.scenario import Scenario
    from bench.tokens import TokenCounter

DEFAULT_DURATION_S = 30.0
TRACE_TAIL_S = 60.0  # a trace replay's default run length past its last arrival (the run ends sooner once all answered)


@dataclass
class Workload:
    trace: Trace | None = None
    speedup: float = 1.0
    maker: PromptMaker | None = None
    input_dist: LengthDist | None = None
    output_dist: LengthDist | None = None
    requested: dict = field(default_factory=dict)  # synthetic conversation -> (input tokens, output tokens or None)

    @property
    def kind(self) -> str:
        return "trace" if self.trace is not None else "synthetic" if self.input_dist is not None else "scenario"

    def default_seconds(self) -> float:
        if self.trace is None:
            return DEFAULT_DURATION_S
        return self.trace.span / self.speedup + TRACE_TAIL_S

    def describe(self) -> dict:
        """For run.json: what was replayed, so a reader (and ``bench trace``) can tell."""
        out: dict = {"kind": self.kind}
        if self.trace is not None:
            out.update(
                trace=str(self.trace.path),
                rows=len(self.trace.rows),
                conversations=self.trace.conversations(),
                span_s=round(self.trace.span, 3),
                speedup=self.speedup,
                native_rate=round(self.trace.rate(), 4),
            )
        if self.input_dist is not None:
            out.update(
                input_tokens=self.input_dist.text,
                input_tokens_mean=self.input_dist.mean(),
                output_tokens=self.output_dist.text if self.output_dist else None,
                counted_by="tokenizer" if self.maker and self.maker.count_tokens else "4 characters per token",
            )
        return out


def workload_from(
    opts: Any,
    scenario: Scenario,
    count_tokens: TokenCounter | None = None,
    models_check: Callable[[list[str]], None] | None = None,
) -> tuple[Workload, Scenario]:
    """(workload, scenario to replay). ``models_check`` checks a trace's model ids against the route."""
    trace_path = getattr(opts, "trace", "") or ""
    input_spec = getattr(opts, "input_tokens", "") or ""
    output_spec = getattr(opts, "output_tokens", "") or ""
    if not trace_path:
        for name in ("trace_window", "trace_rate"):
            if getattr(opts, name, None):
                raise InputError(f"--{name.replace('_', '-')} needs --trace")
    if output_spec and not input_spec:
        raise InputError("--output-tokens needs --input-tokens (a trace's rows carry their own output_tokens)")
    if trace_path and input_spec:
        raise InputError("--input-tokens replaces the scenario's conversations; a --trace brings its own rows")
    w = Workload()
    if trace_path:
        trace = load_trace(trace_path)
        if opts.trace_window:
            trace = trace.window(*parse_window(opts.trace_window))
        w.trace = trace
        w.speedup = opts.speedup
        if opts.trace_rate:
            native = trace.rate()
            if native <= 0:
                raise InputError(f"--trace-rate: {trace.path} has no rate to scale (one row, or all at one time)")
            w.speedup = opts.trace_rate / native
        ids = sorted({r.model for r in trace.rows if r.model})
        if ids and models_check is not None:
            models_check(ids)
        if any(r.input_tokens and not r.prompt and not r.messages for r in trace.rows):
            w.maker = PromptMaker(opts.seed, count_tokens)
        return w, scenario
    if input_spec:
        w.input_dist = parse_length(input_spec, "--input-tokens", "input_tokens")
        w.output_dist = parse_length(output_spec, "--output-tokens", "output_tokens") if output_spec else None
        w.maker = PromptMaker(opts.seed, count_tokens)
        convs, w.requested = synthetic_pool(w.input_dist, w.output_dist, w.maker, opts.seed)
        scenario = scenario.model_copy(update={"conversations": convs, "think_time": scenario.think_time})
    return w, scenario

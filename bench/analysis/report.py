"""``bench report RUN_DIR``: tables, charts and documents from a run's raw records.

Writes ``report.html`` (self-contained: charts inlined as SVG), ``summary.md`` (fits a
pull-request comment), ``summary.json`` and ``summary.csv`` (for machines) and the charts as PNG
and SVG under ``charts/``.
"""

from __future__ import annotations

import html
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
from jinja2 import Environment

from bench.analysis import delivery, reading
from bench.analysis.overhead import markdown as overhead_markdown
from bench.analysis.overhead import route_overhead
from bench.analysis.page import environment, num
from bench.analysis.results import NOT_SENT_UNTRUSTED, NOT_SENT_WAIT_S, read_run_json
from bench.analysis.runfolder import Run, open_run
from bench.analysis.summaries import (
    FIRST_PART,
    MIN_SAMPLES,
    NOT_LIVE,
    SUMMARY_COLS,
    by_group,
    gap_summaries,
    groups_of,
    model_summary,
    prompt_buckets,
    slo_verdicts,
    stats,
    time_series,
)
from bench.analysis.timing import uncertainty, untrusted_reason
from bench.metrics import PAIRED, READER, label
from bench.schema import ErrorClass
from bench.servermetrics import prefix_cache
from bench.servermetrics import summary as server_summary
from bench.slo import parse_slo

LATER = PAIRED | READER  # metrics the report adds to a model's summary after model_summary: SLOs on them judged then
METRICS_URL = "METRICS.md"  # copied into the run folder beside report.html
METRICS_DOC = Path(__file__).resolve().parents[2] / "docs" / "METRICS.md"
CPU_UNTRUSTED = 90.0


def stream_delivery(measured: pd.DataFrame, models: dict) -> dict:
    """Per request, whether its stream arrived as written (``bench.analysis.delivery``): the counts go
    into each model's summary, the run's evidence is returned. Requests too short or failed are
    ``short``; beyond ``delivery.SAMPLE`` judged requests, a seeded sample of them is read."""
    import numpy as np

    store = measured.attrs.get("gaps")
    if store is None or measured.empty:
        return {"counts": {}, "judged": 0}
    pos = measured.index.to_numpy()
    ok = measured["error"].isna().to_numpy() & (store.lengths[pos] + 1 >= delivery.MIN_PARTS)
    judge = pos[ok]
    sampled = judge.size > delivery.SAMPLE
    if sampled:
        judge = np.sort(np.random.default_rng(0).choice(judge, delivery.SAMPLE, replace=False))
    judge = np.sort(judge)
    vals, _ = store.sample(judge, 1 << 62, 0, owners=True)  # every gap of these rows, row after row
    lens = store.lengths[judge]
    shape = delivery.shape_of(np.asarray(vals), lens)
    v = delivery.verdicts(shape, np.ones(judge.size, bool))
    picked = measured.loc[judge, ["model", "output_chars", "chunks"]]  # the index holds each record's position
    model_of = picked["model"].astype(str).to_numpy()
    per_part = picked["output_chars"].to_numpy(dtype=float) / np.maximum(picked["chunks"].to_numpy(dtype=float), 1.0)
    read = reading.reader(np.asarray(vals), lens, np.nan_to_num(per_part))
    for model in models:
        here = model_of == model
        mine = v[here]
        models[model]["delivery"] = {d.value: int((mine == d.value).sum()) for d in delivery.Delivery}
        for name in READER:  # the reader's figures, on the same (sampled) requests as the delivery verdicts
            models[model][name] = stats(read[name][here])
    out = delivery.summary(shape, v)
    out["counts"]["short"] = int(len(measured) - ok.sum())
    out["sampled"] = int(judge.size) if sampled else None
    return out


def build_summary(run: Run | Path, warmup: float | None = None) -> tuple[dict, dict]:
    """The run's summary, and each model's pooled gap stats (with the gap chart's CDF points)."""
    if not isinstance(run, Run):
        run = open_run(run, warmup)
    run_dir, meta, df, measured, warm_df, warm = run.path, run.meta, run.records, run.measured, run.warmup, run.warmup_s
    slos = [parse_slo(s) for s in meta.get("slos", [])]
    cpu = (meta.get("collector") or {}).get("cpu_max") or 0.0
    warnings = list(meta.get("warnings") or [])
    models = {}
    gaps = gap_summaries(measured.loc[measured["error"].isna(), ["model"]], "model")  # one pass over the gaps, every model
    for model, g in groups_of(measured, "model", SUMMARY_COLS):
        models[model] = model_summary(g, slos, gaps=gaps[model].stats if model in gaps else False)
    overall = model_summary(measured, [], gaps=False) if len(models) > 1 else None  # the all-models row (no pooled gap pass)
    t_from = float(measured["t_wall_start"].min()) if len(measured) else None
    timing = uncertainty(run_dir, t_from)
    reasons = []
    if cpu >= CPU_UNTRUSTED:
        reasons.append(f"the load generator's CPU reached {cpu:.0f}%")
    lag = untrusted_reason(
        timing,
        [x.value for x in slos if x.metric in FIRST_PART and x.op in ("<=", "<")],
        [m["ttfc_ms"]["p50"] for m in models.values()],
    )
    if lag:
        reasons.append(lag)
    offered, not_sent = meta.get("offered"), int(meta.get("not_sent") or 0)
    unsent_waits = [m["longest_unsent_wait_ms"] or 0 for m in models.values()]
    if (
        offered
        and not_sent
        and (not_sent > NOT_SENT_UNTRUSTED * offered or max(unsent_waits, default=0) > NOT_SENT_WAIT_S * 1000)
    ):
        reasons.append(f"the generator could not send what it offered (offered {offered}, sent {offered - not_sent})")
    warnings.extend(protocol_warnings(measured))
    if (w := silent_streams_warning(measured, meta)) is not None:
        warnings.append(w)
    delivery_summary = stream_delivery(measured, models)
    if (w := delivery.warning(delivery_summary)) is not None:
        warnings.append(w)
    overhead = route_overhead(run_dir, measured)
    for model, m in models.items():
        got = ((overhead or {}).get("models") or {}).get(model)
        if got is not None:
            m["route_overhead_ms"] = got["route_overhead_ms"]
    if any(x.metric in LATER for x in slos):  # judged now that pairs and readers are known ("not judged" without)
        for m in models.values():
            m["slo_verdicts"] = [slo_verdicts(m, [x])[0] if x.metric in LATER else v for x, v in zip(slos, m["slo_verdicts"])]
    untrusted = bool(reasons)
    if untrusted:
        warnings.insert(
            0, "Numbers not trustworthy: " + "; ".join(reasons) + ". Add worker processes (--processes) or lower the load."
        )
    summary = {
        "run_id": meta.get("run_id", run_dir.name),
        "scenario": (meta.get("scenario") or {}).get("name"),
        "host": meta.get("host"),
        "warmup_s": warm,
        "records": int(len(df)),
        "measured_requests": int(len(measured)),
        "warmup_requests": int(len(warm_df)),
        "generator_cpu_max": cpu,
        "untrusted": untrusted,
        "untrusted_reasons": reasons,
        "warnings": warnings,
        "timing": timing,
        "server": server_summary(run_dir, t_from),
        "prefix_cache": prefix_cache(run_dir),
        "delivery": delivery_summary,
        "route_overhead": overhead,  # the server's own hit rate over the run, where it publishes one
        "cache_salt": ((meta.get("route") or {}).get("cache_salt") or {"mode": "none"}).get("mode"),
        "offered": offered,
        "not_sent": not_sent,
        "min_samples": MIN_SAMPLES,
        "slos": [s.text for s in slos],
        "models": models,
        "all_models": overall,
        "failures": failures(measured),
        "started_utc": _utc(meta.get("started")),
        "ended_utc": _utc(meta.get("ended")),
        "cut_off": int((measured["error"] == ErrorClass.cancelled).sum()),
        "not_sent_measured": int((measured["error"] == ErrorClass.not_sent).sum()),
        "worker_lost": int((measured["error"] == ErrorClass.worker_lost).sum()),
        "ok_requests": int(sum(m["ok"] for m in models.values())),
        "slo_ok": all(v["ok"] for m in models.values() for v in m["slo_verdicts"]) if slos else None,
    }
    return summary, gaps


def silent_streams_warning(measured: pd.DataFrame, meta: dict) -> str | None:
    """Streams that went silent after they began (``stall``): what the Neptun app does when its
    backend fails mid-stream (it leaves the response open). Said in every output, not only counted."""
    if measured.empty:
        return None
    stalled = measured["error"] == ErrorClass.stall
    n = int(stalled.sum())
    if not n:
        return None
    began = int((stalled & (measured["chunks"].fillna(0) > 0)).sum())
    live = int((~measured["error"].isin(NOT_LIVE)).sum())
    limit = (meta.get("timeouts") or {}).get("stall")
    return (
        f"{n} of {live} streams went silent ({began} after their first part) and are counted as errors (stall): the "
        "Neptun app leaves a stream open and silent when its model backend fails mid-stream"
        + (f"; in closed loop each held its user for up to the {limit:g} s --stall-timeout" if limit else "")
    )


def protocol_warnings(df: pd.DataFrame) -> list[str]:
    """A 2xx answer with no content part, in most requests: the harness is probably reading the
    stream as the wrong format. Say so, instead of a silent column of ``truncated``."""
    status = df["status"]
    ok_m = ((df["error"] != ErrorClass.not_sent) & (status >= 200) & (status < 300)).to_numpy()
    empty_m = ok_m & (df["chunks"].fillna(0) == 0).to_numpy()
    n_ok, n_empty = int(ok_m.sum()), int(empty_m.sum())
    if n_ok < 5 or n_empty <= n_ok / 2:
        return []
    ok_status, empty = range(n_ok), df.loc[empty_m, ["protocol", "content_type"]]
    seen = ", ".join(sorted(map(str, empty["protocol"].dropna().unique()))) or "?"
    types = ", ".join(sorted(map(str, empty["content_type"].dropna().unique()))) or "?"
    return [
        f"{len(empty)} of {len(ok_status)} answers with a 2xx status held no content part the decoder understood "
        f"(decoded as {seen}; content type {types}): is this the right protocol? Try --protocol aisdk, sse, ui or openai."
    ]


def failures(df: pd.DataFrame) -> list[dict]:
    """Per error class: how many, which models, and one example's detail and first bytes of body."""
    errs = df[df["error"].notna() & ~df["error"].isin(NOT_LIVE)]
    out = []
    for cls, g in errs.groupby("error", observed=True):
        first = g.iloc[0]
        head = first.get("body_head")
        out.append(
            {
                "error": str(cls),
                "count": int(len(g)),
                "models": sorted(map(str, g["model"].unique())),
                "status": int(first["status"]) if first["status"] == first["status"] and first["status"] else None,
                "detail": str(first.get("error_detail") or ""),
                "body_head": head if isinstance(head, str) else None,
            }
        )
    return sorted(out, key=lambda x: -x["count"])


def _utc(t) -> str | None:
    import datetime as dt

    return dt.datetime.fromtimestamp(float(t), dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC") if t else None


# The headline: (metric, statistic) pairs, titled by the catalogue; the console shows the first six.
HEADLINE = [
    ("ttfc_ms", "p50"),
    ("ttfc_ms", "p95"),
    ("ttfc_ms", "p99"),
    ("e2e_ms", "p50"),
    ("tpot_ms", "p50"),
    ("gaps_ms", "p99"),
    ("decode_tps", "p50"),
    ("output_tps", ""),
    ("goodput", ""),
]
CONSOLE = [("ttfc_ms", "p50"), ("ttfc_ms", "p95"), ("ttfc_ms", "p99"), ("decode_tps", "p50"), ("output_tps", "")]


def _key(metric: str, stat: str) -> str:
    return f"{metric}:{stat}" if stat else metric


def headline_table(summary: dict) -> pd.DataFrame:
    rows = []
    every = list(summary["models"].items()) + ([("all models", summary["all_models"])] if summary.get("all_models") else [])
    for model, s in every:
        row = {"model": model, "requests": s["requests"], "errors": s["errors"]}
        for metric, stat in HEADLINE:
            row[_key(metric, stat)] = s[metric][stat] if stat else s[metric]
        rows.append(row)
    return pd.DataFrame(rows)


def headline_headers(pairs=HEADLINE) -> list[str]:
    """Column titles from the catalogue; a repeated metric shows only its statistic."""
    out, last = [], None
    for metric, stat in pairs:
        out.append(stat if metric == last else label(metric, stat))
        last = metric
    return out


def _fmt(v) -> str:
    return num(v)


def console_table(summary: dict) -> str:
    t = headline_table(summary)
    if t.empty:
        return "(no measured requests)"
    cols = ["model", "requests", "errors", *(_key(m, st) for m, st in CONSOLE)]
    heads = ["model", "requests", "errors", *headline_headers(CONSOLE)]
    cells = [[_fmt(r[c]) for c in cols] for _, r in t.iterrows()]
    widths = [max(len(h), *(len(row[i]) for row in cells)) for i, h in enumerate(heads)]
    line = lambda vals: "  ".join(v.ljust(w) if i == 0 else v.rjust(w) for i, (v, w) in enumerate(zip(vals, widths)))  # noqa: E731
    table = "\n".join([line(heads), line(["-" * w for w in widths])] + [line(r) for r in cells])
    return table + "\n" + counts_line(summary)


def counts_line(summary: dict) -> str:
    """Why the table's request count differs from the progress line's: warm-up, cut off, not sent."""
    return (
        f"{summary['records']} requests recorded: {summary['warmup_requests']} in the warm-up ({summary['warmup_s']:.0f} s, "
        f"left out), {summary.get('cut_off', 0)} cut off by the run's end, {summary.get('not_sent_measured', 0)} never sent"
        + (f", {summary['worker_lost']} in flight on a worker that died (outcome unknown)" if summary.get("worker_lost") else "")
        + "; the table counts the rest. TTFC also counts streams cut off after their first part."
    )


def markdown(summary: dict) -> str:
    t = headline_table(summary)
    out = [f"### Benchmark {summary['run_id']} ({summary['scenario']})", ""]
    if summary["untrusted"]:
        out += [f"> **Numbers not trustworthy:** {'; '.join(summary['untrusted_reasons'])}.", ""]
    for w in summary["warnings"]:
        if not w.startswith("Numbers not trustworthy"):
            out += [f"> ⚠️ {w}", ""]
    out += overhead_markdown(summary.get("route_overhead"))
    out += reading.markdown(summary["models"])
    if summary.get("prefix_cache"):
        pc = summary["prefix_cache"]
        out += [
            f"Server prefix cache: {pc['hit_rate']:.1%} of prompt tokens hit ({pc['source']}); --cache-salt {summary.get('cache_salt', 'none')}.",
            "",
        ]
    if summary["models"] and not summary["ok_requests"]:
        out += (
            ["**No request succeeded.** Failures:", ""]
            + [
                f"- `{f['error']}` × {f['count']}: {f['detail']}"
                + (f" — body starts `{f['body_head'][:120]}`" if f["body_head"] else "")
                for f in summary["failures"]
            ]
            + [""]
        )
    pairs = [p for p in HEADLINE if p[0] not in ("e2e_ms", "tpot_ms")]  # a pull-request comment stays narrow
    out.append("| model | req | err | " + " | ".join(label(m, st) for m, st in pairs) + " |")
    out.append("|---|---:|---:|" + "---:|" * len(pairs))
    for _, r in t.iterrows():
        out.append(
            f"| {r['model']} | {r['requests']} | {r['errors']} | " + " | ".join(_fmt(r[_key(m, st)]) for m, st in pairs) + " |"
        )
    if summary["slos"]:
        out += [
            "",
            "SLOs: "
            + ", ".join(
                f"{v['slo']} {'✅' if v['ok'] else '❌'} ({m.split('/')[-1]}: {v.get('observed_text') or _fmt(v['observed'])}{'' if v['ok'] else ', ' + v['status']})"
                for m, s in summary["models"].items()
                for v in s["slo_verdicts"]
            ),
        ]
    waiting = {m: s["still_waiting"] for m, s in summary["models"].items() if s["still_waiting"]}
    if waiting:
        out += [
            "",
            "Still waiting for a first chunk at the end (counted against TTFC SLOs when past the bound): "
            + ", ".join(
                f"{m.split('/')[-1]} {n} (longest {summary['models'][m]['longest_wait_ms'] / 1000:.1f} s)"
                for m, n in waiting.items()
            ),
        ]
    if summary.get("timing"):
        t = summary["timing"]
        out += [
            "",
            f"Timing uncertainty of this run: {t['uncertainty_ms']:.2f} ms (p99.9 of the generator's scheduling lag; p99 {t['lag_p99_ms']:.2f} ms).",
        ]
    if summary.get("offered"):
        out += ["", f"Open loop: offered {summary['offered']}, sent {summary['offered'] - summary['not_sent']}."]
    out += ["", f"Times in ms; warm-up of {summary['warmup_s']:.0f} s excluded. Definitions: docs/METRICS.md."]
    return "\n".join(out) + "\n"


def _env() -> Environment:
    return environment()


def write_report(run_dir: Path, warmup: float | None = None) -> tuple[Path, dict]:
    """Build every output of the report; return the path of report.html and the summary."""
    run = open_run(run_dir, warmup)
    run_dir, df, meta, warm = run.path, run.records, run.meta, run.warmup_s
    duration = float(meta.get("duration_s") or max(1.0, df["t_wall_end"].max() - df["t_wall_start"].min() if len(df) else 1.0))
    ttfc_slo = next((parse_slo(s).value for s in meta.get("slos", []) if s.startswith("ttfc_ms")), None)
    charts_dir = run_dir / "charts"
    measured, warm_df = run.measured, run.warmup
    charts_job = _Charts(df, measured, max(1.0, round(duration / 40)), charts_dir, ttfc_slo, warm)
    summary, gaps = build_summary(run)
    # the gap CDF (from the gap pass) and the model ranking are drawn by the chart process too, each as
    # soon as it is known: this one never imports matplotlib (0.6 s) nor draws (0.7 s at 10^6 records)
    charts_job.give(
        "gaps", ({m: g.cdf_ms for m, g in gaps.items()}, sorted(map(str, measured["model"].unique()))) if len(measured) else None
    )
    by_turn = by_group(measured, "turn", "turn")
    by_turn["turn"] = by_turn["turn"] + 1  # turns as a person counts them
    cols = ["model", "error", "prompt_chars", "ttfc_ms", "decode_tps"]  # the columns by_group reads, not all 40
    by_prompt = by_group(measured[cols].assign(prompt_bucket=prompt_buckets(measured)), "prompt_bucket", "prompt_chars")
    warm_table = (
        headline_table({"models": {m: model_summary(g, [], gaps=False) for m, g in groups_of(warm_df, "model", SUMMARY_COLS)}})
        if len(warm_df)
        else pd.DataFrame()
    )

    models_result = None
    if measured["model"].nunique() >= 2:
        from bench.analysis.pairing import compare_frame

        models_result = compare_frame(measured)
    charts_job.give("ranking", models_result["ranking"] if models_result is not None else None)
    charts = charts_job.finish()
    (run_dir / "summary.json").write_text(json.dumps(summary, indent=2, default=float))
    headline_table(summary).to_csv(run_dir / "summary.csv", index=False)
    (run_dir / "summary.md").write_text(markdown(summary))
    svgs = [(title, (charts_dir / f"{stem}.svg").read_text()) for stem, title in charts]
    page = (
        _env()
        .get_template("report.html")
        .render(
            s=summary,
            meta=meta,
            charts=svgs,
            fmt=_fmt,
            counts=counts_line(summary),
            headline_heads=headline_headers(),
            headline_keys=[_key(m, st) for m, st in HEADLINE],
            metrics_url=METRICS_URL,
            mc=models_result,
            headline=headline_table(summary),
            by_turn=by_turn,
            by_prompt=by_prompt,
            warm=warm_table,
            meta_json=html.escape(json.dumps({k: v for k, v in meta.items() if k != "collector"}, indent=2, default=str)),
        )
    )
    path = run_dir / "report.html"
    path.write_text(page)
    if METRICS_DOC.is_file():
        (run_dir / "METRICS.md").write_text(METRICS_DOC.read_text())
    return path, summary


LATE = ("gaps", "ranking")  # what the parent hands the chart process, in this order


def _render(
    df: pd.DataFrame,
    measured: pd.DataFrame,
    window_s: float,
    charts_dir: Path,
    ttfc_slo: float | None,
    warmup_s: float = 0.0,
    late: Callable[[], tuple[str, Any]] | None = None,
) -> None:
    """Every chart, in the report's order. ``late`` returns, call by call, what the parent computes
    meanwhile: ("gaps", (CDF points per model, models)), then ("ranking", the model ranking)."""
    from bench.analysis.charts import gaps_chart, make_charts, models_chart

    ts = time_series(df, window_s) if len(df) else pd.DataFrame()  # only the over-time chart reads it
    users = None
    collector = read_run_json(charts_dir.parent).get("collector") or {}
    wire = df.loc[df["error"] != ErrorClass.not_sent, "t_wall_start"] if len(df) else pd.Series(dtype=float)
    if collector.get("users_over_time") and collector.get("started") and len(wire):
        shift = float(collector["started"]) - float(wire.min())  # onto the time series' origin (its first request)
        users = [(t + shift, u) for t, u in collector["users_over_time"]]
    del wire
    made = make_charts(measured, ts, charts_dir, ttfc_slo, warmup_s, users) if len(measured) else []
    from bench.servermetrics import load, roles

    server = roles(load(charts_dir.parent))
    if not server.empty and len(df):
        from bench.analysis.charts import server_chart

        made.append((server_chart(server, float(df["t_wall_start"].min()), charts_dir), "The server's own view"))
    for _ in LATE:
        if late is None:
            break
        try:
            key, value = late()
        except EOFError:  # the parent failed before it could send: nothing more to draw
            break
        if key == "gaps" and value is not None:  # shown after the TTFC charts
            stems = [stem for stem, _ in made]
            at = stems.index("ttfc_vs_prompt") + 1 if "ttfc_vs_prompt" in stems else len(made)
            made.insert(at, gaps_chart(value[0], value[1], charts_dir))
        elif key == "ranking" and value is not None:
            models_chart(value, charts_dir)
            made.append(("models", "Models ranked by TTFC, paired by conversation and turn"))
    charts_dir.mkdir(parents=True, exist_ok=True)
    (charts_dir / "charts.json").write_text(json.dumps(made))


class _Charts:
    """The report's charts, rendered in a forked child (sharing the records' pages) on the other core
    while this process computes the numbers; what the numbers give the charts reaches it on a pipe.
    One child: two measured slower here, the parent needs a core. Without fork: drawn at ``finish``."""

    def __init__(self, df, measured, window_s: float, charts_dir: Path, ttfc_slo, warmup_s: float = 0.0) -> None:
        import multiprocessing as mp

        self.charts_dir = charts_dir
        (charts_dir / "charts.json").unlink(missing_ok=True)
        self.args: tuple[Any, ...] = (df, measured, window_s, charts_dir, ttfc_slo, warmup_s)
        self.given: list[tuple[str, Any]] = []
        self.proc = None
        if "fork" in mp.get_all_start_methods():
            ctx = mp.get_context("fork")
            receive, self.send = ctx.Pipe(duplex=False)
            self.proc = ctx.Process(target=_chart_child, args=(self.args, receive, self.send), daemon=True)
            self.proc.start()
            receive.close()
            self.args = ()  # the child holds them; this process lets go of nothing it still needs
            # sent from a thread: a pipe holds 64 KiB, the gap CDF more, and the child reads only once its
            # own charts are drawn (sending from here blocked the numbers for 1.8 s at 10^6 records)
            import queue
            import threading

            self._out: queue.Queue[tuple[str, Any] | None] = queue.Queue()
            self._sender = threading.Thread(target=self._send_all, daemon=True)
            self._sender.start()

    def _send_all(self) -> None:
        while (item := self._out.get()) is not None:
            try:
                self.send.send(item)
            except (BrokenPipeError, OSError):
                return  # the child is gone: its exit code says why

    def give(self, key: str, value: Any) -> None:
        if self.proc is None:
            self.given.append((key, value))
        else:
            self._out.put((key, value))

    def finish(self) -> list[tuple[str, str]]:
        if self.proc is None:
            given = iter(self.given)
            df, measured, window_s, charts_dir, ttfc_slo, warmup_s = self.args
            _render(df, measured, window_s, charts_dir, ttfc_slo, warmup_s, late=lambda: next(given))
        else:
            self._out.put(None)
            self._sender.join()
            self.proc.join()
            if self.proc.exitcode != 0:
                raise RuntimeError(f"chart rendering failed (exit code {self.proc.exitcode})")
        path = self.charts_dir / "charts.json"
        return [tuple(x) for x in json.loads(path.read_text())] if path.is_file() else []


def _chart_child(args: tuple, receive, send) -> None:
    send.close()  # the parent's end: closed here, so a parent that fails before sending ends this child's wait
    df, measured, window_s, charts_dir, ttfc_slo, warmup_s = args
    _render(df, measured, window_s, charts_dir, ttfc_slo, warmup_s, late=receive.recv)

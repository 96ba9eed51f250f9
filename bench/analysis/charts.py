"""matplotlib charts of a run, each saved as PNG and SVG, one colour per model across all of them."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402


def colours(models: list[str]) -> dict[str, str]:
    cmap = plt.get_cmap("tab10")
    return {m: matplotlib.colors.to_hex(cmap(i % 10)) for i, m in enumerate(sorted(models))}


def _save(fig, out: Path, name: str) -> str:
    fig.tight_layout()
    fig.savefig(out / f"{name}.png", dpi=96)
    fig.savefig(out / f"{name}.svg")
    plt.close(fig)
    return name


MAX_POINTS = 4000  # a CDF drawn from this many exact quantiles is indistinguishable from all samples
MAX_SCATTER = 20000
# legends beside the axes, never on the data; loc="best" would also cost about a second per chart of many points
BESIDE = {"fontsize": 8, "loc": "upper left", "bbox_to_anchor": (1.01, 1.0), "borderaxespad": 0}


def cdf_points(v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(x, share) of the empirical CDF; past MAX_POINTS, exact order statistics at even ranks."""
    v = np.sort(np.asarray(v, dtype=float))
    n = v.size
    if n <= MAX_POINTS:
        return v, np.arange(1, n + 1) / n
    idx = np.unique(np.linspace(0, n - 1, MAX_POINTS).astype(np.int64))
    return v[idx], (idx + 1) / n


def _sample(df: pd.DataFrame, n: int = MAX_SCATTER) -> pd.DataFrame:
    return df.sample(n, random_state=0) if len(df) > n else df


def _short(model: str) -> str:
    return model.split("/", 1)[-1]


def gaps_chart(cdfs: dict[str, tuple[np.ndarray, np.ndarray]], models: list[str], out: Path) -> tuple[str, str]:
    """Gap CDF per model from exact quantiles computed over every gap (``bench.analysis.gapstats``)."""
    out.mkdir(parents=True, exist_ok=True)
    col = colours(models)
    fig, ax = plt.subplots(figsize=(8, 4.5))
    for m in models:
        x, y = cdfs.get(m, ((), ()))
        if len(x):
            ax.step(x, y, where="post", color=col[m], label=_short(m))
    ax.set_xscale("log")
    ax.set(
        xlabel="inter-chunk gap (ms, log scale; gaps of parts read together omitted)",
        ylabel="share of gaps",
        title="Inter-chunk gap distribution",
    )
    ax.grid(alpha=0.3, which="both")
    ax.legend(**BESIDE)
    return _save(fig, out, "gaps_cdf"), "Inter-chunk gap distribution"


def _ttfc_cdf(df: pd.DataFrame, models: list[str], col: dict, out: Path, slo_ttfc: float | None) -> str:
    """The same samples as the tables' TTFC percentiles (``metric_samples``), so n agrees."""
    from bench.analysis.summaries import metric_samples

    fig, ax = plt.subplots(figsize=(8, 4.5))
    for m in models:  # compared on the categorical's codes: its to_numpy() is an object array (+128 MB at 10^6)
        v = metric_samples(df[(df["model"] == m).to_numpy()], "ttfc_ms")
        if v.size:
            x, y = cdf_points(v)
            ax.step(x, y, where="post", color=col[m], label=f"{_short(m)} (n={v.size})")
    if slo_ttfc:
        ax.axvline(slo_ttfc, color="crimson", ls="--", lw=1, label=f"SLO {slo_ttfc:g} ms")
    ax.set_xscale("log")
    ax.set(xlabel="time to first chunk (ms, log scale)", ylabel="share of requests", title="TTFC distribution per model (CDF)")
    ax.grid(alpha=0.3, which="both")
    ax.legend(**BESIDE)
    return _save(fig, out, "ttfc_cdf")


def _over_time(
    ts: pd.DataFrame, models: list[str], col: dict, out: Path, warmup_s: float = 0.0, users: list[tuple[float, int]] | None = None
) -> str:
    """TTFC, throughput, completed requests and streams in flight over the run; the warm-up shaded;
    Locust's running users (all workers) beside the streams, so a lost worker's load drop shows."""
    fig, axes = plt.subplots(4, 1, figsize=(8, 9), sharex=True)
    a1, a2, a3, a4 = axes
    for m in models:
        s = ts[ts["model"] == m]
        if s.empty:
            continue
        a1.plot(s["t"], s["ttfc_p95_ms"], color=col[m], label=f"{_short(m)} p95")
        a1.plot(s["t"], s["ttfc_p50_ms"], color=col[m], ls=":", label=f"{_short(m)} p50")
        a2.plot(s["t"], s["output_tps"], color=col[m], label=_short(m))
        a3.plot(s["t"], s["requests_per_s"], color=col[m], label=_short(m))
        a4.plot(s["t"], s["active_streams"], color=col[m], label=_short(m))
    a1.set(ylabel="TTFC (ms)", title="Over time (shaded: the warm-up, left out of the headline numbers)")
    a2.set(ylabel="output tokens/s\n(as streamed)")
    a3.set(ylabel="requests/s\n(completed)")
    a4.set(xlabel="seconds since start", ylabel="streams in flight")
    if users:
        t, u = zip(*users)
        a4.step(t, u, where="post", color="black", lw=1, ls="--", label="users running (Locust)")
        a4.legend(**{**BESIDE, "fontsize": 7})
    for a in axes:
        a.grid(alpha=0.3)
        if warmup_s:
            a.axvspan(0, warmup_s, color="#999", alpha=0.15, lw=0)
    a1.legend(**{**BESIDE, "fontsize": 7})
    return _save(fig, out, "over_time")


def _ttfc_vs_prompt(ok: pd.DataFrame, models: list[str], col: dict, out: Path) -> str:
    fig, ax = plt.subplots(figsize=(8, 4.5))
    shown = _sample(ok)
    for m in models:
        s = shown[shown["model"] == m]
        ax.scatter(s["prompt_chars"], s["ttfc_ms"], s=8, alpha=0.5, color=col[m], label=_short(m), rasterized=len(shown) > 2000)
    title = "TTFC against prompt size" + (f" ({len(shown):,} of {len(ok):,} requests)" if len(shown) < len(ok) else "")
    ax.set(xlabel="prompt size (characters of the whole history)", ylabel="TTFC (ms)", title=title)
    ax.grid(alpha=0.3)
    ax.legend(**BESIDE)
    return _save(fig, out, "ttfc_vs_prompt")


def _errors(live: pd.DataFrame, col: dict, out: Path) -> str:
    errs = live[live["error"].notna()]
    fig, ax = plt.subplots(figsize=(8, 3.5))
    if len(errs):
        table = errs.groupby(["error", "model"], observed=True).size().unstack(fill_value=0)
        left = np.zeros(len(table))
        for m in table.columns:
            ax.barh(table.index, table[m], left=left, color=col[m], label=_short(m))
            left += table[m].to_numpy()
        ax.legend(fontsize=8)
    else:
        ax.text(0.5, 0.5, "no errors", ha="center", va="center", transform=ax.transAxes)
    ax.set(xlabel="failed requests", title="Errors by class")
    return _save(fig, out, "errors")


def server_chart(table: pd.DataFrame, t0: float, out: Path) -> str:
    """The server's own view over the run: streams running and waiting, KV cache, tokens/s."""
    out.mkdir(parents=True, exist_ok=True)  # a run with no measured request still has the server's view
    panels = [c for c in ("running", "waiting", "kv_cache", "tokens_per_s") if c in table]
    fig, axes = plt.subplots(len(panels), 1, figsize=(8, 1.7 * len(panels) + 0.8), sharex=True, squeeze=False)
    labels = {
        "running": "requests running",
        "waiting": "requests waiting",
        "kv_cache": "KV cache use",
        "tokens_per_s": "tokens/s (server)",
    }
    for ax, c in zip(axes[:, 0], panels):
        ax.plot(table.index - t0, table[c], color="#444")
        ax.set_ylabel(labels[c], fontsize=8)
        ax.grid(alpha=0.3)
    axes[0, 0].set_title("The server's own view (its Prometheus metrics, scraped every second)")
    axes[-1, 0].set_xlabel("seconds since start")
    return _save(fig, out, "server")


def make_charts(
    df: pd.DataFrame,
    ts: pd.DataFrame,
    out: Path,
    slo_ttfc: float | None = None,
    warmup_s: float = 0.0,
    users: list[tuple[float, int]] | None = None,
) -> list[tuple[str, str]]:
    """Draw the report's charts; return (file stem, title) pairs in the report's order.

    ``df`` holds the measured requests (warm-up excluded); ``ts`` the whole run over time.
    """
    from bench.analysis.summaries import live_rows

    out.mkdir(parents=True, exist_ok=True)
    df = df[["model", "error", "ttfc_ms", "prompt_chars"]]  # what the charts read: copies of 4 columns, not of 40
    live = live_rows(df)
    ok = live[live["error"].isna()]
    models = sorted(set(map(str, df["model"].unique())) | (set(map(str, ts["model"].unique())) if not ts.empty else set()))
    col = colours(models)
    made = []
    if len(ok):  # no panel without data: a run where nothing succeeded shows its errors
        made.append((_ttfc_cdf(df, models, col, out, slo_ttfc), "TTFC distribution per model"))
    if not ts.empty:
        made.append(
            (
                _over_time(ts, models, col, out, warmup_s, users),
                "TTFC, throughput, requests, streams in flight and users over time",
            )
        )
    if len(ok):
        made.append((_ttfc_vs_prompt(ok, models, col, out), "TTFC against prompt size"))
    made.append((_errors(live, col, out), "Errors by class"))
    return made


def sweep_chart(
    levels: pd.DataFrame,
    out: Path,
    metric: str,
    slo_value: float | None,
    capacity: dict[str, float] | None,
    x: str = "level",
    xlabel: str = "concurrent conversations",
    knees: dict[str, float] | None = None,
) -> str:
    """Latency percentiles and throughput against load, with the SLO line and the found capacity."""
    out.mkdir(parents=True, exist_ok=True)
    models = sorted(levels["model"].unique())
    col = colours(models)
    fig, (a1, a2) = plt.subplots(2, 1, figsize=(8, 6.5), sharex=True)
    for m in models:
        s = levels[levels["model"] == m].sort_values(x)
        a1.plot(s[x], s[f"{metric}_p95"], marker="o", color=col[m], label=f"{_short(m)} p95")
        a1.plot(s[x], s[f"{metric}_p50"], marker=".", ls=":", color=col[m], label=f"{_short(m)} p50")
        a2.plot(s[x], s["output_tps"], marker="o", color=col[m], label=_short(m))
        if capacity and capacity.get(m):
            for a in (a1, a2):
                a.axvline(capacity[m], color=col[m], ls="--", lw=1)
        if knees and knees.get(m):  # where TTFC p50 leaves 1.5x its floor
            k = knees[m]
            y = np.interp(k, s[x].to_numpy(dtype=float), s[f"{metric}_p50"].to_numpy(dtype=float))
            a1.scatter([k], [y], marker="v", s=70, color=col[m], zorder=5, label=f"{_short(m)} knee")
    if slo_value:
        a1.axhline(slo_value, color="crimson", ls="--", lw=1, label=f"SLO {slo_value:g}")
    a1.set(ylabel=metric, title=f"{metric} and throughput against load (dashed: capacity found; ▼ knee)")
    a2.set(xlabel=xlabel, ylabel="output tokens/s")
    for a in (a1, a2):
        a.grid(alpha=0.3)
    a1.legend(**{**BESIDE, "fontsize": 7})
    return _save(fig, out, "capacity")


def compare_chart(base: pd.DataFrame, cand: pd.DataFrame, out: Path) -> str:
    """Overlaid TTFC CDFs, baseline solid and candidate dashed, per model; returns the SVG text."""
    from bench.analysis.summaries import metric_samples

    models = sorted(set(base["model"]) | set(cand["model"]))
    col = colours(models)
    fig, ax = plt.subplots(figsize=(8, 4.5))
    for m in models:
        for df, ls, tag in ((base, "-", "baseline"), (cand, "--", "candidate")):
            v = metric_samples(df[df["model"] == m], "ttfc_ms")  # the samples the gate judges
            if v.size:
                x, y = cdf_points(v)
                ax.step(x, y, where="post", ls=ls, color=col[m], label=f"{_short(m)} {tag}")
    ax.set_xscale("log")
    ax.set(
        xlabel="time to first chunk (ms, log scale)",
        ylabel="share of requests",
        title="TTFC: baseline (solid) vs candidate (dashed)",
    )
    ax.grid(alpha=0.3, which="both")
    ax.legend(**{**BESIDE, "fontsize": 7})
    _save(fig, out, "compare_ttfc")
    return (out / "compare_ttfc.svg").read_text()


def models_chart(ranking: list[dict], out: Path) -> str:
    """Median TTFC and decode speed per model with 95% bootstrap intervals."""
    out.mkdir(parents=True, exist_ok=True)
    models = [r["model"] for r in ranking]
    col = colours(models)
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(10, 0.6 * len(models) + 2))
    for ax, metric, label in ((a1, "ttfc_ms", "median TTFC (ms)"), (a2, "decode_tps", "median decode speed (tokens/s)")):
        for i, r in enumerate(ranking):
            v, (lo, hi) = r[metric], r[f"{metric}_ci"]
            if v is None:
                continue
            ax.barh(i, v, color=col[r["model"]])
            if lo == lo:
                ax.errorbar(v, i, xerr=[[max(0, v - lo)], [max(0, hi - v)]], color="black", capsize=3)
        ax.set_yticks(range(len(models)), [_short(m) for m in models])
        ax.invert_yaxis()
        ax.set(xlabel=label)
        ax.grid(alpha=0.3, axis="x")
    a1.set_title("Models ranked by TTFC (95% CI)")
    return _save(fig, out, "models")

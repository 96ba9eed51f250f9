"""``bench history RESULTS_DIR``: latency across builds, one line per percentile, one point per run.

Every run folder under RESULTS_DIR of one scenario (matched by the scenario file's digest) is read
in a single pyarrow dataset scan (the records carry their run id), its warm-up dropped, and per run
and model: TTFC, TPOT and E2E p50/p95/p99 with a distribution-free 95 % interval for each
percentile (order statistics whose ranks come from the binomial), and the error rate. Runs are
ordered by start time or by git revision order; a run that was a candidate of ``bench compare``
carries the gate's verdict. Writes ``history.csv``, ``history.png`` and ``history.html``.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats as sst

from bench.analysis.summaries import FIRST_PART, NOT_LIVE
from bench.errors import InputError
from bench.schema import ErrorClass
from bench.stats import PERCENTILES, segmented

METRICS = ("ttfc_ms", "tpot_ms", "e2e_ms")
PCTS = tuple(int(PERCENTILES[k]) for k in ("p50", "p95", "p99"))  # of the statistics catalogue (bench.stats): drawn


def find_runs(root: Path) -> list[dict]:
    """Run folders under ``root`` (any depth), with what history needs from their run.json."""
    out = []
    for meta_path in sorted(Path(root).rglob("run.json")):
        d = meta_path.parent
        if d.is_symlink() or not (d / "requests.parquet").is_file() or any(p.is_symlink() for p in d.parents):
            continue
        try:
            meta = json.loads(meta_path.read_text())
        except ValueError:
            continue
        verdict = None
        cmp = d / "compare" / "compare.json"
        if cmp.is_file():
            try:
                verdict = json.loads(cmp.read_text()).get("verdict")
            except ValueError:
                pass
        out.append(
            {
                "dir": str(d),
                "run_id": meta.get("run_id", d.name),
                "started": meta.get("started") or 0.0,
                "git": meta.get("git"),
                "build": (meta.get("build") or {}).get("id"),
                "digest": (meta.get("scenario") or {}).get("sha256"),
                "scenario": (meta.get("scenario") or {}).get("name"),
                "warmup_s": float(meta.get("warmup_s") or 0.0),
                "verdict": verdict,
            }
        )
    return out


def _grouped_percentiles(df: pd.DataFrame, metric: str, keep: pd.Series) -> pd.DataFrame:
    """Per (run, model): numpy's percentile of ``metric`` and a distribution-free 95 % interval (the
    order statistics at the binomial's 2.5 % and 97.5 % points for n samples and probability q),
    computed for every group at once from one sort."""
    sub = df.loc[keep & df[metric].notna(), ["run_id", "model", metric]].sort_values(["run_id", "model", metric])
    keys = sub.groupby(["run_id", "model"], sort=False).size()
    n = keys.to_numpy()
    starts = np.concatenate(([0], np.cumsum(n)[:-1]))
    v = sub[metric].to_numpy(dtype=float)
    out = pd.DataFrame(index=keys.index)
    for q in PCTS:
        out[f"{metric}_p{q}"] = segmented(v, starts, n, q)
        k_lo = sst.binom.ppf(0.025, n, q / 100).astype(np.int64)
        k_hi = sst.binom.ppf(0.975, n, q / 100).astype(np.int64)
        out[f"{metric}_p{q}_lo"] = v[starts + np.clip(k_lo - 1, 0, n - 1)]
        out[f"{metric}_p{q}_hi"] = v[starts + np.clip(k_hi, 0, n - 1)]
    return out


def history(
    root: Path, digest: str | None = None, order: str = "time", builds: list[str] | None = None
) -> tuple[pd.DataFrame, list[dict]]:
    """One row per run and model: percentiles with intervals, error rate, verdict.

    ``order``: ``time`` (start time), ``build`` (the build under test, ``run.json`` ``build.id``: in the
    order of ``builds`` when given, e.g. the app's ``git log --reverse --format=%H``, else in the order each
    build was first run) or ``git`` (the harness's own revision, first seen)."""
    import pyarrow.dataset as ds

    runs = find_runs(root)
    if not runs:
        raise InputError(f"{root}: no run folders (run.json + requests.parquet) found")
    if digest is None:  # the newest run's scenario
        digest = max(runs, key=lambda r: r["started"])["digest"]
    runs = [r for r in runs if r["digest"] == digest]
    by_id = {r["run_id"]: r for r in runs}
    cols = ["run_id", "model", "error", "t_wall_start", *METRICS]
    import pyarrow as pa
    import pyarrow.parquet as pq

    files = [str(Path(r["dir"]) / "requests.parquet") for r in runs]
    # folders written by different versions of the harness differ in columns (and a column's type may have
    # widened): one schema over all of them, columns a folder lacks read as nulls
    schemas = [pq.read_schema(f) for f in files]
    fields = {}
    for sch in schemas:
        for f in sch:
            if f.name in cols and f.name not in fields:
                fields[f.name] = f
    for c in cols:
        fields.setdefault(c, pa.field(c, pa.float64() if c in METRICS else pa.string()))
    schema = pa.schema([fields[c] for c in cols])
    try:
        table = ds.dataset(files, format="parquet", schema=schema).to_table(columns=cols)
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError):  # types that cannot be cast alike: one at a time
        parts = []
        for f in files:
            t = pq.read_table(f, columns=[c for c in cols if c in pq.read_schema(f).names])
            parts.append(
                pa.table(
                    {
                        c: (
                            t.column(c).cast(schema.field(c).type)
                            if c in t.column_names
                            else pa.nulls(len(t), schema.field(c).type)
                        )
                        for c in cols
                    }
                )
            )
        table = pa.concat_tables(parts)
    df = table.to_pandas()
    df["run_id"] = df["run_id"].astype(str)
    df = df[df["run_id"].isin(by_id)]
    warm = df["run_id"].map({k: v["warmup_s"] for k, v in by_id.items()}).astype(float)
    t0 = df.groupby("run_id")["t_wall_start"].transform("min")
    df = df[(df["t_wall_start"] >= t0 + warm) & (df["error"] != ErrorClass.not_sent)]
    err = df["error"]
    live = df[~err.isin(NOT_LIVE)]
    base = live.groupby(["run_id", "model"], sort=False).agg(requests=("error", "size"), errors=("error", "count"))
    base["error_rate"] = base["errors"] / base["requests"]
    parts = [base.drop(columns="errors")]
    for m in METRICS:
        keep = err.isna() | ((err == ErrorClass.cancelled) if m in FIRST_PART else False)
        parts.append(_grouped_percentiles(df, m, keep))
    rows = pd.concat(parts, axis=1).reset_index()
    for field in ("started", "git", "build", "verdict"):
        rows[field] = rows["run_id"].map({k: v[field] for k, v in by_id.items()})
    out = rows
    if order == "build":
        if out["build"].isna().all():
            raise InputError(
                f"{root}: no run records its build (run.json 'build'): pass --build-id to bench run, or set "
                "BENCH_BUILD_ID in the CI job; --order time orders by start time"
            )
        if builds:
            rank = {b: i for i, b in enumerate(builds)}
            key = out["build"].map(rank).fillna(len(rank))  # builds not in the list last, by time
        else:
            key = out.groupby("build", dropna=False)["started"].transform("min")
        out = out.assign(_k=key).sort_values(["_k", "started"]).drop(columns="_k")
    elif order == "git":  # git order: the order the revisions were first seen, oldest first
        first_seen = out.groupby("git")["started"].transform("min")
        out = out.assign(_k=first_seen).sort_values(["_k", "started"]).drop(columns="_k")
    else:
        out = out.sort_values("started")
    return out.reset_index(drop=True), runs


def write_outputs(h: pd.DataFrame, out: Path, order: str) -> dict[str, Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out.mkdir(parents=True, exist_ok=True)
    paths = {"csv": out / "history.csv", "png": out / "history.png", "html": out / "history.html"}
    h.to_csv(paths["csv"], index=False)
    models = list(dict.fromkeys(h["model"]))
    fig, axes = plt.subplots(len(models), 3, figsize=(13, 3.2 * len(models)), squeeze=False)
    run_order = {rid: i for i, rid in enumerate(dict.fromkeys(h["run_id"]))}
    for r, model in enumerate(models):
        g = h[h["model"] == model]
        x = g["run_id"].map(run_order).to_numpy()
        for c, (metric, title) in enumerate((("ttfc_ms", "TTFC (ms)"), ("tpot_ms", "TPOT (ms)"))):
            ax = axes[r, c]
            for q, style in zip(PCTS, ("-", "--", ":")):
                y = g[f"{metric}_p{q}"].to_numpy()
                ax.plot(x, y, style, color="#1f5fa8", label=f"p{q}")
                ax.fill_between(x, g[f"{metric}_p{q}_lo"], g[f"{metric}_p{q}_hi"], color="#1f5fa8", alpha=0.12)
            bad = g["verdict"] == "regression"
            if bad.any():
                ax.scatter(
                    x[bad.to_numpy()], g.loc[bad, f"{metric}_p95"], color="crimson", zorder=5, s=40, label="gate: regression"
                )
            ax.set(
                title=f"{model.split('/')[-1]}: {title}",
                xlabel=f"run ({ {'git': 'harness revision', 'build': 'build'}.get(order, 'time') } order)",
            )
            ax.grid(alpha=0.3)
            ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0))
        ax = axes[r, 2]
        ax.plot(x, 100 * g["error_rate"], color="#b42318")
        ax.set(title=f"{model.split('/')[-1]}: error rate (%)", xlabel="run")
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(paths["png"], dpi=110)
    plt.close(fig)
    import base64

    img = base64.b64encode(paths["png"].read_bytes()).decode()
    cols = [
        "run_id",
        "model",
        "build",
        "git",
        "requests",
        "ttfc_ms_p50",
        "ttfc_ms_p95",
        "ttfc_ms_p99",
        "tpot_ms_p50",
        "e2e_ms_p95",
        "error_rate",
        "verdict",
    ]
    table = h[cols].to_html(index=False, na_rep="–", float_format=lambda v: f"{v:,.3f}" if abs(v) < 1 else f"{v:,.1f}", border=0)
    from bench.analysis.page import render_page

    paths["html"].write_text(
        render_page(
            "Latency history",
            "<h1>Latency history</h1><p>One point per run; bands are distribution-free 95 % intervals of each "
            f"percentile; red points: runs the gate marked as a regression.</p><img src='data:image/png;base64,{img}' style='max-width:100%'>"
            f"{table}",
        )
    )
    return paths

"""``bench models RUN_DIR``: which model answers these conversations fastest?

The same scripted conversations were replayed against several models, so requests pair up by
(conversation, turn). Per pair: the difference in TTFC and in decode speed. Decode speed is
tokens per second of the stream after its first token, which does not depend on how long a
reply is, and TTFC is measured before the reply's length matters; so differences are not an
artefact of one model writing longer answers. The ranking carries bootstrap confidence
intervals over the pairs.
"""

from __future__ import annotations

import json
from pathlib import Path

from bench.analysis.pairing import compare_frame


def compare_models(run_dir: Path, warmup: float | None = None) -> dict:
    from bench.analysis.runfolder import open_run

    run = open_run(run_dir, warmup)
    df = run.measured
    return {"run": str(run_dir), **compare_frame(df)}


def markdown(result: dict) -> str:
    out = [
        "### Models ranked by median TTFC (paired by conversation and turn)",
        "",
        "| rank | model | pairs | TTFC ms [95% CI] | decode tok/s [95% CI] |",
        "|---:|---|---:|---|---|",
    ]
    for i, r in enumerate(result["ranking"], 1):
        t, d = r["ttfc_ms_ci"], r["decode_tps_ci"]
        out.append(
            f"| {i} | {r['model']} | {r['pairs']} | {r['ttfc_ms']:.1f} [{t[0]:.1f}, {t[1]:.1f}] | "
            f"{(r['decode_tps'] or 0):.1f} [{d[0]:.1f}, {d[1]:.1f}] |"
        )
    out += [
        "",
        "| A | B | pairs | TTFC B−A ms [CI] | verdict | decode B−A tok/s [CI] | verdict |",
        "|---|---|---:|---|---|---|---|",
    ]
    for p in result["pairs"]:
        t, d = p["ttfc_ms"], p["decode_tps"]
        fmt = lambda x: "–" if x is None or x != x else f"{x:.1f}"  # noqa: E731
        out.append(
            f"| {p['a']} | {p['b']} | {p['pairs']} | {fmt(t['median_diff_b_minus_a'])} [{fmt(t['ci'][0])}, {fmt(t['ci'][1])}] | {t['verdict']} | "
            f"{fmt(d['median_diff_b_minus_a'])} [{fmt(d['ci'][0])}, {fmt(d['ci'][1])}] | {d['verdict']} |"
        )
    return "\n".join(out) + "\n"


def write_outputs(result: dict, run_dir: Path) -> Path:
    from bench.analysis.charts import models_chart

    (run_dir / "models.json").write_text(json.dumps(result, indent=2, default=float))
    (run_dir / "models.md").write_text(markdown(result))
    models_chart(result["ranking"], run_dir / "charts")
    return run_dir / "models.md"

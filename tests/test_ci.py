"""The regression-run workflow end to end: JUnit verdicts, history across builds, the README's CI example."""

from __future__ import annotations

import json
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

from conftest import bench_cmd, bench_env
from synth import lognormal, row, write_run

ROOT = Path(__file__).resolve().parent.parent


def synth_build(root: Path, k: int, median: float, verdict: str | None = None) -> Path:
    rows = [row("m/mistral", v, t=i * 0.01, chunks=5, gap_ms=median / 20) for i, v in enumerate(lognormal(200, median, seed=k))]
    run = write_run(root / f"run-{k:03d}", rows, started=1_800_000_000 + 3600 * k, git=f"{k:040x}")
    if verdict:
        (run / "compare").mkdir()
        (run / "compare" / "compare.json").write_text(json.dumps({"verdict": verdict}))
    return run


def test_history_over_50_builds_marks_the_regression(tmp_path):
    for k in range(50):
        synth_build(tmp_path / "results", k, 100.0 if k < 30 else 160.0, "regression" if k == 30 else ("ok" if k > 30 else None))
    r = subprocess.run(
        bench_cmd("history", str(tmp_path / "results"), "--out", str(tmp_path / "h")),
        capture_output=True,
        text=True,
        timeout=120,
        env=bench_env(),
    )
    assert r.returncode == 0, r.stderr[-2000:]
    import pandas as pd

    h = pd.read_csv(tmp_path / "h" / "history.csv")
    assert len(h) == 50 and list(h["run_id"]) == [f"run-{k:03d}" for k in range(50)]  # time order
    assert h.loc[30, "verdict"] == "regression"
    before, after = h.loc[:29, "ttfc_ms_p50"].mean(), h.loc[30:, "ttfc_ms_p50"].mean()
    assert after / before > 1.4
    assert (h["ttfc_ms_p95_lo"] <= h["ttfc_ms_p95"]).all() and (h["ttfc_ms_p95"] <= h["ttfc_ms_p95_hi"]).all()
    assert (tmp_path / "h" / "history.png").stat().st_size > 10_000 and "regression" in (
        tmp_path / "h" / "history.html"
    ).read_text()


def test_compare_writes_junit_with_the_numbers(tmp_path):
    b = write_run(tmp_path / "base", [row("m/m", v) for v in lognormal(300, 100, seed=1)])
    c = write_run(tmp_path / "cand", [row("m/m", v) for v in lognormal(300, 200, seed=2)])
    r = subprocess.run(
        bench_cmd("compare", str(b), str(c), "--junit", str(tmp_path / "j.xml")),
        capture_output=True,
        text=True,
        timeout=120,
        env=bench_env(),
    )
    assert r.returncode == 1
    suite = ET.parse(tmp_path / "j.xml").getroot().find("testsuite")
    cases = {tc.get("name"): tc for tc in suite.findall("testcase")}
    failure = cases["ttfc_ms p50"].find("failure")
    assert failure is not None and "baseline" in failure.text and "95% CI" in failure.text
    assert int(suite.get("failures")) >= 1 and int(suite.get("tests")) == len(cases)


def test_the_readme_ci_example_runs_green(tmp_path):
    """examples/ci-gate.sh, as the README's workflow calls it: the first build becomes the baseline,
    the second (same build) runs --until-decided and passes with every row shown equivalent, a
    third with a 30 % slower first chunk is caught (exit 1); JUnit files and compare.md are
    written, and the history of the builds is drawn."""
    import os
    import shutil

    from conftest import FAST

    script = ROOT / "examples" / "ci-gate.sh"
    readme = (ROOT / "README.md").read_text()
    assert "examples/ci-gate.sh" in readme and "runs-on:" in readme  # the workflow shown calls this script
    tol = tmp_path / "tolerances.txt"
    tol.write_text("ttfc_ms:p50:+15%\nerror_rate:+5pp\n")
    env = bench_env(
        OUT=str(tmp_path / "results" / "ci"),
        BASELINE=str(tmp_path / "baselines" / "main"),
        BASELINE_DURATION="8s",
        MAX_DURATION="40s",
        DECIDE_EVERY="5",
        SCENARIO=str(ROOT / "tests" / "data" / "one-turn.yaml"),
        USERS="6",
        TARGET_PROFILES=FAST,
        TOLERANCE_FILE=str(tol),
    )
    env["PATH"] = str(Path(shutil.which("bench") or "").parent) + os.pathsep + env.get("PATH", "")

    def build(n: str, **extra: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            ["bash", str(script)], env={**env, "BUILD_ID": n, **extra}, cwd=tmp_path, capture_output=True, text=True, timeout=240
        )

    first = build("build-1")
    assert first.returncode == 0 and "is the baseline now" in first.stdout, first.stderr[-2000:]
    second = build("build-2")
    assert second.returncode == 0, second.stdout[-3000:] + second.stderr[-2000:]
    run = tmp_path / "results" / "ci" / "build-2"
    for f in ("slo-junit.xml", "gate-junit.xml", "compare/compare.md"):
        assert (run / f).is_file(), f
    meta = json.loads((run / "run.json").read_text())
    assert meta["sequential"]["decided"] and meta["duration_s"] < 40, meta["sequential"]
    result = json.loads((run / "compare" / "compare.json").read_text())
    assert result["rows"] and all(r["verdict"] in ("equivalent", "improvement") for r in result["rows"]), result["rows"]
    assert (
        "equivalent" in (run / "compare" / "compare.md").read_text()
        and "no worsening larger than" in (run / "compare" / "compare.md").read_text()
    )
    assert ET.parse(run / "gate-junit.xml").getroot().find("testsuite").get("failures") == "0"
    slower = build("build-3", TARGET_PROFILES=str(ROOT / "tests" / "data" / "fast-slower-profiles.yaml"))
    assert slower.returncode == 1, slower.stdout[-3000:] + slower.stderr[-2000:]
    bad = json.loads((tmp_path / "results" / "ci" / "build-3" / "compare" / "compare.json").read_text())
    assert any(r["verdict"] == "regression" and r["metric"] == "ttfc_ms" for r in bad["rows"])
    assert (tmp_path / "results" / "ci" / "history" / "history.png").is_file()

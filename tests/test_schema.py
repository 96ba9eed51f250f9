"""The typed contracts of bench/schema.py: error classes against METRICS.md and the code, run.json's
version and its one writer, a folder of the previous release still read, the SLOs a run records."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from conftest import FAST, bench_cmd, bench_env
from pydantic import ValidationError

from bench.schema import NOT_LIVE, RUN_SCHEMA, ErrorClass, RunMeta

ROOT = Path(__file__).parent.parent
DATA = Path(__file__).parent / "data"


def bench(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(bench_cmd(*args), capture_output=True, text=True, timeout=timeout, env=bench_env())


def test_error_classes_are_the_ones_metrics_md_defines():
    text = (ROOT / "docs" / "METRICS.md").read_text()
    section = text[text.index("## Error classes") :]
    section = section[: section.index("\n## ", 5)] if "\n## " in section[5:] else section
    named = set(re.findall(r"`([a-z_]+)`", section))
    members = {e.value for e in ErrorClass}
    assert members <= named, members - named  # each class the code records is defined for the reader
    assert {n for n in named if n.endswith(("_error", "_model", "_limited", "_request"))} <= members | {"error_rate"}
    assert set(NOT_LIVE) == {"cancelled", "not_sent", "worker_lost"}
    assert not ErrorClass.cancelled.live and ErrorClass.stall.live and ErrorClass.stall.timeout


def test_no_error_class_is_spelled_out_as_a_literal_in_the_code():
    """Producers name an ErrorClass member: a typo in a literal would be a new, silent class."""
    literal = re.compile(r'''(\.error\s*=\s*|error\s*=\s*|_fail\(\s*|\bcls\s*=\s*)"([a-z_]+)"''')
    found = []
    for path in (ROOT / "bench").rglob("*.py"):
        if path.name == "schema.py" or "target" in path.parts:
            continue
        for n, line in enumerate(path.read_text().splitlines(), 1):
            for m in literal.finditer(line):
                if m.group(2) in {e.value for e in ErrorClass}:
                    found.append(f"{path.relative_to(ROOT)}:{n}: {line.strip()}")
    assert not found, found


def test_run_json_has_a_schema_version_and_one_validating_writer(tmp_path):
    from bench.analysis.results import read_run_json, write_run_json

    write_run_json(tmp_path, {"run_id": "r1", "slos": ["ttfc_ms:p95<=1000"], "warmup_s": 2.0, "extra": {"kept": True}})
    raw = json.loads((tmp_path / "run.json").read_text())
    assert raw["schema"] == RUN_SCHEMA == 2 and raw["extra"] == {"kept": True} and raw["slos"] == ["ttfc_ms:p95<=1000"]
    assert read_run_json(tmp_path)["schema"] == 2
    with pytest.raises(ValidationError):  # a wrong type fails at the writer, not in some reader later
        write_run_json(tmp_path, {"run_id": "r1", "warmup_s": "two"})
    with pytest.raises(ValidationError):
        write_run_json(tmp_path, {"slos": []})  # no run id


def test_a_folder_written_by_the_previous_release_is_read(tmp_path):
    """tests/data/previous-release/run: written by commit COMMIT's own `bench run` (make.sh beside it)."""
    from bench.analysis.results import read_run_json

    run = tmp_path / "old"
    shutil.copytree(DATA / "previous-release" / "run", run)
    meta = read_run_json(run)
    assert "schema" not in json.loads((run / "run.json").read_text()) and meta["schema"] == 1
    assert RunMeta.read(json.loads((run / "run.json").read_text())).schema_version == 1
    r = bench("report", str(run))
    assert r.returncode == 0 and "Traceback" not in r.stderr, r.stderr[-2000:]
    summary = json.loads((run / "summary.json").read_text())
    assert summary["models"] and all(m["requests"] > 0 for m in summary["models"].values())
    for cmd in (
        ("compare", str(run), str(run), "--out", str(tmp_path / "cmp")),
        ("history", str(tmp_path), "--out", str(tmp_path / "h")),
    ):
        r = bench(*cmd)
        assert r.returncode in (0, 3) and "Traceback" not in r.stderr, (cmd, r.stderr[-2000:])


def test_slo_given_to_run_is_the_one_recorded_and_a_bad_one_refused_before_load(tmp_path):
    r = bench("run", "--out", str(tmp_path / "bad"), "--slo", "ttfc_ms:p95<=fast", "-t", "3s")
    assert r.returncode == 2 and "SLO" in r.stderr and "Traceback" not in r.stderr, r.stderr[-1500:]
    assert not (tmp_path / "bad").exists() or not any((tmp_path / "bad").iterdir())
    r = bench(
        "run",
        "--out",
        str(tmp_path / "ok"),
        "--target-profiles",
        FAST,
        "--scenario",
        str(DATA / "one-turn.yaml"),
        "-t",
        "3s",
        "--warmup",
        "0",
        "-u",
        "2",
        "--slo",
        "ttfc_ms:p95<=777",
        "--build-id",
        "app-4f2c9e1",
        "-q",
    )
    assert r.returncode == 0, r.stderr[-2000:]
    run = next(p for p in (tmp_path / "ok").iterdir() if p.is_dir() and not p.is_symlink())
    meta = json.loads((run / "run.json").read_text())
    assert meta["slos"] == ["ttfc_ms:p95<=777"]
    assert meta["build"] == {"id": "app-4f2c9e1", "source": "--build-id"}  # the build under test, beside the harness's git
    assert json.loads((run / "summary.json").read_text())["slos"] == ["ttfc_ms:p95<=777"]


def test_run_json_records_the_max_tokens_used_from_the_scenario(tmp_path):
    """max_tokens: 8 in the scenario and no flag: every request asked for 8, and run.json says 8 (it said null)."""
    scenario = tmp_path / "bounded.yaml"
    scenario.write_text((DATA / "one-turn.yaml").read_text() + "max_tokens: 8\n")
    r = bench(
        "run",
        "--out",
        str(tmp_path / "out"),
        "--target-profiles",
        FAST,
        "--scenario",
        str(scenario),
        "-t",
        "2s",
        "-u",
        "1",
        "--route",
        "openai",
        "--no-report",
        "-q",
    )
    assert r.returncode == 0, r.stderr[-2000:]
    run = next(p for p in (tmp_path / "out").iterdir() if p.is_dir() and not p.is_symlink())
    assert json.loads((run / "run.json").read_text())["route"]["max_tokens"] == 8
    import pandas as pd

    asked = pd.read_parquet(run / "requests.parquet")["requested_tokens"].dropna()
    assert len(asked) and (asked == 8).all()


def test_capacity_levels_record_the_slos_the_sweep_judged(tmp_path):
    """`bench report` on a level folder judges the sweep's --slo, not the scenario's."""
    r = bench(
        "capacity",
        "--scenario",
        str(DATA / "one-turn.yaml"),
        "--target-profiles",
        FAST,
        "--levels",
        "2",
        "--level-duration",
        "3s",
        "--level-warmup",
        "1",
        "--slo",
        "ttfc_ms:p95<=555",
        "--out",
        str(tmp_path),
    )
    # 0: a capacity, or 3: undecided (one 3 s level on a loaded machine may finish too few requests to judge)
    assert r.returncode in (0, 3), r.stderr[-2000:]
    levels = list(tmp_path.rglob("run.json"))
    assert levels, list(tmp_path.rglob("*"))
    for meta in levels:
        assert json.loads(meta.read_text())["slos"] == ["ttfc_ms:p95<=555"], meta


def test_build_id_comes_from_the_flag_then_the_ci_environment():
    from bench.schema import build_ref

    assert build_ref("v2", {"GITHUB_SHA": "abc"}).id == "v2"
    assert build_ref("", {"CI_COMMIT_SHA": "c0ffee"}).model_dump() == {"id": "c0ffee", "source": "CI_COMMIT_SHA"}
    assert build_ref("", {"BENCH_BUILD_ID": "b1", "GITHUB_SHA": "g"}).source == "BENCH_BUILD_ID"
    assert build_ref("", {}) is None


def test_history_orders_by_the_build_under_test(tmp_path):
    """Three runs started in the order c, a, b; the builds file says a, b, c: --order build --builds follows the file,
    --order build alone the order each build was first run, and a history without build ids is refused in one line."""
    from synth import lognormal, row, write_run

    started = {"c": 1000.0, "a": 2000.0, "b": 3000.0}
    for i, (b, t0) in enumerate(started.items()):
        d = write_run(tmp_path / "r" / f"run-{b}", [row("m/a", v, t=k * 0.1) for k, v in enumerate(lognormal(40, 100, seed=i))])
        meta = json.loads((d / "run.json").read_text())
        meta.update(started=t0, scenario={"name": "s", "sha256": "same"}, build={"id": f"build-{b}", "source": "--build-id"})
        (d / "run.json").write_text(json.dumps(meta))
    (tmp_path / "builds.txt").write_text("build-a\nbuild-b\nbuild-c\n")
    import pandas as pd

    def order(*args: str) -> list[str]:
        out = tmp_path / ("h" + "-".join(args).replace("/", "_"))
        r = bench("history", str(tmp_path / "r"), "--out", str(out), *args)
        assert r.returncode == 0, r.stderr[-2000:]
        return list(pd.read_csv(out / "history.csv")["build"])

    assert order("--order", "build", "--builds", str(tmp_path / "builds.txt")) == ["build-a", "build-b", "build-c"]
    assert order("--order", "build") == order("--order", "time") == ["build-c", "build-a", "build-b"]
    r = bench("history", str(tmp_path / "r"), "--order", "time", "--builds", str(tmp_path / "builds.txt"))
    assert r.returncode == 2 and "--order build" in r.stderr and "Traceback" not in r.stderr


def test_history_by_build_without_any_build_recorded_is_refused_in_one_line(tmp_path):
    from synth import lognormal, row, write_run

    for k in range(2):
        write_run(tmp_path / "r" / f"run-{k}", [row("m/a", v, t=i * 0.1) for i, v in enumerate(lognormal(30, 100, seed=k))])
    r = bench("history", str(tmp_path / "r"), "--order", "build", "--out", str(tmp_path / "h"))
    assert r.returncode == 2 and "no run records its build" in r.stderr and "Traceback" not in r.stderr, r.stderr[-1500:]


def test_the_request_record_is_the_one_declaration_of_its_columns():
    """Columns, wire order, Parquet types, read columns and the start notice all come from
    ``RequestRecord``; the order is the one every earlier release wrote (spools and start notices are
    positional), and its metric fields are exactly the catalogue's per-request metrics, in its order."""
    from dataclasses import fields

    from bench.analysis.results import schema
    from bench.analysis.summaries import READ_COLS
    from bench.metrics import REQUEST_METRICS
    from bench.records import COLUMNS, IDX
    from bench.schema import START_FIELDS, RequestRecord

    released = (  # session 7's hand-kept lists, as written to spools and Parquet since
        "run_id request_id worker user conversation_id conversation turn model tags t_wall_start t_start_ns "
        "intended_delay_ms status error error_detail protocol connect_ms ttfb_ms ttfc_ms ttsc_ms ttfc_sched_ms ttfv_ms "
        "e2e_ms tpot_ms icl_ms decode_tps chunks gaps_us output_chars output_tokens token_source prompt_chars "
        "prompt_tokens prompt_messages bytes_in content_type body_head requested_tokens trace_row "
        "requested_input_tokens retry_ms path pair_id"
    ).split()
    assert COLUMNS == released == [f.name for f in fields(RequestRecord)]
    assert [c for c in COLUMNS if c in REQUEST_METRICS] == REQUEST_METRICS
    assert IDX["pair_id"] == len(COLUMNS) - 1
    assert START_FIELDS == tuple(
        "request_id t_wall_start model conversation conversation_id turn user tags trace_row prompt_chars prompt_messages".split()
    )
    types = {f.name: str(f.type) for f in schema()}
    assert types["turn"] == "int32" and types["ttfc_ms"] == "double" and types["gaps_offset"] == "int64"
    assert "gaps_us" not in types and "request_id" not in READ_COLS and "gap_p99_ms" in READ_COLS

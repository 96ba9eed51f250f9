"""What the route adds, with a known answer: the reference target serving the route in front of
another target (``--upstream``), the app's own work set to 30 ms before it calls the model, and
``bench run --backend`` pairing every turn with the same messages sent straight to the model server."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from conftest import SECRET, bench_cmd, bench_env

DATA = Path(__file__).parent / "data"


def _run(route_url: str, backend_url: str, out: Path) -> dict:
    r = subprocess.run(
        bench_cmd(
            "run",
            "--host",
            route_url,
            "--auth",
            "jwt",
            "--backend",
            backend_url,
            "--scenario",
            str(DATA / "one-turn.yaml"),
            "-u",
            "6",
            "-r",
            "6",
            "-t",
            "8s",
            "--warmup",
            "1",
            "--out",
            str(out),
            "-q",
        ),
        capture_output=True,
        text=True,
        timeout=120,
        env=bench_env(),
    )
    assert r.returncode == 0, r.stderr[-2000:]
    run = next(p for p in out.iterdir() if p.is_dir() and not p.is_symlink())
    assert (run / "backend" / "requests.parquet").is_file()
    return {
        "run": run,
        "summary": json.loads((run / "summary.json").read_text()),
        "md": (run / "summary.md").read_text(),
        "meta": json.loads((run / "run.json").read_text()),
    }


def _measure(tmp_path: Path, overhead_ms: float) -> dict:
    import pandas as pd

    from bench.target import TargetProcess

    profiles = str(DATA / "delivery-profiles.yaml")
    with TargetProcess(["--profiles", profiles, "--no-auth"]) as model_server:
        app = ["--profiles", profiles, "--upstream", model_server.url, "--app-overhead-ms", str(overhead_ms)]
        with TargetProcess(app, secret=SECRET) as route:
            got = _run(route.url, model_server.url, tmp_path / f"out-{overhead_ms:g}")
    # the route's records hold the route's requests only; the backend's are beside them, paired
    route_df = pd.read_parquet(got["run"] / "requests.parquet")
    back_df = pd.read_parquet(got["run"] / "backend" / "requests.parquet")
    assert set(route_df["path"].dropna()) == {"route"} and set(back_df["path"]) == {"backend"}
    # a pair whose second request the run's end stopped before it was sent has one record (at most one per user)
    assert len(set(back_df["pair_id"]) - set(route_df["pair_id"].dropna())) <= 6
    assert back_df["error"].isin([None, "cancelled"]).all(), back_df["error"].value_counts()
    assert got["meta"]["route"]["backend"]["url"] == model_server.url
    assert "What the route adds" in got["md"]
    o = got["summary"]["route_overhead"]["models"]["mistralai/Mistral-7B-Instruct-v0.3"]
    assert o["pairs"] >= 20 and o["ttfc_ms"]["low"] is not None, o
    assert o["ttfc_ms"]["low"] <= o["ttfc_ms"]["median"] <= o["ttfc_ms"]["high"], o
    return o


def test_route_overhead_is_measured_from_paired_turns(tmp_path):
    """30 ms of the app's own work before it calls the model reads as 30 ms more than the route's
    cost without it (the proxy hop itself, aiohttp client and server on loopback: a few ms)."""
    hop = _measure(tmp_path, 0.0)
    app = _measure(tmp_path, 30.0)
    assert 0 <= hop["ttfc_ms"]["median"] < 10 and hop["ttfc_ms"]["high"] - hop["ttfc_ms"]["low"] < 5, hop
    assert abs((app["ttfc_ms"]["median"] - hop["ttfc_ms"]["median"]) - 30.0) < 3.0, (app["ttfc_ms"], hop["ttfc_ms"])
    assert app["ttfc_ms"]["low"] > hop["ttfc_ms"]["high"] and 0.2 < app["ttfc_share"] < 0.8, (app, hop)
    # what the app adds is before the first part: the gaps between parts are the model's own
    assert abs(app["gap_p50_ms"]["median"]) < 3.0 and abs(hop["gap_p50_ms"]["median"]) < 3.0, (app, hop)


def test_no_successful_pair_says_so_instead_of_leaving_the_section_out(tmp_path):
    """--backend given, every backend request failed: the summary says there is no answer, and why."""
    from synth import row, write_run

    from bench.analysis.overhead import markdown, route_overhead
    from bench.analysis.runfolder import open_run
    from bench.records import IDX

    route_rows = [row("m/a", 30.0, t=i) for i in range(10)]
    back_rows = [row("m/a", None, t=i, error="connect_error") for i in range(10)]
    for k, (a, b) in enumerate(zip(route_rows, back_rows)):
        a[IDX["pair_id"]] = b[IDX["pair_id"]] = f"p{k}"
        a[IDX["path"]], b[IDX["path"]] = "route", "backend"
    run = write_run(tmp_path / "run", route_rows)
    write_run(run / "backend", back_rows)
    o = route_overhead(run, open_run(run).measured)
    assert o is not None and o["models"] == {} and o["backend_failed"] == 10
    text = "\n".join(markdown(o))
    assert "no answer" in text and "10 failed" in text


def test_few_pairs_get_no_interval_and_say_so(tmp_path):
    from synth import row, write_run

    from bench.analysis.overhead import markdown, route_overhead
    from bench.analysis.runfolder import open_run
    from bench.records import IDX

    route_rows = [row("m/a", 40.0, t=i) for i in range(3)]
    back_rows = [row("m/a", 30.0, t=i) for i in range(3)]
    for k, (a, b) in enumerate(zip(route_rows, back_rows)):
        a[IDX["pair_id"]] = b[IDX["pair_id"]] = f"p{k}"
    run = write_run(tmp_path / "run", route_rows)
    write_run(run / "backend", back_rows)
    o = route_overhead(run, open_run(run).measured)
    m = o["models"]["m/a"]
    assert m["pairs"] == 3 and m["ttfc_ms"]["median"] == 10.0 and m["ttfc_ms"]["low"] is None
    assert "too few pairs for an interval" in "\n".join(markdown(o))

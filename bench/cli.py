"""The ``bench`` command line: one subcommand per job, each with an example in its help."""

from __future__ import annotations

import json
import sys

import click

from bench.errors import InputError, RunFolderError
from bench.optiontable import click_options


class _Group(click.Group):
    def invoke(self, ctx: click.Context):  # one clear line for input errors, no traceback
        try:
            return super().invoke(ctx)
        except InputError as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(2)
        except RunFolderError as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(1)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(package_name="neptun-bench")
def main() -> None:
    """Load-test and benchmark streaming LLM chat routes.

    \b
    Jobs:
      bench run                 a benchmark run (embedded reference target unless --host)
      bench report RUN_DIR      tables, charts and report.html from a run's records
      bench compare BASE CAND   latency regression gate for CI (exit 1 regression, 3 undecided)
      bench plan BASELINE       how long a run must be for the gate to decide each tolerance
      bench models RUN_DIR      rank the models of a multi-model run
      bench capacity            sweep load levels, find the highest load within the SLOs
      bench calibrate           how far this machine's measurements can be trusted
      bench history RESULTS     latency across runs and builds
      bench scenario import F   a scenario from ShareGPT / OpenAI JSONL / text prompts
      bench trace RUN_DIR       a run's requests as a trace, for bench run --trace
      bench target              the reference target on its own

    \b
    Example, a full run in one command:
      bench run --duration 30s --users 12
    """


from bench.target.cli import target as _target_command  # noqa: E402  (the target's own CLI, in bench/target/)

main.add_command(_target_command, "target")


@main.command(context_settings={"max_content_width": 100})
@click_options("run")
def run(no_report, fail_on_slo, junit, **kw) -> None:
    """Run a benchmark and report it.

    Without --host the embedded reference target is started on a free loopback port, so this
    works on a fresh machine. Writes results/<run-id>/ with requests.parquet (one row per
    request, failures included), run.json and report.html, and prints a per-model summary.

    \b
    Examples:
      bench run                                          # 30 s on the embedded target
      bench run -u 50 -t 2m --scenario coding-help
      BENCH_COOKIE=... bench run --host https://neptun.example --models qwen/Qwen2.5-72B-Instruct
      bench run --load-mode open --arrival-rate 5 -u 200 -t 1m
    """
    from bench.analysis.report import console_table, write_report
    from bench.runner import RunOptions
    from bench.runner import run as do_run

    run_dir = do_run(RunOptions(**kw))
    click.echo(f"records: {run_dir / 'requests.parquet'}")
    if no_report:
        _exit_if_interrupted(run_dir)
        return
    path, summary = write_report(run_dir)
    click.echo("")
    click.echo(console_table(summary))
    for w in summary["warnings"]:
        click.echo(f"warning: {w}", err=True)
    click.echo(f"\nreport: {path}")
    if junit:
        from bench.decisions.junit import slo_junit

        click.echo(f"junit: {slo_junit(summary, junit)}")
    if not summary["measured_requests"]:
        click.echo("error: no measured requests (all in the warm-up, or none sent): nothing to judge", err=True)
        sys.exit(1)
    _exit_if_interrupted(run_dir)
    if fail_on_slo and summary["slo_ok"] is False:
        click.echo("SLOs missed (see report)", err=True)
        sys.exit(1)


def _exit_if_interrupted(run_dir) -> None:
    """A run stopped by Ctrl-C or SIGTERM is not a green run: 130 / 143, as a shell reports those signals."""
    import json

    try:
        meta = json.loads((run_dir / "run.json").read_text())
    except (OSError, ValueError):
        return
    if meta.get("master_died"):
        died = meta["master_died"]
        click.echo(
            f"error: the Locust master died ({died.get('how')}) after {meta.get('duration_s', 0):.0f} s of "
            f"{meta.get('planned_duration_s', 0):.0f} s: {died.get('unrecorded', 0)} of at least "
            f"{died.get('sent_at_least', 0)} requests sent have no record; the rest are in {run_dir}",
            err=True,
        )
        sys.exit(1)
    if meta.get("interrupted"):
        by = meta.get("interrupted_by", "SIGINT")
        click.echo(
            f"interrupted ({by}) after {meta.get('duration_s', 0):.0f} s of {meta.get('planned_duration_s', 0):.0f} s: "
            f"records kept in {run_dir}",
            err=True,
        )
        sys.exit(143 if by == "SIGTERM" else 130)


@main.command(context_settings={"max_content_width": 100})
@click.argument("run_dir", type=click.Path(exists=True, file_okay=False))
@click.option("--warmup", default=None, type=float, help="Seconds excluded from headline numbers (default: from run.json).")
def report(run_dir, warmup) -> None:
    """Build report.html, summary.md/json/csv and charts from a run folder's records.

    \b
    Example:
      bench report results/20261125-101500-ab12cd
    """
    from pathlib import Path

    from bench.analysis.report import console_table, write_report

    path, summary = write_report(Path(run_dir), warmup)
    click.echo(console_table(summary))
    click.echo(f"\nreport: {path}")


@main.command(context_settings={"max_content_width": 100})
@click.argument("baseline", type=click.Path(exists=True, file_okay=False))
@click.argument("candidate", type=click.Path(exists=True, file_okay=False))
@click.option(
    "--tolerance",
    "tolerances",
    multiple=True,
    help="Allowed worsening, repeatable: ttfc_ms:p95:+10%, e2e_ms:p99:+50ms, decode_tps:p50:-10%, error_rate:+0.5pp.",
)
@click.option("--tolerance-file", type=click.Path(dir_okay=False), default=None, help="One tolerance per line (# comments).")
@click.option(
    "--out", type=click.Path(file_okay=False), default=None, help="Folder for compare.md/json/html (default: CANDIDATE/compare)."
)
@click.option("--warmup", default=None, type=float, help="Seconds excluded from both runs (default: each run's own).")
@click.option(
    "--junit",
    type=click.Path(dir_okay=False),
    default=None,
    help="Also write the verdicts as JUnit XML (one test case per model and metric).",
)
@click.option(
    "--undecided",
    "undecided",
    type=click.Choice(["exit3", "pass", "fail"]),
    default="exit3",
    show_default=True,
    help="What an undecided gate exits with: 3 (default), 0 (pass: the old behaviour) or 1 (fail).",
)
@click.option(
    "--noise-from",
    type=click.Path(exists=True, file_okay=False),
    default=None,
    help="A folder of earlier runs of this scenario (repeats of the baseline build, or unchanged builds): widen "
    "each interval by the statistic's run-to-run spread among them (3 runs or more; TTFC, TPOT, E2E percentiles).",
)
def compare(baseline, candidate, tolerances, tolerance_file, out, warmup, junit, undecided, noise_from) -> None:
    """Latency regression gate: compare a candidate run with a baseline run.

    Per model and metric: the statistic, a distribution-free 95% interval of its change and a
    verdict: regression (the interval excludes 0 and the change is beyond the tolerance),
    equivalent (the whole interval is below the tolerance), improvement, or undecided (the
    samples cannot tell; the row says how much longer a run would need). An undecided row is
    never a pass.

    \b
    Exit codes:
      0  every row equivalent or improved
      1  a regression
      2  the runs cannot be compared (other scenario or models, too few samples)
      3  undecided: nothing regressed, but some rows could not be decided (--undecided pass|fail)

    \b
    Example (CI):
      bench run -t 2m --scenario default --out results/ci && \\
      bench compare baseline-run/ results/ci/<run-id> --tolerance 'ttfc_ms:p95:+10%'
    """
    from pathlib import Path

    from bench.decisions.compare import (
        NotComparable,
        compare_runs,
        exit_code,
        load_tolerances,
        markdown,
        measured_runs,
        read_columns,
        sequential_alpha,
        write_outputs,
    )

    tols = load_tolerances(list(tolerances), tolerance_file)
    try:
        runs = measured_runs(Path(baseline), Path(candidate), warmup, read_columns(tols))  # only what the tolerances read
        alpha, note = sequential_alpha(Path(baseline), Path(candidate))
        if note:
            click.echo(note)
        result = compare_runs(
            Path(baseline), Path(candidate), tols, warmup, runs, alpha=alpha, noise_from=Path(noise_from) if noise_from else None
        )
    except NotComparable as exc:
        click.echo(f"cannot compare: {exc}", err=True)
        sys.exit(2)
    paths = write_outputs(result, Path(out) if out else Path(candidate) / "compare", runs)
    click.echo(markdown(result))
    click.echo(f"written: {paths['md']}, {paths['html']}, {paths['json']}")
    if junit:
        from bench.decisions.junit import compare_junit

        click.echo(f"junit: {compare_junit(result, Path(junit))}")
    sys.exit(exit_code(result, undecided))


@main.command(context_settings={"max_content_width": 100})
@click.argument("baseline", type=click.Path(exists=True, file_okay=False))
@click.option("--tolerance", "tolerances", multiple=True, help="As for bench compare (default: the gate's defaults).")
@click.option("--tolerance-file", type=click.Path(dir_okay=False), default=None, help="One tolerance per line (# comments).")
@click.option("--warmup", default=None, type=float, help="Seconds excluded (default: from run.json).")
@click.option("--out", type=click.Path(file_okay=False), default=None, help="Folder for plan.md/json (default: BASELINE/plan).")
@click.option("--seconds", is_flag=True, help="Print only the longest run time needed, in whole seconds (for scripts).")
def plan(baseline, tolerances, tolerance_file, warmup, out, seconds) -> None:
    """How long a candidate run must be for the gate to decide each tolerance.

    From the baseline's own spread: the requests a model, and the run time at the baseline's
    request rate, for bench compare to show each row equivalent with 80 % power when nothing
    changed (p99 also needs 368 effective samples before it has a bound at all).

    \b
    Example:
      bench plan baselines/main --tolerance 'ttfc_ms:p99:+15%'
      DURATION=$(bench plan baselines/main --seconds)s examples/ci-gate.sh
    """
    from pathlib import Path

    from bench.analysis.runfolder import open_run
    from bench.decisions import plan as planning
    from bench.decisions.compare import load_tolerances

    tols = load_tolerances(list(tolerances), tolerance_file)
    run = open_run(Path(baseline), warmup)
    df = run.on_wire
    if df.empty:
        click.echo(f"error: {baseline}: no measured requests to plan from", err=True)
        sys.exit(2)
    rows = planning.plan(df, tols)
    users = (run.meta.get("load") or {}).get("users")
    longest = max((r.seconds_needed for r in rows if r.seconds_needed), default=None)
    if seconds:
        if longest is None:
            click.echo("error: no tolerance could be planned from this baseline", err=True)
            sys.exit(2)
        click.echo(f"{int(longest) + 1}")
        return
    paths = planning.write(rows, Path(out) if out else Path(baseline) / "plan", users)
    click.echo(planning.markdown(rows, users))
    click.echo(f"written: {paths['md']}, {paths['json']}")


@main.command(context_settings={"max_content_width": 100})
@click.argument("run_dir", type=click.Path(exists=True, file_okay=False))
@click.option("--warmup", default=None, type=float, help="Seconds excluded (default: from run.json).")
def models(run_dir, warmup) -> None:
    """Rank the models of a multi-model run, paired by conversation and turn.

    \b
    Example:
      bench run --models qwen/Qwen2.5-72B-Instruct,google/gemma-2-27b-it -t 2m
      bench models results/<run-id>
    """
    from pathlib import Path

    from bench.decisions.models import compare_models, markdown, write_outputs

    result = compare_models(Path(run_dir), warmup)
    if len(result["ranking"]) < 2:
        click.echo("only one model in this run: nothing to compare", err=True)
        sys.exit(2)
    path = write_outputs(result, Path(run_dir))
    click.echo(markdown(result))
    click.echo(f"written: {path}")


@main.command(context_settings={"max_content_width": 100})
@click_options("capacity")
@click.option(
    "--levels",
    default="2,4,8,16,32",
    show_default=True,
    help="Load levels: concurrent conversations (closed loop) or conversations/s (open loop).",
)
@click.option("--level-duration", default="30s", show_default=True, help="How long each level is held.")
@click.option("--level-warmup", default=5.0, show_default=True, type=float, help="Seconds of each level excluded.")
@click.option(
    "--slo",
    "slos",
    multiple=True,
    help="Repeatable: ttfc_ms:p95<=1000, gaps_ms:p99<=200, error_rate<=1%. Default: the scenario's.",
)
@click.option(
    "--adaptive",
    default=0,
    show_default=True,
    type=click.IntRange(0),
    help="Extra rounds: bisect between the last passing and first failing level, and run again, twice as long, a "
    "level bounding the capacity whose SLO verdict is undecided at 95 %.",
)
@click.option(
    "--recheck",
    default=1,
    show_default=True,
    type=click.IntRange(0),
    help="Rounds that run again a level that missed an SLO a heavier level met (verdicts not monotonic in load); "
    "a contradiction that stands leaves the capacity undecided.",
)
@click.option(
    "--population", default=None, type=int, help="Users to plan for (with --conversations-per-user-hour and --headroom)."
)
@click.option("--conversations-per-user-hour", default=2.0, show_default=True, type=float)
@click.option("--headroom", default="30%", show_default=True, help="Spare capacity to keep, e.g. 30%.")
def capacity(
    levels, level_duration, level_warmup, slos, adaptive, recheck, population, conversations_per_user_hour, headroom, **kw
) -> None:
    """Sweep load levels and find, per model, the highest load that meets every SLO.

    Exit codes: 0 a capacity (or a bound) for every model; 3 undecided (a model with too few finished
    requests at every level, or levels whose verdicts contradict each other); 130 / 143 interrupted
    (Ctrl-C / SIGTERM: the plan of the finished levels is written); 2 bad input.

    \b
    Examples:
      bench capacity --models mistralai/Mistral-7B-Instruct-v0.3 --levels 8,16,32,64 --slo 'ttfc_ms:p95<=1000'
      bench capacity --load-mode open --levels 1,2,4,8 --population 10000 --headroom 30%
    """
    from bench.decisions.capacity import CapacityOptions, parse_levels, sweep
    from bench.runner import RunOptions

    try:
        room = float(str(headroom).rstrip("%")) / (100.0 if str(headroom).endswith("%") else 1.0)
    except ValueError:
        raise InputError(f"--headroom {headroom!r}: expected e.g. 30%") from None
    if not 0 <= room < 1:
        raise InputError(f"--headroom {headroom!r}: the share of capacity kept spare, from 0% to under 100%")
    for s in slos:
        from bench.slo import parse_slo

        parse_slo(s)
    ro = RunOptions(**kw)
    out = sweep(
        CapacityOptions(
            run=ro,
            levels=parse_levels(levels),
            level_duration=level_duration,
            level_warmup=level_warmup,
            slos=list(slos),
            adaptive=adaptive,
            recheck=recheck,
            population=population,
            conversations_per_user_hour=conversations_per_user_hour,
            headroom=room,
        )
    )
    click.echo((out / "capacity.md").read_text())
    click.echo(f"capacity report: {out / 'capacity.html'}")
    import json

    result = json.loads((out / "capacity.json").read_text())
    outcome = result.get("outcome")
    if outcome == "interrupted":
        by = result["interrupted"]["signal"]
        click.echo(f"interrupted ({by}): the plan above is from the finished levels only", err=True)
        sys.exit(143 if by == "SIGTERM" else 130)
    if outcome == "undecided":
        undecided = [f"{m}: {c['bound']}" for m, c in result["capacity"].items() if c["capacity"] is None]
        click.echo("capacity undecided: " + ("; ".join(undecided) or "no level finished"), err=True)
        sys.exit(3)


@main.command(context_settings={"max_content_width": 100})
@click.option("--streams", default="100,200,400,700,1000", show_default=True, help="Concurrency levels to test.")
@click.option("--level-duration", default=12.0, show_default=True, type=float, help="Seconds per level (first 3 s excluded).")
@click.option("--interval-ms", default=33.0, show_default=True, type=float, help="Time between parts of one stream.")
@click.option("--parts", default=60, show_default=True, type=int, help="Parts per stream.")
@click.option("--bound-ms", default=5.0, show_default=True, type=float, help="TTFC error (p99) that still counts as trustworthy.")
@click.option("--out", default="results", show_default=True, type=click.Path(file_okay=False))
def calibrate(streams, level_duration, interval_ms, parts, bound_ms, out) -> None:
    """Measure this machine's measurement error and one worker's capacity.

    The generator (one Locust process, pinned to one core) loads the reference target
    (pinned to another) at rising concurrency; every request's TTFC is compared with the
    target's own stamp. Ends with a verdict, and `bench run` warns when a run asks more
    of its workers than the calibrated capacity.

    \b
    Example:
      bench calibrate                       # about 2 minutes
      bench calibrate --streams 200,500 --interval-ms 20
    """
    from pathlib import Path

    from bench.decisions.calibrate import calibrate as run_calibration

    try:
        levels = [int(x) for x in streams.split(",") if x.strip()]
    except ValueError:
        raise InputError(f"--streams {streams!r}: expected numbers, e.g. 100,200,400") from None
    if not levels or min(levels) < 1:
        raise InputError("--streams must be positive")
    cal_dir = run_calibration(
        Path(out), levels, level_duration, interval_ms, parts, bound_ms, echo=lambda s: click.echo(s, err=True)
    )
    result = json.loads((cal_dir / "calibration.json").read_text())
    click.echo(f"\nverdict: {result['verdict']['text']}")
    click.echo(f"report: {cal_dir / 'calibration.md'}")


@main.command(context_settings={"max_content_width": 100})
@click.argument("results_dir", type=click.Path(exists=True, file_okay=False))
@click.option(
    "--scenario-digest", default=None, help="Which scenario's runs (its sha256 in run.json; default: the newest run's)."
)
@click.option(
    "--order",
    type=click.Choice(["time", "build", "git"]),
    default="time",
    show_default=True,
    help="Order runs by start time; by the build under test (run.json 'build', from bench run --build-id or "
    "$BENCH_BUILD_ID / $GITHUB_SHA / $CI_COMMIT_SHA), in --builds order or first run first; or by the harness's own "
    "git revision.",
)
@click.option(
    "--builds",
    "builds_file",
    type=click.Path(exists=True, dir_okay=False),
    default=None,
    help="With --order build: a file of build ids, oldest first, one a line (e.g. git -C app log --reverse "
    "--format=%H > builds.txt).",
)
@click.option(
    "--out",
    type=click.Path(file_okay=False),
    default=None,
    help="Folder for history.csv/png/html (default: RESULTS_DIR/history).",
)
def history(results_dir, scenario_digest, order, builds_file, out) -> None:
    """Latency across runs: TTFC, TPOT, E2E p50/p95/p99 with intervals, error rate, gate verdicts.

    Reads every run folder under RESULTS_DIR of one scenario in one pyarrow dataset scan.

    \b
    Example (CI keeps every build's run folder, each run with --build-id $APP_COMMIT):
      bench history results/ --order build
      git -C ../app log --reverse --format=%H > builds.txt && bench history results/ --order build --builds builds.txt
    """
    from pathlib import Path

    from bench.decisions.history import history as build
    from bench.decisions.history import write_outputs

    if builds_file and order != "build":
        raise InputError("--builds orders builds: add --order build")
    builds = [x.strip() for x in Path(builds_file).read_text().splitlines() if x.strip()] if builds_file else None
    h, runs = build(Path(results_dir), scenario_digest, order, builds)
    paths = write_outputs(h, Path(out) if out else Path(results_dir) / "history", order)
    click.echo(
        f"{len(runs)} runs, {h['model'].nunique()} model(s); regressions marked: {int((h['verdict'] == 'regression').sum())}"
    )
    click.echo(f"written: {paths['html']}, {paths['png']}, {paths['csv']}")


@main.group(cls=_Group, context_settings={"max_content_width": 100})
def scenario() -> None:
    """Scenario files: import conversations from datasets you already have."""


@scenario.command("import", context_settings={"max_content_width": 100})
@click.argument("source", type=click.Path(dir_okay=False))
@click.option(
    "-o", "--out", required=True, type=click.Path(dir_okay=False), help="Scenario file to write, e.g. scenarios/mine.yaml."
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["auto", "sharegpt", "openai", "text"]),
    default="auto",
    show_default=True,
    help="sharegpt: a JSON list (or JSONL) of {conversations: [{from, value}]}; openai: JSONL of {messages: "
    "[{role, content}]}; text: one prompt per line. auto: by extension and first record.",
)
@click.option("--name", default=None, help="Scenario name (default: the output file's stem).")
@click.option(
    "--min-turns", default=1, show_default=True, type=click.IntRange(1), help="Skip conversations with fewer user turns."
)
@click.option(
    "--max-turns", default=0, type=click.IntRange(0), help="Cut longer conversations to their first N user turns (0: no bound)."
)
@click.option(
    "--max-prompt-chars", default=0, type=click.IntRange(0), help="Skip conversations with a longer user message (0: no bound)."
)
@click.option("--sample", default=0, type=click.IntRange(0), help="Keep a random sample of N conversations (0: all).")
@click.option("--seed", default=0, show_default=True, type=int, help="Seed for --sample.")
@click.option(
    "--models", default=None, help="Comma-separated model mix for the scenario (default: the bundled default scenario's)."
)
@click.option(
    "--skip-invalid", is_flag=True, help="Count records of the wrong shape as skipped instead of stopping at the first."
)
def scenario_import(source, out, fmt, name, min_turns, max_turns, max_prompt_chars, sample, seed, models, skip_invalid) -> None:
    """Turn a conversation dataset into a scenario file (the user's turns; replies come live).

    Every kept conversation replays with live history: each turn sends the earlier turns and the
    replies the model actually streamed. The report lists what was kept and why the rest was not.

    \b
    Examples:
      bench scenario import datasets/sample-sharegpt.json -o scenarios/sample.yaml --min-turns 2 --max-turns 4
      bench scenario import chats.jsonl -o scenarios/support.yaml --sample 200 --seed 1
      bench run --scenario scenarios/sample.yaml
    """
    from pathlib import Path

    from bench.scenario import load_scenario
    from bench.workload.datasets import ImportFilters, import_conversations, write_scenario

    convs, rep = import_conversations(
        source, fmt, ImportFilters(min_turns, max_turns, max_prompt_chars, sample, seed), skip_invalid
    )
    default = load_scenario("default")
    mix = [m.strip() for m in models.split(",") if m.strip()] if models else [m.model for m in default.models]
    write_scenario(Path(out), name or Path(out).stem, convs, rep, mix, default.slos)
    click.echo(rep.text())
    click.echo(f"written: {out}  (run it: bench run --scenario {out})")


@main.command("trace", context_settings={"max_content_width": 100})
@click.argument("run_dir", type=click.Path(exists=True, file_okay=False))
@click.option("-o", "--out", required=True, type=click.Path(dir_okay=False), help="Trace file to write (JSON Lines).")
def trace_cmd(run_dir, out) -> None:
    """Turn a run's own requests into a trace, to replay the same arrivals against the next build.

    Each request becomes a row at its intended time, with its conversation, turn, model and the
    turn's text (from the run's scenario file; a replayed trace's rows keep theirs).

    \b
    Example:
      bench trace results/latest -o prod-like.jsonl
      bench run --trace prod-like.jsonl --host https://staging.example
    """
    from pathlib import Path

    from bench.workload.trace import trace_from_run

    n = trace_from_run(Path(run_dir), Path(out))
    click.echo(f"{n} rows written to {out}")


@main.command("locust-help", context_settings={"max_content_width": 100})
def locust_help() -> None:
    """Print `locust --help` with this project's options included.

    Locust prints its help before it imports a locustfile, so `locust -f locustfile.py --help`
    cannot show the options the locustfile registers; this prints Locust's parser after the import.

    \b
    Example:
      bench locust-help | less
    """
    import subprocess

    code = "import bench.load.locustfile; from locust.argument_parser import get_parser; print(get_parser().format_help())"
    sys.exit(subprocess.call([sys.executable, "-c", code]))

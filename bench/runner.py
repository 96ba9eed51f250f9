"""``bench run``: target (embedded or given), preflight, a headless Locust run, records, report.

The load generator is a child ``locust`` process (or several, with ``--processes``); this
process only watches its progress file, so nothing here competes with the measuring loop.
All heavy work (Parquet, pandas, charts) happens after the load has stopped.
"""

from __future__ import annotations

import json
import math
import os
import re
import secrets
import signal
import subprocess
import sys
import threading
import time
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

import click

from bench.analysis.results import (
    default_warmup,
    delivery,
    environment_info,
    file_digest,
    finalize_records,
    latest_calibration,
    write_run_json,
)
from bench.errors import InputError, PreflightError, RunFolderError
from bench.launch import embedded_target, locust_command, pinning
from bench.load.route import Credentials, credential_candidates, parse_headers
from bench.options import cache_salt, check_slos, check_values, new_run_id, route_and_models, tls_from
from bench.optiontable import RUN, RunOptions, locust_argv
from bench.records import rescue_dir
from bench.scenario import hand_on, load_scenario, resolve_path
from bench.schema import ErrorClass
from bench.secrets import redact, refuse_url_credentials, remember
from bench.units import parse_duration

if TYPE_CHECKING:
    from bench.load.route import RouteConfig
    from bench.workload.setup import Workload


_INTERRUPTED_BY = {"signal": "SIGINT"}  # which signal stopped the last run (run.json "interrupted_by")


def _validate(o: RunOptions) -> tuple[RunOptions, float, list[str], Workload, RouteConfig]:
    """Everything checked before any target starts: (the options as the run uses them, seconds, models,
    workload, route). The options are frozen: what a check settles (a trace's open loop, the embedded
    target's models) comes back in a new copy."""
    from bench.options import check_files

    check_values(o, RUN)  # every option's value, as declared with it: before files, scenario or target
    check_files(o)
    out = Path(o.out)
    if out.exists() and not out.is_dir():
        raise InputError(f"--out {out}: is a file, not a folder")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(f"--out {out}: cannot create the results folder ({exc.strerror})") from None
    if not os.access(out, os.W_OK):
        raise InputError(f"--out {out}: not writable")
    scenario = load_scenario(o.scenario)
    counter = None
    if o.tokenizer:
        from bench.tokens import load_tokenizer

        counter = load_tokenizer(o.tokenizer)  # a bad file is refused here, before any load, not in each worker
    route, models, _ = route_and_models(o, scenario)
    check_slos(o, scenario)
    from bench.load.route import check_models
    from bench.workload.setup import workload_from

    workload, _ = workload_from(o, scenario, counter, lambda ids: check_models(ids, o.route, o.route_template))
    if workload.trace is not None:  # the trace's own models are sent too: preflight and profile checks cover them
        models = list(dict.fromkeys([*models, *(r.model for r in workload.trace.rows if r.model)]))
        o = replace(o, load_mode="open")
    if o.until_decided:
        if o.duration:
            raise InputError("--until-decided sets the run's length itself: give --max-duration instead of -t/--duration")
        if workload.trace is not None:
            raise InputError("--until-decided cannot be combined with --trace (a trace fixes the run's length)")
        base = Path(o.until_decided)
        if not (base / "requests.parquet").is_file():
            raise InputError(f"--until-decided {base}: not a run folder (no requests.parquet)")
        from bench.analysis.results import read_run_json

        digest = (read_run_json(base).get("scenario") or {}).get("sha256")
        if digest and digest != file_digest(resolve_path(o.scenario)):
            raise InputError(f"--until-decided {base}: the baseline ran another scenario than {o.scenario}")
        seconds = parse_duration(o.max_duration)
    else:
        seconds = parse_duration(o.duration) if o.duration else float(math.ceil(workload.default_seconds()))
    if o.warmup is not None and o.warmup >= seconds:
        raise InputError(f"--warmup {o.warmup:g} must be shorter than the run ({seconds:g} s): nothing would be measured")
    if not o.host:
        from bench.target.faults import FaultShares
        from bench.target.profiles import load_profiles

        FaultShares.parse(o.target_faults)
        profiles = load_profiles(o.target_profiles)
        if not models:  # --route openai without --models: what the embedded target serves
            models = sorted(profiles.models)
            o = replace(o, models=",".join(models))
        unknown = [m for m in models if m not in profiles.models and m not in profiles.retired]
        if unknown and not o.models:
            raise InputError(f"the embedded target has no profile for {', '.join(unknown)} (add them with --target-profiles)")
    if o.host and not re.match(r"^https?://[^/\s]+", o.host):
        raise InputError(f"--host {o.host!r}: expected http(s)://host[:port]")
    refuse_url_credentials(o.host)
    return o, seconds, models, workload, route


def _locust_cmd(o: RunOptions, host: str, seconds: float, run_dir: Path, run_id: str, pin: str | None = None) -> list[str]:
    """The Locust child: its own flags, then every project option the run sets (from the table)."""
    extra = [
        "--run-id",
        run_id,
        "--csv",
        str(run_dir / "locust"),
        "--exit-code-on-error",
        "0",
        *locust_argv(replace(o, scenario=str(resolve_path(o.scenario)))),
    ]
    if o.processes > 1:
        from bench.launch import local_master_args

        extra += ["--processes", str(o.processes), *local_master_args()]
    return locust_command(host, o.users, o.spawn_rate, seconds, run_dir, *extra, *o.extra, pin=pin)


class _Progress:
    def __init__(self, run_dir: Path, total: float, quiet: bool) -> None:
        self.path = run_dir / "progress.json"
        self.total = total
        self.quiet = quiet
        self.tty = sys.stderr.isatty()
        self.last_line = 0.0
        self.t0 = time.monotonic()

    def show(self, final: bool = False) -> None:
        if self.quiet:
            return
        try:
            p = json.loads(self.path.read_text())
        except (OSError, ValueError):
            p = {}
        elapsed = min(time.monotonic() - self.t0, self.total)
        line = (
            f"[{elapsed:5.0f}s/{self.total:.0f}s] requests {p.get('records', 0):>6}  errors {p.get('errors', 0):>4}"
            f"  users {p.get('users', 0):>4}  generator CPU {p.get('cpu_max', 0):3.0f}% max"
        )
        if self.tty:
            sys.stderr.write("\r" + line + ("\n" if final else ""))
            sys.stderr.flush()
        elif final or time.monotonic() - self.last_line >= 5:
            sys.stderr.write(line + "\n")
            self.last_line = time.monotonic()


def run(o: RunOptions) -> Path:
    """Run a benchmark; return the run folder. Raises InputError before any load on bad input."""
    from bench.preflight import preflight

    o, seconds, models, workload, route = _validate(o)
    from bench.options import ignored_options

    ignored = ignored_options(o)
    for line in ignored:
        click.echo(f"warning: {line}", err=True)
    run_id = o.run_id or new_run_id()
    run_dir = Path(o.out) / run_id
    run_dir.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ)
    env["BENCH_CHILD"] = "1"  # the Locust child of bench run, which builds the report itself
    env.update(hand_on(o.scenario, run_dir))  # parsed here once; the children read it back, not the YAML
    if o.processes > 1:  # the run's own workers prove it to their master; any other process is refused
        from bench.load.workerauth import SECRET_ENV

        env[SECRET_ENV] = secrets.token_hex(32)
        remember(env[SECRET_ENV])
    target = None
    target_info: dict = {"embedded": False}
    tls = tls_from(o)
    started_load = False
    try:
        if o.host:
            host = o.host.rstrip("/")
            candidates = credential_candidates(o.auth, o.token_file, o.jwt_secret_file, o.cookie_file, o.cookie_name)
            creds = candidates[0]
            if not models:  # --route openai without --models: the models the server lists
                from bench.preflight import served_models

                models = served_models(host, creds, tls)
                o = replace(o, models=",".join(models))
        else:
            if not o.quiet:  # a first run waits here for a second or more (longer on a loaded machine): say why
                click.echo("starting the embedded reference target (no --host given) ...", err=True)
            t_target = time.monotonic()
            target, secret = embedded_target(
                o, log=run_dir / "target.log", truth_file=run_dir / "target-truth.jsonl", pin=o.processes == 1
            )
            host = target.url
            if not o.quiet:
                click.echo(f"target ready on {host} in {time.monotonic() - t_target:.1f} s", err=True)
            env["BENCH_JWT_SECRET"] = secret
            for var in ("BENCH_TOKEN", "BENCH_COOKIE"):
                env.pop(var, None)
            o = replace(o, auth="jwt")
            creds = Credentials("jwt", secret)
            candidates = [creds]
            remember(secret)
            target_info = {
                "embedded": True,
                "url": host,
                "seed": o.target_seed,
                "faults": o.target_faults,
                "profiles": o.target_profiles,
                "flavor": o.target_flavor,
            }
        if not o.quiet:
            click.echo(f"preflight: one request to each of {len(models)} model(s) on {host} ...", err=True)
        t_preflight = time.monotonic()
        preflight_log: list[dict] = []
        for i, creds in enumerate(candidates):  # --auth auto: the first credentials the target accepts
            try:
                formats = preflight(
                    host, models, route, creds, protocol=o.protocol, tls=tls, headers=parse_headers(o.header), log=preflight_log
                )
                break
            except PreflightError as exc:
                if exc.cls != ErrorClass.unauthorized or i == len(candidates) - 1:
                    raise
                if not o.quiet:
                    click.echo(f"preflight: {creds.source} was rejected; trying {candidates[i + 1].source}", err=True)
        if len(candidates) > 1:
            o = replace(o, auth=creds.kind)  # the Locust child uses the kind the target accepted
            env.update(
                {
                    k: ""
                    for k, kind in (("BENCH_TOKEN", "bearer"), ("BENCH_JWT_SECRET", "jwt"), ("BENCH_COOKIE", "cookie"))
                    if kind != creds.kind
                    and not getattr(o, {"bearer": "token_file", "jwt": "jwt_secret_file", "cookie": "cookie_file"}[kind])
                }
            )
        target_info["stream_formats"] = formats
        if not o.quiet:
            click.echo(
                f"preflight: every model answered in {time.monotonic() - t_preflight:.1f} s; the load runs {seconds:g} s",
                err=True,
            )
        started_load = True
        cmd = _locust_cmd(
            o, host, seconds, run_dir, run_id, pin=pinning()[1] if target is not None and o.processes == 1 else None
        )
        started = time.time()
        if not o.quiet:
            click.echo(
                f"run {run_id}: {o.users} users, {seconds:g} s, scenario {o.scenario}, models {', '.join(models)}", err=True
            )
        metrics_url = o.server_metrics or (host + "/metrics" if target is not None else "")
        if metrics_url:
            from bench.servermetrics import Scraper

            scraper = Scraper(metrics_url, run_dir, verify=tls.httpx_verify()).start()
        sequential = None
        if o.until_decided:
            from bench.decisions.compare import load_tolerances
            from bench.decisions.sequential import Sequential

            sequential = Sequential(
                Path(o.until_decided),
                load_tolerances(list(o.gate_tolerance), o.gate_tolerance_file or None),
                o.decide_every,
                o.warmup if o.warmup is not None else default_warmup(seconds, o.users / o.spawn_rate),
                seconds,
            )
        try:
            interrupted, decided = _run_locust(cmd, env, run_dir, seconds, o.quiet, sequential)
        finally:
            if metrics_url:
                scraper.stop()
        ended = time.time()
    finally:
        if target is not None:
            target.stop()
        if not started_load:  # refused before any load: leave no half-made run folder behind
            import shutil

            shutil.rmtree(run_dir, ignore_errors=True)
    spool_warnings: list[str] = []
    rescue = rescue_dir(run_dir.name)
    try:
        n = finalize_records(run_dir, spool_warnings)
    except OSError as exc:
        raise RunFolderError(_folder_failed(run_dir, rescue, exc)) from None
    collector = _read_json(run_dir / "collector.json") or _read_json(rescue / "collector.json")
    if collector.get("rescued"):
        spool_warnings.insert(
            0,
            f"the run folder's disk was full: the run was stopped, and {collector['rescued']['records']} records "
            f"were kept in {collector['rescued']['where']} (read back into requests.parquet)",
        )
    fields, delivery_warnings = delivery(collector, n)
    scenario_path = resolve_path(o.scenario)
    if o.warmup is not None:
        warmup = o.warmup
    elif workload.trace is not None:
        warmup = 0.0  # the trace's clock starts once every user runs: its first rows are the workload, not a ramp
    else:
        warmup = default_warmup(seconds, o.users / o.spawn_rate)
    meta = {
        "run_id": run_id,
        "started": started,
        "ended": ended,
        "duration_s": seconds,
        "interrupted": interrupted,
        "host": host if not target_info["embedded"] else "embedded reference target",
        "target": target_info,
        "scenario": {"name": load_scenario(o.scenario).name, "path": str(scenario_path), "sha256": file_digest(scenario_path)},
        "models": models,
        "slos": list(o.slo) or load_scenario(o.scenario).slos,  # the ones used: --slo replaces the scenario's
        "warmup_s": warmup,
        "workload": workload.describe(),
        "load": {
            "users": o.users,
            "spawn_rate": o.spawn_rate,
            "processes": o.processes,
            "mode": o.load_mode,
            "arrival_rate": o.arrival_rate if o.load_mode == "open" else None,
            "arrival_dist": o.arrival_dist,
        },
        "route": {
            "kind": o.route,
            "protocol": o.protocol,
            "playground": not o.persist,
            "chat_id": o.chat_id,
            "template": o.route_template or None,
            "history": o.history,
            # what keeps a prefix cache from carrying over between runs, and the run's nonce
            "backend": {
                "url": o.backend,
                "protocol": o.backend_protocol,
                "share": o.backend_share,
                "models": o.backend_models or None,
            }
            if o.backend
            else None,
            "cache_salt": {"mode": o.cache_salt, "salt": cache_salt(o.cache_salt, run_id) or None},
            "max_tokens": route.max_tokens or None,  # the value used (flag or scenario)
            "ignore_eos": o.ignore_eos,
            "headers": sorted(parse_headers(o.header)),  # names only: values may be secrets
            "tls": {"ca_file": o.ca_file or None, "insecure": o.insecure},
        },
        "auth": o.auth,
        "preflight": preflight_log,
        "timeouts": {"first_chunk": o.first_chunk_timeout, "stall": o.stall_timeout, "total": o.total_timeout},
        **fields,
        "collector": collector,
        "warnings": collector.get("warnings", []) + spool_warnings,
        "command": redact(" ".join(cmd)),
        "build": _build(o.build_id),
        **environment_info(),
    }
    if interrupted:
        meta["interrupted_by"] = _INTERRUPTED_BY["signal"]
        meta["planned_duration_s"] = seconds
        meta["duration_s"] = round(ended - started, 1)
        meta["warnings"].insert(
            0,
            f"interrupted ({meta['interrupted_by']}) after {ended - started:.0f} s of {seconds:.0f} s: "
            "the numbers cover only that part",
        )
        if meta["interrupted_by"] == MASTER_DIED:
            meta["master_died"], line = master_loss(run_dir, n)
            meta["warnings"].insert(0, line)
    if sequential is not None:
        meta["sequential"] = sequential.describe(decided)
        meta["duration_s"] = round(ended - started, 1)  # the run stopped when decided, not at --max-duration
        if not decided and not interrupted:
            meta["warnings"].append(f"--until-decided: not every gate row was decided within --max-duration {o.max_duration}")
    meta["warnings"].extend(ignored)
    meta["warnings"].extend(_calibration_warnings(Path(o.out), run_dir, o, seconds))
    meta["warnings"].extend(delivery_warnings)
    if metrics_url:
        meta["server_metrics"] = metrics_url
        meta["warnings"].extend(scraper.warnings())
    if tls.insecure:
        meta["warnings"].append("--insecure: the target's TLS certificate was not verified")
    try:
        write_run_json(run_dir, meta)
    except OSError as exc:
        raise RunFolderError(_folder_failed(run_dir, rescue, exc)) from None
    (run_dir / "scenario.parsed.json").unlink(missing_ok=True)  # the children's copy; run.json names the file
    if rescue.is_dir():
        import shutil

        shutil.rmtree(rescue, ignore_errors=True)  # read back into requests.parquet
    _link_latest(Path(o.out), run_dir)
    if (run_dir / "requests.parquet").is_file():
        for spool in run_dir.glob("*.spool"):
            spool.unlink()  # their rows are all in requests.parquet now
    return run_dir


def _link_latest(out: Path, run_dir: Path) -> None:
    """``results/latest`` points at the newest run folder, so CI scripts need no ``ls -t``."""
    link = out / "latest"
    try:
        if link.is_symlink() or link.exists():
            link.unlink()
        link.symlink_to(run_dir.name, target_is_directory=True)
    except OSError:
        pass  # a file system without symlinks: the run folder is still there


def _folder_failed(run_dir: Path, rescue: Path, exc: OSError) -> str:
    spools = [str(x) for d in (run_dir, rescue) for x in sorted(d.glob("*.spool"))] if run_dir.is_dir() else []
    return (
        f"the run folder {run_dir} could not be finished ({exc.strerror or exc}): the records are in "
        f"{', '.join(spools) or 'no spool'}; free space, then `bench report {run_dir}` builds the folder from them"
    )


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def _build(flag: str) -> dict | None:
    from bench.schema import build_ref

    ref = build_ref(flag, os.environ)
    return ref.model_dump() if ref else None


def _run_locust(cmd: list[str], env: dict, run_dir: Path, seconds: float, quiet: bool, sequential=None) -> tuple[bool, bool]:
    """Run Locust to its end; on Ctrl-C let it shut down cleanly (records flushed).

    Returns (interrupted, decided): ``sequential`` (``--until-decided``) looks at the spooled
    records every ``every_s`` after the warm-up and stops the run once the gate is decided.
    """
    progress = _Progress(run_dir, seconds, quiet)
    interrupted = decided = False

    def _term(signum, frame):  # SIGTERM (CI cancelling a job) is handled like Ctrl-C: keep the records
        _INTERRUPTED_BY["signal"] = "SIGTERM"
        raise KeyboardInterrupt

    _INTERRUPTED_BY["signal"] = "SIGINT"

    previous = signal.signal(signal.SIGTERM, _term)
    # Ctrl-C too, whatever this process inherited: a shell starts background jobs with SIGINT ignored,
    # and Python then installs no KeyboardInterrupt of its own
    previous_int = signal.signal(signal.SIGINT, signal.default_int_handler)
    t0 = time.monotonic()
    next_look = t0 + (sequential.warmup_s + sequential.every_s if sequential is not None else math.inf)
    with open(run_dir / "locust.log", "w") as log:
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
        relay = _relay_output(proc, log)
        try:
            while proc.poll() is None:
                progress.show()
                time.sleep(0.5)
                if time.monotonic() >= next_look and proc.poll() is None:
                    decided = sequential.check(run_dir, time.monotonic() - t0)
                    last = sequential.looks[-1] if sequential.looks else None
                    if last is not None and not quiet:
                        sys.stderr.write(
                            f"\nlook {last.look} at {last.at_s:.0f} s ({last.requests} requests, alpha "
                            f"{last.alpha:.4f}): {last.verdict}"
                            + (f", {last.undecided} undecided" if last.verdict == "undecided" else "")
                            + "\n"
                        )
                    if decided:
                        proc.send_signal(signal.SIGTERM)  # the collector keeps in-flight streams as cancelled records
                        proc.wait(60)
                        break
                    next_look = time.monotonic() + sequential.every_s
        except KeyboardInterrupt:
            interrupted = True
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(60)
            except subprocess.TimeoutExpired:
                proc.kill()
        finally:
            signal.signal(signal.SIGTERM, previous)
            signal.signal(signal.SIGINT, previous_int)
        relay.join(10)
        progress.show(final=True)
    if proc.returncode not in (0, None) and not interrupted and not decided:
        tail = (run_dir / "locust.log").read_text()[-2000:]
        if "error:" in tail and not (run_dir / "collector.json").exists():
            msg = [line for line in tail.splitlines() if line.startswith("error:")]
            raise InputError(msg[-1][7:] if msg else f"locust failed, see {run_dir / 'locust.log'}")
        if not (run_dir / "collector.json").exists():  # the master never wrote its summary: it died
            rc = proc.returncode
            _INTERRUPTED_BY["signal"] = MASTER_DIED
            _INTERRUPTED_BY["how"] = signal.Signals(-rc).name if rc < 0 and -rc in signal.valid_signals() else f"exit {rc}"
            _wait_for_group(proc.pid, 20.0)  # its workers notice within a second, keep their rows, and exit
            interrupted = True
    return interrupted, decided


MASTER_DIED = "master died"


def _relay_output(proc: subprocess.Popen, log) -> threading.Thread:
    """The Locust child's output to locust.log, and its own one-line errors to this terminal at once: a
    full disk's "error: records could not be written ..." used to exist only in locust.log, on that disk."""

    def copy() -> None:
        assert proc.stdout is not None
        writable = True
        for raw in proc.stdout:
            line = raw.decode("utf-8", "replace")
            if writable:
                try:
                    log.write(line)
                    log.flush()
                except OSError:
                    writable = False  # the disk is full: the lines that matter still reach the terminal
            if line.startswith(("error: records could not be written", "error: the run folder's disk", "bench worker ")):
                sys.stderr.write(("\n" if sys.stderr.isatty() else "") + line)
                sys.stderr.flush()

    t = threading.Thread(target=copy, name="bench-locust-output", daemon=True)
    t.start()
    return t


def _wait_for_group(pgid: int, timeout: float) -> None:
    """Until every process of the Locust child's session is gone (orphaned workers writing their rows)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.2)
    try:
        os.killpg(pgid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def master_loss(run_dir: Path, records: int) -> tuple[dict, str]:
    """What a dead master cost: requests known to be sent (its last progress line, and what each worker
    wrote as it exited) against the records that exist; for run.json and its first warning."""
    try:
        progress_sent = int(json.loads((run_dir / "progress.json").read_text()).get("sent") or 0)
    except (OSError, ValueError):
        progress_sent = 0
    workers = []
    for f in sorted(run_dir.glob("worker-*.json")):
        try:
            workers.append(json.loads(f.read_text()))
        except (OSError, ValueError):
            continue
    sent = max(progress_sent, sum(int(w.get("sent") or 0) for w in workers))
    kept = sum(int(w.get("saved_rows") or 0) for w in workers)
    how = _INTERRUPTED_BY.get("how", "?")
    info = {
        "how": how,
        "sent_at_least": sent,
        "records": records,
        "kept_by_workers": kept,
        "unrecorded": max(0, sent - records),
        "workers": workers,
    }
    line = (
        f"the Locust master died ({how}): at least {sent} requests were sent and {records} have a record "
        f"({kept} kept by its workers as they exited); {info['unrecorded']} have none"
    )
    return info, line


def _calibration_warnings(out: Path, run_dir: Path, o: RunOptions, seconds: float) -> list[str]:
    """Compare what each worker process was asked to do with the latest ``bench calibrate`` verdict."""
    cal = latest_calibration(out)
    if not cal or not cal.get("verdict", {}).get("streams"):
        return []
    import pyarrow.parquet as pq

    chunks = pq.read_table(run_dir / "requests.parquet", columns=["chunks"]).column("chunks").to_pylist()
    per_worker_pps = sum(c or 0 for c in chunks) / max(seconds, 1e-9) / o.processes
    per_worker_streams = o.users / o.processes
    v = cal["verdict"]
    if per_worker_pps > v["parts_per_s"] or per_worker_streams > v["streams"]:
        return [
            f"each worker process handled about {per_worker_streams:.0f} streams / {per_worker_pps:,.0f} parts/s, beyond "
            f"this machine's calibrated capacity ({v['streams']} streams / {v['parts_per_s']:,.0f} parts/s within "
            f"{v.get('bound_ms', 5):g} ms): add --processes or lower the load"
        ]
    return []

"""Starting things: the embedded reference target and the Locust child, the same way everywhere.

``bench run``, each level of ``bench capacity``, ``bench calibrate`` and the benchmarks start
the target and Locust through here, so the target's pinning, its secret and the Locust command
line are written once.
"""

from __future__ import annotations

import os
import secrets as pysecrets
import sys
from pathlib import Path

from bench.target.server import TargetProcess, can_pin

LOCUSTFILE = Path(__file__).resolve().parent / "load" / "locustfile.py"


def fixed_schedule_profile(
    parts: int, step_ms: float, ttft_ms: float = 50, model: str = "calib/model", max_batch: int = 1_000_000
) -> str:
    """A target profile YAML where every stream is ``ttft_ms`` to its first part, then one part every
    ``step_ms``: known timing, for calibration and the benchmarks."""
    return (
        f"# every stream: {ttft_ms:g} ms to the first part, then one part every {step_ms:g} ms, {parts} parts\n"
        "defaults: {jitter: 0.0, prefill_ms_per_1k_prompt_tokens: 0, step_ms_per_active: 0}\n"
        f"models:\n  {model}: {{max_new_tokens: {parts}, truncate: 100000, ttft_ms: {ttft_ms:g}, step_ms: {step_ms:g}, "
        f"output_tokens_median: {parts}, output_tokens_sigma: 0, max_batch: {max_batch}}}\n"
    )


def pinning() -> tuple[int | None, str | None]:
    """(target CPU, load generator CPU list) on a machine with 2+ CPUs where pinning works, else (None, None)."""
    cpus = os.cpu_count() or 1
    if cpus > 1 and can_pin():
        return cpus - 1, "0"
    return None, None


def embedded_target(o, log: Path | None = None, truth_file: Path | None = None, pin: bool = True) -> tuple[TargetProcess, str]:
    """The reference target as ``o`` (RunOptions) asks: seed, flavour, profiles, faults; a fresh JWT secret."""
    secret = pysecrets.token_hex(32)
    args = ["--seed", str(o.target_seed), "--flavor", o.target_flavor]
    args += ["--truth-file", str(truth_file)] if truth_file else []
    args += ["--profiles", o.target_profiles] if o.target_profiles else []
    args += ["--faults", o.target_faults] if o.target_faults else []
    cpu = pinning()[0] if pin else None
    return TargetProcess(args, secret=secret, cpu=cpu, log=log), secret


def target_for_measuring(profile_yaml: Path, pin: bool = True, log: Path | None = None) -> TargetProcess:
    """A no-auth target on a given profile file (calibration, benchmarks)."""
    return TargetProcess(
        ["--no-auth", "--profiles", str(profile_yaml)], secret=pysecrets.token_hex(8), cpu=pinning()[0] if pin else None, log=log
    )


def free_loopback_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def local_master_args() -> list[str]:
    """``--processes N`` on one machine: the master on loopback and a free port, never ``*:5557``
    (a second run's workers joined the first; any host that reached 5557 took a share of the users)."""
    port = str(free_loopback_port())
    return ["--master-bind-host", "127.0.0.1", "--master-bind-port", port, "--master-port", port]


def locust_command(
    host: str,
    users: int,
    spawn_rate: float,
    seconds: float,
    results_dir: Path,
    *extra: str,
    pin: str | None = None,
    locustfile: Path = LOCUSTFILE,
) -> list[str]:
    """A headless Locust child writing its records to ``results_dir`` (``pin``: taskset CPU list)."""
    # -P: the current directory is not put first on the import path, so a bench/ folder where the user
    # stands (their own scripts, a second checkout) can never replace the harness in the child
    cmd = [
        sys.executable,
        "-P",
        "-m",
        "locust",
        "-f",
        str(locustfile),
        "--headless",
        "--host",
        host,
        "-u",
        str(users),
        "-r",
        f"{spawn_rate:g}",
        "-t",
        f"{seconds:g}s",
        "--only-summary",
        "--results-dir",
        str(results_dir),
        *extra,
    ]
    return ["taskset", "-c", pin, *cmd] if pin else cmd

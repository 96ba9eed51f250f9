"""Each option declared once (bench/optiontable.py): commands show what they honour, and every
value bench run is given reaches its Locust child unchanged."""

from __future__ import annotations

import subprocess
import sys

from conftest import bench_cmd

from bench.optiontable import LOCUST, OPTIONS, RunOptions, locust_argv


def test_capacity_help_shows_only_what_capacity_uses():
    out = subprocess.run(bench_cmd("capacity", "--help"), capture_output=True, text=True, timeout=60).stdout
    for absent in ("--duration", "--fail-on-slo", "--no-report", "--warmup", "--users", "--spawn-rate"):
        assert absent not in out, absent
    for present in ("--levels", "--target-faults", "--stall-timeout", "--processes", "--host"):
        assert present in out, present


def test_run_help_lists_every_run_option():
    out = subprocess.run(bench_cmd("run", "--help"), capture_output=True, text=True, timeout=60).stdout
    for o in OPTIONS:
        if "run" in o.where and not o.hidden:
            assert o.long in out, o.long


CHILD = """
import json, sys
from locust.argument_parser import get_parser
import bench.load.locustfile  # registers the project's options
opts = get_parser().parse_args(["-f", "locustfile.py", *sys.argv[1:]])
print(json.dumps({k: v for k, v in vars(opts).items()}, default=str))
"""


def test_every_locust_option_reaches_the_child_unchanged(tmp_path):
    """Set every Locust-bound option of RunOptions to a non-default value; parse the child's argv with
    Locust's own parser (in a process of its own: Locust monkey-patches) and get the same values back."""
    import json

    values = {}
    for o in OPTIONS:
        if LOCUST not in o.where or o.name in ("run_id", "results_dir") or not hasattr(RunOptions(), o.name):
            continue
        if o.flag:
            values[o.name] = True
        elif o.choices:
            values[o.name] = next(c for c in o.choices if c != o.default)
        elif o.multiple:
            values[o.name] = ["a: 1", "b: 2"]
        elif o.type is int:
            values[o.name] = (o.default or 0) + 3
        elif o.type is float:
            values[o.name] = (o.default or 0.0) + 1.5
        else:
            values[o.name] = str(tmp_path / f"{o.name}.txt") if o.path else f"value-{o.name}"
    argv = locust_argv(RunOptions(**values))
    r = subprocess.run([sys.executable, "-c", CHILD, *argv], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr[-2000:]
    parsed = json.loads(r.stdout)
    for name, v in values.items():
        assert parsed[name] == v, (name, parsed[name], v)

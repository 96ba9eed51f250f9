"""Each option declared once (bench/optiontable.py): commands show what they honour, and every
value bench run is given reaches its Locust child unchanged."""

from __future__ import annotations

import math
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
from conftest import bench_cmd

from bench.errors import InputError
from bench.options import check_values
from bench.optiontable import LOCUST, OPTIONS, RUN, Bound, RunOptions, locust_argv


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


# --- values: declared with each option, checked in one place ----------------------------------------------


BOUNDED = [o for o in OPTIONS if o.bound is not None]


def test_every_number_option_is_bounded_or_says_why_not():
    unbounded = {o.name for o in OPTIONS if o.type in (int, float) and o.bound is None}
    # seeds take any integer; chat_id has its own rule (-1 in playground mode, a real id with --persist)
    assert unbounded == {"seed", "target_seed", "chat_id", "arrival_split"}, unbounded
    assert len(BOUNDED) >= 15


def _outside(b: Bound) -> list[float]:
    out = [b.low if b.above else b.low - 1]
    if b.high is not None:
        out.append(b.high + 1)
    return out


@pytest.mark.parametrize("o", BOUNDED, ids=lambda o: o.name)
def test_each_bound_refuses_the_case_outside_it_and_admits_its_edge(o):
    where = RUN if RUN in o.where else LOCUST
    base = RunOptions()
    check_values(base, where)  # the defaults pass
    edge = o.bound.high if o.bound.high is not None else (o.bound.low + 1 if o.bound.above else o.bound.low)
    check_values(replace(base, **{o.name: o.type(edge)}), where)
    for bad in _outside(o.bound):
        with pytest.raises(InputError) as err:
            check_values(replace(base, **{o.name: o.type(bad)}), where)
        assert str(err.value).startswith(f"{o.long} {bad:g}: expected "), err.value
    if o.type is float:
        for bad in (math.nan, math.inf):
            with pytest.raises(InputError, match=f"^{o.long} .*finite"):
                check_values(replace(base, **{o.name: bad}), where)


def test_a_locust_process_checks_its_own_options_with_the_same_code(tmp_path):
    """Plain Locust: a value bench run never sees (--drain is Locust's own shape option) is refused in the child."""
    r = subprocess.run(
        ["locust", "-f", "locustfile.py", "--headless", "-u", "1", "-t", "2s", "--drain", "-1", "--host", "http://127.0.0.1:9"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=Path(__file__).parent.parent,
    )
    assert r.returncode != 0 and "--drain -1: expected a number not below 0" in r.stderr, r.stderr[-600:]

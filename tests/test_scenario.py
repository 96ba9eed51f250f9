"""Scenario files: the bundled ones load, bad ones are refused with file, line and field."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from bench.errors import InputError
from bench.scenario import SCENARIO_DIR, load_scenario
from bench.slo import parse_slo


@pytest.mark.parametrize("path", sorted(SCENARIO_DIR.glob("*.yaml")), ids=lambda p: p.stem)
def test_bundled_scenarios_load(path):
    s = load_scenario(path)
    assert s.conversations and s.models


def test_bundled_set_covers_the_promised_shapes():
    names = {p.stem for p in SCENARIO_DIR.glob("*.yaml")}
    assert {"default", "coding-help", "short-qa", "long-context", "long-chat"} <= names
    assert max(len(c.turns) for c in load_scenario("long-chat").conversations) >= 10
    assert len(load_scenario("default").models) >= 3


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "s.yaml"
    p.write_text(text)
    return p


GOOD = """name: x
models: [{model: a/b}]
conversations:
  - name: c
    turns: [hi]
"""


@pytest.mark.parametrize(
    "text,line,needle",
    [
        ("name: x\nconversations: [\n", 3, "not valid YAML"),
        (GOOD + "bogus: 1\n", 6, "'bogus'"),
        ("name: x\nmodels: [{model: a/b, weight: -1}]\nconversations:\n  - {name: c, turns: [hi]}\n", 2, "models.0.weight"),
        ("name: x\nmodels: [{model: a/b}]\nconversations: []\n", 3, "conversations"),
        ("name: x\nmodels: [{model: a/b}]\nconversations:\n  - name: c\n    turns: []\n", 5, "conversations.0.turns"),
        ("name: x\nmodels: [{model: a/b}]\nconversations:\n  - name: c\n    turns: ['   ']\n", 5, "blank"),
        ("name: x\nmodels: [{model: nopublisher}]\nconversations:\n  - {name: c, turns: [hi]}\n", 2, "models.0.model"),
        (GOOD + "think_time: {kind: uniform, min: 3, max: 1}\n", 6, "think_time"),
        (GOOD + "think_time: {kind: sometimes}\n", 6, "think_time"),
        (GOOD + "slos: ['ttfc_ms:p95<=abc']\n", 6, "slos"),
        (GOOD + "slos: ['latency<=3']\n", 6, "unknown metric"),
        ("name: x\nmodels: [{model: a/b}]\nconversations:\n  - name: c\n    turns: [hi]\n    weight: lots\n", 6, "weight"),
    ],
)
def test_bad_scenarios_name_file_line_field(tmp_path, text, line, needle):
    p = write(tmp_path, text)
    with pytest.raises(InputError) as exc:
        load_scenario(p)
    msg = str(exc.value)
    assert str(p) in msg
    assert f"line {line}" in msg
    assert needle in msg


def test_missing_file():
    with pytest.raises(InputError, match="not found"):
        load_scenario("no-such-scenario")


def test_think_time_models():
    s = load_scenario("default")
    rng = random.Random(1)
    vals = [s.think(rng, 100, 10) for _ in range(200)]
    assert 0.2 <= min(vals) and max(vals) <= 1.0
    c = load_scenario("coding-help")  # content-tied: reading the reply plus typing the message
    short, long_ = c.think(rng, 60, 8), c.think(rng, 600, 8)
    assert long_ > short
    assert c.think(rng, 0, 0) == 1.0  # min


def test_slo_parsing():
    s = parse_slo("gaps_ms:p99<=200")
    assert (s.metric, s.stat, s.op, s.value) == ("gaps_ms", "p99", "<=", 200.0)
    assert parse_slo("error_rate<=1%").value == pytest.approx(0.01)
    with pytest.raises(InputError):
        parse_slo("ttfc_ms:p42<=1")


def test_step_shape_schedule():
    from bench.load.steps import parse_steps, schedule

    steps = parse_steps("10:30s,20:1m,0:10")
    assert steps == [(10, 30.0), (20, 60.0), (0, 10.0)]
    assert schedule(steps, 0, False, 5) == 10 and schedule(steps, 31, False, 5) == 20 and schedule(steps, 95, False, 5) == 0
    assert schedule(steps, 101, False, 5) == 0 and schedule(steps, 106, False, 5) is None
    assert schedule(parse_steps("10:10s,20:10s"), 15, True, 0) == 15
    with pytest.raises(InputError):
        parse_steps("ten:30s")


def test_children_read_the_parents_parse_and_a_changed_file_is_parsed_again(tmp_path, monkeypatch):
    """bench run parses the scenario once and hands it to its Locust children as JSON (a 9.8 MB scenario
    was parsed in bench, the master and every worker); a file changed since is parsed anew."""
    import os
    import time

    from bench import scenario as sc

    f = tmp_path / "s.yaml"
    f.write_text("name: s\nconversations:\n  - name: a\n    turns: ['hi', 'more']\n")
    env = sc.hand_on(f, tmp_path)
    assert Path(env[sc.PARSED_ENV]).is_file()
    monkeypatch.setenv(sc.PARSED_ENV, env[sc.PARSED_ENV])
    sc._PARSED.clear()

    def no_yaml(path):
        raise AssertionError("parsed the YAML again")

    monkeypatch.setattr(sc, "_parse_scenario", no_yaml)
    assert [t.user for t in sc.load_scenario(f).conversations[0].turns] == ["hi", "more"]
    monkeypatch.undo()
    monkeypatch.setenv(sc.PARSED_ENV, env[sc.PARSED_ENV])
    time.sleep(0.01)
    f.write_text("name: s\nconversations:\n  - name: a\n    turns: ['changed']\n")
    os.utime(f, None)
    sc._PARSED.clear()
    assert [t.user for t in sc.load_scenario(f).conversations[0].turns] == ["changed"]

"""Scenario files: scripted multi-turn conversations, a model mix, think time and SLOs.

Validated with pydantic before any load is sent; errors name the file, the line and the field,
because the person reading them is usually about to start a long run.
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Annotated, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from bench.errors import InputError
from bench.slo import Slo, parse_slo

SCENARIO_DIR = Path(__file__).resolve().parent.parent / "scenarios"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)  # weight: .inf / .nan is refused with its line


class Turn(_Strict):
    user: str = Field(min_length=1)

    @field_validator("user")
    @classmethod
    def _not_blank(cls, v: str) -> str:
        if not v.strip():
            raise ValueError("a turn's message must not be blank (the route answers 400)")
        return v


class Conversation(_Strict):
    name: str = Field(min_length=1)
    weight: float = Field(1.0, gt=0)
    tags: list[str] = []
    turns: list[Turn] = Field(min_length=1)

    @field_validator("turns", mode="before")
    @classmethod
    def _plain_strings(cls, v):
        if isinstance(v, list):
            return [{"user": t} if isinstance(t, str) else t for t in v]
        return v


class ModelWeight(_Strict):
    route: str | None = None  # this model's own route path template (the app's sibling routes); before model: it is read there
    model: str = Field(pattern=r"^\S+$")
    weight: float = Field(1.0, gt=0)

    @field_validator("model")
    @classmethod
    def _publisher_model(cls, v: str, info) -> str:
        """The Neptun route's path needs publisher/model; a model with its own route template takes any id
        (and --route openai / --models take any id the server serves)."""
        if not info.data.get("route") and v.split("=", 1)[-1].count("/") != 1:
            raise ValueError("must be publisher/model (or give this model a route: template)")
        return v


class FixedThink(_Strict):
    kind: Literal["fixed"]
    seconds: float = Field(ge=0)


class UniformThink(_Strict):
    kind: Literal["uniform"]
    min: float = Field(ge=0)
    max: float = Field(ge=0)

    @model_validator(mode="after")
    def _order(self):
        if self.max < self.min:
            raise ValueError("max must be at least min")
        return self


class ExponentialThink(_Strict):
    kind: Literal["exponential"]
    mean: float = Field(gt=0)
    max: float | None = Field(None, gt=0)


class LognormalThink(_Strict):
    kind: Literal["lognormal"]
    median: float = Field(gt=0)
    sigma: float = Field(0.5, ge=0)
    max: float | None = Field(None, gt=0)


class ContentThink(_Strict):
    """Reading the last reply, then typing the next message: tied to the text itself."""

    kind: Literal["content"]
    read_chars_per_s: float = Field(40.0, gt=0)
    type_chars_per_s: float = Field(5.0, gt=0)
    min: float = Field(0.0, ge=0)
    max: float | None = Field(None, gt=0)


ThinkTime = Annotated[FixedThink | UniformThink | ExponentialThink | LognormalThink | ContentThink, Field(discriminator="kind")]


class Scenario(_Strict):
    name: str
    description: str = ""
    models: list[ModelWeight] = []
    think_time: ThinkTime = FixedThink(kind="fixed", seconds=0.0)
    slos: list[str] = []
    max_tokens: int | None = Field(None, gt=0)  # bound every reply (OpenAI route), unless --max-tokens says otherwise
    conversations: list[Conversation] = Field(min_length=1)

    @field_validator("slos")
    @classmethod
    def _slos(cls, v: list[str]) -> list[str]:
        for s in v:
            try:
                parse_slo(s)
            except InputError as exc:
                raise ValueError(str(exc)) from None
        return v

    def parsed_slos(self) -> list[Slo]:
        return [parse_slo(s) for s in self.slos]

    def think(self, rng: random.Random, last_reply_chars: int, next_message_chars: int) -> float:
        t = self.think_time
        if isinstance(t, FixedThink):
            return t.seconds
        if isinstance(t, UniformThink):
            return rng.uniform(t.min, t.max)
        if isinstance(t, ExponentialThink):
            v = rng.expovariate(1.0 / t.mean)
        elif isinstance(t, LognormalThink):
            import math

            v = rng.lognormvariate(math.log(t.median), t.sigma)
        else:
            v = max(t.min, last_reply_chars / t.read_chars_per_s + next_message_chars / t.type_chars_per_s)
        return min(v, t.max) if t.max else v

    def mean_think_s(self) -> float:
        """Mean think time between turns, for Little's law in capacity planning."""
        t = self.think_time
        if isinstance(t, FixedThink):
            return t.seconds
        if isinstance(t, UniformThink):
            return (t.min + t.max) / 2
        if isinstance(t, ExponentialThink):
            return t.mean
        if isinstance(t, LognormalThink):
            import math

            return t.median * math.exp(t.sigma**2 / 2)
        chars = [len(turn.user) for c in self.conversations for turn in c.turns]
        return max(t.min, 600 / t.read_chars_per_s + (sum(chars) / len(chars)) / t.type_chars_per_s)


def _line_of(node: yaml.Node | None, loc: tuple) -> int | None:
    """Walk the YAML node tree along a pydantic error location to find the line."""
    line = node.start_mark.line + 1 if node is not None else None
    for key in loc:
        if isinstance(node, yaml.MappingNode):
            nxt = next((v for k, v in node.value if getattr(k, "value", None) == key), None)
        elif isinstance(node, yaml.SequenceNode) and isinstance(key, int) and key < len(node.value):
            nxt = node.value[key]
        else:
            nxt = None
        if nxt is None:
            break
        node = nxt
        line = node.start_mark.line + 1
    return line


def resolve_path(name: str | Path) -> Path:
    """A path as given, or a bundled scenario by name (``coding-help`` -> scenarios/coding-help.yaml)."""
    p = Path(name)
    if p.is_file():
        return p
    for base in (Path.cwd() / "scenarios", SCENARIO_DIR):
        for cand in (base / p, base / f"{p}.yaml"):
            if cand.is_file():
                return cand
    raise InputError(
        f"{name}: scenario file not found (bundled: {', '.join(sorted(x.stem for x in SCENARIO_DIR.glob('*.yaml')))})"
    )


_PARSED: dict[tuple[str, int, int], Scenario] = {}


def load_scenario(name: str | Path) -> Scenario:
    """The scenario at ``name`` (a path, or a name under scenarios/), parsed once per process and file
    version: bench run reads it for its checks, its run.json and its report (an 8 MB scenario takes ~2 s)."""
    path = resolve_path(name)
    st = path.stat()
    key = (str(path.resolve()), st.st_mtime_ns, st.st_size)
    if key not in _PARSED:
        _PARSED.clear()  # one scenario at a time is what a process uses
        _PARSED[key] = _from_parent(key) or _parse_scenario(path)
    return _PARSED[key].model_copy(deep=True)  # callers may adjust theirs


PARSED_ENV = "BENCH_SCENARIO_PARSED"  # bench run's children (Locust master, forked workers) read the parent's parse


def hand_on(name: str | Path, folder: Path) -> dict[str, str]:
    """Write the parsed scenario as JSON into ``folder`` for the child processes; the environment that
    points them at it. JSON is read back in a fraction of YAML's time and never parsed as YAML again."""
    path = resolve_path(name)
    st = path.stat()
    out = Path(folder) / "scenario.parsed.json"
    doc = {"source": [str(path.resolve()), st.st_mtime_ns, st.st_size], "scenario": load_scenario(path).model_dump(mode="json")}
    out.write_text(json.dumps(doc))
    return {PARSED_ENV: str(out)}


def _from_parent(key: tuple[str, int, int]) -> Scenario | None:
    import os

    where = os.environ.get(PARSED_ENV)
    if not where:
        return None
    try:
        doc = json.loads(Path(where).read_text())
        if tuple(doc["source"]) != key:  # another file, or changed since: parse it here
            return None
        return Scenario.model_validate(doc["scenario"])
    except (OSError, ValueError, KeyError, TypeError, ValidationError):
        return None


def _parse_scenario(path: Path) -> Scenario:
    from bench.inputfiles import parse_yaml, read_text

    data, node = parse_yaml(read_text(path, "scenario"), str(path))
    if not isinstance(data, dict):
        raise InputError(f"{path}, line 1: a scenario is a mapping with 'name' and 'conversations'")
    try:
        return Scenario.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = tuple(
            p for p in err["loc"] if not (isinstance(p, str) and p in {"fixed", "uniform", "exponential", "lognormal", "content"})
        )
        field = ".".join(str(p) for p in loc) or "(top level)"
        line = _line_of(node, loc)
        msg = err["msg"].removeprefix("Value error, ")
        raise InputError(f"{path}, line {line}, field '{field}': {msg}") from None

"""Model profiles of the reference target: how fast each model starts, decodes and saturates.

The numbers are parameters of a small continuous-batching model (see ``engine.py``), chosen so
that the knee of every model is computable from its profile: tests and capacity planning can
check what the harness finds against what the profile says.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from importlib import resources
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from bench.errors import InputError


class ProfileFields(BaseModel):
    """Every tunable of one model; all optional so a file can override just a few."""

    model_config = ConfigDict(extra="forbid")

    ttft_ms: float | None = Field(None, ge=0)
    prefill_ms_per_1k_prompt_tokens: float | None = Field(None, ge=0)
    step_ms: float | None = Field(None, gt=0)
    step_ms_per_active: float | None = Field(None, ge=0)
    max_batch: int | None = Field(None, ge=1)
    output_tokens_median: float | None = Field(None, ge=1)
    output_tokens_sigma: float | None = Field(None, ge=0)
    jitter: float | None = Field(None, ge=0, le=1)
    tokens_per_part: int | None = Field(None, ge=1)
    max_new_tokens: int | None = Field(None, ge=1)
    truncate: int | None = Field(None, ge=1)
    reasoning: bool | None = None


class ProfileFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    defaults: ProfileFields = Field(default_factory=lambda: ProfileFields.model_validate({}))
    models: dict[str, ProfileFields] = {}
    retired: list[str] | None = None


@dataclass(frozen=True)
class ModelProfile:
    name: str
    ttft_ms: float = 150.0
    prefill_ms_per_1k_prompt_tokens: float = 20.0
    step_ms: float = 15.0
    step_ms_per_active: float = 0.25
    max_batch: int = 32
    output_tokens_median: float = 120.0
    output_tokens_sigma: float = 0.5
    jitter: float = 0.05
    tokens_per_part: int = 1
    max_new_tokens: int = 500
    truncate: int = 8192
    reasoning: bool = False

    def step_time_ms(self, active: int) -> float:
        """Decode step time for one stream when ``active`` streams share the batch."""
        return self.step_ms + self.step_ms_per_active * min(active, self.max_batch)

    def first_token_ms(self, prompt_tokens: int) -> float:
        kept = min(prompt_tokens, self.truncate)
        return self.ttft_ms + self.prefill_ms_per_1k_prompt_tokens * kept / 1000.0

    def mean_output_tokens(self) -> float:
        """Mean of the capped lognormal, approximated by the uncapped mean (cap rarely binds)."""
        mean = self.output_tokens_median * math.exp(self.output_tokens_sigma**2 / 2)
        return min(mean, float(self.max_new_tokens))


@dataclass
class Profiles:
    models: dict[str, ModelProfile]
    retired: list[str] = field(default_factory=list)

    def get(self, name: str) -> ModelProfile | None:
        return self.models.get(name)


def _read_yaml(path: Path | None, text: str) -> ProfileFile:
    where = str(path) if path else "bundled profiles.yaml"
    from bench.inputfiles import parse_yaml

    data = parse_yaml(text, where)[0] or {}
    try:
        return ProfileFile.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = ".".join(str(p) for p in err["loc"])
        raise InputError(f"{where}: field '{loc}': {err['msg']}") from None


def _merge(base: dict[str, Any], over: ProfileFields) -> dict[str, Any]:
    out = dict(base)
    out.update({k: v for k, v in over.model_dump().items() if v is not None})
    return out


def load_profiles(path: str | Path | None = None, overrides: dict[str, Any] | None = None) -> Profiles:
    """Bundled profiles, then the file at ``path`` on top, then ``overrides`` for every model."""
    bundled = _read_yaml(None, resources.files("bench.target").joinpath("profiles.yaml").read_text())
    files = [bundled]
    if path is not None:
        p = Path(path)
        if not p.is_file():
            raise InputError(f"{p}: profile file not found")
        from bench.inputfiles import read_text

        files.append(_read_yaml(p, read_text(p, "profile file")))
    # Each file in turn: its defaults apply to every model, then its per-model entries on top.
    per_model: dict[str, dict[str, Any]] = {}
    retired: list[str] = []
    for f in files:
        for name in set(per_model) | set(f.models):
            per_model[name] = _merge(per_model.get(name, {}), f.defaults)
        for name, fields in f.models.items():
            per_model[name] = _merge(per_model[name], fields)
        if f.retired is not None:
            retired = list(f.retired)
    models = {name: ModelProfile(name=name, **{**fields, **(overrides or {})}) for name, fields in per_model.items()}
    return Profiles(models=models, retired=retired)


def with_overrides(profile: ModelProfile, **kw: Any) -> ModelProfile:
    return replace(profile, **kw)

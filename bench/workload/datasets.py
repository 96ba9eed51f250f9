"""Conversation datasets into scenario files: ShareGPT JSON, OpenAI chat JSONL, plain text.

Only the user's side is imported: each turn's reply comes live from the model under test and is
sent back as history, as the real client does. A record of the wrong shape is an error naming
the file, the record and the field (``skip_invalid`` counts it as skipped instead); a record that
is well formed but unfit (no user turn, too few turns, a prompt too long) is skipped and counted
under its reason, so the import report says what was kept and why the rest was not.
"""

from __future__ import annotations

import json
import random
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from bench.errors import InputError
from bench.inputfiles import DATA_BYTES, parse_json, read_text

USER_ROLES = {"human", "user"}
OTHER_ROLES = {"gpt", "assistant", "chatgpt", "bing", "bard", "model", "system", "tool", "function"}
FORMATS = ("auto", "sharegpt", "openai", "text")


@dataclass
class ImportFilters:
    min_turns: int = 1
    max_turns: int = 0  # 0: no bound; longer conversations are cut to their first max_turns turns
    max_prompt_chars: int = 0  # 0: no bound; a conversation with a longer user message is skipped
    sample: int = 0  # 0: keep all; else a seeded random sample of the kept conversations
    seed: int = 0


@dataclass
class ImportReport:
    source: str
    fmt: str
    records: int = 0
    kept: int = 0
    truncated: int = 0
    skipped: Counter = field(default_factory=Counter)
    turns: int = 0

    def text(self) -> str:
        lines = [f"{self.source} ({self.fmt}): {self.records} records, kept {self.kept} conversations ({self.turns} turns)"]
        if self.truncated:
            lines.append(f"  cut to --max-turns: {self.truncated}")
        for reason, n in self.skipped.most_common():
            lines.append(f"  skipped {n}: {reason}")
        return "\n".join(lines)


def _detect(path: Path, head: str) -> str:
    if path.suffix.lower() == ".txt":
        return "text"
    first = head.lstrip()[:1]
    if first == "[" or (first == "{" and '"conversations"' in head.split("\n", 1)[0]):
        return "sharegpt"
    if first == "{":
        return "openai"
    raise InputError(
        f"{path}: cannot tell the format (a .txt of prompts, a ShareGPT .json list, or OpenAI chat JSONL); give --format"
    )


def _records(path: Path, fmt: str, text: str):
    """(where, record) pairs. A JSON list (ShareGPT) or JSON Lines (either format)."""
    if fmt == "text":
        for n, line in enumerate(text.splitlines(), start=1):
            if line.strip():
                yield f"{path}, line {n}", line.strip()
        return
    if text.lstrip().startswith("["):
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise InputError(f"{path}, line {exc.lineno}: not valid JSON ({exc.msg})") from None
        except (RecursionError, ValueError):
            data = parse_json(text, str(path))  # the same error again, as one line
        if not isinstance(data, list):
            raise InputError(f"{path}: expected a JSON list of conversations")
        for i, rec in enumerate(data):
            yield f"{path}, record {i}", rec
        return
    for n, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        yield f"{path}, line {n}", parse_json(line, f"{path}, line {n}")


def _content(v, where: str, fld: str) -> str:
    """A message's text: a string, or OpenAI content parts (their text parts joined)."""
    if isinstance(v, str):
        return v
    if isinstance(v, list) and all(isinstance(p, dict) for p in v):
        return "\n".join(p.get("text", "") for p in v if p.get("type") == "text")
    raise InputError(f"{where}, field '{fld}': expected text or a list of content parts")


def _user_turns(fmt: str, rec, where: str) -> tuple[str | None, list[str]]:
    """(id, the user's messages in order) of one record; InputError when its shape is wrong."""
    if fmt == "text":
        return None, [rec]
    if not isinstance(rec, dict):
        raise InputError(f"{where}: expected a JSON object")
    if fmt == "sharegpt":
        msgs = rec.get("conversations", rec.get("conversation"))
        if not isinstance(msgs, list):
            raise InputError(f"{where}, field 'conversations': expected a list of {{from, value}}")
        turns = []
        for i, m in enumerate(msgs):
            if not isinstance(m, dict) or not isinstance(m.get("from"), str) or "value" not in m:
                raise InputError(f"{where}, field 'conversations.{i}': expected {{from: human|gpt|system, value: text}}")
            role = m["from"].lower()
            if role not in USER_ROLES | OTHER_ROLES:
                raise InputError(f"{where}, field 'conversations.{i}.from': unknown speaker {m['from']!r}")
            if role in USER_ROLES:
                turns.append(_content(m["value"], where, f"conversations.{i}.value"))
        rid = rec.get("id")
        return (str(rid) if rid is not None else None), turns
    msgs = rec.get("messages")
    if not isinstance(msgs, list):
        raise InputError(f"{where}, field 'messages': expected a list of {{role, content}}")
    turns = []
    for i, m in enumerate(msgs):
        if not isinstance(m, dict) or not isinstance(m.get("role"), str):
            raise InputError(f"{where}, field 'messages.{i}': expected {{role: user|assistant|system, content: text}}")
        if m["role"] == "user":
            turns.append(_content(m.get("content"), where, f"messages.{i}.content"))
    rid = rec.get("id")
    return (str(rid) if rid is not None else None), turns


def import_conversations(
    path: str | Path, fmt: str = "auto", filters: ImportFilters | None = None, skip_invalid: bool = False
) -> tuple[list[dict], ImportReport]:
    path = Path(path)
    f = filters or ImportFilters()
    if not path.is_file():
        raise InputError(f"{path}: file not found")
    if fmt not in FORMATS:
        raise InputError(f"--format {fmt!r}: one of {', '.join(FORMATS)}")
    text = read_text(path, "dataset", DATA_BYTES)
    if not text.strip():
        raise InputError(f"{path}: the file is empty")
    fmt = _detect(path, text[:4096]) if fmt == "auto" else fmt
    rep = ImportReport(str(path), fmt)
    kept = []
    for where, rec in _records(path, fmt, text):
        rep.records += 1
        try:
            rid, turns = _user_turns(fmt, rec, where)
        except InputError as exc:
            if not skip_invalid:
                raise
            rep.skipped[f"invalid ({str(exc).split(': ', 1)[-1]})"] += 1
            continue
        turns = [t.strip() for t in turns if t and t.strip()]
        if not turns:
            rep.skipped["no user message"] += 1
            continue
        if f.max_prompt_chars and max(len(t) for t in turns) > f.max_prompt_chars:
            rep.skipped[f"a user message longer than {f.max_prompt_chars} characters"] += 1
            continue
        if len(turns) < f.min_turns:
            rep.skipped[f"fewer than {f.min_turns} user turns"] += 1
            continue
        if f.max_turns and len(turns) > f.max_turns:
            turns = turns[: f.max_turns]
            rep.truncated += 1
        kept.append((rid, turns))
    if f.sample and len(kept) > f.sample:
        rng = random.Random(f.seed)
        picked = sorted(rng.sample(range(len(kept)), f.sample))
        rep.skipped[f"not in the --sample of {f.sample}"] += len(kept) - f.sample
        kept = [kept[i] for i in picked]
    stem = path.stem
    convs, names = [], set()
    for i, (rid, turns) in enumerate(kept):
        name = f"{stem}-{rid}" if rid else f"{stem}-{i + 1}"
        if name in names:
            name = f"{name}-{i + 1}"
        names.add(name)
        convs.append({"name": name, "tags": ["imported"], "turns": turns})
    rep.kept, rep.turns = len(convs), sum(len(c["turns"]) for c in convs)
    if not convs:
        raise InputError(f"{path}: no conversation was kept\n{rep.text()}")
    return convs, rep


class _Literal(str):
    """A multi-line turn, written as a YAML block so the scenario stays readable."""


def _literal(dumper, data):
    return dumper.represent_scalar("tag:yaml.org,2002:str", data, style="|")


def write_scenario(out: Path, name: str, convs: list[dict], report: ImportReport, models: list[str], slos: list[str]) -> None:
    """A scenario file any ``bench`` command reads; checked by reading it back."""
    from bench.scenario import load_scenario

    class Dumper(yaml.SafeDumper):
        pass

    Dumper.add_representer(_Literal, _literal)
    doc = {
        "name": name,
        "description": f"Imported from {Path(report.source).name} ({report.fmt}): {report.kept} of {report.records} records.",
        "models": [{"model": m} for m in models],
        "think_time": {"kind": "content", "min": 1.0, "max": 30.0},
        "slos": slos,
        "conversations": [{**c, "turns": [_Literal(t) if "\n" in t else t for t in c["turns"]]} for c in convs],
    }
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    header = (
        f"# Imported with: bench scenario import {report.source}\n"
        "# Only the user's side: each reply comes live from the model and is sent back as history.\n"
    )
    out.write_text(header + yaml.dump(doc, Dumper=Dumper, sort_keys=False, allow_unicode=True, width=120), encoding="utf-8")
    load_scenario(out)  # what was written must run

"""Reading the user's files (scenarios, traces, datasets, profiles): one line for any bad file, never a traceback.

A reliability pass gave each reader a file a careless tool or an attacker could write, and got
tracebacks for: Latin-1 and UTF-16 text, YAML or JSON nested 20,000 deep (RecursionError), a CSV
field over 131,072 characters (csv's own limit), a 5,000-digit number (Python's int-conversion
limit). And a 9.8 MB scenario took 95 s and 2.7 GB to parse with PyYAML's pure-Python loader.
Here each becomes ``InputError("<file>, line N: ...")`` before any load; text may be UTF-8 (with or
without a BOM) or UTF-16/32 with a BOM; sizes are bounded (``SCENARIO_BYTES``, ``DATA_BYTES``) with a
message that says what to do; YAML is parsed with libyaml's C loader where it is installed.
"""

from __future__ import annotations

import codecs
import csv
import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

from bench.errors import InputError

SCENARIO_BYTES = 16 * 1024 * 1024  # scenarios and profiles: YAML a person writes (bench scenario import writes them too)
DATA_BYTES = 1024 * 1024 * 1024  # traces and datasets
MAX_DEPTH = 64  # nesting a scenario, trace row or dataset record can need, with room to spare

_BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32"),
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)

try:
    _Loader: Any = yaml.CSafeLoader
except AttributeError:  # libyaml missing: the pure-Python loader, slower on big files
    _Loader = yaml.SafeLoader


def read_text(path: Path, what: str, limit: int = SCENARIO_BYTES) -> str:
    """The file's text; UTF-8, or UTF-16/32 with a byte-order mark. ``what`` names it in messages."""
    path = Path(path)
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise InputError(f"{path}: cannot read the {what} ({exc.strerror or exc})") from None
    if size > limit:
        raise InputError(
            f"{path}: the {what} is {size / 2**20:,.1f} MiB, over the {limit / 2**20:,.0f} MiB this harness reads"
            + (" (a large workload belongs in a --trace JSONL file)" if limit == SCENARIO_BYTES else "")
        )
    data = path.read_bytes()
    encoding = next((enc for bom, enc in _BOMS if data.startswith(bom)), "utf-8")
    try:
        return data.decode(encoding)
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        col = exc.start - (data.rfind(b"\n", 0, exc.start) + 1) + 1
        raise InputError(
            f"{path}, line {line}: the {what} is not {encoding.upper()} text (byte 0x{data[exc.start]:02x} at column {col}); "
            "save it as UTF-8"
        ) from None


def _depth_ok(node: Any, where: str) -> None:
    """Refuse nesting past ``MAX_DEPTH`` before anything recursive (a loader, pydantic) walks it."""
    stack = [(node, 1)]
    while stack:
        n, d = stack.pop()
        if d > MAX_DEPTH:
            line = getattr(getattr(n, "start_mark", None), "line", None)
            raise InputError(f"{where}{f', line {line + 1}' if line is not None else ''}: nested deeper than {MAX_DEPTH} levels")
        if isinstance(n, yaml.MappingNode):
            stack.extend((x, d + 1) for kv in n.value for x in kv)
        elif isinstance(n, yaml.SequenceNode):
            stack.extend((x, d + 1) for x in n.value)


def parse_yaml(text: str, where: str) -> tuple[Any, yaml.Node | None]:
    """(data, node tree for line numbers). One line for bad YAML, deep nesting or an unreadable number."""
    try:
        node = yaml.compose(text, Loader=_Loader)
        if node is not None:
            _depth_ok(node, where)
        data = yaml.load(text, Loader=_Loader)  # noqa: S506  # the safe loader (C or Python)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f", line {mark.line + 1}" if mark else ""
        raise InputError(f"{where}{line}: not valid YAML ({getattr(exc, 'problem', None) or exc})") from None
    except RecursionError:
        raise InputError(f"{where}: nested too deep to read") from None
    except ValueError as exc:  # a 5,000-digit integer: Python's conversion limit
        raise InputError(f"{where}: a value it holds cannot be read ({str(exc)[:120]})") from None
    return data, node


def _json_depth(text: str) -> int:
    depth = best = 0
    in_str = esc = False
    for c in text:
        if in_str:
            if esc:
                esc = False
            elif c == "\\":
                esc = True
            elif c == '"':
                in_str = False
        elif c == '"':
            in_str = True
        elif c in "[{":
            depth += 1
            best = max(best, depth)
        elif c in "]}":
            depth -= 1
    return best


def parse_json(text: str, where: str) -> Any:
    """``json.loads`` with the errors a user can act on as one line (``where`` is "file, line N")."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError(f"{where}: not valid JSON ({exc.msg})") from None
    except RecursionError:
        raise InputError(f"{where}: nested deeper than JSON can be read here ({_json_depth(text)} levels)") from None
    except ValueError as exc:  # a number past Python's int-conversion limit
        raise InputError(f"{where}: a value it holds cannot be read ({str(exc)[:120]})") from None


def csv_rows(text: str, path: Path) -> Iterator[tuple[int, dict[str, str]]]:
    """(line, row) of a CSV with a header row; a field may be as long as the file."""
    csv.field_size_limit(max(csv.field_size_limit(), DATA_BYTES))
    reader = csv.DictReader(io.StringIO(text, newline=""))
    try:
        if not reader.fieldnames:
            raise InputError(f"{path}, line 1: a CSV trace needs a header row")
        for rec in reader:
            yield reader.line_num, rec
    except csv.Error as exc:
        raise InputError(f"{path}, line {reader.line_num}: not valid CSV ({exc})") from None

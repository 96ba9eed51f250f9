"""Prompts of a requested token length, and the length distributions they are drawn from.

Text is a seeded stream of common English words. With the run's tokenizer (``--tokenizer``)
a prompt is cut at exact token boundaries of that stream; without one, lengths are counted
at ``CHARS_PER_TOKEN`` characters per token (the ratio the records use to estimate tokens,
about right for English text and BPE tokenizers). Each prompt starts at its own place in
the stream, so no two prompts share a prefix a server could cache.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path

from bench.errors import InputError
from bench.records import CHARS_PER_TOKEN

WORDS = (
    "the of and to in is that it for on with as was at by be this have from or one had not but what all were when we "
    "there can an your which their said if do will each about how up out them then she many some so these would other "
    "into has more her two like him see time could no make than first been its who now people my made over did down "
    "only way find use may water long little very after words called just where most know get through back much before "
    "go good new write our used me man too any day same right look think also around another came come work three word "
    "must because does part even place well such here take why things help put years different away again off went old "
    "number great tell men say small every found still between name should home big give air line set own under read "
    "last never us left end along while might next sound below saw something thought both few those always looked show "
    "large often together asked house world going want school important until form food keep children feet land side "
    "without boy once animals life enough took sometimes four head above kind began almost live page got earth need far "
    "hand high year mother light parts country father let night following picture being study second eyes soon times "
    "story boys since white days ever paper hard near sentence better best across during today others however sure means "
    "knew try told young miles sun ways thing whole hear example heard several change answer room sea against top turned "
    "learn point city play toward five using himself usually money seen car morning given trying horse plan river"
).split()
CORPUS_WORDS = 120_000  # about 600,000 characters: prompts longer than this wrap around
BLOCK_TOKENS = 512  # a Mooncake trace's hash_ids: one per block of this many prompt tokens


class PromptMaker:
    """Prompts of N tokens, the same for the same seed and key in every process."""

    def __init__(self, seed: int, count_tokens=None) -> None:
        rng = random.Random(f"{seed}:synthetic-corpus")
        self.text = " ".join(rng.choice(WORDS) for _ in range(CORPUS_WORDS)) + " "
        self.seed = seed
        self.count_tokens = count_tokens
        self._offsets = None
        self._word_start: list[bool] | None = None
        if count_tokens is not None:  # token boundaries of the stream, once: each prompt is then a slice
            enc = count_tokens._tok.encode(self.text, add_special_tokens=False)
            self._offsets = [o for o in enc.offsets]

    def prompt(self, tokens: int, key: int | str) -> str:
        tokens = max(1, int(tokens))
        rng = random.Random(f"{self.seed}:prompt:{key}")
        if self._offsets is None:
            chars = max(1, round(tokens * CHARS_PER_TOKEN))
            start = self.text.rfind(" ", 0, rng.randrange(len(self.text))) + 1  # at a word's start
            text = (self.text[start:] + self.text) * (1 + chars // len(self.text))
            out = text[:chars]
            return out[:-1] + "." if out.endswith(" ") else out  # exactly the asked characters
        else:
            offs, n = self._offsets, len(self._offsets)
            start = rng.randrange(n)
            pieces, left = [], tokens
            while left > 0:
                end = min(n, start + left)
                pieces.append(self.text[offs[start][0] : offs[end - 1][1]])
                left -= end - start
                start = 0
            out = " ".join(pieces)
        return out.strip() or "hello"

    def block_prompt(self, hash_ids: tuple[int, ...], tokens: int, block: int = BLOCK_TOKENS) -> str:
        """A Mooncake row's prompt: one text per hash id, the same text for the same id in every row and
        process, ``block`` tokens each and the last one the rest of ``tokens``. Two rows with the same
        first k ids share exactly k blocks of prefix. Each block is a run of whole words from the
        corpus with its leading space, so no token spans two blocks: with the run's tokenizer (a
        tokenizer that splits at spaces, as BPE and word-level ones do) block i holds exactly its tokens."""
        last = max(1, int(tokens) - block * (len(hash_ids) - 1))
        sizes = [block] * (len(hash_ids) - 1) + [min(block, last)]
        return "".join(self._block(h, k) for h, k in zip(hash_ids, sizes))

    def _block(self, hash_id: int, k: int) -> str:
        rng = random.Random(f"{self.seed}:block:{hash_id}:{k}")
        text = self.text
        if self._offsets is None:  # CHARS_PER_TOKEN characters a token, from a word's start
            chars = max(1, round(k * CHARS_PER_TOKEN))
            start = text.rfind(" ", 0, rng.randrange(len(text) - chars - 1))
            return text[max(start, 0) : max(start, 0) + chars]
        offs, n = self._offsets, len(self._offsets)
        if self._word_start is None:  # token i begins a word (the corpus is words joined by single spaces)
            self._word_start = [i == 0 or text[o[0]] == " " or text[o[0] - 1] == " " for i, o in enumerate(offs)]
        ws = self._word_start
        for _ in range(10_000):  # a start at a word whose block also ends at a word's end
            i = rng.randrange(n - k - 1)
            if ws[i] and ws[i + k]:
                begin = offs[i][0] if text[offs[i][0]] == " " else offs[i][0] - 1
                return (" " if begin < 0 else "") + text[max(begin, 0) : offs[i + k - 1][1]]
        raise ValueError(f"no block of {k} tokens of whole words in the corpus")


@dataclass(frozen=True)
class LengthDist:
    """``fixed:N`` (or ``N``), ``uniform:LO:HI``, ``normal:MEAN:SD`` or ``hist:TRACE`` (the input lengths of a trace)."""

    kind: str
    a: float = 0.0
    b: float = 0.0
    values: tuple[int, ...] = ()
    text: str = ""

    def draw(self, rng: random.Random) -> int:
        if self.kind == "fixed":
            return int(self.a)
        if self.kind == "uniform":
            return rng.randint(int(self.a), int(self.b))
        if self.kind == "normal":
            return max(1, round(rng.gauss(self.a, self.b)))
        return rng.choice(self.values)

    def mean(self) -> float:
        if self.kind == "fixed":
            return self.a
        if self.kind == "uniform":
            return (self.a + self.b) / 2
        if self.kind == "normal":
            return self.a  # clipping at 1 token moves it only when SD is near the mean
        return sum(self.values) / len(self.values)


def parse_length(text: str, option: str, field: str = "input_tokens") -> LengthDist:
    parts = text.strip().split(":")
    kind = parts[0] if not parts[0].isdigit() else "fixed"
    args = parts[1:] if not parts[0].isdigit() else parts
    try:
        if kind == "hist":
            from bench.workload.trace import load_trace

            trace = load_trace(":".join(args))
            values = tuple(getattr(r, field) for r in trace.rows if getattr(r, field))
            if not values:
                raise InputError(f"{option} {text!r}: the trace has no {field}")
            return LengthDist("hist", values=values, text=text)
        nums = [float(x) for x in args]
    except ValueError:
        nums = None
    want = {"fixed": 1, "uniform": 2, "normal": 2}
    if kind not in want or nums is None or len(nums) != want[kind] or any(n < 0 for n in nums):
        raise InputError(f"{option} {text!r}: expected fixed:N (or N), uniform:LO:HI, normal:MEAN:SD or hist:TRACE_FILE")
    if kind in ("fixed", "uniform") and (nums[0] < 1 or any(n != int(n) for n in nums)):
        raise InputError(f"{option} {text!r}: token counts are whole numbers >= 1")
    if kind == "uniform" and nums[1] < nums[0]:
        raise InputError(f"{option} {text!r}: HI must not be below LO")
    if kind == "normal" and nums[0] < 1:
        raise InputError(f"{option} {text!r}: the mean must be at least 1 token")
    return LengthDist(kind, nums[0], nums[1] if len(nums) > 1 else 0.0, text=text)


def synthetic_pool(dist: LengthDist, out_dist: LengthDist | None, maker: PromptMaker, seed: int, n: int = 256):
    """``n`` one-turn conversations drawn from the input-length distribution (and their reply bounds),
    as a scenario's conversations: every process builds the same ones from the same seed."""
    from bench.scenario import Conversation, Turn

    rng = random.Random(f"{seed}:synthetic-lengths")
    convs, requested = [], {}
    for i in range(n):
        tokens = dist.draw(rng)
        out = out_dist.draw(rng) if out_dist is not None else None
        name = f"synthetic-{i:03d}"
        convs.append(
            Conversation(name=name, tags=["synthetic"], weight=1.0, turns=[Turn(user=maker.prompt(tokens, f"pool:{i}"))])
        )
        requested[name] = (tokens, out)
    return convs, requested


def read_text_lines(path: Path) -> list[str]:
    from bench.inputfiles import DATA_BYTES, read_text

    return [line.strip() for line in read_text(Path(path), "prompt file", DATA_BYTES).splitlines() if line.strip()]

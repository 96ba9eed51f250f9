"""A continuous-batching stand-in for an inference server: queue, batch slots, decode schedule.

Each model has ``max_batch`` slots. A request takes a slot (or waits in a FIFO queue), then its
first token comes after the prefill time and every next token one decode step later, where the
step grows with the number of active streams. Past ``max_batch`` concurrent requests the queue
grows and time to first chunk rises sharply: the knee that capacity planning must find.

Replies are generated from a seeded RNG keyed by the conversation, so the same conversation
gets the same reply on every run with the same seed.
"""

from __future__ import annotations

import asyncio
import hashlib
import math
import random
import re
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass

from bench.target.profiles import ModelProfile

_WORDS = (
    "the model answer stream token latency server request batch queue prompt context reply "
    "throughput decode prefill cache memory result value function return list string number "
    "python code example test error case first second next then because which where when "
    "should could would simple fast slow large small every each other more less data file "
    "user system time window step chunk part line byte buffer socket client route chat"
).split()
# A few tokens that exercise JSON escaping and multi-byte UTF-8 in every decoder downstream.
_ODD = [' "quoted"', " back\\slash", " café", " naïve", " →", " 😀", "\n", " 100%", " a\tb"]


def prompt_tokens_of(chars: int) -> int:
    """Rough token count of a prompt: about four characters per token for English text."""
    return max(1, chars // 4)


@dataclass
class Plan:
    """Everything one reply will be: its parts (text, tokens in the part) and its total tokens."""

    parts: list[tuple[str, int]]
    tokens: int
    prompt_tokens: int


def make_plan(
    profile: ModelProfile, seed: int, key: str, prompt_chars: int, tokens: int | None = None, raw: bool = False
) -> Plan:
    """``raw``: the model server's own stream (TGI), one token a part, a reasoning model's thinking
    between ``<think>`` and ``</think>`` tokens; otherwise the route's parts as the app sends them."""
    digest = hashlib.blake2b(f"{seed}|{profile.name}|{key}".encode(), digest_size=8).digest()
    rng = random.Random(int.from_bytes(digest, "little"))
    if tokens is None:
        mu = math.log(profile.output_tokens_median)
        tokens = int(round(rng.lognormvariate(mu, profile.output_tokens_sigma)))
    n = max(1, min(tokens, profile.max_new_tokens))
    words = [(_ODD[rng.randrange(len(_ODD))] if rng.random() < 0.03 else " " + rng.choice(_WORDS)) for _ in range(n)]
    # Sentences: a full stop every 8-20 tokens makes the R1 sentence buffering meaningful.
    i = rng.randint(8, 20)
    while i < n:
        words[i - 1] += "."
        i += rng.randint(8, 20)
    words[-1] += "."
    if profile.reasoning:
        # paragraphs: a reasoning model's answer comes as paragraphs, and the app flushes its R1 buffer at
        # a paragraph's end (a ".\n\n" token) far more often than at a sentence's (see r1_parts)
        ends = [k for k, w in enumerate(words[:-1]) if w.endswith(".")]
        for j in range(rng.randint(1, 3), len(ends), 3):
            words[ends[j]] += "\n\n"
    if raw:
        words[0] = words[0].lstrip()
        if profile.reasoning:
            think = max(1, min(n - 1, n * 2 // 5)) if n > 1 else 1
            if think < n:
                words[think] = words[think].lstrip()
            # the tags are tokens too: the reply stays within max_new_tokens (a long thought may use it all)
            words = ["<think>", "\n", *words[:think], "\n", "</think>", "\n\n", *words[think:]][:n]
        return Plan(parts=[(w, 1) for w in words], tokens=len(words), prompt_tokens=prompt_tokens_of(prompt_chars))
    if profile.reasoning:
        # as the app sends DeepSeek R1: the whole thinking held back until </think>, then sent as ONE
        # part rewritten into a <details> block; the answer follows in sentence-sized parts
        think = max(1, min(n - 1, n * 2 // 5)) if n > 1 else 1
        block = (
            "<details>\n<summary>AI Thinking Process</summary>\n" + "".join(words[:think]).strip() + "\n</details>\n\n",
            think,
        )
        rest = words[think:]
        if rest:
            rest[0] = rest[0].lstrip()
        parts = [block] + r1_parts(rest)
    else:
        words[0] = words[0].lstrip()
        step = profile.tokens_per_part
        parts = [("".join(words[j : j + step]), len(words[j : j + step])) for j in range(0, n, step)]
    return Plan(parts=parts, tokens=n, prompt_tokens=prompt_tokens_of(prompt_chars))


_FLUSH = re.compile(r"[.!?]\s$")


def r1_parts(words: list[str]) -> list[tuple[str, int]]:
    """The answer tokens grouped as the app's R1 route sends them: its buffer is flushed when it ends a
    paragraph (``\n\n``) or ends with a sentence's punctuation followed by whitespace. Tokens carry their
    leading space (" word."), so a sentence end is seldom followed by whitespace in the same buffer: the
    parts are mostly paragraphs (seen in the app's real handler, tests/data/real-app/)."""
    parts: list[tuple[str, int]] = []
    buf: list[str] = []
    for w in words:
        buf.append(w)
        text = "".join(buf)
        if text.endswith("\n\n") or _FLUSH.search(text):
            parts.append((text, len(buf)))
            buf = []
    if buf:
        parts.append(("".join(buf), len(buf)))
    return parts


class ModelEngine:
    """Batch slots and a FIFO queue for one model."""

    def __init__(self, profile: ModelProfile) -> None:
        self.profile = profile
        self.active = 0
        self._waiting: deque[asyncio.Future[None]] = deque()

    @property
    def queued(self) -> int:
        return len(self._waiting)

    async def acquire(self) -> None:
        if self.active < self.profile.max_batch and not self._waiting:
            self.active += 1
            return
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiting.append(fut)
        try:
            await fut
        except BaseException:
            if not fut.done():
                self._waiting.remove(fut)
            elif not fut.cancelled():
                self.release()  # the slot was handed to us as we were cancelled: pass it on
            raise

    def release(self) -> None:
        while self._waiting:
            fut = self._waiting.popleft()
            if not fut.done():
                fut.set_result(None)  # hand the slot over; ``active`` stays the same
                return
        self.active -= 1

    def jittered(self, ms: float, rng: random.Random) -> float:
        j = self.profile.jitter
        return ms * (1.0 + rng.uniform(-j, j)) if j else ms

    async def schedule(
        self,
        plan: Plan,
        rng: random.Random,
        ttft_ms: float | None = None,
        step_ms: float | None = None,
    ) -> AsyncIterator[tuple[int, str, int, float]]:
        """Yield (index, text, tokens, scheduled loop time) for each part, sleeping until it is due.

        Times are absolute on the loop clock, so a late wake-up does not push later parts back:
        the schedule is the server-side truth the harness is compared against.
        """
        loop = asyncio.get_running_loop()
        first = ttft_ms if ttft_ms is not None else self.profile.first_token_ms(plan.prompt_tokens)
        due = loop.time() + self.jittered(first, rng) / 1000.0
        for i, (text, ntok) in enumerate(plan.parts):
            # a part of n tokens is ready when its last token is decoded
            steps = ntok if i > 0 else ntok - 1
            if steps:
                step = step_ms if step_ms is not None else self.profile.step_time_ms(self.active)
                due += self.jittered(step, rng) * steps / 1000.0
            delay = due - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            yield i, text, ntok, due

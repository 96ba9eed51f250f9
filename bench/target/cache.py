"""A prefix cache's bookkeeping, as vLLM's and SGLang's: which leading messages of a prompt the
server has seen before, counted in prompt tokens (``bench_prefix_cache_queries_total`` and
``bench_prefix_cache_hits_total`` on ``/metrics``, vLLM's ``prefix_cache_queries``/``hits``).

It changes no timing: it is there so the harness's reading of a server's cache counters, and the
gate's warning when a candidate ran against a cache its baseline warmed, are tested against a
known answer. A prompt's prefixes are hashed message by message (blake2b, 8 bytes); the longest
prefix seen before is the hit. At most ``capacity`` prefixes are kept, oldest evicted first.
"""

from __future__ import annotations

import hashlib
import json
from collections import OrderedDict

from bench.target.engine import prompt_tokens_of


class PrefixCache:
    def __init__(self, capacity: int = 200_000) -> None:
        self.capacity = capacity
        self._seen: OrderedDict[bytes, None] = OrderedDict()
        self.queries: dict[str, int] = {}  # per model: prompt tokens looked up
        self.hits: dict[str, int] = {}  # per model: prompt tokens found cached

    def lookup(self, model: str, messages: list) -> tuple[int, int]:
        """(cached tokens, prompt tokens) of this prompt; its prefixes are remembered."""
        h = hashlib.blake2b(model.encode(), digest_size=8)
        chars = hit_chars = 0
        keys = []
        for m in messages:
            h.update(json.dumps(m, sort_keys=True, ensure_ascii=False).encode())
            chars += len(str(m.get("content", ""))) if isinstance(m, dict) else 0
            keys.append((h.copy().digest(), chars))
        for key, upto in keys:
            if key in self._seen:
                hit_chars = upto
                self._seen.move_to_end(key)
            else:
                self._seen[key] = None
        while len(self._seen) > self.capacity:
            self._seen.popitem(last=False)
        total = prompt_tokens_of(chars)
        cached = min(total, prompt_tokens_of(hit_chars)) if hit_chars else 0
        self.queries[model] = self.queries.get(model, 0) + total
        self.hits[model] = self.hits.get(model, 0) + cached
        return cached, total

    def prometheus(self, models: list[str]) -> list[str]:
        lines = [
            "# HELP bench_prefix_cache_queries_total Prompt tokens looked up in the prefix cache.",
            "# TYPE bench_prefix_cache_queries_total counter",
        ]
        lines += [f'bench_prefix_cache_queries_total{{model="{m}"}} {self.queries.get(m, 0)}' for m in models]
        lines += [
            "# HELP bench_prefix_cache_hits_total Prompt tokens found in the prefix cache.",
            "# TYPE bench_prefix_cache_hits_total counter",
        ]
        lines += [f'bench_prefix_cache_hits_total{{model="{m}"}} {self.hits.get(m, 0)}' for m in models]
        return lines

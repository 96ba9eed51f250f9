"""A "Streams" tab in Locust's web UI: per-model TTFC percentiles, decode speed, tokens/s, errors.

Rows are kept in a short ring per model; numbers are computed only when the browser polls
(every couple of seconds), from raw samples of the last minute, never from buckets.
"""

from __future__ import annotations

import json
import time
from collections import Counter, deque
from typing import Any

import numpy as np

from bench.metrics import label
from bench.records import IDX, NOT_LIVE, Row

TAB_KEY = "bench-streams"
WINDOW_S = 60.0
STRUCTURE = [
    {"key": "model", "title": "Model"},
    {"key": "requests", "title": "Requests (60 s)"},
    {"key": "ttfc_p50", "title": label("ttfc_ms", "p50")},
    {"key": "ttfc_p95", "title": label("ttfc_ms", "p95")},
    {"key": "ttfc_p99", "title": label("ttfc_ms", "p99")},
    {"key": "decode_tps_p50", "title": label("decode_tps", "p50").capitalize()},
    {"key": "output_tps", "title": label("output_tps").capitalize()},
    {"key": "errors", "title": "Errors by class (run)"},
]

_I_MODEL, _I_ERR, _I_TTFC, _I_TPS, _I_TOK = IDX["model"], IDX["error"], IDX["ttfc_ms"], IDX["decode_tps"], IDX["output_tokens"]


class LiveStats:
    def __init__(self, maxlen: int = 5000) -> None:
        self.recent: dict[str, deque[tuple[float, float | None, float | None, int]]] = {}
        self.errors: dict[str, Counter[str]] = {}
        self.maxlen = maxlen

    def add(self, row: Row) -> None:
        model, err = row[_I_MODEL], row[_I_ERR]
        if err in NOT_LIVE:
            return
        q = self.recent.get(model)
        if q is None:
            q = self.recent[model] = deque(maxlen=self.maxlen)
            self.errors[model] = Counter()
        if err:
            self.errors[model][err] += 1
        q.append((time.time(), row[_I_TTFC] if not err else None, row[_I_TPS], row[_I_TOK] if not err else 0))

    def table(self) -> list[dict[str, Any]]:
        now = time.time()
        out = []
        for model in sorted(self.recent):
            rows = [r for r in self.recent[model] if now - r[0] <= WINDOW_S]
            ttfc = np.array([r[1] for r in rows if r[1] is not None], dtype=float)
            tps = np.array([r[2] for r in rows if r[2] is not None], dtype=float)
            span = min(WINDOW_S, max(1.0, now - rows[0][0])) if rows else WINDOW_S

            def pct(a: np.ndarray[Any, Any], q: float) -> float | str:
                return round(float(np.percentile(a, q)), 1) if a.size else ""

            out.append(
                {
                    "model": model,
                    "requests": len(rows),
                    "ttfc_p50": pct(ttfc, 50),
                    "ttfc_p95": pct(ttfc, 95),
                    "ttfc_p99": pct(ttfc, 99),
                    "decode_tps_p50": pct(tps, 50),
                    "output_tps": round(sum(r[3] for r in rows) / span, 1),
                    "errors": ", ".join(f"{k}: {v}" for k, v in self.errors[model].most_common()) or "none",
                }
            )
        return out


def install(environment: Any, live: LiveStats) -> None:
    """Register the tab and extend ``/stats/requests`` with its rows."""
    web_ui = environment.web_ui
    if web_ui is None:
        return
    from flask import request

    web_ui.template_args["extended_tabs"] = [{"title": "Streams", "key": TAB_KEY}]
    web_ui.template_args["extended_tables"] = [{"key": TAB_KEY, "structure": STRUCTURE}]

    def _extend(response: Any) -> Any:
        if request.path != "/stats/requests" or not response.is_json:
            return response
        data = response.get_json()
        data["extended_stats"] = [{"key": TAB_KEY, "data": live.table()}]
        response.set_data(json.dumps(data))
        return response

    web_ui.app.after_request(_extend)

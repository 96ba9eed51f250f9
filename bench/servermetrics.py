"""The server's own view during a run: a Prometheus endpoint scraped every second.

vLLM (``/metrics``: ``vllm:num_requests_running``, ``vllm:num_requests_waiting``, KV-cache use,
``vllm:generation_tokens_total``), llama.cpp's server (``llamacpp:requests_processing``,
``llamacpp:requests_deferred``, ``llamacpp:tokens_predicted_total``, with ``--metrics``) and the
reference target (``bench_requests_running``, ``bench_requests_waiting``,
``bench_generation_tokens_total``) all speak the Prometheus text format; ``prometheus_client``
parses it. The scraper runs as a thread of the ``bench`` process, never inside a load
generator, and writes one JSON line per scrape to ``server-metrics.jsonl``.
"""

from __future__ import annotations

import json
import re
import threading
import time
from pathlib import Path

import pandas as pd

FILE = "server-metrics.jsonl"
# Which of a server's series answer which question, across the servers above.
ROLES = {
    "running": re.compile(r"(?:num_requests_running|requests_processing|requests_running)$"),
    "waiting": re.compile(r"(?:num_requests_waiting|requests_deferred|requests_waiting)$"),
    "kv_cache": re.compile(r"(?:cache_usage_perc|cache_usage_ratio|kv_cache_usage)"),
    "tokens_total": re.compile(r"(?:generation_tokens|tokens_predicted)(?:_total)?$"),
}


def parse(text: str) -> dict[str, float]:
    """Every numeric sample of a Prometheus text page, keyed ``name{label=value,...}``."""
    from prometheus_client.parser import text_string_to_metric_families

    out: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            labels = ",".join(f"{k}={v}" for k, v in sorted(s.labels.items()))
            out[f"{s.name}{{{labels}}}" if labels else s.name] = float(s.value)
    return out


class Scraper:
    """Scrape ``url`` every ``interval`` seconds into ``run_dir/server-metrics.jsonl`` until stopped."""

    def __init__(self, url: str, run_dir: Path, interval: float = 1.0, verify=True, headers: dict | None = None) -> None:
        self.url, self.path, self.interval = url, Path(run_dir) / FILE, interval
        self.verify, self.headers = verify, headers or {}
        self.errors = 0
        self.last_error = ""
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="server-metrics", daemon=True)

    def start(self) -> Scraper:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _loop(self) -> None:
        import httpx

        with (
            httpx.Client(timeout=max(0.5, self.interval * 0.9), trust_env=False, verify=self.verify) as client,
            open(self.path, "a") as fh,
        ):
            while not self._stop.is_set():
                t = time.time()
                try:
                    resp = client.get(self.url, headers=self.headers)
                    resp.raise_for_status()
                    fh.write(json.dumps({"t": round(t, 3), "samples": parse(resp.text)}) + "\n")
                    fh.flush()
                except Exception as exc:  # a metrics endpoint going away must never stop the run
                    self.errors += 1
                    self.last_error = f"{type(exc).__name__}: {exc}"[:200]
                self._stop.wait(max(0.0, self.interval - (time.time() - t)))

    def warnings(self) -> list[str]:
        if self.errors:
            return [f"server metrics: {self.errors} scrape(s) of {self.url} failed (last: {self.last_error})"]
        return []


def load(run_dir: Path) -> pd.DataFrame:
    """Long table: t (wall s), series, value."""
    path = Path(run_dir) / FILE
    rows: list[tuple[float, str, float]] = []
    if path.is_file():
        for line in path.read_text().splitlines():
            try:
                x = json.loads(line)
            except ValueError:
                continue
            rows.extend((x["t"], k, v) for k, v in x["samples"].items())
    return pd.DataFrame(rows, columns=["t", "series", "value"])


def roles(df: pd.DataFrame) -> pd.DataFrame:
    """Per scrape: the sum over labels (models, engines) of each role's series; tokens as a rate."""
    if df.empty:
        return pd.DataFrame()
    name = df["series"].str.replace(r"\{.*\}$", "", regex=True)
    out = {}
    for role, pattern in ROLES.items():
        hit = df[name.str.contains(pattern)]
        if len(hit):
            out[role] = hit.groupby("t")["value"].sum()
    if not out:
        return pd.DataFrame()
    table = pd.DataFrame(out).sort_index()
    if "tokens_total" in table:
        dt = table.index.to_series().diff()
        table["tokens_per_s"] = table["tokens_total"].diff() / dt
        table = table.drop(columns=["tokens_total"])
    return table


def summary(run_dir: Path, t_from: float | None = None, t_to: float | None = None) -> dict | None:
    """Mean and max of each role over a window (a capacity level's measured part, say)."""
    table = roles(load(run_dir))
    if table.empty:
        return None
    if t_from is not None:
        table = table[table.index >= t_from]
    if t_to is not None:
        table = table[table.index <= t_to]
    return {c: {"mean": float(table[c].mean()), "max": float(table[c].max())} for c in table.columns if table[c].notna().any()}


# Prefix caches: vLLM counts prompt tokens looked up and found (``vllm:prefix_cache_queries_total``,
# ``vllm:prefix_cache_hits_total``; the reference target's ``bench_prefix_cache_*``); older vLLM and
# SGLang publish a ratio (``vllm:gpu_prefix_cache_hit_rate``, ``sglang:cache_hit_rate``).
CACHE_QUERIES = re.compile(r"prefix_cache_queries(?:_total)?$")
CACHE_HITS = re.compile(r"prefix_cache_hits(?:_total)?$")
CACHE_RATE = re.compile(r"(?:prefix_cache_hit_rate|cache_hit_rate)$")


def prefix_cache(run_dir: Path) -> dict | None:
    """The run's prefix-cache hit rate from the server's own counters (the change over the run), or
    the mean of its ratio gauge; ``None`` when the server publishes neither."""
    df = load(run_dir)
    if df.empty:
        return None
    name = df["series"].str.replace(r"\{.*\}$", "", regex=True)
    per_scrape = {k: df[name.str.contains(p)].groupby("t")["value"].sum() for k, p in (("q", CACHE_QUERIES), ("h", CACHE_HITS))}
    q, h = per_scrape["q"], per_scrape["h"]
    if len(q) >= 2 and len(h) >= 2:
        dq, dh = float(q.iloc[-1] - q.iloc[0]), float(h.iloc[-1] - h.iloc[0])
        if dq > 0:
            return {"hit_rate": dh / dq, "queried_tokens": dq, "hit_tokens": dh, "source": "counters"}
        return None
    rate = df[name.str.contains(CACHE_RATE)]
    if len(rate):
        v = float(rate.groupby("t")["value"].mean().mean())
        return {"hit_rate": v / 100 if v > 1 else v, "source": "gauge"}
    return None

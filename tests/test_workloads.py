"""Workloads from real traffic: trace replay, imported conversation datasets, token-length mixes."""

from __future__ import annotations

import json
import random
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import FAST, bench_cmd, bench_env

from bench.errors import InputError
from bench.workload.datasets import ImportFilters, import_conversations
from bench.workload.synthetic import PromptMaker, parse_length
from bench.workload.trace import bursty_trace, load_trace, parse_window

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "datasets" / "sample-sharegpt.json"


def bench(*args: str, timeout: float = 240) -> subprocess.CompletedProcess:
    return subprocess.run(bench_cmd(*args), capture_output=True, text=True, timeout=timeout, env=bench_env(), cwd=ROOT)


def only_run(out: Path) -> Path:
    runs = [p for p in out.iterdir() if p.is_dir() and not p.is_symlink()]
    assert len(runs) == 1, runs
    return runs[0]


# --- trace files: three layouts, errors that name the place -------------------------------------------


def test_trace_layouts_ours_mooncake_azure(tmp_path):
    ours = tmp_path / "ours.jsonl"
    ours.write_text(
        '{"t": 5.0, "conversation_id": "a", "prompt": "hi"}\n'
        '{"t": 2.5, "conversation_id": "b", "model": "x/y", "input_tokens": 40, "output_tokens": 8}\n'
        '\n{"t": 7.0, "conversation_id": "a", "turn": 1, "prompt": "and then?"}\n'
    )
    tr = load_trace(ours)
    assert [(r.row, r.t, r.conversation, r.turn) for r in tr.rows] == [(2, 0.0, "b", 0), (1, 2.5, "a", 0), (4, 4.5, "a", 1)]
    assert tr.rows[0].model == "x/y" and tr.rows[0].input_tokens == 40 and tr.rows[0].output_tokens == 8
    moon = tmp_path / "mooncake.jsonl"  # timestamps in milliseconds
    moon.write_text(
        '{"timestamp": 0, "input_length": 6955, "output_length": 52, "hash_ids": [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13]}\n'
        '{"timestamp": 2500, "input_length": 100, "output_length": 10, "hash_ids": [14]}\n'
    )
    tr = load_trace(moon)
    assert [r.t for r in tr.rows] == [0.0, 2.5] and tr.rows[0].input_tokens == 6955 and tr.rows[1].output_tokens == 10
    assert tr.rows[0].hash_ids == tuple(range(14)) and tr.rows[1].hash_ids == (14,)
    assert tr.rows[0].conversation != tr.rows[1].conversation  # rows without a conversation stand alone
    azure = tmp_path / "azure.csv"  # seven fraction digits, as Azure writes them
    azure.write_text(
        "TIMESTAMP,ContextTokens,GeneratedTokens\n2023-11-16 18:15:46.6805900,374,44\n2023-11-16 18:15:50.9951690,396,109\n"
    )
    tr = load_trace(azure)
    assert tr.rows[1].t == pytest.approx(4.314579, abs=1e-6) and tr.rows[1].input_tokens == 396
    assert tr.rate() == pytest.approx(1 / 4.314579, rel=1e-6)


@pytest.mark.parametrize(
    "text,needle",
    [
        ('{"t": 1, "prompt": "a"}\n{"t": 2, "prompt": \n', "line 2: not valid JSON"),
        ('{"prompt": "a"}\n', "line 1: no arrival time"),
        ('{"t": "soon", "prompt": "a"}\n', "line 1, field 't': expected a number"),
        ('{"t": 1, "input_tokens": -3}\n', "line 1, field 'input_tokens': expected a whole number >= 0"),
        ('{"t": 1, "conversation_id": "c"}\n', "line 1: the row has no prompt, messages or input_tokens"),
        (
            '{"t": 1, "conversation_id": "c", "turn": 2, "prompt": "a"}\n{"t": 2, "conversation_id": "c", "turn": 1, "prompt": "b"}\n',
            "line 2, field 'turn'",
        ),
        ('{"t": 1, "messages": [{"role": "robot", "content": "x"}]}\n', "field 'messages.0'"),
        ('{"t": 1, "model": "has space", "prompt": "a"}\n', "field 'model'"),
        ('{"timestamp": 1, "input_length": 6955, "hash_ids": [1, 2]}\n', "field 'hash_ids': 2 blocks of 512 tokens"),
        ('{"timestamp": 1, "input_length": 10, "hash_ids": [1, -2]}\n', "field 'hash_ids': expected a whole number >= 0"),
        ('{"timestamp": 1, "input_length": 10, "hash_ids": {"a": 1}}\n', "field 'hash_ids': expected a list"),
    ],
)
def test_trace_errors_name_file_line_and_field(tmp_path, text, needle):
    p = tmp_path / "bad.jsonl"
    p.write_text(text)
    with pytest.raises(InputError) as e:
        load_trace(p)
    assert str(p) in str(e.value) and needle in str(e.value)


def test_trace_window_and_its_errors(tmp_path):
    p = tmp_path / "t.jsonl"
    p.write_text("".join(json.dumps({"t": t, "prompt": "x"}) + "\n" for t in range(10)))
    w = load_trace(p).window(*parse_window("3:6"))
    assert [r.t for r in w.rows] == [0.0, 1.0, 2.0] and [r.row for r in w.rows] == [4, 5, 6]
    with pytest.raises(InputError, match="no row"):
        load_trace(p).window(*parse_window("50:"))
    for bad in ("3", "6:3", "a:b"):
        with pytest.raises(InputError, match="--trace-window"):
            parse_window(bad)


# --- synthetic prompts ---------------------------------------------------------------------------------


def test_length_distributions_parse_and_refuse():
    rng = random.Random(0)
    assert parse_length("256", "--input-tokens").draw(rng) == 256
    u = [parse_length("uniform:10:20", "--input-tokens").draw(rng) for _ in range(200)]
    assert min(u) >= 10 and max(u) <= 20
    n = [parse_length("normal:500:50", "--input-tokens").draw(rng) for _ in range(2000)]
    assert abs(np.mean(n) - 500) < 5
    for bad in ("lognormal:3", "uniform:20:10", "fixed:0", "normal:x:1", "fixed:1.5"):
        with pytest.raises(InputError, match="--input-tokens"):
            parse_length(bad, "--input-tokens")


def test_prompts_have_the_asked_length_by_tokenizer_and_by_characters(tmp_path):
    from test_stream import word_tokenizer

    from bench.tokens import load_tokenizer

    count = load_tokenizer(str(word_tokenizer(tmp_path)))
    maker = PromptMaker(3, count)
    for n in (1, 7, 300, 5000, 200_000):  # the last wraps around the word stream
        assert abs(count(maker.prompt(n, n)) - n) <= max(1, n // 200)
    plain = PromptMaker(3)
    assert len(plain.prompt(300, "k")) == 1200  # 4 characters per token
    assert plain.prompt(300, "a")[:40] != plain.prompt(300, "b")[:40]  # no shared prefix a server could cache
    assert plain.prompt(300, "a") == PromptMaker(3).prompt(300, "a")  # the same in every process


# --- dataset import ------------------------------------------------------------------------------------


def test_import_sample_dataset_with_filters_and_report():
    convs, rep = import_conversations(SAMPLE, "auto", ImportFilters(min_turns=2, max_prompt_chars=2000))
    assert rep.fmt == "sharegpt" and rep.records == 26 and rep.kept == len(convs) == 23
    assert rep.skipped == {"fewer than 2 user turns": 1, "no user message": 1, "a user message longer than 2000 characters": 1}
    assert all(len(c["turns"]) >= 2 for c in convs) and convs[0]["name"] == "sample-sharegpt-trip-01"
    convs, rep = import_conversations(SAMPLE, "auto", ImportFilters(max_turns=1, sample=5, seed=7))
    assert len(convs) == 5 and all(len(c["turns"]) == 1 for c in convs) and rep.truncated > 0
    again, _ = import_conversations(SAMPLE, "auto", ImportFilters(max_turns=1, sample=5, seed=7))
    assert again == convs  # the sample is the seed's


def test_import_openai_jsonl_and_text(tmp_path):
    oa = tmp_path / "chats.jsonl"
    oa.write_text(
        json.dumps(
            {
                "messages": [
                    {"role": "system", "content": "be brief"},
                    {"role": "user", "content": "one"},
                    {"role": "assistant", "content": "1"},
                    {"role": "user", "content": [{"type": "text", "text": "two"}]},
                ]
            }
        )
        + "\n"
    )
    convs, rep = import_conversations(oa)
    assert rep.fmt == "openai" and convs[0]["turns"] == ["one", "two"]
    txt = tmp_path / "prompts.txt"
    txt.write_text("first prompt\n\nsecond prompt\n")
    convs, rep = import_conversations(txt)
    assert rep.fmt == "text" and [c["turns"] for c in convs] == [["first prompt"], ["second prompt"]]


@pytest.mark.parametrize(
    "name,text,needle",
    [
        ("a.json", '[{"conversations": [{"from": "human", "value": "x"}]},\n {"conversations": \n', "line 3: not valid JSON"),
        ("b.json", '[{"conversations": "hello"}]', "record 0, field 'conversations'"),
        (
            "c.json",
            '[{"conversations": [{"from": "human", "value": "x"}]}, {"conversations": [{"from": "alien", "value": "x"}]}]',
            "record 1, field 'conversations.0.from'",
        ),
        (
            "d.jsonl",
            '{"messages": [{"role": "user", "content": "ok"}]}\n{"messages": [{"content": "no role"}]}\n',
            "line 2, field 'messages.0'",
        ),
        ("e.jsonl", "", "empty"),
    ],
)
def test_import_malformed_files_name_file_and_record(tmp_path, name, text, needle):
    p = tmp_path / name
    p.write_text(text)
    with pytest.raises(InputError) as e:
        import_conversations(p)
    assert str(p) in str(e.value) and needle in str(e.value)


def test_import_skip_invalid_counts_them(tmp_path):
    p = tmp_path / "mixed.json"
    p.write_text('[{"conversations": [{"from": "human", "value": "fine"}]}, {"conversations": 3}]')
    convs, rep = import_conversations(p, skip_invalid=True)
    assert len(convs) == 1 and sum(rep.skipped.values()) == 1 and "invalid" in next(iter(rep.skipped))


def test_imported_sharegpt_runs_as_a_scenario_with_live_history(tmp_path):
    scen = tmp_path / "sample.yaml"
    r = bench("scenario", "import", str(SAMPLE), "-o", str(scen), "--min-turns", "3", "--max-prompt-chars", "2000")
    assert r.returncode == 0, r.stderr
    assert "kept" in r.stdout and "skipped" in r.stdout
    # think time zero for the test: every conversation runs through its turns quickly
    text = scen.read_text().replace("kind: content", "kind: fixed\n  seconds: 0").replace("  min: 1.0\n  max: 30.0\n", "")
    scen.write_text(text)
    r = bench(
        "run",
        "--scenario",
        str(scen),
        "--out",
        str(tmp_path / "out"),
        "--target-profiles",
        FAST,
        "-t",
        "6s",
        "-u",
        "4",
        "-r",
        "4",
        "--warmup",
        "0",
        "-q",
        "--no-report",
    )
    assert r.returncode == 0, r.stderr[-2000:]
    df = pd.read_parquet(only_run(tmp_path / "out") / "requests.parquet")
    ok = df[df["error"].isna()]
    assert ok["conversation"].str.startswith("sample-sharegpt-").all()
    assert (ok["prompt_messages"] == 2 * ok["turn"] + 1).all()  # every turn sent the earlier turns and the live replies
    assert ok["turn"].max() >= 2


# --- trace replay end to end ---------------------------------------------------------------------------


@pytest.mark.parametrize("speedup", [1, 10])
def test_trace_replay_keeps_every_arrival_at_its_time(tmp_path, speedup):
    trace = tmp_path / "trace.jsonl"
    rows = bursty_trace(trace)
    assert len(rows) == 1000
    from conftest import OtherWork

    other = OtherWork().__enter__()
    r = bench(
        "run",
        "--trace",
        str(trace),
        "--speedup",
        str(speedup),
        "--out",
        str(tmp_path / "out"),
        "--target-profiles",
        FAST,
        "-u",
        "100",
        "-r",
        "100",
        "-q",
        "--no-report",
        timeout=180,
    )
    other.__exit__()
    assert r.returncode == 0, r.stderr[-2000:]
    run = only_run(tmp_path / "out")
    df = pd.read_parquet(run / "requests.parquet")
    meta = json.loads((run / "run.json").read_text())
    # every arrival recorded, once, and the run ended by itself once all were answered
    assert sorted(df["trace_row"]) == list(range(1, 1001))
    assert df["error"].isna().all(), df["error"].value_counts()
    assert meta["workload"]["kind"] == "trace" and meta["workload"]["speedup"] == speedup
    info = next(iter(meta["collector"]["workers"].values()))["trace"]
    assert info["finished"] and info["offered"] == 1000
    # each request's intended time is the trace's time (scaled), on the load generator's clock
    t_of = {i + 1: row["t"] for i, row in enumerate(json.loads(line) for line in trace.read_text().splitlines())}
    intended = df["t_start_ns"] - df["intended_delay_ms"] * 1e6
    expected = info["t0_ns"] + df["trace_row"].map(t_of) / speedup * 1e9
    err_ms = np.abs(intended - expected) / 1e6
    # on time: the median within 1 ms; the tail only against gross error (a shared CI machine stalls)
    late = np.percentile(err_ms, [50, 99, 100])
    # a conversation's turns went in order, each with the live history of the ones before
    multi = df[df["conversation"].str.startswith("conv-")].sort_values(["conversation", "turn"])
    for _, g in multi.groupby("conversation"):
        assert list(g["turn"]) == list(range(len(g)))
        assert (np.diff(g["t_start_ns"].to_numpy()) > 0).all()
        assert (g["prompt_messages"].to_numpy() == 2 * g["turn"].to_numpy() + 1).all()
    if speedup == 1:  # bench trace: the run's own arrivals back as a trace, same rows and times
        out = tmp_path / "again.jsonl"
        r = bench("trace", str(run), "-o", str(out))
        assert r.returncode == 0, r.stderr
        again = load_trace(out)
        assert len(again.rows) == 1000
        first = load_trace(trace)
        assert np.allclose(sorted(x.t for x in again.rows), sorted(x.t for x in first.rows), atol=0.002)
    other.bound(late[0] < 1.0 and late[1] < 20.0, f"intended-time error p50 < 1 ms and p99 < 20 ms: {late}")


def test_token_length_mix_achieves_the_requested_mean(tmp_path):
    """No usage from the server (the deployed route): the run's tokenizer counts what was sent."""
    from test_stream import word_tokenizer

    tok = word_tokenizer(tmp_path)
    r = bench(
        "run",
        "--input-tokens",
        "normal:300:60",
        "--tokenizer",
        str(tok),
        "--out",
        str(tmp_path / "out"),
        "--target-profiles",
        FAST,
        "-t",
        "5s",
        "-u",
        "4",
        "-r",
        "4",
        "--warmup",
        "0",
        "-q",
    )
    assert r.returncode == 0, r.stderr[-2000:]
    run = only_run(tmp_path / "out")
    df = pd.read_parquet(run / "requests.parquet")
    ok = df[df["error"].isna()]
    assert len(ok) >= 20 and ok["conversation"].str.startswith("synthetic-").all()
    asked, got = ok["requested_input_tokens"].mean(), ok["prompt_tokens"].mean()
    assert abs(got - asked) / asked < 0.05, (asked, got)
    lengths = next(iter(json.loads((run / "summary.json").read_text())["models"].values()))["lengths"]
    assert abs(lengths["input"]["ratio"] - 1) < 0.05
    assert 'id="lengths"' in (run / "report.html").read_text()


@pytest.mark.parametrize(
    "args,needle",
    [
        (["--trace-window", "0:10"], "--trace-window needs --trace"),
        (["--trace", "no-such-trace.jsonl"], "file not found"),
        (["--input-tokens", "lognormal:3"], "--input-tokens"),
        (["--output-tokens", "32"], "--output-tokens needs --input-tokens"),
        (["--speedup", "0"], "--speedup 0: expected a positive number"),
    ],
)
def test_workload_options_refused_before_load(tmp_path, args, needle):
    r = bench("run", "--out", str(tmp_path), "-t", "3s", "-q", *args, timeout=60)
    assert r.returncode == 2 and needle in r.stderr, r.stderr
    assert not any(tmp_path.iterdir())


def test_plain_locust_trace_replay_ends_by_itself(target, tmp_path):
    """No -t: the run stops once every row is answered; no warm-up is cut from a trace."""
    trace = tmp_path / "t.jsonl"
    trace.write_text(
        "".join(json.dumps({"t": i * 0.1, "conversation_id": f"c{i % 5}", "prompt": f"q{i}"}) + "\n" for i in range(30))
    )
    out = tmp_path / "plain"
    cmd = [
        "locust",
        "-f",
        "locustfile.py",
        "--host",
        target.url,
        "--headless",
        "-u",
        "10",
        "-r",
        "10",
        "--trace",
        str(trace),
        "--results-dir",
        str(out),
        "--auth",
        "jwt",
        "--only-summary",
    ]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=120, env=bench_env(), cwd=ROOT)
    assert r.returncode in (0, 1), r.stderr[-2000:]
    meta = json.loads((out / "run.json").read_text())
    df = pd.read_parquet(out / "requests.parquet")
    assert sorted(df["trace_row"]) == list(range(1, 31)) and meta["warmup_s"] == 0.0
    assert (df.groupby("conversation")["turn"].apply(lambda s: sorted(s) == list(range(len(s))))).all()


def _trace(path: Path, n: int, gap: float, convs: int) -> Path:
    path.write_text(
        "".join(
            json.dumps({"t": round(i * gap, 3), "conversation_id": f"c{i % convs}", "prompt": f"Question {i}."}) + "\n"
            for i in range(n)
        )
    )
    return path


def test_trace_cut_short_records_every_due_row(tmp_path):
    """Two users for 30 one-second streams due within 3 s: the run ends with rows queued for a user
    (not_sent) and streams in flight (cancelled); every row that came due is a record, once. The trace
    clock starts once the users run (on a busy CI machine that took over a second): rows due after
    the run's end were never due, so the rows recorded are the first k, each once."""
    trace = _trace(tmp_path / "t.jsonl", 30, 0.1, 30)
    r = bench(
        "run",
        "--trace",
        str(trace),
        "--out",
        str(tmp_path / "out"),
        "--target-profiles",
        str(ROOT / "tests" / "data" / "slow-profiles.yaml"),
        "-t",
        "4s",
        "-u",
        "2",
        "-r",
        "2",
        "-q",
        "--no-report",
    )
    assert r.returncode == 0, r.stderr[-2000:]
    df = pd.read_parquet(only_run(tmp_path / "out") / "requests.parquet")
    rows = sorted(df["trace_row"])
    assert rows == list(range(1, len(rows) + 1)) and len(rows) >= 20, rows  # every row due, in order, none twice
    errors = df["error"].value_counts()
    assert errors.get("not_sent", 0) > 10 and errors.get("cancelled", 0) >= 1, errors
    sent = df[df["error"] != "not_sent"]
    assert (sent["intended_delay_ms"] >= 0).all() and sent["intended_delay_ms"].max() > 500  # the queueing shows


def test_trace_where_every_request_fails_still_replays_and_reports(tmp_path):
    trace = _trace(tmp_path / "t.jsonl", 12, 0.05, 3)  # three conversations of four turns
    # every stream stalls after its third part (the preflight, which needs only the first, passes)
    r = bench(
        "run",
        "--trace",
        str(trace),
        "--out",
        str(tmp_path / "out"),
        "--target-profiles",
        FAST,
        "--target-faults",
        "stall=1.0:3",
        "--stall-timeout",
        "0.3",
        "-u",
        "4",
        "-r",
        "4",
        "-q",
    )
    run = only_run(tmp_path / "out")
    df = pd.read_parquet(run / "requests.parquet")
    assert sorted(df["trace_row"]) == list(range(1, 13)) and (df["error"] == "stall").all()
    assert (df.groupby("conversation")["turn"].nunique() == 4).all()  # a failed turn does not end its conversation
    summary = json.loads((run / "summary.json").read_text())
    assert summary["ok_requests"] == 0 and (run / "report.html").is_file(), r.stderr[-2000:]


def test_trace_history_token_counts_grow_by_what_was_sent_and_streamed(tmp_path):
    """With --tokenizer: each turn's prompt tokens = the previous turn's + its reply's + this message's."""
    from test_stream import word_tokenizer

    from bench.tokens import load_tokenizer

    tok = word_tokenizer(tmp_path)
    count = load_tokenizer(str(tok))
    trace = _trace(tmp_path / "t.jsonl", 8, 0.3, 2)
    r = bench(
        "run",
        "--trace",
        str(trace),
        "--tokenizer",
        str(tok),
        "--out",
        str(tmp_path / "out"),
        "--target-profiles",
        FAST,
        "-u",
        "2",
        "-r",
        "2",
        "-q",
        "--no-report",
    )
    assert r.returncode == 0, r.stderr[-2000:]
    df = pd.read_parquet(only_run(tmp_path / "out") / "requests.parquet").sort_values(["conversation", "turn"])
    assert df["error"].isna().all() and (df["token_source"] == "tokenizer:words").all()
    for _, g in df.groupby("conversation"):
        rows = g.to_dict("records")
        assert rows[0]["prompt_tokens"] == count(f"Question {rows[0]['trace_row'] - 1}.")
        for prev, cur in zip(rows, rows[1:]):
            expected = prev["prompt_tokens"] + prev["output_tokens"] + count(f"Question {cur['trace_row'] - 1}.")
            assert cur["prompt_tokens"] == expected


def test_import_that_keeps_nothing_says_why(tmp_path):
    with pytest.raises(InputError) as e:
        import_conversations(SAMPLE, "auto", ImportFilters(min_turns=9))
    assert "no conversation was kept" in str(e.value) and "fewer than 9 user turns" in str(e.value)


def _bpe_tokenizer(tmp_path: Path) -> Path:
    """A real byte-level BPE tokenizer.json trained here on the prompt corpus with a small vocabulary,
    so that many words are several tokens (a word-level tokenizer would hide a block cut mid-word)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    from bench.workload.synthetic import PromptMaker

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=400, initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator([PromptMaker(1).text[:200_000]], trainer)
    path = tmp_path / "bpe" / "tokenizer.json"
    path.parent.mkdir()
    tok.save(str(path))
    return path


def test_mooncake_hash_ids_share_exactly_their_blocks_of_prefix(tmp_path):
    """Rows with the same leading hash ids share exactly that many 512-token blocks of prompt, token for
    token with the run's tokenizer (a BPE that splits words into several tokens); lengths are exact."""
    from bench.tokens import load_tokenizer
    from bench.workload.synthetic import PromptMaker

    count = load_tokenizer(str(_bpe_tokenizer(tmp_path)))
    maker = PromptMaker(3, count)
    rows = {"a": ((1, 2, 3), 1400), "b": ((1, 2, 9), 1300), "c": ((1, 7), 700), "d": ((4, 5), 1024)}
    ids = {k: count._tok.encode(maker.block_prompt(h, n), add_special_tokens=False).ids for k, (h, n) in rows.items()}
    assert {k: len(v) for k, v in ids.items()} == {k: n for k, (_, n) in rows.items()}
    assert sum(len(count._tok.encode(w).ids) > 1 for w in set(maker.text.split()[:2000])) > 50  # words of several tokens

    def shared(x, y):
        return next((i for i, (p, q) in enumerate(zip(x, y)) if p != q), min(len(x), len(y)))

    assert shared(ids["a"], ids["b"]) == 1024 and shared(ids["a"], ids["c"]) == 512 and shared(ids["a"], ids["d"]) == 0
    assert maker.block_prompt((1, 2, 3), 1400) == PromptMaker(3, count).block_prompt((1, 2, 3), 1400)  # every process
    plain = PromptMaker(3)  # no tokenizer: 4 characters a token, the same sharing by characters
    a, b = plain.block_prompt((1, 2, 3), 1400), plain.block_prompt((1, 2, 9), 1300)
    assert len(a) == 5600 and len(b) == 5200 and a[:4096] == b[:4096] and a[4096:4160] != b[4096:4160]


def test_a_mooncake_trace_with_hash_ids_is_replayed_at_its_lengths(tmp_path):
    """End to end: every row of a Mooncake trace is sent once, its prompt exactly input_length tokens."""
    tok = _bpe_tokenizer(tmp_path)
    trace = tmp_path / "mooncake.jsonl"
    rows = [((0, 1), 700), ((0, 1, 2), 1100), ((0, 3), 600), ((4,), 300), ((0, 1, 2, 5), 1600), ((6,), 50)]
    trace.write_text(
        "".join(
            json.dumps({"timestamp": 100 * i, "input_length": n, "output_length": 8, "hash_ids": list(h)}) + "\n"
            for i, (h, n) in enumerate(rows)
        )
    )
    r = bench(
        "run", "--trace", str(trace), "--tokenizer", str(tok), "--out", str(tmp_path / "out"),
        "--target-profiles", FAST, "-u", "2", "-r", "2", "-q", "--no-report",
    )  # fmt: skip
    assert r.returncode == 0, r.stderr[-2000:]
    df = pd.read_parquet(only_run(tmp_path / "out") / "requests.parquet").sort_values("trace_row")
    assert df["error"].isna().all() and list(df["trace_row"]) == list(range(1, 7))
    assert list(df["prompt_tokens"]) == [n for _, n in rows] and list(df["requested_input_tokens"]) == [n for _, n in rows]

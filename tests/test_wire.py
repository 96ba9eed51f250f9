"""What workers and the master say to each other, and what the master keeps of each worker."""

from __future__ import annotations

from typing import get_type_hints

from bench.load.wire import RecordsMsg, StartedMsg, WorkerStatus

OLD_BATCH = {  # a batch as a worker of the 2026-11-26 release sent it: no offered, not_sent or trace keys
    "w": "host-1_abc",
    "rows": [["r1"], ["r2"]],
    "sent": 5,
    "errors": 1,
    "final": False,
    "cpu_max": 41.0,
    "warnings": [],
    "lag": b"",
    "cpu": 12.0,
    "t": 1000.0,
}


def test_an_older_workers_batch_still_reads():
    assert set(OLD_BATCH) == RecordsMsg.__required_keys__  # the keys every release sent stay required, the rest optional
    assert RecordsMsg.__optional_keys__ == {"offered", "not_sent", "trace"}
    w = WorkerStatus()
    w.took(OLD_BATCH, 1001.0)  # type: ignore[arg-type]
    assert (w.received, w.sent, w.errors, w.final, w.not_sent, w.offered) == (2, 5, 1, False, 0, None)
    w.took({**OLD_BATCH, "rows": [["r3"]], "final": True, "sent": 6, "not_sent": 2, "offered": 9}, 1002.0)  # type: ignore[typeddict-item]
    assert (w.received, w.final, w.not_sent, w.offered, w.last_report) == (3, True, 2, 9, 1002.0)


def test_a_dead_workers_account_adds_up():
    """Started 10, reported 4 rows in a batch that said 6 sent, 3 in flight written as worker_lost: 3 unaccounted."""
    w = WorkerStatus(received=4, sent=6, started=10, lost=3)
    out = w.as_json()
    assert out["sent"] == 10 and out["missing"] == 3
    # the keys collector.json's readers (the runner, the report, the tests) use
    assert {"received", "sent", "final", "lost", "missing", "trace", "cpu_max", "last_report"} <= set(out)


def test_the_start_notice_message_names_its_worker():
    assert get_type_hints(StartedMsg).keys() == {"w", "starts"}

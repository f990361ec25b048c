"""mailhook-worker's consumer read-ahead (docs/kafka.md, "The worker's read-ahead"):
20,000 records and 32 MiB when [kafka] says nothing, two batches when [worker]
batch_size is larger, [kafka]'s value of either setting when it gives one; and with each,
a backlog written before the worker starts reaches the events topic once."""

from __future__ import annotations

from worker_cases import Case, run_cases

# worker/prefetch.h
READ_AHEAD_RECORDS = "20000"
READ_AHEAD_KBYTES = "32768"


def line(records: str, kbytes: str) -> str:
    return f"consumer read-ahead: queued.min.messages={records}, queued.max.messages.kbytes={kbytes}\""


def test_read_ahead_default_batch_size_and_override(mailhook, tmp_path):
    run_cases(mailhook, tmp_path, "readahead", [
        Case(86, line(READ_AHEAD_RECORDS, READ_AHEAD_KBYTES)),
        Case(87, line("30000", READ_AHEAD_KBYTES), worker={"batch_size": "15000"}),
        Case(88, line("3000", "4096"),
             kafka={"queued.min.messages": "3000", "queued.max.messages.kbytes": "4096"}),
    ], webhooks=5, events_per_webhook=3, backlog_first=True)

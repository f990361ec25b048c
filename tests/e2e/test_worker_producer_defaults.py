"""mailhook-worker's transactional producer (docs/kafka.md, "The worker's transactions"):
retry.backoff.ms is the worker's own 10 ms when [kafka] says nothing and [kafka]'s value
when it does, and with either the worker's transactions (offsets first, then the
records) carry every event once."""

from __future__ import annotations

from worker_cases import Case, run_cases

WORKER_RETRY_BACKOFF_MS = "10"  # pipeline/emit.c


def test_retry_backoff_default_and_override(mailhook, tmp_path):
    # Three webhooks of two events each per worker: one transaction or several, every
    # event is on the events topic once.
    run_cases(mailhook, tmp_path, "txnbackoff", [
        Case(96, f"retry.backoff.ms={WORKER_RETRY_BACKOFF_MS}\""),
        Case(97, "retry.backoff.ms=100\"", kafka={"retry.backoff.ms": "100"}),
    ], webhooks=3, events_per_webhook=2, backlog_first=False)

"""Kafka goes away under a running pipeline (runs last: it restarts the local broker).

While the broker is down ingest answers 503 with Retry-After within its ack deadline and
publishes nothing; when the broker is back ingest and workers recover by themselves and
the webhook the provider retries comes out once."""

from __future__ import annotations

import os
import time

import requests

import helpers
from test_pipeline import events_for, unique_bounce, uid


def test_broker_down_gives_503_then_recovers(mailhook, stack_control):
    rid = uid()
    body = unique_bounce(f"outage.{rid}@example.com", f"outage-{rid}")
    before = mailhook.end_offsets("events")
    deadline_s = int(mailhook.sections["ingest"].get("ack_deadline_ms", 5000)) / 1000

    stack_control.kafka_kill()
    try:
        statuses = []
        for _ in range(3):
            t0 = time.monotonic()
            r = mailhook.post("ivymail", body, timeout=deadline_s + 10)
            elapsed = time.monotonic() - t0
            statuses.append(r.status_code)
            assert r.status_code == 503, r.text
            assert int(r.headers["Retry-After"]) > 0
            assert elapsed <= deadline_s + 1.0, f"503 took {elapsed:.1f}s"
        helpers.wait_for(
            lambda: requests.get(f"{mailhook.base_url}/readyz", timeout=2).status_code == 503,
            timeout=15, what="/readyz to report the broker down")
    finally:
        stack_control.kafka_up()

    helpers.wait_for(
        lambda: requests.get(f"{mailhook.base_url}/readyz", timeout=2).status_code == 200,
        timeout=90, what="/readyz to recover without a restart")
    # The provider retries until it gets a 2xx.
    helpers.wait_for(lambda: mailhook.post("ivymail", body).status_code == 200,
                     timeout=60, interval=1, what="ingest to accept again")
    got = events_for(mailhook, before, 1, settle=3, timeout=120)
    assert [g.value["message_id"] for g in got] == [f"outage-{rid}"]
    assert mailhook.procs["ingest"].alive()
    assert all(w.alive() for w in mailhook.workers())

"""mailhook-worker's transactional producer (docs/kafka.md, "The worker's transactions"):
retry.backoff.ms is the worker's own 10 ms when [kafka] says nothing and [kafka]'s value
when it does, and with either the worker's transactions (offsets first, then the
records) carry every event once."""

from __future__ import annotations

import json

import helpers
from test_pipeline import uid, unique_bounce
from test_worker_metrics import _own_pipeline

WORKER_RETRY_BACKOFF_MS = "10"  # pipeline/emit.c


def test_retry_backoff_default_and_override(mailhook, tmp_path):
    sections, topics = _own_pipeline(mailhook, tmp_path, "txnbackoff")
    sections["worker"]["log_level"] = "info"
    ingest_url = "http://" + sections["ingest"]["listen"]
    src = mailhook.sources["ivymail"]
    base_path = tmp_path / "txnbackoff-ingest.ini"
    helpers.write_ini(base_path, sections)
    mailhook.start_ingest("ingest-txnbackoff", config=base_path, url=ingest_url)
    sent: list[str] = []
    try:
        for index, kafka, want in ((96, {}, WORKER_RETRY_BACKOFF_MS),
                                   (97, {"retry.backoff.ms": "100"}, "100")):
            case = json.loads(json.dumps(sections))
            case["kafka"].update(kafka)
            path = tmp_path / f"txnbackoff-{index}.ini"
            helpers.write_ini(path, case)
            worker = mailhook.start_worker(index, config=path)
            try:
                line = f"retry.backoff.ms={want}\""
                helpers.wait_for(lambda: line in worker.log.read_text(), 30,
                                 what=f"the worker's producer with {line}")
                # Three webhooks of two events each: one transaction or several, every
                # event is on the events topic once.
                for _ in range(3):
                    rid = uid()
                    events = [unique_bounce(f"txn.{rid}.{k}@example.com", f"txn-{rid}-{k}")
                              for k in range(2)]
                    body = json.dumps(events)
                    r = helpers.post(ingest_url, "ivymail", body,
                                     helpers.signature_headers(src, body))
                    assert r.status_code == 200, r.text
                    sent += [e["message_id"] for e in events]
                got = helpers.consume(topics["events"], expect_n=len(sent), timeout=60,
                                      brokers_=mailhook.brokers)
                assert len(got) == len(sent), worker.tail()
            finally:
                status = worker.stop(timeout=15)
            assert status == 0, worker.tail()
        emitted = [r.value["message_id"]
                   for r in helpers.consume(topics["events"], timeout=30,
                                            brokers_=mailhook.brokers)]
        assert sorted(emitted) == sorted(sent)
    finally:
        helpers.delete_topics(topics.values(), mailhook.brokers)

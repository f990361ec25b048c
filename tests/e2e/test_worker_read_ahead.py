"""mailhook-worker's consumer read-ahead (docs/kafka.md, "The worker's read-ahead"):
20,000 records and 32 MiB when [kafka] says nothing, two batches when [worker]
batch_size is larger, [kafka]'s value of either setting when it gives one; and with each,
a backlog written before the worker starts reaches the events topic once."""

from __future__ import annotations

import json

import helpers
from test_pipeline import uid, unique_bounce
from test_worker_metrics import _own_pipeline

# worker/prefetch.h
READ_AHEAD_RECORDS = "20000"
READ_AHEAD_KBYTES = "32768"

CASES = (
    (86, {}, {}, READ_AHEAD_RECORDS, READ_AHEAD_KBYTES),
    (87, {}, {"batch_size": "15000"}, "30000", READ_AHEAD_KBYTES),
    (88, {"queued.min.messages": "3000", "queued.max.messages.kbytes": "4096"}, {},
     "3000", "4096"),
)


def test_read_ahead_default_batch_size_and_override(mailhook, tmp_path):
    sections, topics = _own_pipeline(mailhook, tmp_path, "readahead")
    sections["worker"]["log_level"] = "info"
    ingest_url = "http://" + sections["ingest"]["listen"]
    src = mailhook.sources["ivymail"]
    base_path = tmp_path / "readahead-ingest.ini"
    helpers.write_ini(base_path, sections)
    mailhook.start_ingest("ingest-readahead", config=base_path, url=ingest_url)
    sent: list[str] = []
    try:
        for index, kafka, worker_kv, records, kbytes in CASES:
            # The backlog first: the worker starts on records it has to read ahead.
            for _ in range(5):
                rid = uid()
                events = [unique_bounce(f"ra.{rid}.{k}@example.com", f"ra-{rid}-{k}")
                          for k in range(3)]
                body = json.dumps(events)
                r = helpers.post(ingest_url, "ivymail", body,
                                 helpers.signature_headers(src, body))
                assert r.status_code == 200, r.text
                sent += [e["message_id"] for e in events]
            case = json.loads(json.dumps(sections))
            case["kafka"].update(kafka)
            case["worker"].update(worker_kv)
            path = tmp_path / f"readahead-{index}.ini"
            helpers.write_ini(path, case)
            worker = mailhook.start_worker(index, config=path)
            try:
                line = (f"consumer read-ahead: queued.min.messages={records}, "
                        f"queued.max.messages.kbytes={kbytes}\"")
                helpers.wait_for(lambda: line in worker.log.read_text(), 30,
                                 what=f"the worker's consumer with {line}")
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

"""Workers started one after the other on a pipeline of their own, each with its own
variant of the config: what the tests of a worker's Kafka client settings share. Each
case waits for the line the worker logs with the setting in use, and every event sent
so far must be on the events topic once."""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import helpers
from test_pipeline import uid, unique_bounce
from test_worker_metrics import _own_pipeline


@dataclass
class Case:
    index: int            # the worker's instance number
    line: str             # what its log must say
    kafka: dict = field(default_factory=dict)   # [kafka] settings of this case
    worker: dict = field(default_factory=dict)  # [worker] settings of this case


def run_cases(mailhook, tmp_path, name: str, cases: list[Case], webhooks: int,
              events_per_webhook: int, backlog_first: bool) -> None:
    """For each case: webhooks signed ivymail webhooks of events_per_webhook events,
    written before its worker starts (backlog_first) or once it logged its line."""
    sections, topics = _own_pipeline(mailhook, tmp_path, name)
    sections["worker"]["log_level"] = "info"
    ingest_url = "http://" + sections["ingest"]["listen"]
    src = mailhook.sources["ivymail"]
    base_path = tmp_path / f"{name}-ingest.ini"
    helpers.write_ini(base_path, sections)
    mailhook.start_ingest(f"ingest-{name}", config=base_path, url=ingest_url)
    sent: list[str] = []

    def send() -> None:
        for _ in range(webhooks):
            rid = uid()
            events = [unique_bounce(f"{name}.{rid}.{k}@example.com", f"{name}-{rid}-{k}")
                      for k in range(events_per_webhook)]
            body = json.dumps(events)
            r = helpers.post(ingest_url, "ivymail", body, helpers.signature_headers(src, body))
            assert r.status_code == 200, r.text
            sent.extend(e["message_id"] for e in events)

    try:
        for case in cases:
            if backlog_first:
                send()
            conf = json.loads(json.dumps(sections))
            conf["kafka"].update(case.kafka)
            conf["worker"].update(case.worker)
            path = tmp_path / f"{name}-{case.index}.ini"
            helpers.write_ini(path, conf)
            worker = mailhook.start_worker(case.index, config=path)
            try:
                helpers.wait_for(lambda: case.line in worker.log.read_text(), 30,
                                 what=f"the worker's log line {case.line}")
                if not backlog_first:
                    send()
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

"""mailhook-worker asks the broker about the topics it writes (events, dead letters,
suppression changes) before its first transaction (pipeline/emit.c, learn_topics;
docs/kafka.md, "An idle worker"): a topic the broker does not know is named in a warning
at start-up, and the worker still carries every event of topics that exist."""

from __future__ import annotations

import json

import helpers
from test_pipeline import uid, unique_bounce
from test_worker_metrics import _own_pipeline


def _run(mailhook, tmp_path, name: str, index: int, worker: dict) -> tuple[str, dict]:
    """A worker of its own pipeline with worker's settings on top; three webhooks through
    it. Returns its log and the pipeline's topics."""
    sections, topics = _own_pipeline(mailhook, tmp_path, name)
    sections["worker"].update(worker)
    path = tmp_path / f"{name}.ini"
    helpers.write_ini(path, sections)
    ingest_url = "http://" + sections["ingest"]["listen"]
    src = mailhook.sources["ivymail"]
    mailhook.start_ingest(f"ingest-{name}", config=path, url=ingest_url)
    proc = mailhook.start_worker(index, config=path)
    try:
        sent = []
        for _ in range(3):
            rid = uid()
            ev = unique_bounce(f"{name}.{rid}@example.com", f"{name}-{rid}")
            body = json.dumps(ev)
            r = helpers.post(ingest_url, "ivymail", body, helpers.signature_headers(src, body))
            assert r.status_code == 200, r.text
            sent.append(ev["message_id"])
        got = helpers.consume(topics["events"], expect_n=len(sent), timeout=60,
                              brokers_=mailhook.brokers)
        assert sorted(m.value["message_id"] for m in got) == sorted(sent), proc.tail()
    finally:
        status = proc.stop(timeout=15)
        helpers.delete_topics(topics.values(), mailhook.brokers)
    assert status == 0, proc.tail()
    return proc.log.read_text(), topics


def test_a_missing_output_topic_is_named_at_start(mailhook, tmp_path):
    missing = f"{mailhook.topics['dlq']}.never-created-{uid()}"
    log, _ = _run(mailhook, tmp_path, "learntopics-missing", 84, {"dlq_topic": missing})
    assert f"topic {missing}: " in log
    assert "run `mailhook topics`" in log


def test_existing_topics_start_without_a_warning(mailhook, tmp_path):
    log, topics = _run(mailhook, tmp_path, "learntopics-present", 85, {})
    for role in ("events", "dlq"):
        assert f"topic {topics[role]}: " not in log
    assert "run `mailhook topics`" not in log

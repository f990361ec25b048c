"""mailhook-ingest's producer defaults (docs/kafka.md, "Ingest's producer defaults"): its
own linger.ms when [kafka] says nothing, and a [kafka] setting, under either of
librdkafka's names, replacing it."""

from __future__ import annotations

import json
import time

import helpers
from test_pipeline import uid, unique_bounce

INGEST_LINGER_MS = "0.3"  # ingest/ingest.h


def _start(mailhook, tmp_path, name: str, raw: str, kafka: dict):
    port = helpers.free_port()
    base = f"http://127.0.0.1:{port}"
    sections = json.loads(json.dumps(mailhook.sections))
    sections["ingest"].update({"listen": f"127.0.0.1:{port}", "raw_topic": raw,
                               "log_level": "info"})
    sections["kafka"].update(kafka)
    path = tmp_path / f"{name}.ini"
    helpers.write_ini(path, sections)
    return base, mailhook.start_ingest(name, config=path, url=base)


def _post_timed(base: str, source: dict) -> tuple[int, float]:
    rid = uid()
    body = unique_bounce(f"linger.{rid}@example.com", f"linger-{rid}")
    headers = helpers.signature_headers(source, body)
    t0 = time.monotonic()
    code = helpers.post(base, "ivymail", body, headers).status_code
    return code, time.monotonic() - t0


def test_producer_linger_default_and_override(mailhook, tmp_path):
    # A raw topic of its own: the session's workers must not get these records.
    raw = f"{mailhook.topics['raw']}.linger"
    helpers.create_topics({raw: 2}, mailhook.brokers)
    src = mailhook.sources["ivymail"]
    try:
        before = sum(mailhook.end_offsets(raw).values())
        cases = [("ingest-linger-default", {}, INGEST_LINGER_MS),
                 ("ingest-linger-kafka", {"linger.ms": "0"}, "0"),
                 ("ingest-linger-alias", {"queue.buffering.max.ms": "60"}, "60")]
        for name, kafka, want in cases:
            base, proc = _start(mailhook, tmp_path, name, raw, kafka)
            try:
                assert f"kafka producer: linger.ms = {want}\"" in proc.log.read_text(), proc.tail()
                code, took = _post_timed(base, src)
                assert code == 200
                if want == "60":
                    # A lone record waits out the linger before it is even sent.
                    assert took >= 0.055, f"answered in {took * 1000:.1f} ms despite linger 60"
            finally:
                status = proc.stop(timeout=15)
            assert status == 0, proc.tail()
        helpers.wait_for(lambda: sum(mailhook.end_offsets(raw).values()) - before >= 3, 30,
                         what="3 records on the raw topic")
    finally:
        helpers.delete_topics([raw], mailhook.brokers)

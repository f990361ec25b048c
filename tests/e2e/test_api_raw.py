"""GET /v1/raw/{partition}/{offset}: the raw record an event came from, read from Kafka by
mailhook-api — its body and the ingest's headers (never the forwarded signature
headers), for an operator token or a token of the record's tenant (403 for others), 404
for a record gone by retention or not written yet, 400 for a bad partition or offset,
503 when Kafka does not answer."""

from __future__ import annotations

import json
import secrets
import time
from datetime import datetime, timezone

import pytest
import requests
from confluent_kafka import Producer, TopicPartition

import helpers
from test_suppression import ivymail, start_api, uid

SAFE_KEYS = {"topic", "partition", "offset", "timestamp", "source", "provider", "tenant",
             "request_id", "received_at", "content_type", "body_bytes", "truncated"}
SIGNATURE = "sig-" + secrets.token_hex(8)


class Raw:
    """A mailhook-api reading a raw topic of its own, filled by the test."""

    def __init__(self, base: str, topic: str, operator: str, acme: str, beta: str,
                 acme_token: str, beta_token: str, offsets: dict[str, int]):
        self.base, self.topic, self.operator = base, topic, operator
        self.acme, self.beta, self.acme_token, self.beta_token = acme, beta, acme_token, beta_token
        self.offsets = offsets

    def get(self, path: str, token: str | None = None, **params) -> requests.Response:
        return requests.get(self.base + path, params=params, timeout=30,
                            headers={"Authorization": f"Bearer {token or self.operator}"})


def _headers(source: str, provider: str, tenant: str | None, rid: str,
             content_type: str) -> list[tuple[str, bytes]]:
    hs = [("mh-source", source.encode()), ("mh-provider", provider.encode()),
          ("mh-received-at", b"2026-12-04T19:06:31.123Z"), ("mh-request-id", rid.encode()),
          ("content-type", content_type.encode()),
          # A forwarded header as a source's forward_headers puts it: never answered.
          ("x-ivymail-signature", SIGNATURE.encode())]
    if tenant:
        hs.append(("mh-tenant", tenant.encode()))
    return hs


def _start(mailhook, name: str, topic: str, tokens: str, kafka: str | None = None):
    sections = json.loads(json.dumps(mailhook.sections))
    sections["ingest"]["raw_topic"] = topic
    sections["worker"]["raw_topic"] = topic
    if kafka:
        sections["kafka"]["bootstrap.servers"] = kafka
    path = mailhook.workdir / f"{name}-tokens.txt"
    path.write_text(tokens)
    path.chmod(0o600)
    sections["api"] = {"listen": f"127.0.0.1:{helpers.free_port()}", "token_file": str(path),
                       "maintenance_interval_s": "0"}
    return mailhook.start_api(name, sections)


@pytest.fixture(scope="module")
def raw(mailhook):
    u = uid()
    topic = f"mailhook.raw.api-raw-{u}"
    helpers.create_topics({topic: 2}, mailhook.brokers)
    acme, beta = f"acme-{u}", f"beta-{u}"
    records = {
        "expired": (acme, b'{"event": "delivered"}', "application/json"),
        "acme": (acme, b'{"event": "bounced", "note": "<script>alert(1)</script>"}',
                 "application/json; charset=utf-8"),
        "beta": (beta, b"\xff\xfe binary \x00 body", "application/octet-stream"),
        "untenanted": (None, b"event=delivered&to=a%40example.com",
                       "application/x-www-form-urlencoded"),
    }
    offsets: dict[str, int] = {}

    def acked(err, msg):
        assert err is None, err
        offsets[msg.key().decode()] = msg.offset()
    p = Producer({"bootstrap.servers": mailhook.brokers, "enable.idempotence": True})
    for key, (tenant, body, ctype) in records.items():
        p.produce(topic, body, key=key.encode(), partition=0, on_delivery=acked,
                  headers=_headers("ivymail", "ivymail", tenant, f"rid-{key}-{u}", ctype))
        p.flush(30)
    assert len(offsets) == len(records)
    # Retention, as the broker applies it: the records below "acme" are gone.
    admin = helpers.admin(mailhook.brokers)  # kept alive until its futures resolve
    for f in admin.delete_records([TopicPartition(topic, 0, offsets["acme"])]).values():
        f.result(30)
    operator, acme_token, beta_token = (secrets.token_hex(16) for _ in range(3))
    base, proc = _start(mailhook, "api-raw", topic,
                        f"{operator} *\n{acme_token} {acme}\n{beta_token} {beta}\n")
    yield Raw(base, topic, operator, acme, beta, acme_token, beta_token, offsets)
    proc.stop()
    helpers.delete_topics([topic], mailhook.brokers)


def test_operator_reads_a_raw_record_with_its_ingest_headers(raw):
    off = raw.offsets["acme"]
    r = raw.get(f"/v1/raw/0/{off}")
    assert r.status_code == 200, r.text
    assert r.headers["Content-Type"] == "application/json"
    rec = r.json()
    body = '{"event": "bounced", "note": "<script>alert(1)</script>"}'
    assert rec["body"] == body and rec["body_bytes"] == len(body) and rec["truncated"] is False
    assert {k: rec[k] for k in ("topic", "partition", "offset", "source", "provider", "tenant",
                                "received_at", "content_type")} == {
        "topic": raw.topic, "partition": 0, "offset": off, "source": "ivymail",
        "provider": "ivymail", "tenant": raw.acme, "received_at": "2026-12-04T19:06:31.123Z",
        "content_type": "application/json; charset=utf-8"}
    assert rec["request_id"].startswith("rid-acme-") and rec["timestamp"].endswith("Z")
    # Only the ingest's headers: a forwarded signature header is never shown.
    assert set(rec) == SAFE_KEYS | {"body"}
    assert SIGNATURE not in r.text
    # ?topic= may name the raw topic, and no other.
    assert raw.get(f"/v1/raw/0/{off}", topic=raw.topic).json() == rec


def test_a_body_that_is_not_utf8_comes_as_base64(raw):
    rec = raw.get(f"/v1/raw/0/{raw.offsets['beta']}").json()
    assert "body" not in rec and rec["body_base64"] == "//4gYmluYXJ5IAAgYm9keQ=="
    assert rec["body_bytes"] == 16 and rec["content_type"] == "application/octet-stream"


def test_a_tenant_token_reads_its_tenants_records_only(raw):
    acme, beta = raw.offsets["acme"], raw.offsets["beta"]
    assert raw.get(f"/v1/raw/0/{acme}", raw.acme_token).json()["tenant"] == raw.acme
    assert raw.get(f"/v1/raw/0/{beta}", raw.beta_token).json()["tenant"] == raw.beta
    for token, off in ((raw.acme_token, beta), (raw.beta_token, acme),
                       (raw.acme_token, raw.offsets["untenanted"])):
        r = raw.get(f"/v1/raw/0/{off}", token)
        assert r.status_code == 403, r.text
        # Neither the body nor whose record it is.
        assert "body" not in r.json() and raw.acme not in r.text and raw.beta not in r.text
    assert raw.get(f"/v1/raw/0/{raw.offsets['untenanted']}").json()["tenant"] is None
    r = requests.get(raw.base + f"/v1/raw/0/{acme}", timeout=10,
                     headers={"Authorization": "Bearer nope"})
    assert r.status_code == 401


def test_missing_records_are_404_with_a_clear_error(raw):
    for path, needle in (
            (f"/v1/raw/0/{raw.offsets['expired']}", "gone from the topic (retention"),
            ("/v1/raw/0/1000000", "no such record yet"),
            ("/v1/raw/1/0", "no such record yet"),  # an empty partition
            ("/v1/raw/7/0", "has no partition 7"),
    ):
        r = raw.get(path)
        assert r.status_code == 404, (path, r.text)
        assert needle in r.json()["error"], (path, r.json())


@pytest.mark.parametrize("path,params,needle", [
    ("/v1/raw/x/1", {}, "partition"),
    ("/v1/raw/-1/1", {}, "partition"),
    ("/v1/raw/2147483648/1", {}, "partition"),
    ("/v1/raw/0/-1", {}, "offset"),
    ("/v1/raw/0/1.5", {}, "offset"),
    ("/v1/raw/0/9223372036854775807", {}, "offset"),
    ("/v1/raw/0/1/2", {}, "offset"),
    ("/v1/raw/0", {}, "{partition}/{offset}"),
    ("/v1/raw/0/1", {"topic": "mailhook.events"}, "only the raw topic"),
    ("/v1/raw/0/1", {"body": "1"}, 'unknown parameter "body"'),
])
def test_bad_coordinates_are_400(raw, path, params, needle):
    r = raw.get(path, **params)
    assert r.status_code == 400, r.text
    assert needle in r.json()["error"]


def test_an_events_raw_record_is_the_posted_webhook(mailhook):
    """Through the live pipeline: the event's raw coordinates lead to the body ingest took."""
    api = start_api(mailhook, "api-raw-live")
    try:
        rcpt = f"raw.{uid()}@example.com"
        body = ivymail(mailhook, "delivered", rcpt, datetime.now(timezone.utc))
        ev = helpers.wait_for(lambda: (i := api.get("/v1/events", params={"recipient": rcpt})
                                       .json()["items"]) and i[0], 30, what="the event")
        coords = ev["raw"]
        r = api.get(f"/v1/raw/{coords['partition']}/{coords['offset']}",
                    params={"topic": coords["topic"]})
        assert r.status_code == 200, r.text
        rec = r.json()
        assert json.loads(rec["body"]) == body
        assert (rec["source"], rec["provider"], rec["tenant"]) == \
            ("ivymail", "ivymail", mailhook.sources["ivymail"]["tenant"])
        assert rec["content_type"].startswith("application/json")
        assert set(rec) == SAFE_KEYS | {"body"}
        assert mailhook.sources["ivymail"]["secret"] not in r.text
    finally:
        api.proc.stop()


def test_kafka_unreachable_is_503_within_the_budget(mailhook):
    closed = f"127.0.0.1:{helpers.free_port()}"
    token = secrets.token_hex(16)
    base, proc = _start(mailhook, "api-raw-nokafka", f"mailhook.raw.none-{uid()}", f"{token}\n",
                        kafka=closed)
    try:
        t0 = time.monotonic()
        r = requests.get(base + "/v1/raw/0/0", timeout=30,
                         headers={"Authorization": f"Bearer {token}"})
        assert r.status_code == 503, r.text
        assert r.headers["Retry-After"] == "1"
        assert time.monotonic() - t0 < 10
    finally:
        proc.stop()

"""SendGrid through the real pipeline: signed Event Webhook batches (ECDSA P-256, signed
with `mailhook sign --key`) reach the events topic, an `unsubscribe` suppresses the
address for the tenant (PostgreSQL, mailhook-api and the compacted suppressions topic),
and a later `group_resubscribe` lifts it (404, tombstone). A resubscribe that happened
before the unsubscribe, however late it arrives, does not lift it.

This module runs an ingest + worker + api of its own with one `sendgrid` source (default
timestamp tolerance: the requests are stamped now), on the session's database."""

from __future__ import annotations

import json
import os
import secrets
import shlex
import subprocess
from datetime import datetime, timedelta, timezone

import pytest

import helpers
from helpers import Mailhook
from test_suppression import start_api, wait_state, wait_topic

TENANT = "sg-e2e"


def _uid() -> str:
    return secrets.token_hex(5)


@pytest.fixture(scope="module")
def sendgrid(stack, session_id, e2e_db, tmp_path_factory):
    work = tmp_path_factory.mktemp("sendgrid")
    priv, pub = work / "sendgrid.pem", work / "sendgrid.pub.pem"
    subprocess.run(["openssl", "genpkey", "-algorithm", "EC", "-pkeyopt",
                    "ec_paramgen_curve:P-256", "-out", str(priv)], check=True, capture_output=True)
    subprocess.run(["openssl", "pkey", "-in", str(priv), "-pubout", "-out", str(pub)],
                   check=True, capture_output=True)
    topics = {role: f"mailhook.{role}.sendgrid-{session_id}"
              for role in ("raw", "events", "dlq", "suppressions")}
    sources = {"sendgrid": {"provider": "sendgrid", "tenant": TENANT,
                            "public_key_file": str(pub)}}
    sections = {
        "ingest": {"listen": f"127.0.0.1:{helpers.free_port()}", "raw_topic": topics["raw"]},
        "worker": {"group_id": f"mailhook-sendgrid-{session_id}", "raw_topic": topics["raw"],
                   "events_topic": topics["events"], "dlq_topic": topics["dlq"],
                   "suppressions_topic": topics["suppressions"]},
        "postgres": {"dsn": e2e_db},
        "kafka": {"bootstrap.servers": stack.brokers},
        "source.sendgrid": sources["sendgrid"],
    }
    path = work / "mailhook.ini"
    helpers.write_ini(path, sections)
    env = dict(os.environ, MAILHOOK_KAFKA_BROKERS=stack.brokers, MAILHOOK_PG_DSN=e2e_db)
    mh = Mailhook(path, sections, env, work, topics, sources, stack.brokers, e2e_db)
    mh.cli("topics")
    mh.cli("migrate")
    api = None
    try:
        mh.start_ingest()
        mh.start_worker(1)
        api = start_api(mh, "api-sendgrid")
        yield mh, api, priv
    finally:
        crashed = mh.crashed()
        mh.stop_all()
        helpers.delete_topics(topics.values(), stack.brokers)
        assert not crashed, "sendgrid pipeline process exited: " + ", ".join(
            f"{p.name}\n{p.tail(40)}" for p in crashed)


def _ts(at: datetime) -> int:
    return int(at.timestamp())


def _event(event: str, email: str, at: datetime, **extra) -> dict:
    mid = _uid()
    return {"email": email, "timestamp": _ts(at), "smtp-id": f"<{mid}@ismtpd-e2e>",
            "event": event, "sg_event_id": f"e2e-{_uid()}",
            "sg_message_id": f"{mid}.filter-e2e.0", **extra}


def _post_batch(mh: Mailhook, priv, batch: list[dict], tamper: bool = False) -> int:
    """Signs the batch with `mailhook sign --key` and posts it; the HTTP status."""
    body_file = mh.workdir / f"batch-{_uid()}.json"
    body_file.write_bytes(json.dumps(batch).encode() + b"\r\n")  # SendGrid ends in CRLF
    cmd = mh.cli("sign", "--source", "sendgrid", "--url", mh.url("sendgrid"), "--key",
                 str(priv), str(body_file)).stdout.decode().strip()
    argv = shlex.split(cmd)
    assert argv[0] == "curl"
    headers = [argv[i + 1] for i, a in enumerate(argv) if a == "-H"]
    assert any(h.lower().startswith("x-twilio-email-event-webhook-signature: ") for h in headers)
    assert any(h.lower().startswith("x-twilio-email-event-webhook-timestamp: ") for h in headers)
    if tamper:
        body_file.write_bytes(body_file.read_bytes().replace(b"unsubscribe", b"unsubscribd"))
    out = subprocess.run(argv + ["-o", "/dev/null", "-w", "%{http_code}"], capture_output=True,
                         text=True, timeout=30)
    return int(out.stdout.strip())


def test_unsubscribe_then_group_resubscribe(sendgrid, pg):
    mh, api, priv = sendgrid
    now = datetime.now(timezone.utc).replace(microsecond=0)
    addr = f"Sg.{_uid()}@Example.com"
    low = addr.lower()
    key = f"{TENANT}/{low}"
    events_before = mh.end_offsets("events")
    assert api.state(TENANT, addr).status_code == 404

    # A batch as SendGrid sends it: a delivery and, later, the recipient's unsubscribe.
    unsub = _event("unsubscribe", addr, now - timedelta(minutes=10))
    assert _post_batch(mh, priv, [_event("delivered", addr, now - timedelta(minutes=20),
                                         response="250 OK"), unsub]) == 200
    state = wait_state(api, TENANT, low, 200, "unsubscribe")
    assert state["source"] == "email.unsubscribed"
    assert state["source_event_id"] == unsub["sg_event_id"]
    assert state["since"].startswith((now - timedelta(minutes=10)).strftime("%Y-%m-%dT%H:%M:%S"))
    row = pg.execute("select state, reason from mh_suppressions where tenant = %s and "
                     "address = %s", (TENANT, low)).fetchone()
    assert row == ("suppressed", "unsubscribe")
    recs = wait_topic(mh, key, lambda v: v is not None and v.get("reason") == "unsubscribe")
    assert recs[-1].value["address"] == low

    # The group resubscribe, later than the unsubscribe: the address is sendable again.
    resub = _event("group_resubscribe", addr, now - timedelta(minutes=5), asm_group_id=10,
                   useragent="Mozilla/5.0", ip="192.0.2.7", url="https://example.com/prefs")
    assert _post_batch(mh, priv, [resub]) == 200
    wait_state(api, TENANT, low, 404)
    row = pg.execute("select state, reason from mh_suppressions where tenant = %s and "
                     "address = %s", (TENANT, low)).fetchone()
    assert row[0] == "lifted"
    wait_topic(mh, key, lambda v: v is None)

    # Both events are on the events topic, keyed by the recipient, as the parser says.
    got = {r.value["type"]: r for r in mh.consume("events", from_offsets=events_before,
                                                  expect_n=3, settle=2, timeout=60)}
    assert set(got) == {"email.delivered", "email.unsubscribed", "email.resubscribed"}
    ev = got["email.resubscribed"].value
    assert got["email.resubscribed"].key == low
    assert ev["provider"] == "sendgrid" and ev["provider_event"] == "group_resubscribe"
    assert ev["event_id"] == resub["sg_event_id"]
    assert ev["message_id"] == resub["sg_message_id"]
    assert ev["metadata"] == {"asm_group_id": 10}
    assert ev["tenant"] == TENANT and ev["recipient"] == low


def test_earlier_resubscribe_arriving_late_does_not_lift(sendgrid, pg):
    mh, api, priv = sendgrid
    now = datetime.now(timezone.utc).replace(microsecond=0)
    addr = f"late.{_uid()}@example.com"
    assert _post_batch(mh, priv, [_event("group_unsubscribe", addr, now - timedelta(minutes=3),
                                         asm_group_id=10)]) == 200
    wait_state(api, TENANT, addr, 200, "unsubscribe")
    # Occurred before the unsubscribe, delivered after it (SendGrid batches are unordered).
    stale = _event("group_resubscribe", addr, now - timedelta(minutes=30), asm_group_id=10)
    assert _post_batch(mh, priv, [stale]) == 200
    helpers.wait_for(lambda: pg.execute("select count(*) from mh_event_claims where "
                                        "event_id = %s", (stale["sg_event_id"],)).fetchone()[0],
                     30, what="the stale resubscribe to be claimed")
    state = wait_state(api, TENANT, addr, 200, "unsubscribe")
    assert state["source"] == "email.unsubscribed"


def test_bad_signature_is_refused(sendgrid):
    mh, _, priv = sendgrid
    now = datetime.now(timezone.utc)
    batch = [_event("unsubscribe", f"t.{_uid()}@example.com", now)]
    assert _post_batch(mh, priv, batch, tamper=True) == 401

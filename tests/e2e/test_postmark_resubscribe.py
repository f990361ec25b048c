"""Postmark SubscriptionChange through the real pipeline (ingest, Kafka, worker,
PostgreSQL): SuppressSending=true suppresses the address with reason "unsubscribe" and
puts its state on the compacted suppressions topic; a later SuppressSending=false lifts it
(a tombstone on the topic, no row in mh_suppressions_current). An older resubscribe that
arrives late does not lift a newer unsubscribe, and a change Postmark makes because of a
hard bounce (SuppressionReason HardBounce) is logged as email.suppressed without touching
the state. Requests carry HTTP Basic credentials, as Postmark sends them.

The module runs an ingest and a worker of its own, with its own topics and a postmark
source, on the session's database."""

from __future__ import annotations

import os
import secrets
from datetime import datetime, timedelta, timezone

import pytest
import requests

import helpers
from helpers import Mailhook

USER = "postmark"
SEEN_WITHIN = 20.0


@pytest.fixture(scope="module")
def pm(stack, session_id, e2e_db, tmp_path_factory):
    work = tmp_path_factory.mktemp("postmark")
    topics = {role: f"mailhook.{role}.postmark-{session_id}"
              for role in ("raw", "events", "dlq", "suppressions")}
    tenant = f"pm-{secrets.token_hex(4)}"
    sources = {"postmark": {"provider": "postmark", "tenant": tenant, "basic_user": USER,
                            "secret": helpers.new_secret()}}
    sections = {
        "ingest": {"listen": f"127.0.0.1:{helpers.free_port()}", "raw_topic": topics["raw"]},
        "worker": {"group_id": f"mailhook-postmark-{session_id}", "raw_topic": topics["raw"],
                   "events_topic": topics["events"], "dlq_topic": topics["dlq"],
                   "suppressions_topic": topics["suppressions"]},
        "postgres": {"dsn": e2e_db},
        "kafka": {"bootstrap.servers": stack.brokers},
        "source.postmark": sources["postmark"],
    }
    path = work / "mailhook.ini"
    helpers.write_ini(path, sections)
    env = dict(os.environ, MAILHOOK_KAFKA_BROKERS=stack.brokers, MAILHOOK_PG_DSN=e2e_db)
    mh = Mailhook(path, sections, env, work, topics, sources, stack.brokers, e2e_db)
    mh.cli("topics")
    mh.cli("migrate")
    try:
        mh.start_ingest()
        mh.start_worker(1)
        yield mh
    finally:
        crashed = mh.crashed()
        mh.stop_all()
        helpers.delete_topics(topics.values(), stack.brokers)
        assert not crashed, "postmark pipeline process exited: " + ", ".join(
            f"{p.name}\n{p.tail(40)}" for p in crashed)


def iso7(dt: datetime) -> str:
    """Postmark's own spelling: seven fractional digits, Z."""
    return dt.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f") + "0Z"


def change(mh: Mailhook, recipient: str, at: datetime, suppress: bool,
           reason: str | None = "ManualSuppression", password: str | None = None) -> int:
    body = {
        "RecordType": "SubscriptionChange",
        "MessageID": "00000000-0000-0000-0000-000000000000",
        "ServerID": 23,
        "MessageStream": "broadcast",
        "ChangedAt": iso7(at),
        "Recipient": recipient,
        "Origin": "Recipient" if suppress else "Customer",
        "SuppressSending": suppress,
        "SuppressionReason": reason if suppress else None,
        "Metadata": {},
    }
    r = requests.post(mh.url("postmark"), json=body, timeout=10,
                      auth=(USER, password or mh.sources["postmark"]["secret"]))
    return r.status_code


def current(pg, tenant: str, address: str):
    return pg.execute("select reason, source from mh_suppressions_current "
                      "where tenant = %s and address = %s", (tenant, address)).fetchone()


def last_on_topic(mh: Mailhook, key: str):
    """(found, value) of the last record for key on the suppressions topic."""
    recs = [r for r in mh.consume("suppressions", timeout=10) if r.key == key]
    return (True, recs[-1].value) if recs else (False, None)


def wait_claims(pg, tenant: str, address: str, n: int) -> None:
    helpers.wait_for(lambda: pg.execute(
        "select count(*) from mh_event_claims where tenant = %s and recipient = %s",
        (tenant, address)).fetchone()[0] >= n, SEEN_WITHIN, what=f"{n} claims for {address}")


def test_unsubscribe_then_resubscribe(pm, pg):
    tenant = pm.sources["postmark"]["tenant"]
    addr = f"reader.{secrets.token_hex(4)}@example.com"
    key = f"{tenant}/{addr}"
    now = datetime.now(timezone.utc)
    events_before = pm.end_offsets("events")

    # Wrong credentials: 401, nothing published, nothing changes.
    assert change(pm, addr, now - timedelta(minutes=10), True, password="wrong") == 401

    assert change(pm, addr.upper(), now - timedelta(minutes=5), True) == 200
    row = helpers.wait_for(lambda: current(pg, tenant, addr), SEEN_WITHIN,
                           what=f"{addr} in mh_suppressions_current")
    assert row == ("unsubscribe", "email.unsubscribed")

    def topic_suppressed():
        found, value = last_on_topic(pm, key)
        return found and value is not None and value
    value = helpers.wait_for(topic_suppressed, 30, interval=0.5, what=f"topic record for {key}")
    assert value["reason"] == "unsubscribe" and value["address"] == addr
    assert value["tenant"] == tenant and value["source"] == "email.unsubscribed"

    assert change(pm, addr, now - timedelta(minutes=1), False) == 200
    helpers.wait_for(lambda: current(pg, tenant, addr) is None, SEEN_WITHIN,
                     what=f"{addr} to leave mh_suppressions_current")
    state = pg.execute("select state, reason from mh_suppressions where tenant = %s and "
                       "address = %s", (tenant, addr)).fetchone()
    assert state == ("lifted", "resubscribe")

    def topic_tombstone():
        found, value = last_on_topic(pm, key)
        return found and value is None
    helpers.wait_for(topic_tombstone, 30, interval=0.5, what=f"tombstone for {key}")

    # The canonical events themselves, once each.
    got = pm.consume("events", from_offsets=events_before, expect_n=2, settle=2, timeout=30)
    mine = [r.value for r in got if r.value.get("recipient") == addr]
    assert [e["type"] for e in mine] == ["email.unsubscribed", "email.resubscribed"]
    assert all(e["provider"] == "postmark" and e["provider_event"] == "SubscriptionChange"
               and "message_id" not in e for e in mine)


def test_late_older_resubscribe_does_not_lift(pm, pg):
    tenant = pm.sources["postmark"]["tenant"]
    addr = f"late.{secrets.token_hex(4)}@example.com"
    now = datetime.now(timezone.utc)
    assert change(pm, addr, now - timedelta(minutes=2), True) == 200
    helpers.wait_for(lambda: current(pg, tenant, addr), SEEN_WITHIN, what=f"{addr} suppressed")
    # Postmark's retry of an older reactivation arrives after the newer unsubscribe.
    assert change(pm, addr, now - timedelta(minutes=4), False) == 200
    wait_claims(pg, tenant, addr, 2)
    assert current(pg, tenant, addr) == ("unsubscribe", "email.unsubscribed")


def test_hard_bounce_subscription_change_changes_nothing(pm, pg):
    tenant = pm.sources["postmark"]["tenant"]
    addr = f"bounced.{secrets.token_hex(4)}@example.com"
    assert change(pm, addr, datetime.now(timezone.utc), True, reason="HardBounce") == 200
    wait_claims(pg, tenant, addr, 1)
    etype = pg.execute("select event_type from mh_event_claims where tenant = %s and "
                       "recipient = %s", (tenant, addr)).fetchone()[0]
    assert etype == "email.suppressed"
    assert current(pg, tenant, addr) is None

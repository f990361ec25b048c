"""Per-tenant suppression rules end to end: a `[suppression.TENANT]` section changes what
the workers do for that tenant's events only, on real Kafka and PostgreSQL.

The session's workers run the default rules, so this module runs an ingest and a worker
of its own: the session's database and brokers with topics, consumer group and listener
of their own, two IvyMail sources (one per tenant) and an override for one tenant:

    [suppression.<tuned>]
    complaint = false
    soft_bounce_threshold = 2

The other tenant has no section and keeps the defaults (complaints suppress; five soft
bounces of distinct messages within 72 hours do)."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest

import helpers
from test_suppression import NOW, iso, uid

SETTLE = 2.0  # seconds to wait for an effect that must not come


@pytest.fixture(scope="module")
def tenants(mailhook):
    """helpers.Mailhook for the two-tenant config; .tuned and .plain name the tenants."""
    tag = uid()
    tuned, plain = f"tuned-{tag}", f"plain-{tag}"
    topics = {role: f"{t}-tenants-{tag}" for role, t in mailhook.topics.items()}
    sources = {
        "ivy-tuned": {"provider": "ivymail", "tenant": tuned, "secret": helpers.new_secret()},
        "ivy-plain": {"provider": "ivymail", "tenant": plain, "secret": helpers.new_secret()},
    }
    sections = helpers.pipeline_sections(topics, f"mailhook-worker-tenants-{tag}", mailhook.dsn,
                                         mailhook.brokers)
    for name, keys in sources.items():
        sections[f"source.{name}"] = keys
    sections[f"suppression.{tuned}"] = {"complaint": "false", "soft_bounce_threshold": "2"}
    path = mailhook.workdir / "tenants.ini"
    helpers.write_ini(path, sections)

    mh = helpers.Mailhook(path, sections, mailhook.env, mailhook.workdir, topics, sources,
                          mailhook.brokers, mailhook.dsn)
    mh.tuned, mh.plain = tuned, plain
    try:
        mh.cli("topics")
        mh.start_ingest("ingest-tenants")
        # An index of its own: the session's workers are worker-1.., static group members.
        mh.start_worker(11)
        yield mh
    finally:
        crashed = mh.stop_all()
        helpers.delete_topics(topics.values(), mailhook.brokers)
    assert not crashed, "exited unexpectedly: " + ", ".join(
        f"{p.name} (status {p.returncode()})\n{p.tail()}" for p in crashed)


def post(mh, source: str, event: str, recipient: str, at, message_id: str | None = None,
         **extra) -> None:
    body = {"event": event, "to": recipient, "timestamp": iso(at),
            "message_id": message_id or f"iv-{uid()}", **extra}
    r = mh.post(source, body)
    assert r.status_code == 200, r.text


def soft_bounce(mh, source: str, recipient: str, at, message_id: str) -> None:
    post(mh, source, "bounced", recipient, at, message_id=message_id, bounce_type="Transient",
         bounce_subtype="MailboxFull", diagnostic_code="smtp; 452 4.2.2 mailbox full")


def wait_claims(pg, recipient: str, n: int) -> None:
    """The worker has claimed n events for recipient, and so applied their effects (the
    suppression state changes in the claim's transaction)."""
    helpers.wait_for(lambda: pg.execute(
        "select count(*) from mh_event_claims where recipient = %s", (recipient,)
    ).fetchone()[0] == n, 30, what=f"{n} claims for {recipient}")


def state(pg, tenant: str, address: str):
    """The address's current suppression (dict) or None when it may be mailed."""
    return pg.execute("select mh_suppression_value(%s, %s)::jsonb",
                      (tenant, address)).fetchone()[0]


def topic_values(mh, key: str) -> list:
    return [r.value for r in mh.consume("suppressions", timeout=10) if r.key == key]


def test_complaint_rule_off_for_one_tenant_only(tenants, pg):
    """The same complaint suppresses the default tenant's address and not the address of
    the tenant whose section says complaint = false."""
    mh = tenants
    tuned_addr, plain_addr = f"c.{uid()}@example.com", f"c.{uid()}@example.com"
    at = NOW - timedelta(minutes=10)
    post(mh, "ivy-tuned", "complained", tuned_addr, at, feedback_type="abuse")
    post(mh, "ivy-plain", "complained", plain_addr, at, feedback_type="abuse")

    wait_claims(pg, plain_addr, 1)
    assert state(pg, mh.plain, plain_addr)["reason"] == "complaint"
    helpers.wait_for(lambda: topic_values(mh, f"{mh.plain}/{plain_addr}"), 30,
                     what="the default tenant's suppression on the topic")

    wait_claims(pg, tuned_addr, 1)
    assert pg.execute("select event_type from mh_event_claims where recipient = %s",
                      (tuned_addr,)).fetchone() == ("email.complained",)
    assert state(pg, mh.tuned, tuned_addr) is None
    assert pg.execute("select count(*) from mh_suppressions where tenant = %s and address = %s",
                      (mh.tuned, tuned_addr)).fetchone()[0] == 0
    time.sleep(SETTLE)
    assert topic_values(mh, f"{mh.tuned}/{tuned_addr}") == []


def test_lower_soft_bounce_threshold_for_one_tenant_only(tenants, pg):
    """Two soft-bounced messages suppress the tuned tenant's address for the configured
    period (the default 168 hours, from the second bounce); the default tenant's address
    with the same two bounces stays mailable."""
    mh = tenants
    tuned_addr, plain_addr = f"s.{uid()}@example.com", f"s.{uid()}@example.com"
    times = [NOW - timedelta(hours=3), NOW - timedelta(hours=2)]
    for i, at in enumerate(times):
        soft_bounce(mh, "ivy-tuned", tuned_addr, at, f"t{i}-{tuned_addr}")
        soft_bounce(mh, "ivy-plain", plain_addr, at, f"p{i}-{plain_addr}")

    wait_claims(pg, tuned_addr, 2)
    value = state(pg, mh.tuned, tuned_addr)
    assert value is not None, "two soft bounces did not suppress the tuned tenant's address"
    assert value["reason"] == "soft_bounce" and value["source"] == "soft_bounce_rule"
    assert value["since"] == iso(times[1])
    assert value["expires_at"] == iso(times[1] + timedelta(hours=168))
    recs = helpers.wait_for(lambda: topic_values(mh, f"{mh.tuned}/{tuned_addr}"), 30,
                            what="the tuned tenant's suppression on the topic")
    assert recs[-1]["expires_at"] == value["expires_at"]

    wait_claims(pg, plain_addr, 2)
    assert state(pg, mh.plain, plain_addr) is None
    time.sleep(SETTLE)
    assert topic_values(mh, f"{mh.plain}/{plain_addr}") == []

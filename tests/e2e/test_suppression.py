"""Suppression end to end, on real Kafka and PostgreSQL: provider events through ingest and
the workers change the suppression state, which mailhook-api serves and the compacted
suppressions topic mirrors; the soft-bounce rule and its expiry; convergence of every
order of a mixed sequence; duplicates and redeliveries applied once; the CLI."""

from __future__ import annotations

import csv
import io
import itertools
import json
import os
import secrets
import time
from datetime import datetime, timedelta, timezone
from urllib.parse import quote

import pytest
import requests

import helpers

SEEN_WITHIN = 15.0  # seconds from the webhook's 200 to the state being visible


# ---------------------------------------------------------------------------------------
# fixtures and helpers

class Api:
    def __init__(self, base: str, token: str, proc):
        self.base, self.token, self.proc = base, token, proc

    def h(self, token: str | None = None) -> dict:
        return {"Authorization": f"Bearer {token or self.token}"}

    def get(self, path: str, **kw) -> requests.Response:
        return requests.get(self.base + path, headers=self.h(), timeout=10, **kw)

    def state(self, tenant: str, address: str) -> requests.Response:
        return self.get(f"/v1/suppressions/{quote(address, safe='')}",
                        params={"tenant": tenant})

    def add(self, tenant: str, address: str, reason: str | None = None) -> requests.Response:
        body = {"tenant": tenant, "address": address}
        if reason:
            body["reason"] = reason
        return requests.post(self.base + "/v1/suppressions", json=body, headers=self.h(),
                             timeout=30)

    def remove(self, tenant: str, address: str) -> requests.Response:
        return requests.delete(f"{self.base}/v1/suppressions/{quote(address, safe='')}",
                               params={"tenant": tenant}, headers=self.h(), timeout=30)


def start_api(mailhook, name: str, extra: dict | None = None) -> Api:
    """mailhook-api on a free port with a fresh token, against the session's database and
    topics (its own config file: the session's plus an [api] section)."""
    if not os.access(helpers.build_dir() / "mailhook-api", os.X_OK):
        pytest.fail(f"mailhook-api not built in {helpers.build_dir()}", pytrace=False)
    token = secrets.token_hex(16)
    sections = json.loads(json.dumps(mailhook.sections))
    port = helpers.free_port()
    sections["api"] = {"listen": f"127.0.0.1:{port}", "token": token,
                       "maintenance_interval_s": "0", **(extra or {})}
    base, proc = mailhook.start_api(name, sections)
    return Api(base, token, proc)


@pytest.fixture(scope="module")
def api(mailhook):
    a = start_api(mailhook, "api-suppression")
    yield a
    a.proc.stop()


def uid() -> str:
    return os.urandom(5).hex()


def iso(dt: datetime) -> str:
    return dt.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.") + \
        f"{dt.microsecond // 1000:03d}Z"


NOW = datetime.now(timezone.utc).replace(microsecond=0)


def maildog(mailhook, event: str, recipient: str, at: datetime, message_id: str | None = None,
            **extra) -> None:
    body = {"event": event, "timestamp": iso(at), "recipient": recipient,
            "message_id": message_id or f"m-{uid()}", **extra}
    r = mailhook.post("maildog", body)
    assert r.status_code == 200, r.text


def ivymail(mailhook, event: str, recipient: str, at: datetime, message_id: str | None = None,
            **extra) -> dict:
    body = {"event": event, "to": recipient, "timestamp": iso(at),
            "message_id": message_id or f"iv-{uid()}", **extra}
    r = mailhook.post("ivymail", body)
    assert r.status_code == 200, r.text
    return body


def wait_state(api: Api, tenant: str, address: str, status: int, reason: str | None = None,
               timeout: float = SEEN_WITHIN) -> dict:
    def check():
        r = api.state(tenant, address)
        if r.status_code != status:
            return None
        body = r.json()
        if reason is not None and body.get("reason") != reason:
            return None
        return body
    return helpers.wait_for(check, timeout, interval=0.2,
                            what=f"{address} to answer {status} {reason or ''}")


def topic_state(mailhook, key: str, timeout: float = 20.0):
    """The last record for key on the suppressions topic (value dict, or None for a
    tombstone); raises when there is none."""
    recs = [r for r in mailhook.consume("suppressions", timeout=timeout) if r.key == key]
    assert recs, f"no record for {key} on the suppressions topic"
    return recs[-1].value


def wait_topic(mailhook, key: str, predicate, timeout: float = 30.0):
    def check():
        recs = [r for r in mailhook.consume("suppressions", timeout=10) if r.key == key]
        return recs and predicate(recs[-1].value) and recs
    return helpers.wait_for(check, timeout, interval=0.5, what=f"topic record for {key}")


def event_id_of(pg, recipient: str, type_: str) -> str:
    row = pg.execute("select event_id from mh_event_claims where recipient = %s and "
                     "event_type = %s", (recipient, type_)).fetchone()
    assert row, f"no {type_} claim for {recipient}"
    return row[0]


# ---------------------------------------------------------------------------------------
# rules through the pipeline

def test_hard_bounce_suppresses_within_seconds(mailhook, api, pg):
    tenant = mailhook.sources["ivymail"]["tenant"]
    addr = f"Hard.{uid()}@Example.com"
    key = f"{tenant}/{addr.lower()}"
    assert api.state(tenant, addr).status_code == 404

    t0 = time.monotonic()
    ivymail(mailhook, "bounced", addr, NOW - timedelta(minutes=5), bounce_type="Permanent",
            diagnostic_code="smtp; 550 5.1.1 user unknown")
    state = wait_state(api, tenant, addr, 200, "bounce")
    took = time.monotonic() - t0
    assert took < SEEN_WITHIN
    assert state["suppressed"] is True
    assert state["address"] == addr.lower() and state["tenant"] == tenant
    assert state["since"] == iso(NOW - timedelta(minutes=5))
    assert state["expires_at"] is None
    assert state["source"] == "email.bounced"
    assert state["source_event_id"] == event_id_of(pg, addr.lower(), "email.bounced")

    recs = wait_topic(mailhook, key, lambda v: v is not None)
    value = recs[-1].value
    assert recs[-1].headers.get("content-type") == "application/json"
    state.pop("suppressed")
    assert value == state


def test_complaint_and_unsubscribe_suppress_with_their_reason(mailhook, api):
    tenant = mailhook.sources["maildog"]["tenant"]
    complainer, unsub = f"c.{uid()}@example.com", f"u.{uid()}@example.com"
    maildog(mailhook, "spam_complaint", complainer, NOW - timedelta(minutes=3))
    maildog(mailhook, "unsubscribed", unsub, NOW - timedelta(minutes=3))
    assert wait_state(api, tenant, complainer, 200, "complaint")["source"] == "email.complained"
    assert wait_state(api, tenant, unsub, 200, "unsubscribe")["source"] == "email.unsubscribed"


def test_opens_clicks_deliveries_and_provider_suppressed_change_nothing(mailhook, api, pg):
    tenant = mailhook.sources["ivymail"]["tenant"]
    addr = f"quiet.{uid()}@example.com"
    before = mailhook.end_offsets("suppressions")
    maildog(mailhook, "delivered", addr, NOW - timedelta(minutes=9))
    maildog(mailhook, "opened", addr, NOW - timedelta(minutes=8))
    maildog(mailhook, "clicked", addr, NOW - timedelta(minutes=7), url="https://example.com/x")
    # The provider refused to send to an address on *its* list: recorded, not copied.
    ivymail(mailhook, "suppressed", addr, NOW - timedelta(minutes=6))
    helpers.wait_for(lambda: pg.execute("select count(*) from mh_event_claims where recipient = %s",
                                        (addr,)).fetchone()[0] == 4, 30, what="4 claims")
    time.sleep(1)
    assert api.state(tenant, addr).status_code == 404
    types = {e["type"] for e in api.get("/v1/events", params={"recipient": addr}).json()["items"]}
    assert types == {"email.delivered", "email.opened", "email.clicked", "email.suppressed"}
    assert pg.execute("select count(*) from mh_suppressions where address = %s",
                      (addr,)).fetchone()[0] == 0
    keys = [r.key for r in mailhook.consume("suppressions", from_offsets=before, timeout=5)]
    assert f"{tenant}/{addr}" not in keys


def test_duplicates_and_redeliveries_apply_once(mailhook, api, pg):
    """A provider retry of a complaint after the address was manually removed must not
    suppress it again: the event is claimed already, so its effect is not applied twice."""
    tenant = mailhook.sources["maildog"]["tenant"]
    addr = f"dup.{uid()}@example.com"
    body = {"event": "spam_complaint", "timestamp": iso(NOW - timedelta(hours=1)),
            "recipient": addr, "message_id": f"m-{uid()}"}
    for _ in range(3):
        assert mailhook.post("maildog", body).status_code == 200
    wait_state(api, tenant, addr, 200, "complaint")
    r = api.remove(tenant, addr)
    assert r.status_code == 200, r.text
    assert r.json() == {"tenant": tenant, "address": addr, "suppressed": False}
    assert api.state(tenant, addr).status_code == 404

    before = mailhook.end_offsets("events")
    assert mailhook.post("maildog", body).status_code == 200
    # The redelivery is processed (a duplicate, nothing emitted) ...
    helpers.wait_for(lambda: pg.execute(
        "select count(*) from mh_event_claims where recipient = %s", (addr,)).fetchone()[0] == 1,
        10, what="one claim")
    time.sleep(3)
    assert mailhook.consume("events", from_offsets=before, timeout=3) == []
    # ... and the manual removal stands.
    assert api.state(tenant, addr).status_code == 404
    row = pg.execute("select state, source from mh_suppressions where tenant = %s and "
                     "address = %s", (tenant, addr)).fetchone()
    assert row == ("lifted", "api")


def test_every_order_of_events_ends_in_one_state(mailhook, api):
    """Bounce (t1), unsubscribe (t2) and complaint (t3) for one address, posted in each of
    the 6 orders to 6 addresses: every address ends suppressed for the complaint."""
    tenant = mailhook.sources["maildog"]["tenant"]
    t1, t2, t3 = (NOW - timedelta(hours=h) for h in (3, 2, 1))
    seq = [("hard_bounce", t1), ("unsubscribed", t2), ("spam_complaint", t3)]
    addrs = []
    for order in itertools.permutations(seq):
        addr = f"perm.{uid()}@example.com"
        addrs.append(addr)
        for event, at in order:
            extra = {"reason": "550 5.1.1 no such user", "smtp_code": 550} \
                if event == "hard_bounce" else {}
            maildog(mailhook, event, addr, at, **extra)
    for addr in addrs:
        state = wait_state(api, tenant, addr, 200, "complaint", timeout=30)
        assert state["since"] == iso(t3)
    # The topic agrees with PostgreSQL for every one of them.
    recs = mailhook.consume("suppressions", timeout=10)
    for addr in addrs:
        last = [r for r in recs if r.key == f"{tenant}/{addr}"][-1].value
        assert last["reason"] == "complaint" and last["since"] == iso(t3)


# ---------------------------------------------------------------------------------------
# the register itself: every permutation converges

PERM_OPS = [
    # op, reason, at (minutes before NOW), event id
    ("suppress", "bounce", 50, "ev-a"),
    ("lift", "resubscribe", 40, "ev-b"),
    ("suppress", "complaint", 30, "ev-c"),
    ("lift", "manual", 20, "ev-d"),
    ("suppress", "unsubscribe", 20, "ev-e"),  # same time as ev-d: the greater id wins
    ("temp", "soft_bounce", 25, "ev-f"),
]


def _apply(pg, tenant: str, addr: str, op) -> None:
    kind, reason, minutes, eid = op
    at = NOW - timedelta(minutes=minutes)
    if kind == "temp":
        pg.execute("select mh_suppression_write(%s, %s, 'temp', %s, %s, %s, 'test', %s, false)",
                   (tenant, addr, reason, at, eid, at + timedelta(days=7)))
    else:
        eff = [{"tenant": tenant, "address": addr, "op": kind, "reason": reason,
                "at": at.isoformat(), "event_id": eid, "source": "test", "fresh": True}]
        pg.execute("select * from mh_suppression_apply(%s::jsonb)", (json.dumps(eff),))
    pg.execute("select pg_advisory_unlock_all()")


def test_register_converges_for_every_permutation(mailhook, pg):
    tenant = f"perm-{uid()}"
    finals = set()
    for i, order in enumerate(itertools.permutations(PERM_OPS)):
        addr = f"p{i}@example.com"
        for op in order:
            _apply(pg, tenant, addr, op)
        row = pg.execute(
            "select s.state, s.reason, s.at, s.event_id, s.temp_at, s.temp_event_id,"
            " mh_suppression_value(s.tenant, s.address)::jsonb"
            " from mh_suppressions s where tenant = %s and address = %s",
            (tenant, addr)).fetchone()
        value = row[6]
        assert value.pop("address") == addr
        finals.add((row[:6], json.dumps(value, sort_keys=True)))
    assert len(finals) == 1, finals
    (state, reason, at, event_id, temp_at, temp_id), value = next(iter(finals))
    # ev-e (unsubscribe) ties with ev-d (manual lift) on time and wins on id; the
    # soft-bounce suppression (ev-f) is older than it and cannot weaken it.
    assert (state, reason, event_id) == ("suppressed", "unsubscribe", "ev-e")
    assert at == NOW - timedelta(minutes=20)
    assert (temp_at, temp_id) == (NOW - timedelta(minutes=25), "ev-f")
    v = json.loads(value)
    assert v["reason"] == "unsubscribe" and v["expires_at"] is None


def test_temporary_suppression_never_hides_a_permanent_one(mailhook, pg):
    """Complaint at t1, then a soft-bounce suppression at t2 > t1 that ends: the address
    is suppressed for the complaint throughout, in either order."""
    tenant = f"tmp-{uid()}"
    complaint = ("suppress", "complaint", 60, "ev-1")
    temp = ("temp", "soft_bounce", 10, "ev-2")
    for i, order in enumerate([(complaint, temp), (temp, complaint)]):
        addr = f"t{i}@example.com"
        for op in order:
            _apply(pg, tenant, addr, op)
        v = pg.execute("select mh_suppression_value(%s, %s)::jsonb", (tenant, addr)).fetchone()[0]
        assert v["reason"] == "complaint", v
        pg.execute("update mh_suppressions set temp_until = now() - interval '1 s' "
                   "where tenant = %s and address = %s", (tenant, addr))
        v = pg.execute("select mh_suppression_value(%s, %s)::jsonb", (tenant, addr)).fetchone()[0]
        assert v["reason"] == "complaint", v


# ---------------------------------------------------------------------------------------
# the soft-bounce rule

def soft_bounce(mailhook, addr: str, at: datetime, message_id: str) -> None:
    ivymail(mailhook, "bounced", addr, at, message_id=message_id, bounce_type="Transient",
            bounce_subtype="MailboxFull", diagnostic_code="smtp; 452 4.2.2 mailbox full")


def test_five_soft_bounced_messages_suppress_for_seven_days(mailhook, api, pg):
    tenant = mailhook.sources["ivymail"]["tenant"]
    addr = f"soft.{uid()}@example.com"
    times = [NOW - timedelta(hours=60) + timedelta(hours=12 * i) for i in range(5)]
    # Four messages bounce softly; the fourth message is deferred three more times
    # (maildog soft_bounce: a deferral) — still four distinct messages.
    for i, at in enumerate(times[:4]):
        soft_bounce(mailhook, addr, at, f"m{i}-{addr}")
    for k in range(3):
        maildog(mailhook, "soft_bounce", addr, times[3] + timedelta(minutes=k + 1),
                message_id=f"m3-{addr}", reason="452 4.2.2 mailbox full", smtp_code=452)
    helpers.wait_for(lambda: pg.execute("select count(*) from mh_event_claims where recipient = %s",
                                        (addr,)).fetchone()[0] == 7, 30, what="7 claims")
    time.sleep(1)
    assert api.state(tenant, addr).status_code == 404

    soft_bounce(mailhook, addr, times[4], f"m4-{addr}")
    state = wait_state(api, tenant, addr, 200, "soft_bounce")
    assert state["since"] == iso(times[4])
    assert state["expires_at"] == iso(times[4] + timedelta(days=7))
    assert state["source"] == "soft_bounce_rule"
    value = wait_topic(mailhook, f"{tenant}/{addr}", lambda v: v is not None)[-1].value
    assert value["expires_at"] == state["expires_at"]


def test_a_delivery_resets_the_soft_bounce_count(mailhook, api, pg):
    tenant = mailhook.sources["ivymail"]["tenant"]
    addr = f"reset.{uid()}@example.com"
    base = NOW - timedelta(hours=10)
    for i in range(4):
        soft_bounce(mailhook, addr, base + timedelta(hours=i), f"r{i}-{addr}")
    ivymail(mailhook, "delivered", addr, base + timedelta(hours=4, minutes=30))
    soft_bounce(mailhook, addr, base + timedelta(hours=5), f"r5-{addr}")
    helpers.wait_for(lambda: pg.execute("select count(*) from mh_event_claims where recipient = %s",
                                        (addr,)).fetchone()[0] == 6, 30, what="6 claims")
    time.sleep(1)
    assert api.state(tenant, addr).status_code == 404
    # Four more after the delivery make five since it: suppressed.
    for i in range(6, 10):
        soft_bounce(mailhook, addr, base + timedelta(hours=i), f"r{i}-{addr}")
    wait_state(api, tenant, addr, 200, "soft_bounce")


def test_a_getmailer_acceptance_resets_the_soft_bounce_count(mailhook, api, pg, tmp_path):
    """GetMailer's email.sent is the recipient server's acceptance: it resets the count as
    a delivery does, and arriving late it ends a soft-bounce suppression it falls in.
    A pipeline of its own with a GetMailer source beside IvyMail (same tenant, the
    session's database, so the session's API shows the state)."""
    tenant = mailhook.sources["ivymail"]["tenant"]
    name = f"gm{uid()}"
    topics = {role: f"{mailhook.topics[role]}.{name}" for role in ("raw", "events", "dlq",
                                                                  "suppressions")}
    helpers.create_topics({t: 1 for t in topics.values()}, mailhook.brokers)
    sections = json.loads(json.dumps(mailhook.sections))
    sections["ingest"].update({"listen": f"127.0.0.1:{helpers.free_port()}",
                               "raw_topic": topics["raw"]})
    sections["worker"].update({"group_id": f"{sections['worker']['group_id']}.{name}",
                               **{f"{role}_topic": t for role, t in topics.items()}})
    gm_secret = helpers.new_secret()
    sections["source.getmailer"] = {"provider": "getmailer", "tenant": tenant,
                                    "secret": gm_secret}
    path = tmp_path / "getmailer.ini"
    helpers.write_ini(path, sections)
    url = "http://" + sections["ingest"]["listen"]
    mailhook.start_ingest(f"ingest-{name}", config=path, url=url)
    mailhook.start_worker(92, config=path)

    def post(source: str, body: dict) -> None:
        raw = json.dumps(body).encode()
        if source == "getmailer":
            sig = {"x-getmailer-signature": "sha256=" + helpers.sign(raw, gm_secret, "hex")}
        else:
            sig = helpers.signature_headers(mailhook.sources[source], raw)
        r = helpers.post(url, source, raw, sig)
        assert r.status_code == 200, r.text

    def bounce(addr: str, at: datetime, message_id: str) -> None:
        post("ivymail", {"event": "bounced", "to": addr, "timestamp": iso(at),
                         "message_id": message_id, "bounce_type": "Transient",
                         "bounce_subtype": "MailboxFull",
                         "diagnostic_code": "smtp; 452 4.2.2 mailbox full"})

    def accepted(addr: str, at: datetime) -> None:
        post("getmailer", {"id": f"evt_{uid()}", "type": "email.sent", "timestamp": iso(at),
                           "data": {"emailId": f"gm-{uid()}", "to": addr}})

    try:
        addr = f"accepted.{uid()}@example.com"
        base = NOW - timedelta(hours=10)
        for i in range(4):
            bounce(addr, base + timedelta(hours=i), f"a{i}-{addr}")
        accepted(addr, base + timedelta(hours=4, minutes=30))
        bounce(addr, base + timedelta(hours=5), f"a5-{addr}")
        helpers.wait_for(lambda: pg.execute(
            "select count(*) from mh_event_claims where recipient = %s",
            (addr,)).fetchone()[0] == 6, 60, what="6 claims")
        time.sleep(1)
        assert api.state(tenant, addr).status_code == 404

        late = f"accepted-late.{uid()}@example.com"
        for i in range(5):
            bounce(late, base + timedelta(hours=i), f"al{i}-{late}")
        wait_state(api, tenant, late, 200, "soft_bounce")
        accepted(late, base + timedelta(hours=1, minutes=30))
        wait_state(api, tenant, late, 404)
    finally:
        mailhook.procs["worker-92"].stop()
        mailhook.procs[f"ingest-{name}"].stop()
        helpers.delete_topics(topics.values(), mailhook.brokers)


def test_a_late_delivery_undoes_the_soft_bounce_rule(mailhook, api, pg):
    """Five soft bounces suppress; a delivery that happened between the second and the
    third but arrives last means only three counted: the suppression ends."""
    tenant = mailhook.sources["ivymail"]["tenant"]
    addr = f"late.{uid()}@example.com"
    base = NOW - timedelta(hours=20)
    for i in range(5):
        soft_bounce(mailhook, addr, base + timedelta(hours=i), f"l{i}-{addr}")
    wait_state(api, tenant, addr, 200, "soft_bounce")
    wait_topic(mailhook, f"{tenant}/{addr}", lambda v: v is not None)
    ivymail(mailhook, "delivered", addr, base + timedelta(hours=1, minutes=30))
    wait_state(api, tenant, addr, 404)
    wait_topic(mailhook, f"{tenant}/{addr}", lambda v: v is None)


def test_soft_bounce_suppression_ends_by_itself(mailhook, api, pg):
    """Soft bounces dated so that the 7-day suppression ends a few seconds from now: the
    API stops answering 200 at once, and maintenance puts the tombstone on the topic."""
    tenant = mailhook.sources["ivymail"]["tenant"]
    addr = f"expire.{uid()}@example.com"
    key = f"{tenant}/{addr}"
    newest = datetime.now(timezone.utc) - timedelta(days=7) + timedelta(seconds=40)
    for i in range(5):
        soft_bounce(mailhook, addr, newest - timedelta(minutes=5 * i), f"x{i}-{addr}")
    state = wait_state(api, tenant, addr, 200, "soft_bounce")
    expires = datetime.fromisoformat(state["expires_at"].replace("Z", "+00:00"))
    assert abs((expires - (newest + timedelta(days=7))).total_seconds()) < 0.01
    wait_topic(mailhook, key, lambda v: v is not None)

    helpers.wait_for(lambda: api.state(tenant, addr).status_code == 404, 90, interval=0.5,
                     what="the suppression to end")
    assert datetime.now(timezone.utc) >= expires
    out = mailhook.cli("maintain").stdout.decode()
    assert "suppression states published" in out
    wait_topic(mailhook, key, lambda v: v is None)
    row = pg.execute("select temp_until, pending from mh_suppressions where tenant = %s and "
                     "address = %s", (tenant, addr)).fetchone()
    assert row == (None, False)


# ---------------------------------------------------------------------------------------
# manual changes: API and CLI, published to the topic

def test_manual_add_and_remove_through_the_api_reach_the_topic(mailhook, api):
    tenant = f"t-{uid()}"
    addr = f"Manual.{uid()}@Example.com"
    key = f"{tenant}/{addr.lower()}"
    r = api.add(tenant, addr)
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["reason"] == "manual" and body["source"] == "api" and body["suppressed"]
    assert body["source_event_id"].startswith("api-")
    # The record is on the topic by the time the API answered.
    value = topic_state(mailhook, key)
    body.pop("suppressed")
    assert value == body
    assert api.state(tenant, addr).json()["reason"] == "manual"

    r = api.remove(tenant, addr)
    assert r.status_code == 200
    assert topic_state(mailhook, key) is None
    assert api.state(tenant, addr).status_code == 404

    r = api.add(tenant, addr, reason="complaint")
    assert r.status_code == 201 and r.json()["reason"] == "complaint"
    assert topic_state(mailhook, key)["reason"] == "complaint"


def test_manual_removal_wins_over_older_events_and_loses_to_newer(mailhook, api):
    tenant = mailhook.sources["maildog"]["tenant"]
    addr = f"lift.{uid()}@example.com"
    maildog(mailhook, "spam_complaint", addr, NOW - timedelta(hours=2))
    wait_state(api, tenant, addr, 200, "complaint")
    assert api.remove(tenant, addr).status_code == 200
    # An older unsubscribe arriving late does not bring it back ...
    maildog(mailhook, "unsubscribed", addr, NOW - timedelta(hours=1))
    time.sleep(3)
    assert api.state(tenant, addr).status_code == 404
    # ... a newer one does.
    maildog(mailhook, "unsubscribed", addr, datetime.now(timezone.utc) + timedelta(seconds=1))
    wait_state(api, tenant, addr, 200, "unsubscribe")


def test_cli_check_add_remove_list(mailhook, api):
    tenant = f"cli-{uid()}"
    a, b = f"a.{uid()}@example.com", f"b.{uid()}@example.com"
    out = mailhook.cli("suppressions", "check", "--tenant", tenant, a)
    assert out.returncode == 0 and b"not suppressed" in out.stdout

    out = mailhook.cli("suppressions", "add", "--tenant", tenant, "--reason", "bounce", a, b.upper())
    assert out.returncode == 0, out.stderr
    assert api.state(tenant, a).json()["reason"] == "bounce"
    assert api.state(tenant, b).json()["source"] == "cli"
    assert topic_state(mailhook, f"{tenant}/{b}")["reason"] == "bounce"

    out = mailhook.cli("suppressions", "check", "--tenant", tenant, a, check=False)
    assert out.returncode == 3 and b"bounce" in out.stdout
    out = mailhook.cli("suppressions", "check", "--tenant", tenant, "--json", a, check=False)
    assert out.returncode == 3
    assert json.loads(out.stdout)["suppressed"] is True

    listed = json.loads(mailhook.cli("suppressions", "list", "--tenant", tenant, "--json").stdout)
    assert [i["address"] for i in listed["items"]] == sorted([a, b])
    assert listed["next_cursor"] is None
    table = mailhook.cli("suppressions", "list", "--tenant", tenant).stdout.decode()
    assert table.splitlines()[0].split()[:2] == ["address", "reason"]
    assert a in table and b in table

    assert mailhook.cli("suppressions", "remove", "--tenant", tenant, a).returncode == 0
    assert api.state(tenant, a).status_code == 404
    assert topic_state(mailhook, f"{tenant}/{a}") is None

    bad = mailhook.cli("suppressions", "add", "--tenant", tenant, "not-an-address", check=False)
    assert bad.returncode == 2 and b"not an email address" in bad.stderr
    # Without --tenant, the config's one tenant (every source of the session names it).
    (only,) = {src["tenant"] for src in mailhook.sources.values()}
    c = f"c.{uid()}@example.com"
    out = mailhook.cli("suppressions", "add", c, check=False)
    assert out.returncode == 0, out.stderr
    assert api.state(only, c).json()["source"] == "cli"
    assert mailhook.cli("suppressions", "remove", c).returncode == 0
    assert api.state(only, c).status_code == 404
    bad = mailhook.cli("suppressions", "add", "--tenant", tenant, "--reason", "soft_bounce", a,
                       check=False)
    assert bad.returncode == 2


def test_cli_import_export_round_trip(mailhook, api, tmp_path):
    tenant = f"csv-{uid()}"
    rows = [(f"imp{i}.{uid()}@example.com", ["bounce", "complaint", "unsubscribe", ""][i % 4])
            for i in range(1203)]
    src = tmp_path / "in.csv"
    with open(src, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["address", "reason"])
        w.writerows(rows)
    out = mailhook.cli("suppressions", "import", "--tenant", tenant, str(src), timeout=300)
    assert b"imported 1203" in out.stdout, out.stdout
    assert api.state(tenant, rows[1][0]).json()["reason"] == "complaint"
    assert api.state(tenant, rows[3][0]).json()["reason"] == "manual"

    exported = mailhook.cli("suppressions", "export", "--tenant", tenant).stdout.decode()
    got = list(csv.DictReader(io.StringIO(exported)))
    assert len(got) == 1203
    assert {r["address"]: r["reason"] for r in got} == \
        {a: (r or "manual") for a, r in rows}
    assert all(r["tenant"] == tenant and r["source"] == "import" for r in got)

    # The export imports again as it is (into another tenant, via its tenant column).
    other = f"csv2-{uid()}"
    path = tmp_path / "out.csv"
    path.write_text(exported.replace(f"{tenant},", f"{other},"))
    out = mailhook.cli("suppressions", "import", str(path), timeout=300)
    assert b"imported 1203" in out.stdout
    listed = api.get("/v1/suppressions", params={"tenant": other, "limit": 1000}).json()
    assert len(listed["items"]) == 1000 and listed["next_cursor"]

    bad = tmp_path / "bad.csv"
    bad.write_text("address,reason\nok@example.com,bounce\nnope,bounce\n")
    out = mailhook.cli("suppressions", "import", "--tenant", tenant, str(bad), check=False)
    assert out.returncode == 1 and b":3: not an email address" in out.stderr

"""A worker's claim over several lanes ([worker] claim_lanes; worker/lanes.c): a backlog
whose batches are split over two PostgreSQL transactions gives the same result as one —
every distinct event once, provider duplicates counted and not emitted, and the
soft-bounce rule of an address whose bounces are spread over the batch applied once, on
PostgreSQL and on the suppressions topic."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import requests

import helpers
from test_pipeline import uid
from test_worker_metrics import _drain_backlog, _metric

SOFT_ADDRESSES = 5
SOFT_BOUNCES = 5   # [suppression] soft_bounce_threshold's default
DELIVERIES = 125
DUPLICATES = 10


def _iso(dt: datetime) -> str:
    return dt.strftime("%Y-%m-%dT%H:%M:%S.000Z")


def test_a_batch_split_over_two_lanes_decides_as_one(mailhook, tmp_path, pg):
    name = f"lanes{uid()}"
    topics = {role: f"{mailhook.topics[role]}.{name}"
              for role in ("raw", "events", "dlq", "suppressions")}
    helpers.create_topics({t: 1 for t in topics.values()}, mailhook.brokers)
    sections = json.loads(json.dumps(mailhook.sections))
    sections["ingest"].update({"listen": f"127.0.0.1:{helpers.free_port()}",
                               "raw_topic": topics["raw"]})
    sections["worker"].update({f"{role}_topic": t for role, t in topics.items()})
    helpers.write_ini(tmp_path / "ingest.ini", sections)
    ingest_url = "http://" + sections["ingest"]["listen"]
    mailhook.start_ingest(f"ingest-{name}", config=tmp_path / "ingest.ini", url=ingest_url)
    src = mailhook.sources["ivymail"]
    tenant = src["tenant"]
    rid = uid()
    now = datetime.now(timezone.utc)

    def post(body: dict) -> None:
        r = helpers.post(ingest_url, "ivymail", body, helpers.signature_headers(src, body))
        assert r.status_code == 200, r.text

    soft = [f"soft{k}.{rid}@example.com" for k in range(SOFT_ADDRESSES)]
    bodies = []
    for i in range(DELIVERIES):
        bodies.append({"event": "delivered", "to": f"d{i}.{rid}@example.com",
                       "message_id": f"lanes-{rid}-d{i}", "timestamp": _iso(now)})
        # Each soft-bounced address's bounces spread over the whole backlog.
        if i % 5 == 0 and i // 5 < SOFT_ADDRESSES * SOFT_BOUNCES:
            n = i // 5
            addr = soft[n % SOFT_ADDRESSES]
            bodies.append({"event": "bounced", "to": addr.upper() if n % 2 else addr,
                           "message_id": f"lanes-{rid}-s{n}",
                           "timestamp": _iso(now - timedelta(hours=SOFT_BOUNCES - n // SOFT_ADDRESSES)),
                           "bounce_type": "Transient", "bounce_subtype": "MailboxFull",
                           "diagnostic_code": "smtp; 452 4.2.2 mailbox full"})
    distinct = len(bodies)
    assert distinct == DELIVERIES + SOFT_ADDRESSES * SOFT_BOUNCES
    # Provider duplicates: the same webhooks again, later in the backlog.
    bodies += bodies[3:3 + DUPLICATES]
    try:
        # The whole backlog first: the worker then takes it in batches of many events.
        for body in bodies:
            post(body)
        metrics = _drain_backlog(mailhook, tmp_path, sections, name, {"claim_lanes": 2}, 98,
                                 len(bodies))
        assert _metric(metrics, "mailhook_worker_lane_claims_total") >= 1
        assert _metric(metrics, "mailhook_worker_lane_transactions_total") >= 2
        assert _metric(metrics, "mailhook_worker_events_emitted_total") == distinct
        assert _metric(metrics, "mailhook_worker_duplicates_total") == DUPLICATES

        events = helpers.consume(topics["events"], timeout=30, brokers_=mailhook.brokers)
        ids = [e.value["message_id"] for e in events]
        assert len(ids) == distinct and len(set(ids)) == distinct

        for addr in soft:
            row = pg.execute("select temp_until is not null and temp_until > now(),"
                             " (select count(*) from mh_event_claims where tenant = %s"
                             "   and recipient = %s and event_type = 'email.bounced')"
                             " from mh_suppressions where tenant = %s and address = %s",
                             (tenant, addr, tenant, addr)).fetchone()
            assert row == (True, SOFT_BOUNCES), (addr, row)
        last = {}
        for r in helpers.consume(topics["suppressions"], timeout=30, brokers_=mailhook.brokers):
            last[r.key] = r.value
        for addr in soft:
            value = last.get(f"{tenant}/{addr}")
            assert value is not None and value.get("reason") == "soft_bounce", (addr, value)
        # No delivery's address got a state.
        assert not [k for k in last if k.split("/", 1)[1].startswith("d")]
    finally:
        mailhook.procs[f"ingest-{name}"].stop()
        helpers.delete_topics(topics.values(), mailhook.brokers)


def test_workers_share_the_claim_lanes_by_the_partitions_they_hold(mailhook, tmp_path):
    """[worker] claim_lanes is the group's: a worker alone on the raw topic splits its
    claims into all of them, two workers holding half the partitions each into one
    (ceil(claim_lanes * held / partitions)); /metrics shows the lanes in use."""
    name = f"lanesshare{uid()}"
    topics = {role: f"{mailhook.topics[role]}.{name}"
              for role in ("raw", "events", "dlq", "suppressions")}
    helpers.create_topics({topics["raw"]: 4, topics["events"]: 1, topics["dlq"]: 1,
                           topics["suppressions"]: 1}, mailhook.brokers)
    sections = json.loads(json.dumps(mailhook.sections))
    sections["worker"].update({f"{role}_topic": t for role, t in topics.items()})
    sections["worker"].update({"group_id": f"{sections['worker']['group_id']}.{name}",
                               "claim_lanes": 2})
    ports = {}
    try:
        for instance in (89, 90):
            ports[instance] = helpers.free_port()
            own = json.loads(json.dumps(sections))
            own["worker"]["metrics_listen"] = f"127.0.0.1:{ports[instance]}"
            path = tmp_path / f"worker-{instance}.ini"
            helpers.write_ini(path, own)
            mailhook.start_worker(instance, config=path)
            want = {89: (4, 2)} if instance == 89 else {89: (2, 1), 90: (2, 1)}

            def shared(want=want):
                for i, (held, lanes) in want.items():
                    try:
                        text = requests.get(f"http://127.0.0.1:{ports[i]}/metrics", timeout=2).text
                    except requests.RequestException:
                        return False
                    got = (_metric(text, "mailhook_worker_assigned_partitions"),
                           _metric(text, "mailhook_worker_claim_lanes"))
                    if got != (held, lanes):
                        return False
                return True
            helpers.wait_for(shared, 60,
                             what=f"partitions and claim lanes {want} with {instance - 88} worker(s)")
    finally:
        for instance in ports:
            if f"worker-{instance}" in mailhook.procs:
                mailhook.procs[f"worker-{instance}"].stop()
        helpers.delete_topics(topics.values(), mailhook.brokers)

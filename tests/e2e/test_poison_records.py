"""Poison records: signed webhooks whose values PostgreSQL cannot hold as they are.

Each is either emitted with the treatment docs/design.md ("Storable events") gives it,
or dead-lettered with a reason; the normal records of the same batch come out exactly
once, and a record posted after them still comes out (no worker is stuck). A permanent
database error no check foresaw (a trigger that refuses one event id) dead-letters only
that record, at stage "store", with the database's message as reason — in the live
pipeline and in `mailhook replay`.
"""

from __future__ import annotations

import hashlib
import json
from concurrent.futures import ThreadPoolExecutor

import pytest

import helpers
from test_pipeline import assert_canonical, uid
from test_replay import (offsets_arg, produce_raw, replay, replay_topics,  # noqa: F401 (fixture)
                         target, topic_records, wait_live)


def maildog(rid: str, tag: str, **fields) -> dict:
    body = {"event": "delivered", "timestamp": "2026-06-15T10:00:00Z",
            "message_id": f"pz-{rid}-{tag}", "recipient": f"{tag}.{rid}@example.com"}
    body.update(fields)
    return body


def post_all(mailhook, bodies: list[bytes | dict]) -> None:
    """Posts the bodies at once (so the workers see them in the same batches)."""
    with ThreadPoolExecutor(max_workers=8) as pool:
        answers = list(pool.map(lambda b: mailhook.post("maildog", b), bodies))
    for r in answers:
        assert r.status_code == 200, r.text


def by_message_id(records, rid: str) -> dict[str, list]:
    """This test's events (its rid in the message id or the recipient: the topic is the
    session's), by message id."""
    out: dict[str, list] = {}
    for rec in records:
        if isinstance(rec.value, dict) and (rid in str(rec.value.get("message_id")) or
                                            rid in str(rec.value.get("recipient"))):
            out.setdefault(rec.value.get("message_id"), []).append(rec)
    return out


def dead_bodies(records) -> dict[bytes, helpers.Record]:
    return {rec.raw_value: rec for rec in records}


def test_poison_values_are_stored_or_dead_lettered_and_the_pipeline_goes_on(mailhook, pg):
    rid = uid()
    before = mailhook.end_offsets("events")
    dlq_before = mailhook.end_offsets("dlq")

    long_id = "i" * 5120
    normal = [maildog(rid, f"ok{i}") for i in range(6)]
    year_zero = maildog(rid, "y0", timestamp="0000-01-01T00:00:00Z")
    year_99999 = maildog(rid, "y99999", timestamp="99999-01-01T00:00:00Z")
    long_event_id = maildog(rid, "longid", id=long_id)
    long_recipient = maildog(rid, "longrcpt", recipient="r" * 5120 + "@example.com")
    long_message_id = maildog(rid, "longmsg", message_id="m" * 5120)
    # The JSON escape \u0000 in a field (json.dumps writes it so).
    nul = json.dumps(maildog(rid, "nul", subject="a\x00b")).encode()
    assert b"\\u0000" in nul
    emitted_poison = [year_zero, year_99999, long_event_id]
    dead_poison = [json.dumps(long_recipient).encode(), json.dumps(long_message_id).encode(), nul]

    # Normal and poison records interleaved, posted together.
    post_all(mailhook, [normal[0], year_zero, normal[1], long_event_id, normal[2],
                        dead_poison[0], normal[3], year_99999, dead_poison[1], normal[4],
                        dead_poison[2], normal[5]])
    # Posted after them: comes out only if no worker is stuck on the poison.
    after = maildog(rid, "after")
    assert mailhook.post("maildog", after).status_code == 200

    expect = len(normal) + len(emitted_poison) + 1
    got = by_message_id(mailhook.consume("events", from_offsets=before, expect_n=expect,
                                         settle=3, timeout=90), rid)
    for body in normal + emitted_poison + [after]:
        recs = got.get(body["message_id"], [])
        assert len(recs) == 1, (body["message_id"], len(recs))
        assert_canonical(recs[0].value)
    assert len(got) == expect, sorted(str(k)[:40] for k in got)

    # An impossible timestamp is absent; ce_time falls back to the received time.
    for body in (year_zero, year_99999):
        ev = got[body["message_id"]][0].value
        assert "occurred_at" not in ev
        assert got[body["message_id"]][0].headers["ce_time"] == ev["received_at"]
    # An over-long provider id is hashed into the event id, deterministically.
    ev = got[long_event_id["message_id"]][0].value
    assert ev["event_id"] == "sha256:" + hashlib.sha256(long_id.encode()).hexdigest()
    assert pg.execute("select count(*) from mh_event_claims where event_id = %s",
                      (ev["event_id"],)).fetchone()[0] == 1

    dead = dead_bodies(mailhook.consume("dlq", from_offsets=dlq_before, expect_n=len(dead_poison),
                                        settle=2, timeout=60))
    assert set(dead) == set(dead_poison), [b[:60] for b in dead]
    assert "recipient of 5132 bytes is over the 1024-byte limit" in \
        dead[dead_poison[0]].headers["mh-dlq-reason"]
    assert "message_id of 5120 bytes is over the 998-byte limit" in \
        dead[dead_poison[1]].headers["mh-dlq-reason"]
    assert "invalid JSON" in dead[dead_poison[2]].headers["mh-dlq-reason"]
    for rec in dead.values():
        assert rec.headers["mh-dlq-stage"] == "parse"
        assert rec.headers["mh-raw-topic"] == mailhook.topics["raw"]
    assert all(w.alive() for w in mailhook.workers())


def test_the_same_over_long_id_twice_is_one_event(mailhook):
    rid = uid()
    before = mailhook.end_offsets("events")
    body = maildog(rid, "dup", id="d" * 4000 + rid)
    post_all(mailhook, [body, body])
    got = mailhook.consume("events", from_offsets=before, expect_n=1, settle=3, timeout=60)
    assert [r.value["message_id"] for r in got] == [body["message_id"]]


@pytest.fixture
def refusing_trigger(pg):
    """A trigger on the claims that refuses event ids starting with 'e2e-refuse-' with
    SQLSTATE 22023: a permanent error no check before the claim can foresee."""
    pg.execute("""
        create function mh_e2e_refuse() returns trigger language plpgsql as $$
        begin
            if new.event_id like 'e2e-refuse-%' then
                raise exception using errcode = '22023',
                    message = 'e2e trigger refuses event ' || new.event_id;
            end if;
            return new;
        end $$""")
    pg.execute("create trigger mh_e2e_refuse before insert on mh_event_claims "
               "for each row execute function mh_e2e_refuse()")
    yield
    pg.execute("drop trigger if exists mh_e2e_refuse on mh_event_claims")
    pg.execute("drop function if exists mh_e2e_refuse()")


def test_permanent_database_error_dead_letters_only_its_record(mailhook, pg, refusing_trigger):
    rid = uid()
    before = mailhook.end_offsets("events")
    dlq_before = mailhook.end_offsets("dlq")
    normal = [maildog(rid, f"ok{i}", id=f"e2e-fine-{rid}-{i}") for i in range(8)]
    refused = maildog(rid, "refused", id=f"e2e-refuse-{rid}")
    refused_body = json.dumps(refused).encode()
    post_all(mailhook, normal[:4] + [refused_body] + normal[4:])
    after = maildog(rid, "after")
    assert mailhook.post("maildog", after).status_code == 200

    got = by_message_id(mailhook.consume("events", from_offsets=before,
                                         expect_n=len(normal) + 1, settle=3, timeout=90), rid)
    for body in normal + [after]:
        assert len(got.get(body["message_id"], [])) == 1, body["message_id"]
    assert refused["message_id"] not in got
    assert len(got) == len(normal) + 1, sorted(got)

    dead = mailhook.consume("dlq", from_offsets=dlq_before, expect_n=1, settle=2, timeout=60)
    assert len(dead) == 1
    assert dead[0].raw_value == refused_body
    assert dead[0].headers["mh-dlq-stage"] == "store"
    assert f"e2e trigger refuses event e2e-refuse-{rid}" in dead[0].headers["mh-dlq-reason"]
    assert dead[0].headers["mh-source"] == "maildog"
    assert pg.execute("select count(*) from mh_event_claims where event_id = %s",
                      (f"e2e-refuse-{rid}",)).fetchone()[0] == 0
    # `mailhook dlq` lists it with its stage.
    listed = json.loads(mailhook.cli("dlq", "--since", "10m", "--source", "maildog",
                                     "--json").stdout)
    item = [i for i in listed["items"] if i.get("request_id") == dead[0].headers["mh-request-id"]]
    assert len(item) == 1 and item[0]["stage"] == "store", listed
    assert "e2e trigger refuses event" in item[0]["reason"]
    assert all(w.alive() for w in mailhook.workers())


def test_replay_reports_a_refused_record_and_goes_on(mailhook, pg, refusing_trigger,
                                                     replay_topics):
    rid = uid()
    start = mailhook.end_offsets("raw")
    bodies = [maildog(rid, f"rp{i}", id=f"e2e-replay-{rid}-{i}") for i in range(5)]
    bodies.insert(2, maildog(rid, "rprefused", id=f"e2e-refuse-rp-{rid}"))
    produce_raw(mailhook, [("maildog", b) for b in bodies], partition=0)
    end = mailhook.end_offsets("raw")
    wait_live(mailhook, end)

    to, dlq_to = target("poison"), target("poison-dlq")
    replay_topics.extend([to, dlq_to])
    summary = replay(mailhook, "--from-offsets", offsets_arg(start), "--until", offsets_arg(end),
                     "--to-topic", to, "--dlq-topic", dlq_to)
    assert summary["_rc"] == 0, summary["_stderr"]
    assert "cannot be stored" in summary["_stderr"]
    assert f"e2e trigger refuses event e2e-refuse-rp-{rid}" in summary["_stderr"]
    assert summary["dead_letters"] == 1
    written = sorted(r.value["message_id"] for r in topic_records(mailhook, to))
    assert written == sorted(b["message_id"] for b in bodies if "refuse" not in b.get("id", ""))
    dead = topic_records(mailhook, dlq_to)
    assert len(dead) == 1 and dead[0].headers["mh-dlq-stage"] == "store"


def test_store_dead_letters_are_counted_in_the_worker_metrics(mailhook, tmp_path,
                                                              refusing_trigger):
    from test_worker_metrics import _metric, _own_pipeline
    import requests

    sections, topics = _own_pipeline(mailhook, tmp_path, "poisonmetrics")
    port = helpers.free_port()
    base = f"http://127.0.0.1:{port}"
    sections["worker"]["metrics_listen"] = f"127.0.0.1:{port}"
    path = tmp_path / "poison.ini"
    helpers.write_ini(path, sections)
    ingest_url = "http://" + sections["ingest"]["listen"]
    mailhook.start_ingest("ingest-poison", config=path, url=ingest_url)
    mailhook.start_worker(92, config=path)
    try:
        helpers.wait_for(lambda: helpers.http_get_ok(base + "/healthz"), 15,
                         what="worker /healthz")
        rid = uid()
        src = mailhook.sources["maildog"]
        for body in (maildog(rid, "fine", id=f"e2e-fine-m-{rid}"),
                     maildog(rid, "refused", id=f"e2e-refuse-m-{rid}"),
                     json.dumps(maildog(rid, "nul", subject="a\x00b"))):
            r = helpers.post(ingest_url, "maildog", body, helpers.signature_headers(src, body))
            assert r.status_code == 200, r.text

        def settled():
            text = requests.get(base + "/metrics", timeout=5).text
            return _metric(text, "mailhook_worker_records_total") == 3 and text
        text = helpers.wait_for(settled, 60, what="the worker to commit 3 records")
        assert _metric(text, "mailhook_worker_events_emitted_total") == 1
        assert _metric(text, "mailhook_worker_dead_letters_total") == 2
        assert _metric(text, "mailhook_worker_store_dead_letters_total") == 1
        stages = sorted(r.headers["mh-dlq-stage"] for r in
                        mailhook.consume(topics["dlq"], expect_n=2, settle=1, timeout=30))
        assert stages == ["parse", "store"]
    finally:
        mailhook.procs["worker-92"].stop()
        mailhook.procs["ingest-poison"].stop()
        helpers.delete_topics(topics.values(), mailhook.brokers)

"""The dedup scope end to end: which deliveries count as one event.

A claim is keyed by (tenant, dedup scope, event_id). The generic providers `hmac` and
`standard` serve any sender, whose ids are unique only per sender: their scope is
`provider/source`, so two sources of one tenant that both number events 1, 2, 3 get all
six out, while a redelivery to the same source is still a duplicate. A provider with a
platform of its own (IvyMail) keys by its name: the same event reaching the tenant
through two of its sources is one event. Migration 0006 converts claims made under the
old key, so an event claimed before the upgrade stays a duplicate after it.

This module runs an ingest and a worker of its own (the session's database and brokers,
topics, consumer group and listener of its own) with two sources each of hmac, standard
and ivymail for one tenant."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import shutil
import time

import psycopg
import pytest

import helpers
from test_pipeline import ROOT, uid
from test_replay import offsets_arg, replay, target, topic_records, wait_live

SETTLE = 3.0  # seconds to wait for an event that must not come
MIGRATION = ROOT / "migrations" / "0006_dedup_scope.sql"


def whsec() -> str:
    return "whsec_" + base64.b64encode(os.urandom(24)).decode()


@pytest.fixture(scope="module")
def scoped(mailhook):
    """helpers.Mailhook with sources dog-a, dog-b (hmac), std-a, std-b (standard) and
    ivy-a, ivy-b (ivymail), all of tenant .tenant."""
    tag = uid()
    tenant = f"scope-{tag}"
    topics = {role: f"{t}-scope-{tag}" for role, t in mailhook.topics.items()}
    sources = {}
    for s in ("a", "b"):
        sources[f"dog-{s}"] = {"provider": "hmac", "tenant": tenant,
                               "header": "x-maildog-signature", "secret": helpers.new_secret()}
        sources[f"std-{s}"] = {"provider": "standard", "tenant": tenant, "secret": whsec()}
        sources[f"ivy-{s}"] = {"provider": "ivymail", "tenant": tenant,
                               "secret": helpers.new_secret()}
    sections = helpers.pipeline_sections(topics, f"mailhook-worker-scope-{tag}", mailhook.dsn,
                                         mailhook.brokers)
    for name, keys in sources.items():
        sections[f"source.{name}"] = keys
    path = mailhook.workdir / "scope.ini"
    helpers.write_ini(path, sections)

    mh = helpers.Mailhook(path, sections, mailhook.env, mailhook.workdir, topics, sources,
                          mailhook.brokers, mailhook.dsn)
    mh.tenant = tenant
    try:
        mh.cli("topics")
        mh.start_ingest("ingest-scope")
        mh.start_worker(17)
        yield mh
    finally:
        crashed = mh.stop_all()
        helpers.delete_topics(topics.values(), mailhook.brokers)
    assert not crashed, "exited unexpectedly: " + ", ".join(
        f"{p.name} (status {p.returncode()})\n{p.tail()}" for p in crashed)


def dog_event(event_id: str, recipient: str) -> dict:
    return {"id": event_id, "event": "delivered", "message_id": f"m-{recipient}",
            "recipient": recipient, "timestamp": "2026-03-01T12:00:00Z"}


def post_dog(mh, source: str, body) -> None:
    r = mh.post(source, body)
    assert r.status_code == 200, r.text


def post_std(mh, source: str, msg_id: str, recipient: str) -> None:
    """A Standard Webhooks delivery whose event id is msg_id (webhook-id)."""
    body = json.dumps({"type": "email.delivered", "timestamp": "2026-03-01T12:00:00Z",
                       "data": {"recipient": recipient, "message_id": f"m-{recipient}"}}
                      ).encode()
    key = base64.b64decode(mh.sources[source]["secret"].removeprefix("whsec_"))
    ts = str(int(time.time()))
    mac = hmac.new(key, f"{msg_id}.{ts}.".encode() + body, hashlib.sha256).digest()
    headers = {"content-type": "application/json", "webhook-id": msg_id,
               "webhook-timestamp": ts, "webhook-signature": "v1," + base64.b64encode(mac).decode()}
    r = mh.post(source, body, headers=headers, sign=False)
    assert r.status_code == 200, r.text


def post_ivy(mh, source: str, recipient: str) -> None:
    body = {"event": "delivered", "message_id": f"m-{recipient}", "to": recipient,
            "timestamp": "2026-03-01T12:00:00Z"}
    r = mh.post(source, body)
    assert r.status_code == 200, r.text


def delivered(mh, before: dict, n: int, settle: float = SETTLE) -> list[dict]:
    """The events after before, waiting for n of them and then settle more seconds."""
    return [r.value for r in mh.consume("events", from_offsets=before, expect_n=n,
                                        settle=settle, timeout=60)]


def test_two_hmac_sources_numbering_alike_both_come_out(scoped, pg):
    mh = scoped
    before = mh.end_offsets("events")
    tag = uid()
    for src in ("dog-a", "dog-b"):
        for i in ("1", "2", "3"):
            post_dog(mh, src, dog_event(i, f"{src}.{i}.{tag}@example.com"))
    got = delivered(mh, before, 6)
    assert sorted((e["source"], e["event_id"]) for e in got) == [
        (s, i) for s in ("dog-a", "dog-b") for i in ("1", "2", "3")]
    assert {e["provider"] for e in got} == {"hmac"}  # the event keeps its provider
    rows = pg.execute("select provider, count(*) from mh_event_claims where tenant = %s"
                      " and provider like 'hmac%%' group by provider order by provider",
                      (mh.tenant,)).fetchall()
    assert rows == [("hmac/dog-a", 3), ("hmac/dog-b", 3)]

    # Redelivered to the same source: a duplicate. In one record with a new event, so
    # that the new one coming out proves the record was processed.
    before = mh.end_offsets("events")
    post_dog(mh, "dog-a", [dog_event("2", f"dog-a.2.{tag}@example.com"),
                           dog_event("4", f"dog-a.4.{tag}@example.com")])
    got = delivered(mh, before, 1)
    assert [(e["source"], e["event_id"]) for e in got] == [("dog-a", "4")]


def test_two_standard_sources_numbering_alike_both_come_out(scoped, pg):
    mh = scoped
    before = mh.end_offsets("events")
    tag = uid()
    for src in ("std-a", "std-b"):
        for i in ("1", "2", "3"):
            post_std(mh, src, f"msg_{i}", f"{src}.{i}.{tag}@example.com")
    got = delivered(mh, before, 6)
    assert sorted(e["source"] for e in got) == ["std-a"] * 3 + ["std-b"] * 3
    ids = {e["source"]: set() for e in got}
    for e in got:
        ids[e["source"]].add(e["event_id"])
    assert ids["std-a"] == ids["std-b"] and len(ids["std-a"]) == 3
    assert pg.execute("select count(*) from mh_event_claims where tenant = %s"
                      " and provider in ('standard/std-a', 'standard/std-b')",
                      (mh.tenant,)).fetchone()[0] == 6

    # The provider retries msg_2 to each source: nothing new comes out.
    before = mh.end_offsets("events")
    post_std(mh, "std-a", "msg_2", f"std-a.2.{tag}@example.com")
    post_std(mh, "std-b", "msg_2", f"std-b.2.{tag}@example.com")
    post_std(mh, "std-b", "msg_4", f"std-b.4.{tag}@example.com")
    got = delivered(mh, before, 1)
    assert [e["source"] for e in got] == ["std-b"]
    assert got[0]["event_id"] not in ids["std-b"]


def test_platform_provider_dedups_across_its_sources(scoped, pg):
    """IvyMail is one platform: an event is one event whichever of the tenant's IvyMail
    sources it reaches (two endpoints of one account, a source renamed)."""
    mh = scoped
    before = mh.end_offsets("events")
    tag = uid()
    same, other = f"same.{tag}@example.com", f"other.{tag}@example.com"
    post_ivy(mh, "ivy-a", same)
    post_ivy(mh, "ivy-b", same)
    post_ivy(mh, "ivy-b", other)
    got = delivered(mh, before, 2)
    assert sorted(e["recipient"] for e in got) == sorted([same, other])
    assert pg.execute("select provider, count(*) from mh_event_claims where tenant = %s"
                      " and recipient = any(%s) group by provider",
                      (mh.tenant, [same, other])).fetchall() == [("ivymail", 2)]


def test_replay_keys_claims_like_the_worker(scoped, pg):
    """`mailhook replay` looks claims up (and a dry run counts events without one) by the
    same scope: it writes what the live worker emitted, both senders' events included."""
    mh = scoped
    tag = uid()
    start = mh.end_offsets("raw")
    before = mh.end_offsets("events")
    for src in ("dog-a", "dog-b"):
        for i in (1, 2, 3):
            post_dog(mh, src, dog_event(f"{tag}-{i}", f"{src}.{i}.{tag}@example.com"))
    post_dog(mh, "dog-a", dog_event(f"{tag}-2", f"dog-a.2.{tag}@example.com"))  # a retry
    end = mh.end_offsets("raw")
    wait_live(mh, end)
    live = delivered(mh, before, 6, settle=0)
    rng = ("--from-offsets", offsets_arg(start), "--until", offsets_arg(end))

    to = target("scope")
    try:
        s = replay(mh, *rng, "--to-topic", to)
        got = [r.value for r in topic_records(mh, to)]
    finally:
        helpers.delete_topics([to], mh.brokers)
    key = lambda e: (e["source"], e["event_id"])
    assert sorted(map(key, got)) == sorted(map(key, live))
    assert (s["events_written"], s["duplicates_skipped"], s["claimed_anew"]) == (6, 1, 0)

    # With the claims expired, a dry run decides as a claim would: six events, one retry.
    ids = [f"{tag}-{i}" for i in (1, 2, 3)]
    pg.execute("delete from mh_event_claims where tenant = %s and event_id = any(%s)",
               (mh.tenant, ids))
    dry = replay(mh, *rng, "--dry-run")
    assert (dry["events_written"], dry["duplicates_skipped"], dry["claimed_anew"]) == (6, 1, 6)


def insert_old_claim(pg, tenant: str, provider: str, source: str, event_id: str,
                     offset: int) -> None:
    """A claim as the release before the dedup scope wrote it: keyed by provider name."""
    event = {"schema": "mailhook.event.v1", "event_id": event_id, "type": "email.delivered",
             "provider": provider.split("/")[0], "source": source, "tenant": tenant,
             "recipient": f"old.{event_id}@example.com"}
    pg.execute(
        "insert into mh_event_claims (tenant, provider, event_id, claim_day, raw_topic,"
        " raw_partition, raw_offset, event_type, recipient, event)"
        " values (%s, %s, %s, (now() at time zone 'UTC')::date, 'mailhook.raw.before',"
        " 0, %s, 'email.delivered', %s, %s)",
        (tenant, provider, event_id, offset, event["recipient"], json.dumps(event)))


def claim_keys(pg, tenant: str) -> list[tuple[str, str, str]]:
    return pg.execute("select provider, event_id, raw_topic from mh_event_claims"
                      " where tenant = %s order by 1, 2, 3", (tenant,)).fetchall()


def test_claim_made_before_the_upgrade_stays_a_duplicate(scoped, pg):
    """Old-key claims converted by 0006 (applied again here: it is idempotent) still
    catch a redelivery to their source, and only to it."""
    mh = scoped
    tag = uid()
    old = f"old-{tag}"
    insert_old_claim(pg, mh.tenant, "hmac", "dog-a", old, 1)
    sql = MIGRATION.read_text()
    pg.execute(sql)
    assert pg.execute("select provider from mh_event_claims where tenant = %s and event_id = %s",
                      (mh.tenant, old)).fetchall() == [("hmac/dog-a",)]

    before = mh.end_offsets("events")
    post_dog(mh, "dog-a", [dog_event(old, f"old.{old}@example.com"),
                           dog_event(f"new-{tag}", f"new.{tag}@example.com")])
    got = delivered(mh, before, 1)
    assert [e["event_id"] for e in got] == [f"new-{tag}"]
    # The same id from the other sender is an event of its own.
    post_dog(mh, "dog-b", dog_event(old, f"old.b.{old}@example.com"))
    got = delivered(mh, before, 2)
    assert sorted((e["source"], e["event_id"]) for e in got) == [("dog-a", f"new-{tag}"),
                                                                 ("dog-b", old)]


def test_migration_converts_old_claims_once(stack, mailhook):
    """`mailhook migrate` on a database of the release before: claims of hmac and standard
    get their source's scope, the others stay; a second run applies nothing, and the
    file run again by hand changes nothing. An old-key claim whose event was claimed
    under the new key too (workers of this release ran first) leaves one claim."""
    name = f"mailhook_e2e_scope_{uid()}"
    with psycopg.connect(stack.dsn, autocommit=True) as admin:
        admin.execute(f'create database "{name}"')
    dsn = helpers.with_dbname(stack.dsn, name)
    old_dir = mailhook.workdir / f"migrations-before-{name}"
    try:
        old_dir.mkdir()
        for f in (ROOT / "migrations").glob("[0-9][0-9][0-9][0-9]_*.sql"):
            if f.name < MIGRATION.name:
                shutil.copy(f, old_dir / f.name)
        sections = {k: dict(v) for k, v in mailhook.sections.items()}
        sections["postgres"] = {"dsn": dsn, "migrations_dir": str(old_dir)}
        path = mailhook.workdir / f"{name}.ini"
        helpers.write_ini(path, sections)
        env = {**mailhook.env, "MAILHOOK_PG_DSN": dsn}
        mh = helpers.Mailhook(path, sections, env, mailhook.workdir, mailhook.topics,
                              mailhook.sources, mailhook.brokers, dsn)
        out = mh.cli("migrate").stdout.decode()
        assert "0006" not in out, out

        with psycopg.connect(dsn, autocommit=True) as pg:
            t = "acme"
            insert_old_claim(pg, t, "hmac", "dog-a", "1", 1)
            insert_old_claim(pg, t, "hmac", "dog-b", "2", 2)
            insert_old_claim(pg, t, "standard", "std-a", "msg_1", 3)
            insert_old_claim(pg, t, "ivymail", "ivy-a", "sha-1", 4)
            insert_old_claim(pg, t, "hmac", "dog-a", "3", 5)
            insert_old_claim(pg, t, "hmac/dog-a", "dog-a", "3", 6)  # the new key's claim

            sections["postgres"]["migrations_dir"] = str(ROOT / "migrations")
            helpers.write_ini(path, sections)
            out = mh.cli("migrate").stdout.decode()
            assert "applied 0006_dedup_scope" in out, out
            want = [("hmac/dog-a", "1", "mailhook.raw.before"),
                    ("hmac/dog-a", "3", "mailhook.raw.before"),
                    ("hmac/dog-b", "2", "mailhook.raw.before"),
                    ("ivymail", "sha-1", "mailhook.raw.before"),
                    ("standard/std-a", "msg_1", "mailhook.raw.before")]
            assert claim_keys(pg, t) == want
            assert pg.execute("select raw_offset from mh_event_claims where event_id = '3'"
                              ).fetchall() == [(6,)]

            out = mh.cli("migrate").stdout.decode()
            assert "0 applied" in out, out
            pg.execute(MIGRATION.read_text())
            assert claim_keys(pg, t) == want
    finally:
        shutil.rmtree(old_dir, ignore_errors=True)
        with psycopg.connect(stack.dsn, autocommit=True) as admin:
            admin.execute(f'drop database if exists "{name}" with (force)')


def test_providers_command_names_the_generic_providers(mailhook):
    out = json.loads(mailhook.cli("providers", "--json").stdout)
    assert sorted(p["name"] for p in out["providers"] if p["dedup_per_source"]) == \
        ["hmac", "standard"]
    text = mailhook.cli("providers", "hmac", "ivymail").stdout.decode()
    assert "hmac (secret required; events deduplicated per source)\n" in text
    assert "ivymail (secret required)\n" in text

"""The claims table (mh_claims, migrations/0008) against databases of their own: the
migration turns every event log row of the release before into a claim under the
documented key, and a claim follows its log row when that row is deleted or re-keyed."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
from datetime import date, datetime, timedelta, timezone

import psycopg
import pytest

import helpers
from test_pipeline import ROOT, uid

MIGRATION = "0008_narrow_claims.sql"
# Set when a test starts (db), not when the module is collected: see helpers.today_with_margin.
TODAY = datetime.now(timezone.utc).date()


def key(tenant: str, scope: str, event_id: str) -> bytes:
    """mh_claim_key as documented: the first 16 bytes of SHA-256 over the three values
    joined by a zero byte."""
    return hashlib.sha256(b"\0".join(s.encode() for s in (tenant, scope, event_id))).digest()[:16]


@pytest.fixture
def db(stack, mailhook, tmp_path):
    """(dsn, migrate(dir)) for a database of its own; migrate runs `mailhook migrate`
    with the given migrations directory."""
    global TODAY
    TODAY = helpers.today_with_margin()
    name = f"mailhook_e2e_claims_{uid()}"
    with psycopg.connect(stack.dsn, autocommit=True) as admin:
        admin.execute(f'create database "{name}"')
    dsn = helpers.with_dbname(stack.dsn, name)

    def migrate(migrations_dir) -> str:
        sections = {k: dict(v) for k, v in mailhook.sections.items()}
        sections["postgres"] = {"dsn": dsn, "migrations_dir": str(migrations_dir)}
        path = tmp_path / "claims.ini"
        helpers.write_ini(path, sections)
        out = subprocess.run([str(helpers.build_dir() / "mailhook"), "--config", str(path),
                              "migrate"], env=dict(mailhook.env, MAILHOOK_PG_DSN=dsn),
                             capture_output=True, text=True, timeout=120)
        assert out.returncode == 0, out.stdout + out.stderr
        return out.stdout

    try:
        yield dsn, migrate
    finally:
        with psycopg.connect(stack.dsn, autocommit=True) as admin:
            admin.execute(f'drop database if exists "{name}" with (force)')


def log_row(pg, tenant: str, scope: str, event_id: str, day: date, offset: int) -> None:
    """An event log row as the release before wrote it (the row was the claim)."""
    ev = {"schema": "mailhook.event.v1", "event_id": event_id, "type": "email.delivered",
          "tenant": tenant, "recipient": f"{event_id}@example.com"}
    pg.execute(
        "insert into mh_event_claims (tenant, provider, event_id, claim_day, raw_topic,"
        " raw_partition, raw_offset, event_type, recipient, event)"
        " values (%s, %s, %s, %s, 'mailhook.raw', 2, %s, 'email.delivered', %s, %s)",
        (tenant, scope, event_id, day, offset, ev["recipient"], json.dumps(ev)))


def claims(pg) -> dict[bytes, tuple]:
    return {bytes(r[0]): tuple(r[1:]) for r in pg.execute(
        "select claim_key, claim_day, raw_topic, raw_partition, raw_offset from mh_claims")}


def test_migration_makes_a_claim_of_every_log_row(db, tmp_path):
    dsn, migrate = db
    before = tmp_path / "migrations-before"
    before.mkdir()
    for f in (ROOT / "migrations").glob("[0-9][0-9][0-9][0-9]_*.sql"):
        if f.name < MIGRATION:
            shutil.copy(f, before / f.name)
    assert MIGRATION[:4] not in migrate(before)
    rows = [("acme", "ivymail", "sha-1", TODAY, 10),
            ("acme", "hmac/dog-a", "1", TODAY - timedelta(days=3), 11),
            ("beta", "ivymail", "sha-1", TODAY - timedelta(days=40), 12),  # default partition
            ("acme", "sendgrid", "ünï-çødé", TODAY, 13)]
    with psycopg.connect(dsn, autocommit=True) as pg:
        for r in rows:
            log_row(pg, *r)
    assert f"applied {MIGRATION[:-4]}" in migrate(ROOT / "migrations")
    with psycopg.connect(dsn, autocommit=True) as pg:
        assert claims(pg) == {key(t, s, e): (d, "mailhook.raw", 2, o) for t, s, e, d, o in rows}
        # What a worker asks next decides as the old claims did.
        for t, s, e, d, _ in rows:
            assert pg.execute("select mh_claim_day(%s, %s, %s)", (t, s, e)).fetchone()[0] == d
        assert pg.execute("select mh_claim_day('acme', 'ivymail', 'new')").fetchone()[0] == TODAY
        # The functions the earlier release's claim called are gone, so one of its workers
        # still running fails its claims instead of claiming beside the table.
        assert pg.execute("select count(*) from pg_proc where proname in"
                          " ('mh_claim_days', 'mh_claim_lock_key')").fetchone()[0] == 0


def test_a_claim_follows_its_log_row(db):
    dsn, migrate = db
    migrate(ROOT / "migrations")
    with psycopg.connect(dsn, autocommit=True) as pg:
        for i, eid in enumerate(("a", "b", "c")):
            pg.execute("insert into mh_claims (claim_key, claim_day, raw_topic, raw_partition,"
                       " raw_offset) values (mh_claim_key('acme', 'hmac', %s), %s,"
                       " 'mailhook.raw', 2, %s)", (eid, TODAY, 20 + i))
            log_row(pg, "acme", "hmac", eid, TODAY, 20 + i)
        # Deleted: the event would be claimed anew.
        pg.execute("delete from mh_event_claims where event_id = 'a'")
        # Re-keyed (as migration 0006 re-keys a generic provider's claims).
        pg.execute("update mh_event_claims set provider = 'hmac/dog-a' where event_id = 'b'")
        # A change that leaves the key alone leaves the claim alone.
        pg.execute("update mh_event_claims set event_type = 'email.bounced' where event_id = 'c'")
        assert claims(pg) == {key("acme", "hmac/dog-a", "b"): (TODAY, "mailhook.raw", 2, 21),
                              key("acme", "hmac", "c"): (TODAY, "mailhook.raw", 2, 22)}

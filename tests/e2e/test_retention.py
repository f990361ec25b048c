"""Retention of the event log and its claims (the dedup state) and of forgotten lifted
addresses, with `mailhook maintain` against a database of its own: weeks claimed before
the window go as whole partitions and their claims with them, new data stays, rows that
came before their day's partition existed are moved into it, and dedup keeps working
across all of it."""

from __future__ import annotations

import json
import re
import subprocess
from datetime import date, datetime, time, timedelta, timezone

import psycopg
import pytest

import helpers

# The UTC day the test runs in, which the database's now() must share: set when a test
# starts (ret_db), not when the module is collected, which may be the day before.
TODAY = datetime.now(timezone.utc).date()


def at_noon(d: date) -> datetime:
    return datetime.combine(d, time(12, 0), tzinfo=timezone.utc)


@pytest.fixture
def ret_db(mailhook, stack, tmp_path):
    """A freshly migrated database, a config for it and a runner for the CLI."""
    global TODAY
    TODAY = helpers.today_with_margin()
    name = "mailhook_ret_" + helpers.new_secret()[:10]
    with psycopg.connect(stack.dsn, autocommit=True) as conn:
        conn.execute(f'create database "{name}"')
    dsn = helpers.with_dbname(stack.dsn, name)
    sections = json.loads(json.dumps(mailhook.sections))
    sections["postgres"]["dsn"] = dsn
    path = tmp_path / "retention.ini"
    helpers.write_ini(path, sections)
    env = dict(mailhook.env, MAILHOOK_PG_DSN=dsn)

    def cli(*args):
        out = subprocess.run([str(helpers.build_dir() / "mailhook"), "--config", str(path), *args],
                             env=env, capture_output=True, text=True, timeout=120)
        assert out.returncode == 0, out.stdout + out.stderr
        return out.stdout

    cli("migrate")
    with psycopg.connect(dsn, autocommit=True) as conn:
        yield conn, cli
    with psycopg.connect(stack.dsn, autocommit=True) as conn:
        conn.execute(f'drop database if exists "{name}" with (force)')


def claim(conn, event_id: str, occurred: datetime | None, day: date | None = None) -> int:
    """Claims an event as the worker does (its claim ON CONFLICT DO NOTHING, then the log
    row of a claim it inserted); 1 when inserted. day: the day it was first claimed
    (default: today, as the worker)."""
    ev = {"event_id": event_id, "type": "email.delivered", "tenant": "r",
          "occurred_at": occurred.isoformat() if occurred else None}
    cur = conn.execute(
        "with c as (insert into mh_claims (claim_key, claim_day, raw_topic, raw_partition,"
        " raw_offset) values (mh_claim_key('r', 'hmac', %s),"
        " coalesce(%s, (now() at time zone 'UTC')::date), 'raw', 0, 0)"
        " on conflict do nothing returning claim_day)"
        " insert into mh_event_claims (tenant, provider, event_id, claim_day, raw_topic,"
        " raw_partition, raw_offset, event_type, recipient, occurred_at, event)"
        " select 'r', 'hmac', %s, c.claim_day, 'raw', 0, 0, 'email.delivered', 'x@example.com',"
        " %s, %s from c",
        (event_id, day, event_id, occurred, json.dumps(ev)))
    return cur.rowcount


def claim_day(conn, event_id: str) -> date:
    """The day a claim of event_id has, or today when it has none."""
    return conn.execute("select mh_claim_day('r', 'hmac', %s)", (event_id,)).fetchone()[0]


def where(conn, event_id: str) -> str | None:
    row = conn.execute("select tableoid::regclass::text from mh_event_claims where event_id = %s",
                       (event_id,)).fetchone()
    return row[0] if row else None


def week(d: date) -> date:
    return d - timedelta(days=d.weekday())


def part(d: date) -> str:
    """The partition holding claims of day d: one per UTC week, named by its Monday."""
    return f"mh_event_claims_w{week(d):%Y%m%d}"


def weeks(first: date, last: date) -> set[date]:
    """The Mondays of the weeks that days first..last touch."""
    out, d = set(), week(first)
    while d <= last:
        out.add(d)
        d += timedelta(days=7)
    return out


def report(out: str) -> dict:
    m = re.search(r"partitions: (\d+) created, (\d+) dropped", out)
    d = re.search(r"rows deleted: (\d+) from the default partition, (\d+) lifted", out)
    c = re.search(r"claims forgotten with their weeks: (\d+)", out)
    assert m and d and c, out
    return {"created": int(m[1]), "dropped": int(m[2]), "default_deleted": int(d[1]),
            "lifted_deleted": int(d[2]), "claims_deleted": int(c[1])}


def test_old_days_are_dropped_and_new_data_stays(ret_db):
    conn, cli = ret_db
    old_day, new_day = TODAY - timedelta(days=40), TODAY - timedelta(days=1)
    # (event id, occurred_at, day first claimed)
    rows = [
        ("old-1", at_noon(old_day), old_day),
        ("old-2", None, old_day),                       # undated: claimed 40 days ago
        ("ancient", at_noon(TODAY - timedelta(days=400)), TODAY - timedelta(days=400)),
        ("new-1", at_noon(new_day), new_day),
        ("new-2", at_noon(TODAY - timedelta(days=90)), TODAY),  # an old event claimed today
        ("new-3", None, TODAY),
    ]
    for eid, occurred, day in rows:
        assert claim(conn, eid, occurred, day) == 1
    # Weeks without a partition (the migration covered 30 days back, 7 ahead) wait in the
    # default one.
    for eid in ("old-1", "old-2", "ancient"):
        assert where(conn, eid) == "mh_event_claims_default", eid
    assert where(conn, "new-1") == part(new_day) and where(conn, "new-2") == part(TODAY)

    # Every later delivery of an event lands on its first claim's key, whatever its
    # occurred_at says: dedup holds in day partitions and in the default one alike.
    for eid, _, day in rows:
        assert claim_day(conn, eid) == day
        assert claim(conn, eid, at_noon(TODAY)) == 0, eid
    assert claim_day(conn, "never-seen") == TODAY

    # A wider window first: the weeks come into being and their rows move in.
    made = weeks(TODAY - timedelta(days=30), TODAY + timedelta(days=7))
    wider = weeks(TODAY - timedelta(days=60), TODAY + timedelta(days=25))
    r = report(cli("maintain", "--retention-days", "60", "--ahead-days", "25"))
    assert r["created"] == len(wider - made) and r["dropped"] == 0
    assert where(conn, "old-1") == part(old_day) and where(conn, "old-2") == part(old_day)
    assert where(conn, "ancient") is None and r["default_deleted"] == 1  # older than 60 days
    # Moved rows keep their claims; a row deleted from the default partition takes its
    # claim with it.
    assert claim_day(conn, "old-1") == old_day and claim(conn, "old-2", None) == 0
    assert claim_day(conn, "ancient") == TODAY and r["claims_deleted"] == 0

    # Back to 30 days: whole weeks go, once all their days are out of the window;
    # nothing is deleted row by row.
    cutoff = TODAY - timedelta(days=30)
    r = report(cli("maintain", "--retention-days", "30"))
    assert r["dropped"] == len([w for w in wider if w + timedelta(days=7) <= cutoff])
    assert r["dropped"] >= 4 and r["default_deleted"] == 0
    assert conn.execute("select to_regclass(%s)", (part(old_day),)).fetchone()[0] is None
    assert where(conn, "old-1") is None and where(conn, "old-2") is None
    # The dropped weeks' claims go too: their events would be claimed anew.
    assert r["claims_deleted"] == 2
    assert claim_day(conn, "old-1") == TODAY and claim_day(conn, "old-2") == TODAY
    assert conn.execute("select count(*) from mh_claims").fetchone()[0] == 3
    for eid in ("new-1", "new-2", "new-3"):
        assert where(conn, eid) is not None, eid
    oldest = conn.execute(
        "select min(to_date(substr(c.relname, 18), 'YYYYMMDD')) from pg_inherits i"
        " join pg_class c on c.oid = i.inhrelid"
        " where i.inhparent = 'mh_event_claims'::regclass and c.relname <> 'mh_event_claims_default'"
    ).fetchone()[0]
    assert oldest == week(cutoff)
    # A second pass has nothing to do.
    r = report(cli("maintain", "--retention-days", "30"))
    assert r == {"created": 0, "dropped": 0, "default_deleted": 0, "lifted_deleted": 0,
                 "claims_deleted": 0}


def test_forgotten_lifted_addresses_go_suppressed_ones_stay(ret_db):
    conn, cli = ret_db
    old = datetime.now(timezone.utc) - timedelta(days=45)
    for addr, state in (("lifted-old@example.com", "lifted"),
                        ("suppressed-old@example.com", "suppressed"),
                        ("lifted-new@example.com", "lifted")):
        conn.execute("insert into mh_suppressions (tenant, address, state, reason, at, event_id,"
                     " source, updated_at) values ('r', %s, %s, 'manual', %s, 'e', 'test', %s)",
                     (addr, state, old, old if addr.endswith("old@example.com") else
                      datetime.now(timezone.utc)))
    r = report(cli("maintain"))
    assert r["lifted_deleted"] == 1
    left = {row[0] for row in conn.execute("select address from mh_suppressions")}
    assert left == {"suppressed-old@example.com", "lifted-new@example.com"}

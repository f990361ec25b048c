"""The event log without a primary key (migrations/0011), against databases of their own:
the migration keeps every row and every other index, and the claims alone keep each
event's log row single, when two workers claim the same events at once, whether the
first commits or rolls back; a log insert that still says ON CONFLICT DO NOTHING (as a
worker of the release before does) keeps working."""

from __future__ import annotations

import threading

import psycopg

from test_claims_table import TODAY, db  # noqa: F401  (db is a fixture)
from test_event_log_json import claim_params, claim_statement, migrations_before, stored
from test_pipeline import ROOT

MIGRATION = "0011_event_log_without_primary_key.sql"


def unique_indexes(pg) -> list[str]:
    """The unique indexes of the event log and of its partitions."""
    return [r[0] for r in pg.execute(
        "select i.indexrelid::regclass::text from pg_index i"
        " where i.indisunique and (i.indrelid = 'mh_event_claims'::regclass"
        " or i.indrelid in (select inhrelid from pg_inherits"
        " where inhparent = 'mh_event_claims'::regclass))").fetchall()]


def log_indexes(pg) -> set[str]:
    return {r[0] for r in pg.execute("select indexrelid::regclass::text from pg_index"
                                     " where indrelid = 'mh_event_claims'::regclass")}


def events(prefix: str, n: int) -> list[dict]:
    return [{"event_id": f"{prefix}-{i}", "type": "email.delivered",
             "recipient": f"{prefix}.{i}@example.com", "source": "ivymail"} for i in range(n)]


def test_migration_keeps_the_rows_and_drops_only_the_key(db, tmp_path):
    dsn, migrate = db
    migrate(migrations_before(tmp_path, MIGRATION))
    with psycopg.connect(dsn, autocommit=True) as pg:
        for i, ev in enumerate(events("m", 3)):
            stored(pg, ev["event_id"], TODAY, 10 + i, ev)
        assert unique_indexes(pg)
        kept = log_indexes(pg) - {"mh_event_claims_pkey"}
    migrate(ROOT / "migrations")
    with psycopg.connect(dsn, autocommit=True) as pg:
        assert unique_indexes(pg) == []
        assert log_indexes(pg) == kept
        assert kept >= {"mh_event_claims_recipient", "mh_event_claims_message",
                        "mh_event_claims_log"}
        assert sorted(r[0] for r in pg.execute("select event_id from mh_event_claims")) == \
            ["m-0", "m-1", "m-2"]
        # As the release before's worker wrote its log rows.
        pg.execute("insert into mh_event_claims (tenant, provider, event_id, claim_day,"
                   " raw_topic, raw_partition, raw_offset, event_type, event)"
                   " values ('acme', 'ivymail', 'm-3', %s, 'mailhook.raw', 2, 13,"
                   " 'email.delivered', '{}') on conflict do nothing", (TODAY,))
        assert pg.execute("select count(*) from mh_event_claims").fetchone()[0] == 4


def claim_concurrently(dsn: str, first_commits: bool) -> tuple[list[int], list[int]]:
    """Two workers' claim statements for the same 50 events, the second sent while the
    first's transaction is open; the idx each claimed, once the first has committed or
    rolled back."""
    sql = claim_statement()
    evs = events("c", 50)
    second: dict = {}
    with psycopg.connect(dsn) as a, psycopg.connect(dsn) as b:
        got_a = sorted(r[0] for r in a.execute(sql, claim_params(evs, offset=100)).fetchall())

        def run_b():
            try:
                second["idx"] = sorted(r[0] for r in b.execute(
                    sql, claim_params(evs, offset=500)).fetchall())
                b.commit()
            except Exception as e:  # reported by the assertion below
                second["error"] = e

        t = threading.Thread(target=run_b)
        t.start()
        # The second statement waits on the first's claims, not past them.
        t.join(timeout=2)
        assert t.is_alive(), second
        a.commit() if first_commits else a.rollback()
        t.join(timeout=60)
        assert not t.is_alive() and "error" not in second, second
    return got_a, second["idx"]


def test_concurrent_claims_log_each_event_once(db):
    dsn, migrate = db
    migrate(ROOT / "migrations")
    got_a, got_b = claim_concurrently(dsn, first_commits=True)
    assert got_a == list(range(50)) and got_b == []
    with psycopg.connect(dsn) as pg:
        rows = pg.execute("select event_id, raw_offset from mh_event_claims").fetchall()
        assert len(rows) == 50 and {r[0] for r in rows} == {f"c-{i}" for i in range(50)}
        assert {r[1] for r in rows} == set(range(100, 150))
        assert pg.execute("select count(*) from mh_claims").fetchone()[0] == 50


def test_the_second_claim_logs_them_when_the_first_rolls_back(db):
    dsn, migrate = db
    migrate(ROOT / "migrations")
    got_a, got_b = claim_concurrently(dsn, first_commits=False)
    assert got_a == list(range(50)) and got_b == list(range(50))
    with psycopg.connect(dsn) as pg:
        rows = pg.execute("select raw_offset from mh_event_claims").fetchall()
        assert sorted(r[0] for r in rows) == list(range(500, 550))

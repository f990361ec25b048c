"""The event log's events as json and their source as a column (migrations/0010), against
databases of their own: the migration keeps every stored event and fills the source from
it, a partition made later moves rows with their source, the soft-bounce rule still
reads a bounce's class from the stored event, and the claim statement fills the log's
search columns from its own arrays, NULL where the event has no such field."""

from __future__ import annotations

import json
import re
import shutil
from datetime import timedelta

import psycopg

from test_claims_table import TODAY, db, key  # noqa: F401  (db is a fixture)
from test_pipeline import ROOT

MIGRATION = "0010_event_log_json.sql"


def migrations_before(tmp_path, migration: str = MIGRATION):
    """A directory of the migrations that come before the given one."""
    before = tmp_path / "migrations-before"
    before.mkdir()
    for f in (ROOT / "migrations").glob("[0-9][0-9][0-9][0-9]_*.sql"):
        if f.name < migration:
            shutil.copy(f, before / f.name)
    return before


def stored(pg, event_id: str, day, offset: int, ev: dict) -> None:
    """An event log row as the release before wrote it."""
    pg.execute("insert into mh_event_claims (tenant, provider, event_id, claim_day,"
               " raw_topic, raw_partition, raw_offset, event_type, recipient, event)"
               " values ('acme', 'ivymail', %s, %s, 'mailhook.raw', 2, %s, %s, %s, %s)",
               (event_id, day, offset, ev["type"], ev.get("recipient"), json.dumps(ev)))


def test_migration_keeps_every_stored_event(db, tmp_path):
    dsn, migrate = db
    assert MIGRATION[:4] not in migrate(migrations_before(tmp_path))
    old_day = TODAY - timedelta(days=40)  # no partition of its week: the default one
    events = {
        "a-1": ({"event_id": "a-1", "type": "email.delivered", "source": "ivy-a",
                 "recipient": "a@example.com"}, TODAY),
        "a-2": ({"event_id": "a-2", "type": "email.delivered", "source": "ivy-b"}, old_day),
        "b-1": ({"event_id": "b-1", "type": "email.bounced", "source": "ivy-a",
                 "recipient": "b@example.com", "bounce": {"class": "soft", "smtp_code": 452},
                 "details": {"subject": "ünï-çødé", "tags": ["a", "b"], "n": 1.5,
                             "none": None}}, TODAY),
        "c-1": ({"event_id": "c-1", "type": "email.opened"}, TODAY),  # no source
    }
    with psycopg.connect(dsn, autocommit=True) as pg:
        for i, (eid, (ev, day)) in enumerate(events.items()):
            stored(pg, eid, day, 30 + i, ev)
        assert pg.execute("select distinct pg_typeof(event)::text"
                          " from mh_event_claims").fetchall() == [("jsonb",)]
    assert f"applied {MIGRATION[:-4]}" in migrate(ROOT / "migrations")
    with psycopg.connect(dsn, autocommit=True) as pg:
        types = pg.execute("select distinct pg_typeof(event)::text from mh_event_claims").fetchall()
        assert types == [("json",)]
        after = {r[0]: (r[1], r[2]) for r in pg.execute(
            "select event_id, event, source from mh_event_claims")}
        assert after == {eid: (ev, ev.get("source")) for eid, (ev, _) in events.items()}
        # A plain column now, which the worker writes: no longer computed from the event.
        assert pg.execute("select attgenerated from pg_attribute where attrelid ="
                          " 'mh_event_claims'::regclass and attname = 'source'").fetchone() == ("",)
        # The week's partition made later takes its rows from the default one, source too.
        assert pg.execute("select mh_event_claims_create_partition(%s)", (old_day,)).fetchone()[0]
        moved = pg.execute("select tableoid::regclass::text, source from mh_event_claims"
                           " where event_id = 'a-2'").fetchone()
        assert moved[0] != "mh_event_claims_default" and moved[1] == "ivy-b"
        # The soft-bounce rule's test reads the class out of the json.
        soft = dict(pg.execute("select event_id, mh_is_soft(event_type, event, false)"
                               " from mh_event_claims").fetchall())
        assert soft == {"a-1": False, "a-2": False, "b-1": True, "c-1": False}
        pg.execute("update mh_event_claims set event = jsonb_set(event::jsonb,"
                   " '{bounce,class}', '\"hard\"')::json where event_id = 'b-1'")
        assert pg.execute("select mh_is_soft(event_type, event, false) from mh_event_claims"
                          " where event_id = 'b-1'").fetchone()[0] is False


def claim_statement() -> str:
    """The worker's claim statement, read from pipeline/dedup.c, with psycopg's %s for
    its parameters."""
    src = (ROOT / "pipeline" / "dedup.c").read_text()
    m = re.search(r"static const char insert_sql\[\] =((?:\s*\"[^\"]*\")+);", src)
    return re.sub(r"\$(\d+)", "%s", "".join(re.findall(r'"([^"]*)"', m.group(1))))


def claim_params(events: list[dict], offset: int = 50) -> tuple:
    """The statement's arrays for ivymail events of tenant acme, in the worker's order,
    the records at offset, offset + 1, ... of partition 3."""
    n = len(events)
    return (list(range(n)), ["acme"] * n, ["ivymail"] * n, [e["event_id"] for e in events],
            ["mailhook.raw"] * n, [3] * n, list(range(offset, offset + n)),
            [json.dumps(e, separators=(",", ":")) for e in events],
            [e["type"] for e in events], [e.get("recipient") for e in events],
            [e.get("message_id") for e in events], [e.get("occurred_at") for e in events],
            [e.get("source") for e in events],
            [key("acme", "ivymail", e["event_id"]) for e in events])


def test_claim_statement_fills_the_search_columns_from_its_arrays(db):
    """The worker's claim statement (its SQL read from pipeline/dedup.c, psycopg's arrays
    for its parameters) on one event with every search field and one with none."""
    dsn, migrate = db
    migrate(ROOT / "migrations")
    sql = claim_statement()
    full = {"event_id": "f-1", "type": "email.delivered", "recipient": "f@example.com",
            "message_id": "<m-1@example.com>", "occurred_at": "2026-02-25T12:00:00.000Z",
            "source": "ivy-a"}
    bare = {"event_id": "f-2", "type": "email.opened"}
    events = [full, bare]
    params = claim_params(events)
    texts = params[7]
    with psycopg.connect(dsn, autocommit=True) as pg:
        claimed = sorted(r[0] for r in pg.execute(sql, params).fetchall())
        assert claimed == [0, 1]
        rows = {r[0]: r[1:] for r in pg.execute(
            "select event_id, event_type, recipient, message_id,"
            " to_char(occurred_at at time zone 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"'),"
            " source, event::text, log_at = claimed_at from mh_event_claims")}
        assert rows["f-1"] == ("email.delivered", "f@example.com", "<m-1@example.com>",
                               "2026-02-25T12:00:00.000Z", "ivy-a", texts[0], False)
        # No time of its own: the log orders it by its claim time.
        assert rows["f-2"] == ("email.opened", None, None, None, None, texts[1], True)
        # The same events again claim nothing and log nothing twice.
        assert pg.execute(sql, params).fetchall() == []
        assert pg.execute("select count(*) from mh_event_claims").fetchone()[0] == 2

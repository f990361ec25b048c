"""The pipeline end to end, on real Kafka and PostgreSQL: a signed webhook goes through
mailhook-ingest to the raw topic, through the workers' dedup in PostgreSQL, and comes
out once as a canonical event on the events topic."""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import time
from datetime import datetime, timezone
from pathlib import Path

import jsonschema
import pytest
import requests

import helpers

ROOT = Path(__file__).resolve().parents[2]
SCHEMA_PATH = ROOT / "schema" / "mailhook.event.v1.json"
SAMPLES = ROOT / "tests" / "fixtures"


def _schema():
    if not SCHEMA_PATH.exists():
        return None
    return json.loads(SCHEMA_PATH.read_text())


def assert_canonical(event: dict) -> None:
    """Every emitted event validates against the shipped JSON Schema."""
    schema = _schema()
    assert schema is not None, f"{SCHEMA_PATH} is missing"
    jsonschema.validate(event, schema)


def unique_bounce(recipient: str, message_id: str) -> dict:
    return {
        "event": "bounced",
        "message_id": message_id,
        "to": recipient,
        "bounce_type": "Permanent",
        "bounce_subtype": "General",
        "diagnostic_code": "smtp; 550 5.1.1 user unknown",
        "timestamp": "2026-02-25T12:00:00Z",
    }


def uid() -> str:
    return os.urandom(6).hex()


def events_for(mailhook, before: dict, n: int, settle: float = 0.0, timeout: float = 60.0):
    return mailhook.consume("events", from_offsets=before, expect_n=n, settle=settle,
                            timeout=timeout)


def test_ivymail_bounce_becomes_one_canonical_event(mailhook, pg):
    rid = uid()
    body = unique_bounce(f"Invalid.{rid}@Example.com", f"msg-{rid}")
    before = mailhook.end_offsets("events")
    raw_before = mailhook.end_offsets("raw")

    r = mailhook.post("ivymail", body)
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "accepted"
    request_id = r.headers["X-Request-Id"]

    # The raw record: body byte for byte, mailhook's headers, the signature forwarded.
    raw = mailhook.consume("raw", from_offsets=raw_before, expect_n=1, timeout=20)
    assert len(raw) == 1
    assert raw[0].raw_value == helpers._bytes(body)
    h = raw[0].headers
    assert h["mh-source"] == "ivymail" and h["mh-provider"] == "ivymail"
    assert h["mh-tenant"] == mailhook.sources["ivymail"]["tenant"]
    assert h["mh-request-id"] == request_id
    assert h["mh-received-at"].endswith("Z") and len(h["mh-received-at"]) == 24
    assert "x-ivymail-signature" in h
    assert h["content-type"] == "application/json"

    got = events_for(mailhook, before, 1, settle=2)
    assert len(got) == 1, got
    key, headers, ev = got[0]
    assert_canonical(ev)
    assert key == f"invalid.{rid}@example.com"
    assert ev["type"] == "email.bounced"
    assert ev["provider"] == "ivymail" and ev["provider_event"] == "bounced"
    assert ev["recipient"] == f"invalid.{rid}@example.com"
    assert ev["message_id"] == f"msg-{rid}"
    assert ev["occurred_at"] == "2026-02-25T12:00:00.000Z"
    assert ev["received_at"] == h["mh-received-at"]
    assert ev["bounce"]["class"] == "hard"
    assert ev["bounce"]["category"] == "invalid_recipient"
    assert ev["bounce"]["enhanced_code"] == "5.1.1"
    assert ev["bounce"]["smtp_code"] == 550
    assert ev["raw"] == {"topic": mailhook.topics["raw"], "partition": raw[0].partition,
                         "offset": raw[0].offset}
    # CloudEvents binary mode.
    assert headers["ce_specversion"] == "1.0"
    assert headers["ce_id"] == ev["event_id"]
    assert headers["ce_type"] == "email.bounced"
    assert headers["ce_time"] == ev["occurred_at"]
    assert headers["content-type"] == "application/json"

    # The event log row: its search columns from the event, and the event itself as the
    # very text of the record on the events topic (json, migrations/0010).
    row = pg.execute("select raw_partition, raw_offset, event_type, recipient, message_id,"
                     " occurred_at, event::text, pg_typeof(event)::text, source"
                     " from mh_event_claims where event_id = %s", (ev["event_id"],)).fetchall()
    assert len(row) == 1
    assert (row[0][0], row[0][1]) == (raw[0].partition, raw[0].offset)
    assert row[0][2] == "email.bounced"
    assert row[0][3] == f"invalid.{rid}@example.com"
    assert row[0][4] == f"msg-{rid}"
    assert row[0][5] == datetime(2026, 2, 25, 12, 0, tzinfo=timezone.utc)
    assert row[0][7] == "json"
    assert row[0][6].encode() == got[0].raw_value
    assert row[0][8] == ev["source"] == "ivymail"


MAILDOG_CASES = [
    ("delivered", "email.delivered"),
    ("hard_bounce", "email.bounced"),
    ("soft_bounce", "email.delivery_delayed"),
    ("spam_complaint", "email.complained"),
    ("opened", "email.opened"),
    ("clicked", "email.clicked"),
    ("unsubscribed", "email.unsubscribed"),
    ("mystery_event", "other"),
]


def test_maildog_events_normalize(mailhook):
    rid = uid()
    before = mailhook.end_offsets("events")
    sent = {}
    for i, (name, _) in enumerate(MAILDOG_CASES):
        body = {"event": name, "timestamp": f"2026-06-15T10:32:{i:02d}Z",
                "message_id": f"md-{rid}", "recipient": f"user.{rid}@example.com"}
        if "bounce" in name:
            body.update({"reason": "550 5.1.1 The email account that you tried to reach "
                                   "does not exist", "smtp_code": 550})
        if name == "soft_bounce":
            body.update({"reason": "452 4.2.2 The email account that you tried to reach is "
                                   "over quota", "smtp_code": 452})
        if name == "clicked":
            body["url"] = "https://example.com/offer"
        r = mailhook.post("maildog", body)
        assert r.status_code == 200, r.text
        sent[name] = body

    got = events_for(mailhook, before, len(MAILDOG_CASES), settle=2)
    assert len(got) == len(MAILDOG_CASES)
    by_event = {rec.value["provider_event"]: rec.value for rec in got}
    for name, want in MAILDOG_CASES:
        ev = by_event[name]
        assert_canonical(ev)
        assert ev["type"] == want, (name, ev)
        assert ev["provider"] == "hmac" and ev["source"] == "maildog"
        assert ev["recipient"] == f"user.{rid}@example.com"
    assert by_event["hard_bounce"]["bounce"]["class"] == "hard"
    assert by_event["hard_bounce"]["bounce"]["category"] == "invalid_recipient"
    assert by_event["soft_bounce"]["bounce"]["class"] == "soft"
    assert by_event["soft_bounce"]["bounce"]["category"] == "mailbox_full"
    assert by_event["clicked"]["click"]["url"] == "https://example.com/offer"
    assert len({e["event_id"] for e in by_event.values()}) == len(MAILDOG_CASES)


def test_claim_keys_are_the_databases_own_for_any_text(mailhook, pg):
    """The worker computes each claim's key (dedup_scope.h); the database's mh_claim_key,
    which retention and the log's triggers use, finds that same claim, for a platform
    provider's derived id and for a per-source provider's id outside ASCII."""
    rid = uid()
    before = mailhook.end_offsets("events")
    r = mailhook.post("ivymail", unique_bounce(f"key.{rid}@example.com", f"key-{rid}"))
    assert r.status_code == 200, r.text
    dog_id = f"\u00e9v\u00e9-{rid}-\U0001F4E7"
    r = mailhook.post("maildog", {"id": dog_id, "event": "delivered",
                                  "timestamp": "2026-06-15T10:32:00Z",
                                  "message_id": f"key-{rid}", "recipient": f"key.{rid}@example.com"})
    assert r.status_code == 200, r.text
    got = events_for(mailhook, before, 2, settle=2)
    assert sorted(rec.value["source"] for rec in got) == ["ivymail", "maildog"]
    for rec in got:
        ev = rec.value
        if ev["source"] == "maildog":
            assert ev["event_id"] == dog_id
        rows = pg.execute(
            "select l.provider, c.raw_partition, c.raw_offset from mh_event_claims l"
            " join mh_claims c on c.claim_key = mh_claim_key(l.tenant, l.provider, l.event_id)"
            " and c.claim_day = l.claim_day where l.event_id = %s", (ev["event_id"],)).fetchall()
        scope = "ivymail" if ev["source"] == "ivymail" else "hmac/maildog"
        assert rows == [(scope, ev["raw"]["partition"], ev["raw"]["offset"])]


def test_duplicate_delivery_gives_one_event(mailhook, pg):
    rid = uid()
    body = unique_bounce(f"dup.{rid}@example.com", f"dup-{rid}")
    before = mailhook.end_offsets("events")
    raw_before = mailhook.end_offsets("raw")
    # The provider retries: the same event arrives three times, each acknowledged.
    for _ in range(3):
        r = mailhook.post("ivymail", body)
        assert r.status_code == 200, r.text
    raw = mailhook.consume("raw", from_offsets=raw_before, expect_n=3, timeout=20)
    assert len(raw) == 3

    got = events_for(mailhook, before, 1, settle=5)
    assert len(got) == 1, [g.value for g in got]
    n = pg.execute("select count(*) from mh_event_claims where event_id = %s",
                   (got[0].value["event_id"],)).fetchone()[0]
    assert n == 1


def test_bad_signature_is_401_and_publishes_nothing(mailhook):
    rid = uid()
    body = unique_bounce(f"forged.{rid}@example.com", f"forged-{rid}")
    raw_before = mailhook.end_offsets("raw")
    src = mailhook.sources["ivymail"]

    wrong_key = mailhook.post("ivymail", body, secret=helpers.new_secret())
    assert wrong_key.status_code == 401
    assert "signature" in wrong_key.json()["error"]

    missing = mailhook.post("ivymail", body, sign=False)
    assert missing.status_code == 401

    headers = helpers.signature_headers(src, body)
    tampered = helpers.post(mailhook.base_url, "ivymail",
                            json.dumps(body).replace("forged", "f0rged"), headers)
    assert tampered.status_code == 401

    garbage = mailhook.post("ivymail", body, headers={"x-ivymail-signature": "zz-not-hex"})
    assert garbage.status_code == 401

    unknown = mailhook.post("maildog", body, base_url=mailhook.base_url,
                            headers={}, sign=False)
    assert unknown.status_code == 401
    nosuch = helpers.post(mailhook.base_url, "no-such-source", body)
    assert nosuch.status_code == 404

    time.sleep(2)
    assert mailhook.end_offsets("raw") == raw_before, "a rejected request reached Kafka"


def test_limits_and_methods(mailhook):
    raw_before = mailhook.end_offsets("raw")
    big = b'{"event":"delivered","pad":"' + b"x" * (2 * 1024 * 1024) + b'"}'
    r = mailhook.post("ivymail", big)
    assert r.status_code == 413
    r = requests.get(mailhook.url("ivymail"), timeout=5)
    assert r.status_code == 405
    assert requests.get(f"{mailhook.base_url}/healthz", timeout=5).status_code == 200
    assert requests.get(f"{mailhook.base_url}/readyz", timeout=5).status_code == 200
    metrics = requests.get(f"{mailhook.base_url}/metrics", timeout=5).text
    assert "mailhook_ingest_requests_total" in metrics
    assert mailhook.end_offsets("raw") == raw_before


def test_malformed_body_goes_to_dlq_and_pipeline_goes_on(mailhook):
    rid = uid()
    dlq_before = mailhook.end_offsets("dlq")
    before = mailhook.end_offsets("events")
    bad = b'{"event": "delivered", "to": "x@example.com", oops'
    r = mailhook.post("ivymail", bad)
    assert r.status_code == 200, r.text  # authentic: accepted, then dead-lettered

    dead = mailhook.consume("dlq", from_offsets=dlq_before, expect_n=1, timeout=60)
    assert len(dead) == 1
    assert dead[0].raw_value == bad
    assert "invalid JSON" in dead[0].headers["mh-dlq-reason"]
    assert dead[0].headers["mh-source"] == "ivymail"
    assert dead[0].headers["mh-raw-topic"] == mailhook.topics["raw"]

    good = unique_bounce(f"after.{rid}@example.com", f"after-{rid}")
    assert mailhook.post("ivymail", good).status_code == 200
    got = events_for(mailhook, before, 1, settle=1)
    assert [g.value["message_id"] for g in got] == [f"after-{rid}"]
    assert all(w.alive() for w in mailhook.workers())


def test_sign_cli_posts_a_valid_request(mailhook, tmp_path):
    rid = uid()
    before = mailhook.end_offsets("events")
    for source, body in (("ivymail", unique_bounce(f"cli.{rid}@example.com", f"cli-{rid}")),
                         ("maildog", {"event": "delivered", "message_id": f"cli-{rid}",
                                      "recipient": f"cli.{rid}@example.com",
                                      "timestamp": "2026-06-15T10:00:00Z"})):
        path = tmp_path / f"{source}.json"
        path.write_text(json.dumps(body))
        cmd = mailhook.cli("sign", "--source", source, "--url", mailhook.url(source),
                           str(path)).stdout.decode().strip()
        assert cmd.startswith("curl ")
        assert mailhook.sources[source]["secret"] not in cmd
        out = subprocess.run(["bash", "-c", cmd + " -w '\\n%{http_code}'"],
                             capture_output=True, text=True, timeout=30)
        assert out.stdout.strip().endswith("200"), out.stdout + out.stderr
    got = events_for(mailhook, before, 2, settle=1)
    assert len(got) == 2


def test_reload_rotates_secrets_and_disables_sources(mailhook):
    """SIGHUP: a second secret becomes valid, a disabled source answers 404."""
    rid = uid()
    body = unique_bounce(f"rot.{rid}@example.com", f"rot-{rid}")
    new = helpers.new_secret()
    assert mailhook.post("ivymail", body, secret=new).status_code == 401

    sections = json.loads(json.dumps(mailhook.sections))
    old = sections["source.ivymail"]["secret"]
    rotated = mailhook.workdir / "rotated.ini"
    # Both secrets active: configparser cannot write a repeated key, so add it by hand.
    helpers.write_ini(rotated, sections)
    text = rotated.read_text().replace(f"secret = {old}\n", f"secret = {old}\nsecret = {new}\n", 1)
    text = text.replace("[source.maildog]\n", "[source.maildog]\nenabled = false\n", 1)
    mailhook.config_path.write_text(text)
    try:
        mailhook.procs["ingest"].send_signal(signal.SIGHUP)
        helpers.wait_for(lambda: mailhook.post("ivymail", body, secret=new).status_code == 200,
                         timeout=10, what="the rotated secret to be accepted")
        assert mailhook.post("ivymail", body, secret=old).status_code == 200
        assert mailhook.post("maildog", {"event": "delivered"}).status_code == 404
    finally:
        helpers.write_ini(mailhook.config_path, mailhook.sections)
        mailhook.procs["ingest"].send_signal(signal.SIGHUP)
        helpers.wait_for(lambda: mailhook.post("maildog", {"event": "x"}, sign=False).status_code == 401,
                         timeout=10, what="the original config to be back")


def test_bad_config_names_file_and_line(mailhook, tmp_path):
    bad = tmp_path / "bad.ini"
    bad.write_text("[ingest]\nlisten = 127.0.0.1:1\n\n[source.x]\nprovider = ivymail\n"
                   "secret = s\nsignature_header = y\n")
    for program in ("mailhook-ingest", "mailhook-worker"):
        out = subprocess.run([str(helpers.build_dir() / program), "--config", str(bad)],
                             capture_output=True, text=True, timeout=20)
        assert out.returncode != 0
        assert f"{bad}:7:" in out.stderr and "signature_header" in out.stderr, out.stderr
    for program in ("mailhook-ingest", "mailhook-worker", "mailhook"):
        out = subprocess.run([str(helpers.build_dir() / program), "--version"],
                             capture_output=True, text=True, timeout=20)
        assert out.returncode == 0 and out.stdout.startswith(program + " ")
        out = subprocess.run([str(helpers.build_dir() / program), "--help"],
                             capture_output=True, text=True, timeout=20)
        assert out.returncode == 0 and "usage:" in out.stdout


def test_migrate_is_idempotent_and_concurrent_safe(mailhook, pg):
    procs = [subprocess.Popen([str(helpers.build_dir() / "mailhook"), "--config",
                               str(mailhook.config_path), "migrate"], env=mailhook.env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE)
             for _ in range(3)]
    for p in procs:
        out, err = p.communicate(timeout=60)
        assert p.returncode == 0, err
        assert b"0 applied" in out
    files = sorted(p.stem for p in (ROOT / "migrations").glob("[0-9][0-9][0-9][0-9]_*.sql"))
    rows = [r[0] for r in pg.execute("select version from schema_migrations order by version")]
    assert rows == files

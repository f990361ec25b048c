"""Every provider's fixtures through the real pipeline.

For each provider a source named after it (tenant "test", as the unit-test fixtures use)
is configured on an ingest + worker of this module's own, as the provider's
tests/fixtures/<provider>/source.ini describes it (provider_sources.py). Every case is
signed with `mailhook sign` (so signing works for every provider's source) and posted:
cases with expected.json must come out on the events topic exactly as the golden file
says (received_at and the raw record's position aside, which depend on the run); cases
with error.txt must land on the dead-letter topic with that reason. An event that an
earlier case already carried is a provider duplicate and must not come out again."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

import helpers
import provider_sources
from helpers import Mailhook
from test_pipeline import assert_canonical

PROVIDERS = provider_sources.providers()
RUN_DEPENDENT = ("received_at", "raw")


def _normalize(ev: dict) -> str:
    ev = {k: v for k, v in ev.items() if k not in RUN_DEPENDENT}
    return json.dumps(ev, sort_keys=True)


@pytest.fixture(scope="module")
def golden(stack, session_id, e2e_db, tmp_path_factory):
    work = tmp_path_factory.mktemp("golden")
    topics = {role: f"mailhook.{role}.golden-{session_id}"
              for role in ("raw", "events", "dlq", "suppressions")}
    listen = f"127.0.0.1:{helpers.free_port()}"
    sources, signing_keys = provider_sources.sources(provider_sources.make_keys(work / "keys"),
                                                     listen)
    sections = {
        "ingest": {"listen": listen, "raw_topic": topics["raw"]},
        "worker": {"group_id": f"mailhook-golden-{session_id}", "raw_topic": topics["raw"],
                   "events_topic": topics["events"], "dlq_topic": topics["dlq"],
                   "suppressions_topic": topics["suppressions"]},
        "postgres": {"dsn": e2e_db},
        "kafka": {"bootstrap.servers": stack.brokers},
    }
    for name, keys in sources.items():
        sections[f"source.{name}"] = keys
    path = work / "mailhook.ini"
    helpers.write_ini(path, sections)
    env = dict(os.environ, MAILHOOK_KAFKA_BROKERS=stack.brokers, MAILHOOK_PG_DSN=e2e_db)
    mh = Mailhook(path, sections, env, work, topics, sources, stack.brokers, e2e_db)
    mh.cli("topics")
    mh.cli("migrate")
    try:
        mh.start_ingest()
        mh.start_worker(1)
        yield mh, signing_keys
    finally:
        crashed = mh.crashed()
        mh.stop_all()
        helpers.delete_topics(topics.values(), stack.brokers)
        assert not crashed, "golden pipeline process exited: " + ", ".join(
            f"{p.name}\n{p.tail(40)}" for p in crashed)


def _post_signed(mh: Mailhook, keys: dict[str, Path], source: str,
                 body_file: Path) -> tuple[int, str]:
    args = ["sign", "--source", source, "--url", mh.url(source)]
    if source in keys:
        args += ["--key", str(keys[source])]
    cmd = mh.cli(*args, str(body_file)).stdout.decode().strip()
    out = subprocess.run(["bash", "-c", cmd + " -D - -o /dev/null -w '\\n%{http_code}'"],
                         capture_output=True, text=True, timeout=30)
    lines = out.stdout.strip().splitlines()
    request_id = next((l.split(":", 1)[1].strip() for l in lines
                       if l.lower().startswith("x-request-id:")), "")
    return int(lines[-1]), request_id


@pytest.mark.parametrize("provider", PROVIDERS)
def test_provider_fixtures_through_the_pipeline(golden, provider):
    mh, keys = golden
    events_before = mh.end_offsets("events")
    dlq_before = mh.end_offsets("dlq")
    raw_before = mh.end_offsets("raw")

    posted = []  # (case, request id)
    for case in provider_sources.cases(provider):
        status, rid = _post_signed(mh, keys, provider, case / "body.json")
        assert status == 200, f"{case.name}: ingest answered {status}"
        posted.append((case, rid))

    raw = mh.consume("raw", from_offsets=raw_before, expect_n=len(posted), timeout=60)
    where = {r.headers["mh-request-id"]: (r.partition, r.offset) for r in raw}
    assert len(where) == len(posted)

    seen_ids: set[str] = set()
    want: dict[tuple[int, int], list[str]] = {}
    want_dead: dict[tuple[int, int], str] = {}
    for case, rid in posted:
        pos = where[rid]
        if (case / "error.txt").exists():
            want_dead[pos] = (case / "error.txt").read_text().strip()
            continue
        events = json.loads((case / "expected.json").read_text())
        fresh = []
        for ev in events:
            if ev["event_id"] in seen_ids:
                continue  # a provider duplicate of an earlier case: dedup drops it
            seen_ids.add(ev["event_id"])
            fresh.append(_normalize(ev))
        want[pos] = sorted(fresh)

    n_events = sum(len(v) for v in want.values())
    got = mh.consume("events", from_offsets=events_before, expect_n=n_events, settle=3,
                     timeout=120)
    by_pos: dict[tuple[int, int], list[str]] = {}
    for rec in got:
        ev = rec.value
        assert_canonical(ev)
        assert rec.key == (ev.get("recipient") or ev["event_id"])
        assert ev["raw"]["topic"] == mh.topics["raw"]
        by_pos.setdefault((ev["raw"]["partition"], ev["raw"]["offset"]), []).append(_normalize(ev))
    by_pos = {k: sorted(v) for k, v in by_pos.items()}
    names = {where[rid]: case.name for case, rid in posted}
    for pos, expected in want.items():
        assert by_pos.get(pos, []) == expected, f"{provider}/{names[pos]}"
    extra = set(by_pos) - set(want)
    assert not extra, f"events from records that should have none: {[names.get(p) for p in extra]}"

    if want_dead:
        dead = mh.consume("dlq", from_offsets=dlq_before, expect_n=len(want_dead), settle=1,
                          timeout=60)
        reasons = {(int(d.headers["mh-raw-partition"]), int(d.headers["mh-raw-offset"])):
                   d.headers["mh-dlq-reason"] for d in dead}
        assert set(reasons) == set(want_dead)
        for pos, needle in want_dead.items():
            assert needle in reasons[pos], f"{provider}/{names[pos]}: {reasons[pos]!r}"


def test_mandrill_url_check_and_empty_batch(golden):
    """Adding a Mandrill webhook: an unsigned HEAD gets 200 and publishes nothing; an
    unsigned empty batch gets 200 and publishes nothing either; an unsigned batch with
    events is refused. Other providers still answer HEAD with 405."""
    import requests

    mh, _ = golden
    raw_before = mh.end_offsets("raw")
    assert requests.head(mh.url("mandrill"), timeout=5).status_code == 200
    assert requests.head(mh.url("ivymail"), timeout=5).status_code == 405
    assert mh.end_offsets("raw") == raw_before
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    r = requests.post(mh.url("mandrill"), data="mandrill_events=%5B%5D", headers=form, timeout=10)
    assert r.status_code == 200
    r = requests.post(mh.url("mandrill"), data='mandrill_events=%5B%7B%22event%22%3A%22send%22%7D%5D',
                      headers=form, timeout=10)
    assert r.status_code == 401
    assert mh.end_offsets("raw") == raw_before


def test_mailersend_test_ping_is_answered_not_published(golden):
    """Saving a MailerSend webhook: its ping, signed with the key MailerSend publishes, gets
    200 and is not published; the same key on any other body is refused."""
    import hashlib
    import hmac

    import requests

    mh, _ = golden
    test_key = b"test_Am3L1GuOIc4blLUuHqAPxxwkZaJyEk8G"  # printed in MailerSend's docs

    def post(body: bytes) -> int:
        sig = hmac.new(test_key, body, hashlib.sha256).hexdigest()
        return requests.post(mh.url("mailersend"), data=body, timeout=10,
                             headers={"Signature": sig,
                                      "Content-Type": "application/json"}).status_code

    raw_before = mh.end_offsets("raw")
    assert post(b'{"type":"webhook.test","message":"This is a ping test message",'
                b'"created_at":"2025-08-05T21:20:00.577080Z"}') == 200
    assert post(b'{"type":"activity.hard_bounced","data":{"id":"x"}}') == 401
    assert mh.end_offsets("raw") == raw_before


def test_acs_event_grid_handshakes(golden):
    """Creating an Event Grid subscription: its validation event, with the URL's secret,
    is answered 200 with the validation code and publishes nothing; without the secret
    it is refused. The CloudEvents OPTIONS check gets WebHook-Allowed-Origin; other
    providers still answer OPTIONS with 405."""
    import urllib.parse

    import requests

    mh, _ = golden
    secret = mh.sources["acs"]["secret"]
    url = mh.url("acs") + "?code=" + urllib.parse.quote(secret, safe="")
    raw_before = mh.end_offsets("raw")
    validation = [{
        "id": "2d1781af-3a4c-4d7c-bd0c-e34b19da4e66",
        "topic": "/subscriptions/x/resourceGroups/mail/providers/microsoft.communication/"
                 "communicationservices/acs-mail",
        "subject": "",
        "data": {"validationCode": "512d38b6-c7b8-40c8-89fe-f46f9e9622b6",
                 "validationUrl": "https://rp-eastus2.eventgrid.azure.net/validate"},
        "eventType": "Microsoft.EventGrid.SubscriptionValidationEvent",
        "eventTime": "2025-03-04T10:00:00Z", "metadataVersion": "1", "dataVersion": "2",
    }]
    headers = {"aeg-event-type": "SubscriptionValidation", "Content-Type": "application/json"}
    r = requests.post(url, json=validation, headers=headers, timeout=10)
    assert r.status_code == 200
    assert r.json() == {"validationResponse": "512d38b6-c7b8-40c8-89fe-f46f9e9622b6"}
    r = requests.post(mh.url("acs") + "?code=wrong", json=validation, headers=headers, timeout=10)
    assert r.status_code == 401
    assert "validationResponse" not in r.text

    r = requests.options(url, headers={"WebHook-Request-Origin": "eventgrid.azure.net",
                                       "WebHook-Request-Rate": "120"}, timeout=10)
    assert r.status_code == 200
    assert r.headers.get("WebHook-Allowed-Origin") == "eventgrid.azure.net"
    assert r.headers.get("WebHook-Allowed-Rate") == "*"
    r = requests.options(mh.url("acs"), headers={"WebHook-Request-Origin": "eventgrid.azure.net"},
                         timeout=10)
    assert r.status_code == 401
    assert "WebHook-Allowed-Origin" not in r.headers
    assert requests.options(mh.url("ivymail"), timeout=5).status_code == 405
    assert mh.end_offsets("raw") == raw_before

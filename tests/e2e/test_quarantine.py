"""Quarantine: a request refused for a signature mismatch is kept on the quarantine topic
for a source with quarantine = true (bounded by a rate limit and a size cap), the answer
staying 401; once the config has the secret the provider signs with, `mailhook quarantine
reverify` publishes it to the raw topic as ingest would have, and the worker emits its
event exactly once, however often reverify runs."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import signal
import time

import pytest
import requests

import helpers
from test_pipeline import unique_bounce, uid

SETTLE = 3.0  # seconds to wait for a record that must not come
RATE, BURST = 1, 3  # [ingest] quarantine_rate / quarantine_burst of this pipeline
MAX_BYTES = 4096    # [ingest] quarantine_max_bytes


def whsec() -> str:
    return "whsec_" + base64.b64encode(os.urandom(24)).decode()


def stdwh_headers(secret: str, body: bytes, ts: int | None = None) -> dict[str, str]:
    """Standard Webhooks headers signing body with secret."""
    key = base64.b64decode(secret.removeprefix("whsec_"))
    msg_id, ts = f"msg_{uid()}", ts or int(time.time())
    mac = hmac.new(key, f"{msg_id}.{ts}.".encode() + body, hashlib.sha256).digest()
    return {"webhook-id": msg_id, "webhook-timestamp": str(ts),
            "webhook-signature": "v1," + base64.b64encode(mac).decode()}


@pytest.fixture(scope="module")
def qmh(mailhook):
    """helpers.Mailhook with a pipeline of its own: sources q-on (quarantine on), q-off
    (off), q-rate (on, for the rate limit) and std-q (Standard Webhooks, 1 s timestamp
    tolerance, quarantine on); .quarantine names its quarantine topic."""
    tag = uid()
    topics = {role: f"{t}-quarantine-{tag}" for role, t in mailhook.topics.items()}
    quarantine = f"mailhook.quarantine.e2e-{tag}"
    tenant = f"q-{tag}"
    sources = {
        "q-on": {"provider": "ivymail", "tenant": tenant, "secret": helpers.new_secret(),
                 "quarantine": "true"},
        "q-off": {"provider": "ivymail", "tenant": tenant, "secret": helpers.new_secret()},
        "q-rate": {"provider": "ivymail", "tenant": tenant, "secret": helpers.new_secret(),
                   "quarantine": "true"},
        "std-q": {"provider": "standard", "tenant": tenant, "secret": whsec(),
                  "timestamp_tolerance_s": "1", "quarantine": "true"},
    }
    sections = helpers.pipeline_sections(topics, f"mailhook-worker-quarantine-{tag}",
                                         mailhook.dsn, mailhook.brokers)
    sections["ingest"].update({"quarantine_topic": quarantine, "quarantine_rate": str(RATE),
                               "quarantine_burst": str(BURST),
                               "quarantine_max_bytes": str(MAX_BYTES)})
    for name, keys in sources.items():
        sections[f"source.{name}"] = keys
    path = mailhook.workdir / "quarantine.ini"
    helpers.write_ini(path, sections)

    mh = helpers.Mailhook(path, sections, mailhook.env, mailhook.workdir, topics, sources,
                          mailhook.brokers, mailhook.dsn)
    mh.quarantine = quarantine
    try:
        out = mh.cli("topics").stdout.decode()
        assert quarantine in out, out
        mh.start_ingest("ingest-quarantine")
        mh.start_worker(13)
        yield mh
    finally:
        crashed = mh.stop_all()
        helpers.delete_topics([*topics.values(), quarantine], mailhook.brokers)
    assert not crashed, "exited unexpectedly: " + ", ".join(
        f"{p.name} (status {p.returncode()})\n{p.tail()}" for p in crashed)


def rewrite(mh, source: str, **keys: str) -> None:
    """Changes [source.NAME] keys in the config file (the CLI reads it on each run)."""
    mh.sections[f"source.{source}"].update(keys)
    mh.sources[source].update(keys)
    helpers.write_ini(mh.config_path, mh.sections)


def reverify(mh, *args: str) -> dict:
    return json.loads(mh.cli("quarantine", "reverify", "--json", *args).stdout)


def metric(mh, name: str) -> float:
    text = requests.get(f"{mh.base_url}/metrics", timeout=5).text
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[-1])
    raise AssertionError(f"{name} not in /metrics:\n{text}")


def test_mismatch_is_kept_then_reverified_into_one_event(qmh):
    q_before = helpers.end_offsets(qmh.quarantine, qmh.brokers)
    raw_before = qmh.end_offsets("raw")
    events_before = qmh.end_offsets("events")

    # The provider signs with a secret ingest does not know yet: 401, nothing on raw,
    # the request kept on the quarantine topic.
    rotated = helpers.new_secret()
    mark = uid()
    body = unique_bounce(f"rotated.{mark}@example.com", f"msg-{mark}")
    r = qmh.post("q-on", body, secret=rotated)
    assert r.status_code == 401, r.text
    rid = r.headers["X-Request-Id"]

    # A source with quarantine off keeps nothing.
    r_off = qmh.post("q-off", unique_bounce(f"off.{mark}@example.com", f"off-{mark}"),
                     secret=rotated)
    assert r_off.status_code == 401, r_off.text

    kept = helpers.consume(qmh.quarantine, from_offsets=q_before, expect_n=1, settle=SETTLE,
                           brokers_=qmh.brokers)
    assert [k.headers["mh-request-id"] for k in kept] == [rid], kept
    rec = kept[0]
    assert rec.key == rid and rec.raw_value == helpers._bytes(body)
    assert rec.headers["mh-source"] == "q-on" and rec.headers["mh-provider"] == "ivymail"
    assert rec.headers["mh-request-uri"] == "/v1/webhooks/q-on"
    assert "signature" in rec.headers["mh-reject-reason"]
    req_headers = {k.lower(): v for k, v in json.loads(rec.headers["mh-request-headers"])}
    assert req_headers["x-ivymail-signature"] == helpers.sign(body, rotated, "hex")
    assert qmh.consume("raw", from_offsets=raw_before, settle=SETTLE, timeout=SETTLE) == []
    helpers.wait_for(lambda: metric(qmh, "mailhook_ingest_quarantined_total") >= 1, 10,
                     what="mailhook_ingest_quarantined_total")

    listed = json.loads(qmh.cli("quarantine", "list", "--source", "q-on", "--json").stdout)
    item = next(i for i in listed["items"] if i["request_id"] == rid)
    assert item["source"] == "q-on" and item["body_bytes"] == len(helpers._bytes(body))
    assert "x-ivymail-signature" in item["request_headers"]  # names only, never values
    assert helpers.sign(body, rotated, "hex") not in json.dumps(listed)

    # A dry run before the fix finds it still failing and remembers nothing.
    dry = reverify(qmh, "--dry-run")
    assert dry["verified"] == 0 and dry["still_failing"] == 1, dry

    # The config learns the new secret (ingest reloads on SIGHUP) ...
    rewrite(qmh, "q-on", secret=rotated)
    qmh.procs["ingest-quarantine"].send_signal(signal.SIGHUP)
    # The per-source counters start again from 0 with the reloaded config.
    q_on_401 = 'mailhook_ingest_source_responses_total{source="q-on",code="401"}'
    helpers.wait_for(lambda: metric(qmh, q_on_401) == 0, 20, what="ingest reloaded")
    fresh = unique_bounce(f"fresh.{mark}@example.com", f"fresh-{mark}")
    assert qmh.post("q-on", fresh).status_code == 200

    # ... and reverify publishes the kept request as ingest would have.
    first = reverify(qmh)
    assert first["verified"] == 1 and first["published"] == 1, first
    assert first["still_failing"] == 0 and first["skipped"] == 0, first
    raw = [x for x in qmh.consume("raw", from_offsets=raw_before, timeout=20)
           if x.headers.get("mh-request-id") == rid]
    assert len(raw) == 1
    assert raw[0].raw_value == helpers._bytes(body) and raw[0].key == rid
    assert raw[0].headers["mh-received-at"] == rec.headers["mh-received-at"]
    assert raw[0].headers["mh-tenant"] == qmh.sources["q-on"]["tenant"]
    assert raw[0].headers["content-type"] == "application/json"

    def events_of(recipient):
        return [e for e in qmh.consume("events", from_offsets=events_before, timeout=10)
                if isinstance(e.value, dict) and e.value.get("recipient") == recipient]
    recipient = f"rotated.{mark}@example.com"
    helpers.wait_for(lambda: events_of(recipient), 60, what="the reverified event")
    time.sleep(SETTLE)
    got = events_of(recipient)
    assert len(got) == 1, got
    assert got[0].value["received_at"] == rec.headers["mh-received-at"]

    # A second run starts after what the first one did: nothing to publish, no event.
    second = reverify(qmh)
    assert second["verified"] == 0 and second["still_failing"] == 0, second
    # From the beginning it publishes it again; the worker's dedup absorbs it.
    again = reverify(qmh, "--from-beginning")
    assert again["verified"] == 1, again
    time.sleep(SETTLE)
    assert len(events_of(recipient)) == 1


def test_still_failing_requests_stay_for_the_next_run(qmh):
    bad = helpers.new_secret()
    r = qmh.post("q-on", unique_bounce(f"bad.{uid()}@example.com", f"bad-{uid()}"), secret=bad)
    assert r.status_code == 401
    rid = r.headers["X-Request-Id"]
    helpers.wait_for(lambda: any(
        k.headers.get("mh-request-id") == rid
        for k in helpers.consume(qmh.quarantine, brokers_=qmh.brokers, timeout=5)), 20,
        what="the request on the quarantine topic")
    for _ in range(2):
        out = reverify(qmh)
        assert out["still_failing"] == 1 and out["verified"] == 0, out
        assert [f["request_id"] for f in out["failing"]] == [rid]
        assert bad not in json.dumps(out)
    text = qmh.cli("quarantine", "reverify", "--source", "q-on").stdout.decode()
    assert "still failing  0:" in text and rid in text, text
    assert text.splitlines()[-1] == "verified and published 0, still failing 1, skipped 0"
    table = qmh.cli("quarantine", "list", "--source", "q-on").stdout.decode().splitlines()
    assert table[0].split() == ["received_at", "source", "provider", "request_id", "reason",
                                "record"]
    assert any(rid in line for line in table[1:]), table


def test_rate_and_size_bound_what_is_kept(qmh):
    q_before = helpers.end_offsets(qmh.quarantine, qmh.brokers)
    rate0 = metric(qmh, 'mailhook_ingest_quarantine_dropped_total{reason="rate"}')
    size0 = metric(qmh, 'mailhook_ingest_quarantine_dropped_total{reason="size"}')
    wrong = helpers.new_secret()
    n = BURST + 3
    for i in range(n):
        r = qmh.post("q-rate", unique_bounce(f"rate.{i}@example.com", f"rate-{uid()}"),
                     secret=wrong)
        assert r.status_code == 401, r.text
    # A body over quarantine_max_bytes is refused the same way and not kept.
    big = unique_bounce(f"big.{uid()}@example.com", f"big-{uid()}")
    big["padding"] = "x" * MAX_BYTES
    r = qmh.post("q-on", big, secret=wrong)
    assert r.status_code == 401, r.text

    kept = helpers.consume(qmh.quarantine, from_offsets=q_before, expect_n=BURST + 2,
                           settle=SETTLE, timeout=15, brokers_=qmh.brokers)
    by_source = [k.headers["mh-source"] for k in kept]
    # The burst, and at most one token refilled at RATE/s while posting.
    assert BURST <= by_source.count("q-rate") <= BURST + 1, by_source
    assert "q-on" not in by_source, by_source
    dropped_rate = metric(qmh, 'mailhook_ingest_quarantine_dropped_total{reason="rate"}') - rate0
    assert dropped_rate + by_source.count("q-rate") == n
    assert metric(qmh, 'mailhook_ingest_quarantine_dropped_total{reason="size"}') - size0 == 1


def test_reverify_judges_timestamps_as_of_receipt(qmh):
    new = whsec()
    body = json.dumps({"type": "email.bounced", "data": {"to": f"std.{uid()}@example.com"}}
                      ).encode()
    r = helpers.post(qmh.base_url, "std-q", body, stdwh_headers(new, body))
    assert r.status_code == 401, r.text
    rid = r.headers["X-Request-Id"]
    # Older than the 1 s tolerance by the time it is checked again.
    time.sleep(2.5)
    rewrite(qmh, "std-q", secret=new)
    out = reverify(qmh, "--source", "std-q", "--from-beginning", "--dry-run")
    assert out["verified"] == 1 and out["still_failing"] == 0, out
    assert out["skipped"] == 0 and out["failing"] == [], out
    listed = json.loads(qmh.cli("quarantine", "list", "--source", "std-q", "--json").stdout)
    assert [i["request_id"] for i in listed["items"]] == [rid]

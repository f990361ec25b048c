"""mailhook-api's console endpoints against a real pipeline: dead letters from the
dead-letter topic (GET /v1/dlq) with their reason and raw record, per tenant; replays of
their raw records (POST /v1/dlq/replays) through `mailhook replay`, with the counts the
CLI reports; and per-source series (GET /v1/sources/stats) of the ingest's responses,
scraped from its /metrics, and of the event log's events by type."""

from __future__ import annotations

import json
import secrets
from datetime import datetime, timezone

import pytest
import requests

import helpers
from test_suppression import maildog, start_api, uid


class Console:
    def __init__(self, api, operator: str, scoped: str, scoped_tenant: str):
        self.api, self.operator, self.scoped, self.scoped_tenant = api, operator, scoped, scoped_tenant

    def call(self, method: str, path: str, token: str | None = None, **kw) -> requests.Response:
        return requests.request(method, self.api.base + path, timeout=30,
                                headers={"Authorization": f"Bearer {token or self.operator}"},
                                **kw)


@pytest.fixture(scope="module")
def console(mailhook):
    operator, scoped, other = secrets.token_hex(16), secrets.token_hex(16), f"other-{uid()}"
    path = mailhook.workdir / f"api-console-tokens-{uid()}.txt"
    path.write_text(f"{operator} *\n{scoped} {other}\n")
    path.chmod(0o600)
    api = start_api(mailhook, "api-console", {
        "token_file": str(path),
        "ingest_metrics": f"{mailhook.base_url}/metrics",
    })
    yield Console(api, operator, scoped, other)
    api.proc.stop()


def _dead_letter(mailhook) -> tuple[bytes, str]:
    """Posts one signed body no parser accepts; returns it and its request id once the
    workers have dead-lettered it."""
    before = mailhook.end_offsets("dlq")
    body = b'{"event": "bounced", "message_id": "console-%s", oops' % uid().encode()
    r = mailhook.post("ivymail", body)
    assert r.status_code == 200, r.text
    dead = mailhook.consume("dlq", from_offsets=before, expect_n=1, timeout=60)
    assert len(dead) == 1
    return body, r.headers["X-Request-Id"]


def _find(console, rid: str, token: str | None = None, **params) -> dict | None:
    r = console.call("GET", "/v1/dlq", token, params=params)
    assert r.status_code == 200, r.text
    return next((i for i in r.json()["items"] if i["request_id"] == rid), None)


def test_dead_letter_is_listed_with_reason_and_raw_record(mailhook, console):
    body, rid = _dead_letter(mailhook)
    r = console.call("GET", "/v1/dlq", params={"limit": 50, "source": "ivymail"})
    assert r.status_code == 200, r.text
    page = r.json()
    item = next(i for i in page["items"] if i["request_id"] == rid)
    assert item["source"] == "ivymail" and item["provider"] == "ivymail"
    assert item["tenant"] == mailhook.sources["ivymail"]["tenant"]
    assert "invalid JSON" in item["reason"] and item["stage"] == "parse"
    assert item["raw"]["topic"] == mailhook.topics["raw"]
    assert item["dlq"]["partition"] >= 0 and item["dlq"]["offset"] >= 0
    assert item["received_at"] and item["dlq"]["timestamp"]
    # The raw coordinates name the request's own record.
    raw = mailhook.consume("raw", from_offsets={item["raw"]["partition"]: item["raw"]["offset"]},
                           timeout=20)
    first = next(x for x in raw if x.partition == item["raw"]["partition"])
    assert first.offset == item["raw"]["offset"] and first.raw_value == body
    times = [i["dlq"]["timestamp_ms"] for i in page["items"]]
    assert times == sorted(times, reverse=True), "not newest first"
    # Another source's filter leaves it out.
    assert _find(console, rid, source="maildog") is None


def test_pages_follow_the_cursor_without_repeats(mailhook, console):
    rids = {_dead_letter(mailhook)[1] for _ in range(3)}
    seen, cursor = [], None
    for _ in range(50):
        params = {"limit": 1, "source": "ivymail"}
        if cursor:
            params["before"] = cursor
        r = console.call("GET", "/v1/dlq", params=params)
        assert r.status_code == 200, r.text
        page = r.json()
        assert len(page["items"]) <= 1
        seen += [i["request_id"] for i in page["items"]]
        cursor = page["next_cursor"]
        if rids <= set(seen) or not cursor:
            break
    assert rids <= set(seen)
    assert len(seen) == len(set(seen)), "a dead letter on two pages"


def test_a_scoped_token_sees_only_its_tenants_dead_letters(mailhook, console):
    _, rid = _dead_letter(mailhook)
    tenant = mailhook.sources["ivymail"]["tenant"]
    # Without a tenant, or for another tenant: refused.
    r = console.call("GET", "/v1/dlq", console.scoped)
    assert r.status_code == 403 and "tenant" in r.json()["error"]
    r = console.call("GET", "/v1/dlq", console.scoped, params={"tenant": tenant})
    assert r.status_code == 403
    # Its own tenant's: none of the e2e tenant's dead letters.
    assert _find(console, rid, console.scoped, tenant=console.scoped_tenant, limit=500) is None
    # The operator, for that tenant: there.
    assert _find(console, rid, tenant=tenant, limit=500) is not None


@pytest.mark.parametrize("params,needle", [
    ({"limit": "0"}, "limit"), ({"limit": "501"}, "limit"), ({"before": "x"}, "before"),
    ({"before": "0:1,0:2"}, "before"), ({"colour": "red"}, "unknown parameter"),
])
def test_dlq_parameters_are_checked(console, params, needle):
    r = console.call("GET", "/v1/dlq", params=params)
    assert r.status_code == 400 and needle in r.json()["error"], r.text


def test_replay_of_a_dead_letter_runs_to_done_with_the_cli_counts(mailhook, console):
    _, rid = _dead_letter(mailhook)
    item = _find(console, rid, source="ivymail", limit=500)
    rec = {"partition": item["raw"]["partition"], "offset": item["raw"]["offset"]}
    topic = f"console-replay-{uid()}"
    body = {"records": [rec], "target_topic": topic}

    r = console.call("POST", "/v1/dlq/replays", console.scoped, json=body)
    assert r.status_code == 403
    r = console.call("POST", "/v1/dlq/replays", json={"records": [], "target_topic": topic})
    assert r.status_code == 400 and "records" in r.json()["error"]

    r = console.call("POST", "/v1/dlq/replays", json=body)
    assert r.status_code == 202, r.text
    started = r.json()
    assert started["status"] == "running" and started["total"] == 1 and started["done"] == 0
    want = (f"mailhook replay --from-offsets {rec['partition']}:{rec['offset']} "
            f"--until {rec['partition']}:{rec['offset'] + 1} --to-topic {topic}")
    assert started["cli"].startswith(want), started["cli"]

    def finished():
        st = console.call("GET", f"/v1/dlq/replays/{started['id']}").json()
        return st if st["status"] != "running" else None
    st = helpers.wait_for(finished, 90, what="the replay to finish")
    assert st["status"] == "done", st
    # The CLI, over the same records (a dry run), reports the same counts.
    summary = json.loads(mailhook.cli("replay", "--from-offsets",
                                      f"{rec['partition']}:{rec['offset']}", "--until",
                                      f"{rec['partition']}:{rec['offset'] + 1}", "--dry-run",
                                      "--json", "--no-progress").stdout)
    assert (st["done"], st["emitted"], st["dead_letters"]) == \
        (summary["records"], summary["events_written"], summary["dead_letters"]) == (1, 0, 1)
    assert st["error"] is None
    assert console.call("GET", "/v1/dlq/replays/nope").status_code == 404


def test_replay_into_a_pipeline_topic_fails_with_the_cli_error(mailhook, console):
    r = console.call("POST", "/v1/dlq/replays", json={
        "records": [{"partition": 0, "offset": 0}], "target_topic": mailhook.topics["raw"]})
    assert r.status_code == 202, r.text
    rid = r.json()["id"]

    def finished():
        st = console.call("GET", f"/v1/dlq/replays/{rid}").json()
        return st if st["status"] != "running" else None
    st = helpers.wait_for(finished, 60, what="the replay to fail")
    assert st["status"] == "failed" and st["error"], st


def _stats(console, token=None, **params) -> dict:
    r = console.call("GET", "/v1/sources/stats", token, params=params)
    assert r.status_code == 200, r.text
    return r.json()


def _total(series) -> float:
    return sum(v for _, v in series if v is not None)


def test_forged_request_shows_up_as_a_401_for_its_source(mailhook, console):
    before = _total(next(s for s in _stats(console)["sources"]
                         if s["name"] == "maildog")["responses"]["401"])
    r = mailhook.post("maildog", {"event": "delivered", "recipient": "f@example.com"},
                      secret=helpers.new_secret())
    assert r.status_code == 401

    def counted():
        src = next(s for s in _stats(console, range=600, step=10)["sources"]
                   if s["name"] == "maildog")
        return src if _total(src["responses"]["401"]) >= before + 1 else None
    src = helpers.wait_for(counted, 30, interval=1, what="the 401 in /v1/sources/stats")
    assert src["provider"] == mailhook.sources["maildog"]["provider"] and src["tenant"] == mailhook.sources["maildog"]["tenant"]
    assert set(src["responses"]) >= {"200", "401", "503", "400"}
    assert len(src["responses"]["401"]) == 60


def test_time_to_200_per_source_is_measured(mailhook, console):
    maildog(mailhook, "delivered", f"ack.{uid()}@example.com", datetime.now(timezone.utc))

    def measured():
        src = next(s for s in _stats(console, range=600, step=60)["sources"]
                   if s["name"] == "maildog")
        p50 = [v for _, v in src["ack_seconds"]["p50"] if v is not None]
        return src if p50 else None
    src = helpers.wait_for(measured, 30, interval=1, what="p50 of the time to 200")
    p50 = [v for _, v in src["ack_seconds"]["p50"] if v is not None]
    p99 = [v for _, v in src["ack_seconds"]["p99"] if v is not None]
    assert all(0 < v <= 10 for v in p50 + p99)
    assert max(p99) >= min(p50)
    metrics = requests.get(mailhook.base_url + "/metrics", timeout=5).text
    assert 'mailhook_ingest_source_ack_seconds_bucket{source="maildog",le="+Inf"}' in metrics
    assert "# HELP mailhook_ingest_source_ack_seconds " in metrics


def test_events_by_type_and_rates_are_counted(mailhook, console):
    now = datetime.now(timezone.utc)
    before = _stats(console, range=600, step=60)
    src0 = next(s for s in before["sources"] if s["name"] == "maildog")
    d0 = _total(src0["events"].get("email.delivered", []))
    b0 = _total(src0["events"].get("email.bounced", []))
    for _ in range(3):
        maildog(mailhook, "delivered", f"ev.{uid()}@example.com", now)
    maildog(mailhook, "bounced", f"ev.{uid()}@example.com", now)

    def counted():
        src = next(s for s in _stats(console, range=600, step=60)["sources"]
                   if s["name"] == "maildog")
        ev = src["events"]
        ok = (_total(ev.get("email.delivered", [])) >= d0 + 3 and
              _total(ev.get("email.bounced", [])) >= b0 + 1)
        return src if ok else None
    src = helpers.wait_for(counted, 60, interval=1, what="the events in /v1/sources/stats")
    # Steps with deliveries and no bounce (other tests' events) have a rate of 0.
    rates = [v for _, v in src["bounce_rate"] if v is not None]
    assert rates and all(0 <= v <= 1 for v in rates) and max(rates) > 0
    assert len(src["events"]["email.delivered"]) == 10

    # A token of another tenant sees none of these sources.
    assert _stats(console, console.scoped)["sources"] == []
    r = console.call("GET", "/v1/sources/stats", params={"range": "5", "step": "1"})
    assert r.status_code == 400

"""mailhook-api over HTTP against real PostgreSQL and Kafka: bearer-token auth, clear JSON
errors, cursor pagination of suppressions and of the event log, a message's timeline,
and the `mailhook events` CLI that shares its queries."""

from __future__ import annotations

import base64
import json
import os
import re
import signal
import subprocess
import threading
import time
from datetime import datetime, timedelta, timezone

import pytest
import requests

import helpers
from test_suppression import Api, iso, ivymail, maildog, start_api, uid


@pytest.fixture(scope="module")
def api(mailhook):
    a = start_api(mailhook, "api-http", {"default_limit": "5", "max_limit": "50"})
    yield a
    a.proc.stop()


def test_auth_is_required_and_checked(api):
    for headers in ({}, {"Authorization": "Bearer wrong-token"}, {"Authorization": api.token},
                    {"Authorization": f"Basic {api.token}"}):
        r = requests.get(api.base + "/v1/suppressions", params={"tenant": "x"}, headers=headers,
                         timeout=5)
        assert r.status_code == 401, headers
        assert r.headers["WWW-Authenticate"].startswith("Bearer")
        assert r.headers["Content-Type"] == "application/json"
        assert "bearer token" in r.json()["error"]
    # Probes need no token.
    assert requests.get(api.base + "/healthz", timeout=5).json() == {"status": "ok"}
    assert requests.get(api.base + "/readyz", timeout=5).status_code == 200
    metrics = requests.get(api.base + "/metrics", timeout=5).text
    assert "mailhook_api_unauthorized_total" in metrics
    # The token never shows up in the log.
    assert api.token not in api.proc.log.read_text()


@pytest.mark.parametrize("method,path,params,body,status,needle", [
    ("GET", "/v1/suppressions/a%40example.com", {}, None, 400, "tenant: required"),
    ("GET", "/v1/suppressions/not-an-address", {"tenant": "t"}, None, 400, "not an email address"),
    ("GET", "/v1/suppressions", {"tenant": "t", "colour": "red"}, None, 400,
     'unknown parameter "colour"'),
    ("GET", "/v1/suppressions", {"tenant": "t", "limit": "0"}, None, 400, "limit"),
    ("GET", "/v1/suppressions", {"tenant": "t", "limit": "51"}, None, 400, "limit"),
    ("GET", "/v1/suppressions", {"tenant": "t", "reason": "boredom"}, None, 400, "reason"),
    ("GET", "/v1/suppressions", {"tenant": "t", "cursor": "!!"}, None, 400, "cursor"),
    ("POST", "/v1/suppressions", {}, b"{not json", 400, "invalid JSON"),
    ("POST", "/v1/suppressions", {}, b"[]", 400, "expected a JSON object"),
    ("POST", "/v1/suppressions", {}, b'{"tenant":"t","address":"a@example.com","x":1}', 400,
     'unknown field "x"'),
    ("POST", "/v1/suppressions", {}, b'{"address":"a@example.com"}', 400, "tenant is required"),
    ("POST", "/v1/suppressions", {}, b'{"tenant":"t","address":"nope"}', 400, "email address"),
    ("POST", "/v1/suppressions", {}, b'{"tenant":"t","address":"a@example.com","reason":"x"}',
     400, "reason must be"),
    ("PUT", "/v1/suppressions", {}, None, 405, "method not allowed"),
    ("POST", "/v1/events", {}, None, 405, "method not allowed"),
    ("GET", "/v1/events", {"since": "yesterday"}, None, 400, "since: not a time"),
    ("GET", "/v1/events", {"cursor": "bm9wZQ"}, None, 400, "cursor"),
    ("GET", "/v1/events", {"recipient": "nobody"}, None, 400, "recipient"),
    ("GET", "/v1/messages/m1/events", {"type": "email.sent"}, None, 400, "unknown parameter"),
    ("GET", "/v1/events", {"source": "a" * 1025}, None, 400, "source"),
    ("GET", "/v1/events", {"provider": b"\xff"}, None, 400, "provider"),
    ("GET", "/v1/nothing-here", {}, None, 404, "not found"),
    ("GET", "/v1/suppressions/a%40example.com/extra", {"tenant": "t"}, None, 404, "not found"),
])
def test_errors_are_clear_json(api, method, path, params, body, status, needle):
    r = requests.request(method, api.base + path, params=params, data=body, headers=api.h(),
                         timeout=10)
    assert r.status_code == status, r.text
    assert r.headers["Content-Type"] == "application/json"
    assert needle in r.json()["error"], r.json()


def test_body_over_the_limit_is_refused(api):
    r = requests.post(api.base + "/v1/suppressions", data=b"{" + b" " * 70000 + b"}",
                      headers=api.h(), timeout=10)
    assert r.status_code == 413


def test_lookup_is_per_tenant_and_case_insensitive(api):
    t1, t2 = f"ta-{uid()}", f"tb-{uid()}"
    addr = f"Case.{uid()}@Example.COM"
    assert api.add(t1, addr).status_code == 201
    r = api.state(t1, addr.lower())
    assert r.status_code == 200 and r.json()["address"] == addr.lower()
    r = api.state(t2, addr)
    assert r.status_code == 404
    assert r.json() == {"tenant": t2, "address": addr.lower(), "suppressed": False,
                        "error": "not suppressed"}


def test_suppressions_paginate_with_a_cursor(api):
    tenant = f"page-{uid()}"
    addrs = sorted(f"p{i:02d}.{uid()}@example.com" for i in range(12))
    for i, a in enumerate(addrs):
        assert api.add(tenant, a, reason="bounce" if i % 3 == 0 else None).status_code == 201
    api.remove(tenant, addrs[5])
    want = [a for a in addrs if a != addrs[5]]

    seen, cursor, pages = [], None, 0
    while True:
        params = {"tenant": tenant}
        if cursor:
            params["cursor"] = cursor
        r = api.get("/v1/suppressions", params=params)  # default_limit = 5
        assert r.status_code == 200, r.text
        body = r.json()
        assert len(body["items"]) <= 5
        seen += [i["address"] for i in body["items"]]
        pages += 1
        cursor = body["next_cursor"]
        if not cursor:
            break
    assert seen == want and pages == 3

    bounces = api.get("/v1/suppressions", params={"tenant": tenant, "reason": "bounce",
                                                 "limit": 50}).json()["items"]
    assert [i["address"] for i in bounces] == [a for i, a in enumerate(addrs) if i % 3 == 0]
    assert all(i["reason"] == "bounce" for i in bounces)


def test_event_log_filters_and_pages(mailhook, api):
    tenant = mailhook.sources["maildog"]["tenant"]
    rcpt = f"log.{uid()}@example.com"
    base = datetime.now(timezone.utc).replace(microsecond=0) - timedelta(hours=1)
    msg = f"msg-{uid()}"
    kinds = ["delivered", "opened", "clicked", "opened", "clicked", "opened", "delivered"]
    for i, kind in enumerate(kinds):
        maildog(mailhook, kind, rcpt, base + timedelta(minutes=i),
                message_id=msg if i < 4 else f"other-{uid()}",
                **({"url": f"https://example.com/{i}"} if kind == "clicked" else {}))

    def all_in():
        r = api.get("/v1/events", params={"recipient": rcpt, "limit": 50})
        return r.status_code == 200 and len(r.json()["items"]) == len(kinds) and r.json()
    everything = helpers.wait_for(all_in, 30, what="the events in the log")["items"]
    times = [e["occurred_at"] for e in everything]
    assert times == sorted(times, reverse=True)  # newest first
    assert all(e["schema"] == "mailhook.event.v1" and e["tenant"] == tenant for e in everything)

    # Pages of 3 (default 5 overridden) cover everything once, in the same order.
    got, cursor = [], None
    while True:
        params = {"recipient": rcpt.upper(), "limit": 3, "tenant": tenant}
        if cursor:
            params["cursor"] = cursor
        body = api.get("/v1/events", params=params).json()
        got += body["items"]
        cursor = body["next_cursor"]
        if not cursor:
            break
    assert [e["event_id"] for e in got] == [e["event_id"] for e in everything]

    opened = api.get("/v1/events", params={"recipient": rcpt, "type": "email.opened"}).json()
    assert [e["type"] for e in opened["items"]] == ["email.opened"] * 3

    window = api.get("/v1/events", params={"recipient": rcpt, "since": iso(base + timedelta(minutes=2)),
                                           "until": iso(base + timedelta(minutes=5))}).json()
    assert [e["occurred_at"] for e in window["items"]] == \
        [iso(base + timedelta(minutes=m)) for m in (4, 3, 2)]

    by_msg = api.get("/v1/events", params={"message_id": msg, "limit": 50}).json()["items"]
    assert len(by_msg) == 4

    timeline = api.get(f"/v1/messages/{msg}/events").json()
    assert timeline["message_id"] == msg
    assert [e["type"] for e in timeline["items"]] == \
        ["email.delivered", "email.opened", "email.clicked", "email.opened"]
    assert api.get("/v1/messages/no-such-message/events").json()["items"] == []

    # The CLI answers the same questions.
    out = mailhook.cli("events", "--recipient", rcpt, "--type", "email.clicked", "--json")
    assert [e["type"] for e in json.loads(out.stdout)["items"]] == ["email.clicked"] * 2
    out = mailhook.cli("events", "--message-id", msg, "--timeline").stdout.decode().splitlines()
    assert out[0].split()[:2] == ["occurred_at", "type"]
    assert [line.split()[1] for line in out[1:]] == \
        ["email.delivered", "email.opened", "email.clicked", "email.opened"]
    out = mailhook.cli("events", "--recipient", rcpt, "--limit", "2")
    assert b"--cursor" in out.stderr


def test_event_log_filters_by_source_and_provider_across_pages(mailhook, api):
    """source and provider are matched in PostgreSQL, with the other filters, and the cursor
    of a filtered page leads on to the next filtered page: every match once, in order."""
    rcpt = f"src.{uid()}@example.com"
    base = datetime.now(timezone.utc).replace(microsecond=0) - timedelta(minutes=30)
    msg = f"srcmsg-{uid()}"
    # Interleaved in time, so each filtered page skips rows of the other source.
    for i in range(7):
        at = base + timedelta(minutes=2 * i)
        maildog(mailhook, "opened" if i % 2 else "delivered", rcpt, at, message_id=msg)
        ivymail(mailhook, "sent" if i % 2 else "delivered", rcpt, at + timedelta(minutes=1),
                message_id=msg)

    def all_in():
        r = api.get("/v1/events", params={"recipient": rcpt, "limit": 50})
        return r.status_code == 200 and len(r.json()["items"]) == 14 and r.json()["items"]
    everything = helpers.wait_for(all_in, 30, what="the events in the log")

    def pages(path: str, **params) -> tuple[list[dict], int]:
        got, cursor, n = [], None, 0
        while True:
            q = dict(params, limit=2, **({"cursor": cursor} if cursor else {}))
            r = api.get(path, params=q)
            assert r.status_code == 200, r.text
            got += r.json()["items"]
            n += 1
            cursor = r.json()["next_cursor"]
            if not cursor:
                return got, n

    ids = lambda evs: [e["event_id"] for e in evs]  # noqa: E731
    for params, want in (
            ({"source": "maildog"}, [e for e in everything if e["source"] == "maildog"]),
            ({"provider": "ivymail"}, [e for e in everything if e["provider"] == "ivymail"]),
            # hmac claims are keyed per source ("hmac/maildog"): the event's provider counts.
            ({"provider": "hmac"}, [e for e in everything if e["provider"] == "hmac"]),
            ({"source": "ivymail", "provider": "ivymail", "type": "email.sent"},
             [e for e in everything if e["source"] == "ivymail" and e["type"] == "email.sent"]),
    ):
        got, n = pages("/v1/events", recipient=rcpt, **params)
        assert len(want) in (7, 3) and ids(got) == ids(want), params
        assert n == (len(want) + 1) // 2, params  # full pages of 2: the filter is in the query
    assert {e["source"] for e in everything} == {"maildog", "ivymail"}

    # No event has this pair, nor an unknown source; exact match only.
    for params in ({"source": "maildog", "provider": "ivymail"}, {"source": "nosuch"},
                   {"source": "MAILDOG"}, {"provider": "ivy"}):
        r = api.get("/v1/events", params={"recipient": rcpt, **params})
        assert r.status_code == 200 and r.json() == {"items": [], "next_cursor": None}, params

    # A message's timeline, oldest first, one source's part of it.
    got, _ = pages(f"/v1/messages/{msg}/events", source="ivymail")
    assert [e["source"] for e in got] == ["ivymail"] * 7
    assert ids(got) == ids(reversed([e for e in everything if e["source"] == "ivymail"]))
    # A cursor from a filtered page is a cursor of the log: it pages the unfiltered log too.
    first = api.get("/v1/events", params={"recipient": rcpt, "source": "maildog", "limit": 1}).json()
    rest = api.get("/v1/events", params={"recipient": rcpt, "limit": 50,
                                         "cursor": first["next_cursor"]}).json()["items"]
    assert ids(rest) == ids(everything)[ids(everything).index(first["items"][0]["event_id"]) + 1:]

    # The CLI filters the same way.
    out = mailhook.cli("events", "--recipient", rcpt, "--source", "maildog", "--limit", "50",
                       "--json")
    assert ids(json.loads(out.stdout)["items"]) == \
        ids(e for e in everything if e["source"] == "maildog")
    out = mailhook.cli("events", "--recipient", rcpt, "--provider", "ivymail", "--type",
                       "email.sent", "--json")
    assert [(e["provider"], e["type"]) for e in json.loads(out.stdout)["items"]] == \
        [("ivymail", "email.sent")] * 3


def test_api_binary_basics(mailhook, tmp_path):
    exe = str(helpers.build_dir() / "mailhook-api")
    out = subprocess.run([exe, "--version"], capture_output=True, text=True, timeout=10)
    assert out.returncode == 0 and out.stdout.startswith("mailhook-api ")
    out = subprocess.run([exe, "--help"], capture_output=True, text=True, timeout=10)
    assert out.returncode == 0 and "usage:" in out.stdout
    bad = tmp_path / "bad.ini"
    bad.write_text("[api]\nlisten = 127.0.0.1:1\ntoken = t\nmax_limit = lots\n")
    out = subprocess.run([exe, "--config", str(bad)], capture_output=True, text=True, timeout=10)
    assert out.returncode != 0 and f"{bad}:4:" in out.stderr and "max_limit" in out.stderr
    none = tmp_path / "none.ini"
    none.write_text("[api]\nlisten = 127.0.0.1:1\n")
    out = subprocess.run([exe, "--config", str(none)], capture_output=True, text=True, timeout=10)
    assert out.returncode != 0 and "needs at least one token" in out.stderr
    env = dict(os.environ, MH_TEST_API_TOKEN="from-env")
    tok = tmp_path / "tok.ini"
    tok.write_text("[api]\ntoken_env = MH_TEST_API_TOKEN_MISSING\n")
    out = subprocess.run([exe, "--config", str(tok)], capture_output=True, text=True, timeout=10,
                         env=env)
    assert out.returncode != 0 and f"{tok}:2:" in out.stderr


def test_api_listens_on_loopback_by_default(mailhook, tmp_path):
    """No listen key: 127.0.0.1:8081, never every interface."""
    sections = json.loads(json.dumps(mailhook.sections))
    sections["api"] = {"token": "x", "maintenance_interval_s": "0"}
    path = tmp_path / "default.ini"
    helpers.write_ini(path, sections)
    proc = subprocess.Popen([str(helpers.build_dir() / "mailhook-api"), "--config", str(path)],
                            env=mailhook.env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)
    try:
        try:
            out, _ = proc.communicate(timeout=3)
        except subprocess.TimeoutExpired:
            proc.terminate()
            out, _ = proc.communicate(timeout=10)
        # Started on the default address (or found it taken by another run's API).
        assert "127.0.0.1:8081" in out, out
    finally:
        if proc.poll() is None:
            proc.kill()


def _hold_address_lock(pg, tenant: str, address: str) -> None:
    """Takes the session lock every suppression write of (tenant, address) needs, so a
    write through the API waits in PostgreSQL until the lock is released."""
    pg.execute("SELECT pg_advisory_lock(mh_suppression_lock_key(%s, %s))", (tenant, address))


def _write_in_background(api, tenant: str, address: str) -> tuple[threading.Thread, dict]:
    result: dict = {}

    def post():
        try:
            result["response"] = api.add(tenant, address, "complaint")
        except requests.RequestException as e:
            result["error"] = e
    t = threading.Thread(target=post, daemon=True)
    t.start()
    return t, result


def test_a_waiting_write_does_not_hold_up_lookups(api, pg):
    """The database part of each request runs on a pool of connections: a write stuck on
    an address lock leaves the other requests to be answered meanwhile."""
    tenant, stuck = f"pool-{uid()}", f"stuck-{uid()}@example.com"
    assert api.add(tenant, f"other-{uid()}@example.com").status_code == 201
    _hold_address_lock(pg, tenant, stuck)
    try:
        writer, result = _write_in_background(api, tenant, stuck)
        helpers.wait_for(lambda: pg.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
            " AND application_name = 'mailhook-api'").fetchone()[0] >= 1, 15,
            what="the API's write waiting on the address lock")
        for i in range(20):
            r = requests.get(f"{api.base}/v1/suppressions/free-{i}%40example.com",
                             params={"tenant": tenant}, headers=api.h(), timeout=5)
            assert r.status_code == 404
        r = requests.get(api.base + "/v1/suppressions", params={"tenant": tenant},
                         headers=api.h(), timeout=5)
        assert r.status_code == 200 and len(r.json()["items"]) == 1
        assert writer.is_alive(), "the write went through while its address was locked"
        metrics = requests.get(api.base + "/metrics", timeout=5).text
        assert "mailhook_api_db_in_flight 1" in metrics, metrics
        time.sleep(0.6)  # the write has now waited more than half a second
    finally:
        pg.execute("SELECT pg_advisory_unlock_all()")
    writer.join(30)
    assert "error" not in result, result
    assert result["response"].status_code == 201
    assert result["response"].json()["reason"] == "complaint"
    assert api.state(tenant, stuck).json()["reason"] == "complaint"
    # The database-time histogram saw every request of this API, the slow write among
    # them above 0.5 s. (That the lookups did not wait for it is shown above: all were
    # answered while the write still waited. Their own times are not asserted: on a
    # loaded machine or a sanitizer build a lookup may pass 0.5 s too.)
    metrics = requests.get(api.base + "/metrics", timeout=5).text
    count = float(re.search(r"^mailhook_api_db_seconds_count (\S+)$", metrics, re.M).group(1))
    half = float(re.search(r'^mailhook_api_db_seconds_bucket\{le="0.5"\} (\S+)$', metrics,
                           re.M).group(1))
    assert count >= 24, metrics
    assert count - half >= 1, metrics


def test_sigterm_answers_the_requests_in_progress(mailhook, pg):
    """SIGTERM stops listening but waits for the requests already at the database."""
    api = start_api(mailhook, "api-drain")
    tenant, stuck = f"drain-{uid()}", f"stuck-{uid()}@example.com"
    _hold_address_lock(pg, tenant, stuck)
    try:
        writer, result = _write_in_background(api, tenant, stuck)
        helpers.wait_for(lambda: pg.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
            " AND application_name = 'mailhook-api'").fetchone()[0] >= 1, 15,
            what="the API's write waiting on the address lock")
        api.proc.expected_exit = True
        api.proc.send_signal(signal.SIGTERM)
        time.sleep(1.0)
        assert api.proc.alive(), "mailhook-api exited with a request unanswered"
        with pytest.raises(requests.ConnectionError):
            requests.get(api.base + "/healthz", timeout=2)
    finally:
        pg.execute("SELECT pg_advisory_unlock_all()")
    writer.join(30)
    assert "error" not in result, result
    assert result["response"].status_code == 201
    assert api.proc.popen.wait(15) == 0


# ---------------------------------------------------------------------------------------
# addresses of every length the worker keeps state for

ADDRESS_MAX = 1024  # SUPP_ADDRESS_MAX


def _address(prefix: str, tag: str, length: int) -> str:
    local = f"{prefix}-{tag}-"
    return local + "x" * (length - len(local) - len("@example.com")) + "@example.com"


def _cursor_before(tenant: str, prefix: str) -> str:
    """A list cursor as the API makes them (URL-safe base64 of JSON [tenant, address]),
    placed just before every address that starts with prefix: a walk from it covers
    this test's addresses without paging through the rest of the shared tenant."""
    raw = json.dumps([tenant, prefix], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _walk(page, cursor: str, mine: set[str]) -> list[str]:
    """Pages of one from cursor until every address of mine was seen (or 30 pages)."""
    seen: list[str] = []
    for _ in range(30):
        items, cursor = page(cursor)
        assert len(items) <= 1
        seen += items
        if mine <= set(seen) or not cursor:
            break
    return seen


def test_addresses_of_every_allowed_length(mailhook, api, pg):
    """A hard bounce for a 500-byte and for a maximum-length recipient, and a
    maximum-length address added through the API, are each looked up, listed one per page
    (each ending a page, its cursor handed back) and removed, through the API and the CLI.
    A recipient one byte longer is dead-lettered with the reason and crashes nothing."""
    tenant = mailhook.sources["maildog"]["tenant"]
    p = f"long{uid()}"
    short = f"{p}-a@example.com"
    a500, amax = _address(p, "b", 500), _address(p, "c", ADDRESS_MAX)
    by_api = _address(p, "d", ADDRESS_MAX)
    over = _address(p, "e", ADDRESS_MAX + 1)
    assert (len(a500), len(amax), len(over)) == (500, ADDRESS_MAX, ADDRESS_MAX + 1)
    at = datetime.now(timezone.utc) - timedelta(minutes=5)
    over_msg = f"over-{uid()}"
    dlq_before = mailhook.end_offsets("dlq")
    for a in (short, a500, amax, over):
        maildog(mailhook, "hard_bounce", a.upper(), at, reason="550 5.1.1 no such user",
                smtp_code=550, **({"message_id": over_msg} if a == over else {}))
    r = api.add(tenant, by_api.upper(), "complaint")
    assert r.status_code == 201, r.text
    assert r.json()["address"] == by_api and r.json()["reason"] == "complaint"
    for a in (short, a500, amax):
        state = helpers.wait_for(lambda a=a: api.state(tenant, a).status_code == 200 and
                                 api.state(tenant, a).json(), 30, what=f"{a[:40]}… suppressed")
        assert state["address"] == a and state["reason"] == "bounce"

    # The over-long recipient's record is dead-lettered (no stored recipient is longer than
    # the suppression list's limit), its address has no state.
    dead = helpers.wait_for(
        lambda: [d for d in mailhook.consume("dlq", from_offsets=dlq_before, timeout=10)
                 if d.raw_value and over_msg.encode() in d.raw_value],
        30, what="the over-long recipient's record on the dead-letter topic")
    assert len(dead) == 1, dead
    assert "over the 1024-byte limit" in dead[0].headers["mh-dlq-reason"]
    assert not api.get("/v1/events", params={"message_id": over_msg}).json()["items"]
    assert pg.execute("SELECT count(*) FROM mh_suppressions WHERE address = %s",
                      (over,)).fetchone()[0] == 0
    r = api.state(tenant, over)
    assert r.status_code == 400 and "1024" in r.json()["error"]
    r = api.add(tenant, over)
    assert r.status_code == 400 and "1024" in r.json()["error"]

    mine = [short, a500, amax, by_api]
    start = _cursor_before(tenant, p)

    def api_page(cursor):
        r = api.get("/v1/suppressions", params={"tenant": tenant, "limit": 1, "cursor": cursor})
        assert r.status_code == 200, r.text
        return [i["address"] for i in r.json()["items"]], r.json()["next_cursor"]

    def cli_page(cursor):
        out = mailhook.cli("suppressions", "list", "--tenant", tenant, "--limit", "1",
                           "--cursor", cursor, "--json")
        body = json.loads(out.stdout)
        return [i["address"] for i in body["items"]], body["next_cursor"]

    for page in (api_page, cli_page):
        seen = _walk(page, start, set(mine))
        assert [a for a in seen if a in mine] == sorted(mine, key=lambda a: mine.index(a)), \
            [a[:40] for a in seen]
    assert requests.get(api.base + "/healthz", timeout=5).status_code == 200  # still serving

    # Look up and remove: the 500-byte one through the API, the longest through the CLI.
    assert api.state(tenant, a500.upper()).json()["suppressed"] is True
    r = api.remove(tenant, a500)
    assert r.status_code == 200 and r.json() == {"tenant": tenant, "address": a500,
                                                 "suppressed": False}
    assert api.state(tenant, a500).status_code == 404
    out = mailhook.cli("suppressions", "check", "--tenant", tenant, amax.upper(), "--json",
                       check=False)
    assert out.returncode == 3 and json.loads(out.stdout)["address"] == amax
    mailhook.cli("suppressions", "remove", "--tenant", tenant, amax, by_api)
    for a in (amax, by_api):
        assert api.state(tenant, a).status_code == 404
    out = mailhook.cli("suppressions", "check", "--tenant", tenant, amax)
    assert out.returncode == 0
    out = mailhook.cli("suppressions", "check", "--tenant", tenant, over, check=False)
    assert out.returncode == 2 and b"not an email address" in out.stderr
    # What is left pages on: the short address alone.
    seen = _walk(api_page, start, {short})
    assert [a for a in seen if a.startswith(p)] == [short]


@pytest.mark.parametrize("path,params,needle", [
    ("/v1/suppressions/" + "a" * 1100 + "%40example.com", {"tenant": "t"}, "not an email address"),
    ("/v1/suppressions", {"tenant": "t" * 1025}, "tenant: longer than 1024 bytes"),
    ("/v1/suppressions", {"tenant": "t", "cursor": "A" * 40000}, "cursor: longer than"),
    ("/v1/suppressions", {"tenant": "t", "cursor": "WyJ0IiwiYUBiIiwiYyJd"}, "cursor"),
    ("/v1/suppressions", {"tenant": "t", "limit": " 5"}, "limit"),
    ("/v1/suppressions", {"tenant": ["t", "u"]}, "given more than once"),
    ("/v1/suppressions/%FF%40example.com", {"tenant": "t"}, "not an email address"),
    ("/v1/messages/%FF/events", {}, "message id"),
    ("/v1/events", {"message_id": "m" * 4097}, "message_id: longer than 4096 bytes"),
])
def test_over_long_and_malformed_input_is_a_400(api, path, params, needle):
    r = requests.get(api.base + path, params=params, headers=api.h(), timeout=10)
    assert r.status_code == 400, r.text
    assert needle in r.json()["error"], r.json()
    assert requests.get(api.base + "/healthz", timeout=5).status_code == 200


def test_query_with_invalid_utf8_or_nul_is_a_400(api):
    for query in ("tenant=%FF", "tenant=t&colour%FF=1", "tenant=t%00u", "tenant=t&reason=%C3"):
        r = requests.get(f"{api.base}/v1/suppressions?{query}", headers=api.h(), timeout=10)
        assert r.status_code == 400, (query, r.text)
        assert "error" in r.json()

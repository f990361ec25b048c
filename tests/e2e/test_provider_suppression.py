"""Every provider's unsubscribe, bounce and complaint signals reach the suppression rules.

The fixtures are posted through the real pipeline (ingest -> worker -> PostgreSQL), as
the golden test posts them (sources from tests/fixtures/<provider>/source.ini, signed with
`mailhook sign`), and the test checks the suppression STATE each one leaves, not only the
event: mh_suppressions and mailhook-api's lookup. Each case gets a source and tenant of
its own, so addresses shared between fixtures never meet and the state an address ends in
is the doing of that one case. What a case must leave follows the rules of
docs/suppression.md from its expected.json: a hard bounce suppresses with reason
"bounce", a complaint with "complaint", an unsubscribe with "unsubscribe"; a soft or
undetermined bounce only counts toward the soft-bounce rule and never suppresses for good.
A few cases are pinned by name as well, so that a change of their golden files cannot
quietly change what they prove (GetMailer's contact.deleted reasons, Ark's and Postal's
transient HardFail, IvyMail's bounced without a type, ...)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

import fixture_sources
import helpers
from helpers import Mailhook
import provider_sources
from provider_sources import FIXTURES
from provider_sources import cases as _cases
from test_providers_golden import _post_signed
from test_suppression import start_api

SIGNALS = ("email.bounced", "email.complained", "email.unsubscribed")
LIFTS = ("email.resubscribed",)

# (provider, case) -> {address: reason it must be suppressed for, or None: not for good}
PINNED = {
    ("getmailer", "contact.deleted-unsubscribed"): {"john.doe@example.com": "unsubscribe"},
    ("getmailer", "contact.deleted-bounced"): {"john.doe@example.com": "bounce"},
    ("getmailer", "contact.deleted-complained"): {"john.doe@example.com": "complaint"},
    ("getmailer", "contact.deleted-manual"): {"john.doe@example.com": None},
    ("getmailer", "email.bounced-soft"): {"recipient@example.com": None},
    ("postal", "MessageDeliveryFailed-connection-error"): {"test@example.com": None},
    ("postal", "MessageDeliveryFailed"): {"test@example.com": "bounce"},
    ("ark", "MessageDeliveryFailed"): {"user@example.com": "bounce"},
    ("ivymail", "bounced-without-type"): {"gone@example.com": "bounce"},
    ("ivymail", "bounced-transient-mailbox-full"): {"full@example.com": None},
    ("ses", "bounce-transient-general"): {"later@example.com": None},
    ("ses", "bounce-unsubscribed-recipient"): {"optout@example.com": "unsubscribe"},
    ("resend", "email-bounced-unsubscribedrecipient"): {"left@example.com": "unsubscribe"},
    ("sendgrid", "bounce-blocked"): {"nobody@bigmail.example": "bounce",
                                     "someone@bigmail.example": None},
}


def _reason(ev: dict) -> str | None:
    if ev["type"] == "email.complained":
        return "complaint"
    if ev["type"] == "email.unsubscribed":
        return "unsubscribe"
    if ev["type"] == "email.bounced" and ev.get("bounce", {}).get("class") == "hard":
        return "bounce"
    return None


def _expected(case: Path) -> dict[str, str | None] | None:
    """The state each address of the case must end in; None when the case is no test of
    the rules (no signal, a lift, or one address with two different verdicts)."""
    events = json.loads((case / "expected.json").read_text())
    want: dict[str, str | None] = {}
    for ev in events:
        if ev["type"] in LIFTS:
            return None
        if ev["type"] not in SIGNALS or not ev.get("recipient"):
            continue
        addr, reason = ev["recipient"], _reason(ev)
        if addr in want and want[addr] != reason:
            return None
        want[addr] = reason
    return want or None


def _signal_cases() -> list[tuple[str, Path, dict[str, str | None]]]:
    out = []
    for provider in sorted(p.name for p in FIXTURES.iterdir() if p.is_dir()):
        for case in _cases(provider):
            if not (case / "expected.json").exists():
                continue
            want = _expected(case)
            if (provider, case.name) in PINNED:
                pinned = PINNED[(provider, case.name)]
                # The golden file must say what the pin says (or the pin is stale).
                assert want is None or all(want.get(a, r) == r for a, r in pinned.items()), \
                    f"{provider}/{case.name}: expected.json says {want}, pinned {pinned}"
                want = {**(want or {}), **pinned}
            if want:
                out.append((provider, case, want))
    return out


CASES = _signal_cases()
PROVIDERS_WITH_SIGNALS = sorted({p for p, _, _ in CASES})


@pytest.fixture(scope="module")
def pipeline(stack, session_id, e2e_db, tmp_path_factory):
    work = tmp_path_factory.mktemp("provider-suppression")
    keys = provider_sources.make_keys(work / "keys")
    topics = {role: f"mailhook.{role}.supp-{session_id}"
              for role in ("raw", "events", "dlq", "suppressions")}
    listen = f"127.0.0.1:{helpers.free_port()}"
    by_provider = {s.name: s for s in fixture_sources.read_all("golden")}

    # One source, and one tenant, per case.
    sources, signing_keys, names = {}, {}, {}
    for i, (provider, case, _) in enumerate(CASES):
        name = f"{provider}-{i}"
        ini, signing = provider_sources.resolve_source(keys, by_provider[provider], name, listen)
        ini["tenant"] = f"supp-{session_id}-{i}"
        sources[name] = ini
        names[(provider, case.name)] = name
        if signing:
            signing_keys[name] = signing
    sections = {
        "ingest": {"listen": listen, "raw_topic": topics["raw"]},
        "worker": {"group_id": f"mailhook-supp-{session_id}", "raw_topic": topics["raw"],
                   "events_topic": topics["events"], "dlq_topic": topics["dlq"],
                   "suppressions_topic": topics["suppressions"]},
        "postgres": {"dsn": e2e_db},
        "kafka": {"bootstrap.servers": stack.brokers},
    }
    for name, ini in sources.items():
        sections[f"source.{name}"] = ini
    path = work / "mailhook.ini"
    helpers.write_ini(path, sections)
    env = dict(os.environ, MAILHOOK_KAFKA_BROKERS=stack.brokers, MAILHOOK_PG_DSN=e2e_db)
    mh = Mailhook(path, sections, env, work, topics, sources, stack.brokers, e2e_db)
    mh.cli("topics")
    mh.cli("migrate")
    api = None
    try:
        mh.start_ingest()
        mh.start_worker(1)
        api = start_api(mh, "api-provider-suppression")
        yield mh, signing_keys, names, api
    finally:
        crashed = mh.crashed()
        if api:
            api.proc.stop()
        mh.stop_all()
        helpers.delete_topics(topics.values(), stack.brokers)
        assert not crashed, "pipeline process exited: " + ", ".join(
            f"{p.name}\n{p.tail(40)}" for p in crashed)


def _claims(pg, tenant: str) -> int:
    return pg.execute("select count(*) from mh_event_claims where tenant = %s",
                      (tenant,)).fetchone()[0]


def _row(pg, tenant: str, address: str):
    return pg.execute("select state, reason, temp_until from mh_suppressions "
                      "where tenant = %s and address = %s", (tenant, address)).fetchone()


def test_every_provider_with_signals_is_covered():
    """Each provider whose fixtures carry an unsubscribe, bounce or complaint is here,
    and so is each pinned case."""
    with_signals = set()
    for provider in (p.name for p in FIXTURES.iterdir() if p.is_dir()):
        for case in _cases(provider):
            ex = case / "expected.json"
            if ex.exists() and any(e["type"] in SIGNALS for e in json.loads(ex.read_text())):
                with_signals.add(provider)
    assert with_signals == set(PROVIDERS_WITH_SIGNALS)
    covered = {(p, c.name) for p, c, _ in CASES}
    assert set(PINNED) <= covered


@pytest.mark.parametrize("provider", PROVIDERS_WITH_SIGNALS)
def test_signals_leave_the_suppression_state_the_rules_say(pipeline, pg, provider):
    mh, keys, names, api = pipeline
    cases = [(case, want) for p, case, want in CASES if p == provider]
    for case, _ in cases:
        status, _rid = _post_signed(mh, keys, names[(provider, case.name)], case / "body.json")
        assert status == 200, f"{case.name}: ingest answered {status}"

    for case, want in cases:
        source = names[(provider, case.name)]
        tenant = mh.sources[source]["tenant"]
        n_events = len({e["event_id"] for e in json.loads((case / "expected.json").read_text())})
        helpers.wait_for(lambda: _claims(pg, tenant) >= n_events, 60,
                         what=f"{provider}/{case.name}: {n_events} events claimed")
        for address, reason in want.items():
            if reason:
                helpers.wait_for(lambda: (_row(pg, tenant, address) or (None,))[0] == "suppressed",
                                 30, what=f"{provider}/{case.name}: {address} suppressed")
                state, got, temp_until = _row(pg, tenant, address)
                assert (got, temp_until) == (reason, None), \
                    f"{provider}/{case.name}: {address} suppressed for {got!r}, want {reason!r}"
                r = api.state(tenant, address)
                assert r.status_code == 200, f"{provider}/{case.name}: {r.status_code}"
                assert r.json()["reason"] == reason and r.json()["expires_at"] is None
            else:
                row = _row(pg, tenant, address)
                assert row is None or row[0] != "suppressed", \
                    f"{provider}/{case.name}: {address} suppressed for good: {row}"
                r = api.state(tenant, address)
                assert r.status_code == 404, \
                    f"{provider}/{case.name}: {address} answers {r.status_code} {r.text}"

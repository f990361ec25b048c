"""No request without a valid credential ever reaches the raw topic, for any provider.

One ingest of this module's own serves one source per provider, configured as each
provider's tests/fixtures/<provider>/source.ini says (provider_sources.py, as the golden
test). For every provider and every fixture case it posts:

  unsigned   the fixture's body with no credential at all: no signature or credential
             header, no URL token, no signature block inside the body (IN_BODY)
  forged     what `mailhook sign` makes under a second config whose sources have other
             secrets and key pairs: a well-formed credential with the wrong key
  tampered   a request `mailhook sign` signed correctly, then changed by one character:
             - "body": one letter of the body, where the scheme covers the body
               (everywhere but BODY_NOT_COVERED; for SES, a letter of the signed Message)
             - "<credential>": one character of one credential, each in turn: every
               header `mailhook sign` added, the URL's query token, and the credential
               fields inside the body (IN_BODY: Mailgun's timestamp, token and
               signature; SNS's Signature, Timestamp and MessageId); a header checked
               only without another (SUPERSEDED_BY) is changed with that one removed
             - every credential header present but empty

and, to every source, the empty and probe shapes providers send when a webhook is set
up: an empty body, "{}", "[]", Mandrill's empty batch, SNS subscription messages, a
MailerSend ping (unsigned, and signed with MailerSend's published test key), a HEAD and
a GET.

Each answer must be the contract's (docs/design.md, "Ingest contract"): 400 or 401 for a
POST, 405 for another method, 200 only for the documented provider checks that ingest
answers without publishing (documented_ack). And none of them may be published: the
raw topic's end offsets are summed before; the requests go one after another, and after
them one correctly signed request (ingest answers 200 only once Kafka acknowledged the
record, so whatever an earlier request published is on the topic by then), and the topic
must then have grown by exactly that one record. A provider whose scheme is added to providers.def is covered without any change
here: its body is assumed signed and every header `mailhook sign` adds a credential.
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import json
import os
import shlex
import subprocess
import urllib.parse
from pathlib import Path

import pytest
import requests

import helpers
import provider_sources
from helpers import Mailhook

PROVIDERS = provider_sources.providers()

# Schemes whose credential does not cover the body, so a changed body under a valid
# credential is accepted by design; for them "tampered" is a changed credential only.
BODY_NOT_COVERED = {
    "brevo": "bearer token and/or a header holding a secret; nothing is signed",
    "cloudmailin": "HTTP Basic credentials or a URL token; nothing is signed",
    "mailjet": "HTTP Basic credentials and/or a header holding a secret; nothing is signed",
    "postmark": "HTTP Basic credentials and/or a header holding a secret; nothing is signed",
    "sparkpost": "HTTP Basic credentials and/or a token header; nothing is signed",
    "mailgun": "HMAC of the signature block's timestamp and token only, not of event-data",
    "acs": "a URL query token and/or a header or bearer secret (Event Grid signs nothing)",
    "smtp2go": "HTTP Basic credentials, a bearer, header or URL token; nothing is signed",
}

# Credentials carried inside the body: JSON paths of the string fields `mailhook sign`
# writes, removed for "unsigned" and changed one at a time for "tampered".
IN_BODY = {
    "mailgun": [("signature", "timestamp"), ("signature", "token"), ("signature", "signature")],
    "ses": [("Signature",), ("Timestamp",), ("MessageId",)],
}
# Fields that make up the in-body credential but are not themselves signed: removed for
# "unsigned" only.
IN_BODY_UNSIGNED_ONLY = {
    "mailgun": [("signature",)],
    "ses": [("SignatureVersion",), ("SigningCertURL",)],
}
# Where a body change must be made for it to touch what the scheme signs: SNS signs
# chosen fields of the message, Message among them (not e.g. UnsubscribeURL).
SIGNED_BODY_FIELD = {"ses": "Message"}

# A credential header that is checked only when another is absent: Postal sends both
# signatures and X-Postal-Signature-256 (RSA-SHA256) is checked when present, the legacy
# X-Postal-Signature (RSA-SHA1) only without it. Changing the legacy one alone leaves the
# checked one valid, so it is changed with the other removed.
SUPERSEDED_BY = {
    "postal": {"x-postal-signature": "x-postal-signature-256"},
}

MAILERSEND_TEST_KEY = b"test_Am3L1GuOIc4blLUuHqAPxxwkZaJyEk8G"  # printed in MailerSend's docs
MAILERSEND_PING = (b'{"type":"webhook.test","message":"This is a ping test message",'
                   b'"created_at":"2025-08-05T21:20:00.577080Z"}')


@dataclasses.dataclass
class Req:
    what: str
    url: str
    headers: list[tuple[str, str]]
    body: bytes
    method: str = "POST"


@dataclasses.dataclass
class Rig:
    mh: Mailhook
    keys: dict[str, Path]            # the real sources' signing keys
    forger: Path                     # config of the same sources, other credentials
    forger_keys: dict[str, Path]


@pytest.fixture(scope="module")
def rig(stack, session_id, e2e_db, tmp_path_factory):
    work = tmp_path_factory.mktemp("unsigned")
    topics = {role: f"mailhook.{role}.unsigned-{session_id}"
              for role in ("raw", "events", "dlq", "suppressions")}
    listen = f"127.0.0.1:{helpers.free_port()}"

    def config(path: Path, sources: dict[str, dict[str, str]]) -> dict:
        sections = {
            "ingest": {"listen": listen, "raw_topic": topics["raw"]},
            "worker": {"group_id": f"mailhook-unsigned-{session_id}",
                       "raw_topic": topics["raw"], "events_topic": topics["events"],
                       "dlq_topic": topics["dlq"], "suppressions_topic": topics["suppressions"]},
            "postgres": {"dsn": e2e_db},
            "kafka": {"bootstrap.servers": stack.brokers},
        }
        for name, keys in sources.items():
            sections[f"source.{name}"] = keys
        helpers.write_ini(path, sections)
        return sections

    sources, keys = provider_sources.sources(provider_sources.make_keys(work / "keys"), listen)
    forged, forger_keys = provider_sources.sources(
        provider_sources.make_keys(work / "forger-keys"), listen)
    for name, src in sources.items():
        assert src != forged[name], f"{name}: the forger's source has the same credentials"
    sections = config(work / "mailhook.ini", sources)
    config(work / "forger.ini", forged)
    env = dict(os.environ, MAILHOOK_KAFKA_BROKERS=stack.brokers, MAILHOOK_PG_DSN=e2e_db)
    mh = Mailhook(work / "mailhook.ini", sections, env, work, topics, sources, stack.brokers,
                  e2e_db)
    mh.cli("topics")
    try:
        mh.start_ingest()
        yield Rig(mh, keys, work / "forger.ini", forger_keys)
    finally:
        crashed = mh.crashed()
        mh.stop_all()
        helpers.delete_topics(topics.values(), stack.brokers)
        assert not crashed, "ingest exited: " + ", ".join(f"{p.name}\n{p.tail(40)}"
                                                         for p in crashed)


# ---- requests ------------------------------------------------------------------------

def _signed(rig: Rig, source: str, body_file: Path, forge: bool = False) -> Req | None:
    """The request `mailhook sign` prints for body_file (under the forger's config when
    forge), or None when it cannot sign that body."""
    config, keys = (rig.forger, rig.forger_keys) if forge else (rig.mh.config_path, rig.keys)
    argv = [str(helpers.build_dir() / "mailhook"), "--config", str(config), "sign",
            "--source", source, "--url", rig.mh.url(source)]
    if source in keys:
        argv += ["--key", str(keys[source])]
    out = subprocess.run(argv + [str(body_file)], env=rig.mh.env, capture_output=True,
                         timeout=60)
    if out.returncode != 0:
        return None
    return _parse_curl(out.stdout.decode(), "forged" if forge else "signed")


def _parse_curl(command: str, what: str) -> Req:
    """The request a `mailhook sign` command line makes: [printf '%s' BODY |] curl ...
    -X POST URL -H 'Name: value'... --data-binary @FILE|@-"""
    words = shlex.split(command)
    body = None
    if words[0] == "printf":
        assert words[1] == "%s" and words[3] == "|", command
        body, words = words[2].encode(), words[4:]
    assert words[0] == "curl", command
    url, headers, i = None, [], 1
    while i < len(words):
        w = words[i]
        if w in ("-X", "-H", "--data-binary"):
            arg = words[i + 1]
            if w == "-H":
                name, value = arg.split(":", 1)
                headers.append((name.strip(), value.strip()))
            elif w == "--data-binary":
                body = body if arg == "@-" else Path(arg[1:]).read_bytes()
            i += 2
            continue
        if not w.startswith("-"):
            url = w
        i += 1
    assert url and body is not None, command
    return Req(what, url, headers, body)


def _change_char(s: str, at: int | None = None) -> str:
    """s with one character (the middle one by default) replaced by another of its kind:
    a digit by a digit, a letter by a letter of the same case (so an encoding still
    decodes, to something else)."""
    i = len(s) // 2 if at is None else at
    for j in list(range(i, len(s))) + list(range(i - 1, -1, -1)):
        c = s[j]
        if c.isdigit():
            return s[:j] + str((int(c) + 1) % 10) + s[j + 1:]
        if c.isascii() and c.isalpha():
            base = "a" if c.islower() else "A"
            return s[:j] + chr((ord(c) - ord(base) + 1) % 26 + ord(base)) + s[j + 1:]
    raise AssertionError(f"no character to change in {s!r}")


def _json_get(body: bytes, path: tuple[str, ...]):
    try:
        node = json.loads(body)
    except ValueError:
        return None
    for key in path:
        if not isinstance(node, dict) or key not in node:
            return None
        node = node[key]
    return node


def _without_fields(body: bytes, paths: list[tuple[str, ...]]) -> bytes:
    try:
        root = json.loads(body)
    except ValueError:
        return body
    for path in paths:
        node = root
        for key in path[:-1]:
            node = node.get(key) if isinstance(node, dict) else None
        if isinstance(node, dict):
            node.pop(path[-1], None)
    return json.dumps(root).encode()


def _replace_value(body: bytes, old: str, new: str) -> bytes:
    """body with the first JSON string "old" replaced by "new" (all else byte for byte)."""
    enc_old, enc_new = json.dumps(old).encode(), json.dumps(new).encode()
    assert enc_old in body, (old, body[:200])
    return body.replace(enc_old, enc_new, 1)


def _tamper_body(provider: str, body: bytes) -> bytes | None:
    """body with one letter changed where the scheme signs it."""
    field = SIGNED_BODY_FIELD.get(provider)
    if field is not None:
        value = _json_get(body, (field,))
        if not isinstance(value, str) or not any(c.isalnum() for c in value):
            return None
        return _replace_value(body, value, _change_char(value))
    text = body.decode("latin-1")
    # A letter inside a word (not a hex digit of a %XX escape, which would decode the same).
    mid = len(text) // 2
    for j in list(range(mid, len(text))) + list(range(mid - 1, -1, -1)):
        if text[j].isascii() and text[j].isalpha() and 0 < j and text[j - 1].isalpha() \
                and text[j - 1] != "%" and (j < 2 or text[j - 2] != "%"):
            c = text[j]
            return (text[:j] + (c.lower() if c.isupper() else c.upper()) + text[j + 1:]) \
                .encode("latin-1")
    return None


def _credential_headers(signed: Req) -> list[str]:
    return [n for n, _ in signed.headers if n.lower() != "content-type"]


def _bare_url(url: str) -> str:
    u = urllib.parse.urlsplit(url)
    return urllib.parse.urlunsplit((u.scheme, u.hostname + (f":{u.port}" if u.port else ""),
                                    u.path, "", ""))


def _case_requests(rig: Rig, provider: str, case: Path) -> list[Req]:
    """unsigned, forged and tampered requests made from one fixture case."""
    reqs = []
    body = (case / "body.json").read_bytes()
    signed = _signed(rig, provider, case / "body.json")
    content_type = [(n, v) for n, v in (signed.headers if signed else [])
                    if n.lower() == "content-type"] or [("Content-Type", "application/json")]
    unsigned_body = _without_fields(
        body, IN_BODY.get(provider, []) + IN_BODY_UNSIGNED_ONLY.get(provider, [])) \
        if provider in IN_BODY else body
    reqs.append(Req(f"{case.name}: unsigned", rig.mh.url(provider), content_type,
                    unsigned_body))
    forged = _signed(rig, provider, case / "body.json", forge=True)
    if forged is not None:
        forged.what = f"{case.name}: forged"
        reqs.append(forged)
    if signed is None:
        return reqs

    def variant(what: str, **changes) -> Req:
        return dataclasses.replace(signed, what=f"{case.name}: tampered {what}", **changes)

    if provider not in BODY_NOT_COVERED:
        tampered = _tamper_body(provider, signed.body)
        if tampered is not None:
            reqs.append(variant("body", body=tampered))
    superseded = SUPERSEDED_BY.get(provider, {})
    for name in _credential_headers(signed):
        dropped = superseded.get(name.lower())
        what = name + (f" without {dropped}" if dropped else "")
        reqs.append(variant(what, headers=[(n, _change_char(v) if n == name else v)
                                           for n, v in signed.headers
                                           if n.lower() != dropped]))
    if _credential_headers(signed):
        reqs.append(variant("credential headers, all empty", headers=[
            (n, "" if n in _credential_headers(signed) else v) for n, v in signed.headers]))
    query = urllib.parse.urlsplit(signed.url).query
    if query:
        u = urllib.parse.urlsplit(signed.url)
        k, _, v = query.partition("=")
        reqs.append(variant(f"URL {k}", url=urllib.parse.urlunsplit(
            (u.scheme, u.netloc, u.path, f"{k}={_change_char(v)}", ""))))
        reqs.append(variant("URL without query", url=_bare_url(signed.url)))
    for path in IN_BODY.get(provider, []):
        value = _json_get(signed.body, path)
        if isinstance(value, str) and value:
            reqs.append(variant("/".join(path), body=_replace_value(
                signed.body, value, _change_char(value))))
    return reqs


def _probes(rig: Rig, provider: str) -> list[Req]:
    """Empty and set-up shapes, none with a credential of this source."""
    url = rig.mh.url(provider)
    js, form = [("Content-Type", "application/json")], \
        [("Content-Type", "application/x-www-form-urlencoded")]
    sns = {"MessageId": "00000000-0000-4000-8000-000000000001",
           "TopicArn": "arn:aws:sns:us-east-1:123456789012:ses-events",
           "Timestamp": "2026-01-01T00:00:00.000Z", "SignatureVersion": "1",
           "SigningCertURL": "https://sns.us-east-1.amazonaws.com/"
                             "SimpleNotificationService-0000000000000000000000000000test.pem"}
    ping_sig = hmac.new(MAILERSEND_TEST_KEY, MAILERSEND_PING, hashlib.sha256).hexdigest()
    return [
        Req("probe: empty body", url, [], b""),
        Req("probe: empty JSON body", url, js, b""),
        Req("probe: {}", url, js, b"{}"),
        Req("probe: []", url, js, b"[]"),
        Req("probe: mandrill_events=[]", url, form, b"mandrill_events=%5B%5D"),
        Req("probe: mandrill_events=[] unescaped", url, form, b"mandrill_events=[]"),
        Req("probe: mandrill_events= (empty)", url, form, b"mandrill_events="),
        Req("probe: empty form", url, form, b""),
        Req("probe: SNS SubscriptionConfirmation", url, js, json.dumps(dict(
            sns, Type="SubscriptionConfirmation", Token="2336412f37", Message="confirm",
            SubscribeURL="https://sns.us-east-1.amazonaws.com/?Action=ConfirmSubscription"))
            .encode()),
        Req("probe: SNS UnsubscribeConfirmation", url, js, json.dumps(dict(
            sns, Type="UnsubscribeConfirmation", Token="2336412f37", Message="unsubscribed",
            SubscribeURL="https://sns.us-east-1.amazonaws.com/?Action=ConfirmSubscription"))
            .encode()),
        Req("probe: SNS Notification with no signature", url, js, json.dumps(dict(
            {k: v for k, v in sns.items() if k not in ("SignatureVersion", "SigningCertURL")},
            Type="Notification", Message="{}")).encode()),
        Req("probe: SNS Notification with an empty signature", url, js, json.dumps(dict(
            sns, Type="Notification", Message="{}", Signature="")).encode()),
        Req("probe: MailerSend ping, unsigned", url, js, MAILERSEND_PING),
        Req("probe: MailerSend ping, signed with its published test key", url,
            js + [("Signature", ping_sig)], MAILERSEND_PING),
        Req("probe: HEAD", url, [], b"", method="HEAD"),
        Req("probe: GET", url, [], b"", method="GET"),
    ]


# ---- what the contract allows --------------------------------------------------------

def _form(body: bytes) -> list[tuple[str, str]] | None:
    try:
        return urllib.parse.parse_qsl(body.decode(), keep_blank_values=True, strict_parsing=True)
    except (ValueError, UnicodeDecodeError):
        return None


def documented_ack(provider: str, req: Req) -> bool:
    """The requests docs/design.md's ingest contract answers 200 without publishing."""
    headers = {n.lower(): v for n, v in req.headers}
    if provider == "mandrill":
        if req.method == "HEAD":
            return True  # the URL check, answered by ingest (answers_head)
        form = _form(req.body)
        # The unsigned empty batch posted when a webhook is added (an empty signature
        # header is no signature).
        return (req.method == "POST" and not headers.get("x-mandrill-signature")
                and form is not None
                and len(form) == 1 and form[0][0] == "mandrill_events"
                and _json_or_none(form[0][1]) == [])
    if provider == "mailersend":
        # The webhook.test ping, signed with the key MailerSend publishes.
        sig = headers.get("signature")
        ping = _json_or_none(req.body)
        return (sig == hmac.new(MAILERSEND_TEST_KEY, req.body, hashlib.sha256).hexdigest()
                and isinstance(ping, dict) and ping.get("type") == "webhook.test")
    return False


def _json_or_none(text):
    try:
        return json.loads(text)
    except (ValueError, TypeError):
        return None


def _allowed(provider: str, req: Req) -> set[int]:
    if documented_ack(provider, req):
        return {200}
    return {400, 401} if req.method == "POST" else {405}


# ---- the test ------------------------------------------------------------------------

def _raw_total(mh: Mailhook) -> int:
    return sum(mh.end_offsets("raw").values())


def _send(session: requests.Session, req: Req) -> requests.Response:
    return session.request(req.method, req.url, data=req.body, headers=dict(req.headers),
                           timeout=30, allow_redirects=False)


@pytest.mark.parametrize("provider", PROVIDERS)
def test_unsigned_forged_and_tampered_requests_are_never_published(rig, provider):
    mh = rig.mh
    cases = provider_sources.cases(provider)
    reqs = [r for case in cases for r in _case_requests(rig, provider, case)]
    reqs += _probes(rig, provider)
    sentinel = next((s for case in cases
                     if (case / "expected.json").exists()
                     and (s := _signed(rig, provider, case / "body.json")) is not None), None)
    assert sentinel is not None, f"{provider}: no fixture case `mailhook sign` can sign"
    kinds = {r.what.split(": ", 1)[1] for r in reqs}
    for kind in ("unsigned", "forged", "tampered ") + \
            (("tampered body",) if provider not in BODY_NOT_COVERED else ()):
        assert any(k.startswith(kind) for k in kinds), f"{provider}: no {kind.strip()} request"

    before = mh.end_offsets("raw")
    wrong, asked = [], {}
    with requests.Session() as session:
        for req in reqs:
            r = _send(session, req)
            asked[r.headers.get("X-Request-Id", "")] = req.what
            if r.status_code not in _allowed(provider, req):
                wrong.append(f"{req.what}: {r.status_code} {r.text.strip()}")
        r = _send(session, sentinel)
        assert r.status_code == 200, f"{provider}: signed sentinel answered {r.status_code}"
    total = sum(before.values())
    helpers.wait_for(lambda: _raw_total(mh) >= total + 1, 30, what="the sentinel on raw")
    published = [rec for rec in mh.consume("raw", from_offsets=before, timeout=20)
                 if rec.headers.get("mh-request-id") != r.headers.get("X-Request-Id")]
    leaked = [asked.get(rec.headers.get("mh-request-id"), "?") for rec in published]
    assert not leaked and _raw_total(mh) == total + 1, \
        f"{provider}: published without a valid credential: {leaked}"
    assert not wrong, f"{provider}: answers outside the ingest contract:\n" + "\n".join(wrong)

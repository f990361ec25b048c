"""Webhook load for the chaos test and the benchmarks: signed requests of several
providers, injected provider duplicates, and a provider's retry policy.

A *request* is one webhook as a provider would send it: a source, a body, its signature.
A request carries one or more *logical events*, each identified by its message id, which
is unique per logical event in a run; a duplicate request repeats an earlier request's
body byte for byte, so it carries the same events (and mailhook derives the same event
ids). The client retries every request until it gets a 2xx, as a provider does, so the
set of events that must come out of mailhook is known exactly: the events of every
request that got a 2xx.

The HTTP client is a small HTTP/1.1 keep-alive client on asyncio streams (one
connection per concurrent sender): cheap enough per request that one Python process can
load mailhook-ingest harder than the rest of a small machine can absorb.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import hmac
import json
import random
import time
from typing import Callable

# ---------------------------------------------------------------------------------------
# sources

TENANT_A = "acme"
TENANT_B = "globex"

# How the chaos and bench configs name their sources, and their providers and tenants.
SOURCES = {
    "ivymail": {"provider": "ivymail", "tenant": TENANT_A},
    "maildog": {"provider": "hmac", "tenant": TENANT_A, "header": "x-maildog-signature",
                "encoding": "hex"},
    "getmailer": {"provider": "getmailer", "tenant": TENANT_B},
    "cloudmailin": {"provider": "cloudmailin", "tenant": TENANT_B},
}


def source_config(secret_for: Callable[[str], str]) -> dict[str, dict[str, str]]:
    """INI sections {"source.<name>": keys} for SOURCES, with secrets from secret_for."""
    out = {}
    for name, keys in SOURCES.items():
        sec = {k: v for k, v in keys.items()}
        sec["secret"] = secret_for(name)
        out[f"source.{name}"] = sec
    return out


def _hmac_hex(secret: str, body: bytes) -> str:
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def sign(source: str, secret: str, body: bytes) -> tuple[str, dict[str, str]]:
    """(path with query, headers) that authenticate body for source."""
    path = f"/v1/webhooks/{source}"
    if source == "ivymail":
        return path, {"x-ivymail-signature": _hmac_hex(secret, body)}
    if source == "maildog":
        return path, {"x-maildog-signature": _hmac_hex(secret, body)}
    if source == "getmailer":
        return path, {"X-GetMailer-Signature": "sha256=" + _hmac_hex(secret, body)}
    if source == "cloudmailin":
        return path + "?token=" + secret, {}
    raise ValueError(source)


# ---------------------------------------------------------------------------------------
# the workload


@dataclasses.dataclass
class Event:
    """One logical event as the client generated it."""
    key: str               # message id, unique per logical event in the run
    source: str
    tenant: str
    recipient: str
    kind: str              # suppress | lift | none: its suppression effect (design.md)
    # How mailhook must store a value it cannot hold as sent (design.md, "Storable
    # events"): "no_time" (an impossible timestamp is absent), "hashed_id" (an over-long
    # provider id is hashed into the event id), or None.
    treatment: str | None = None


@dataclasses.dataclass
class Request:
    index: int
    source: str
    body: bytes
    events: list[Event]
    duplicate_of: int | None = None
    poison: bool = False     # must end on the dead-letter topic (check.DLQ_PREFIXES)
    # outcome
    acked: bool = False
    attempts: int = 0
    unavailable: int = 0     # 503 answers
    conn_errors: int = 0     # connection refused/reset, timeouts
    other: dict = dataclasses.field(default_factory=dict)  # status -> count (4xx, ...)
    gave_up: bool = False
    # time.monotonic() when the attempt that got the 2xx was sent, and when it got it
    ack_sent_at: float = 0.0
    acked_at: float = 0.0


def _ts(rng: random.Random) -> str:
    # Second resolution, within one day: equal occurred_at values happen (LWW ties).
    return time.strftime("%Y-%m-%dT%H:%M:%SZ",
                         time.gmtime(1772323200 + rng.randrange(0, 86400)))


# Signed MailDog bodies PostgreSQL cannot hold as sent, that must be dead-lettered; each
# starts with check.DLQ_PREFIXES[1] so the checker knows it from its raw bytes.
DLQ_MAILDOG_PREFIX = '{"event":"delivered","poison":"dlq"'


class Workload:
    """Deterministic (seeded) sequence of n requests: ~dup_ratio of them duplicates of
    earlier requests, ~poison_ratio poison bodies, spread over POISON_KINDS: signed
    bodies no provider can parse, and signed MailDog bodies with values PostgreSQL cannot
    hold as sent — some mailhook stores after a defined treatment (emitted), some it
    dead-letters (design.md, "Storable events")."""

    POISON_KINDS = ["unparseable", "year_zero", "year_99999", "long_event_id",
                    "long_recipient", "long_message_id", "nul"]

    # (weight, ivymail event, hmac event, getmailer type, effect)
    KINDS = [
        (40, "delivered", "delivered", "email.delivered", "none"),
        (10, "sent", "opened", "email.opened", "none"),
        (8, "delivered", "clicked", "email.clicked", "none"),
        (10, "bounced", "hard_bounce", "email.bounced", "suppress"),
        (5, "complained", "spam_complaint", "email.complained", "suppress"),
        (5, "delivered", "unsubscribed", "email.unsubscribed", "suppress"),
    ]

    def __init__(self, n: int, run: str, seed: int = 1, dup_ratio: float = 0.10,
                 poison_ratio: float = 0.003, pool: int = 2000):
        self.n, self.run = n, run
        self.rng = random.Random(seed)
        self.dup_ratio, self.poison_ratio, self.pool = dup_ratio, poison_ratio, pool
        self.requests: list[Request] = []
        self.originals: list[int] = []
        self._seq = 0
        self._weights = [k[0] for k in self.KINDS]

    def _mid(self) -> str:
        self._seq += 1
        return f"c{self.run}-{self._seq}"

    def _pool_addr(self, tenant: str) -> str:
        return f"user{self.rng.randrange(self.pool)}@{tenant}.example"

    def _unique_addr(self, tenant: str, mid: str) -> str:
        return f"{mid}@once.{tenant}.example"

    def _new(self, index: int) -> Request:
        rng = self.rng
        if rng.random() < self.poison_ratio:
            return self._poison(index, rng.choice(self.POISON_KINDS))
        source = ("ivymail", "maildog", "getmailer", "cloudmailin")[index % 4]
        tenant = SOURCES[source]["tenant"]
        kind = rng.choices(self.KINDS, self._weights)[0]
        _, ivy, hm, gm, effect = kind
        if source == "cloudmailin":
            # A batch of 1-3 events, each to an address of its own (CloudMailin events
            # carry no time, so they never compete in a last-writer-wins register).
            evs, items = [], []
            for _ in range(rng.randint(1, 3)):
                mid = self._mid()
                addr = self._unique_addr(tenant, mid)
                ck = rng.choice(["delivery", "delivery", "open", "click", "bounce"])
                items.append({"kind": ck, "recipient": addr, "message_id": mid, "details": {}})
                evs.append(Event(mid, source, tenant, addr,
                                 "suppress" if ck == "bounce" else "none"))
            body = json.dumps({"events": items}, separators=(",", ":")).encode()
            return Request(index, source, body, evs)
        mid = self._mid()
        # Soft bounces go to addresses of their own: repeated soft bounces suppress for
        # a limited time, which a state check cannot compute after the fact.
        soft = rng.random() < 0.05
        addr = self._unique_addr(tenant, mid) if soft else self._pool_addr(tenant)
        ts = _ts(rng)
        if source == "ivymail":
            ev = {"event": ivy, "message_id": mid, "to": addr, "from": "news@acme.example",
                  "subject": "Hello", "timestamp": ts}
            if soft:
                ev.update(event="bounced", bounce_type="Transient", bounce_subtype="MailboxFull",
                          diagnostic_code="smtp; 452 4.2.2 mailbox full")
                effect = "none"
            elif ivy == "bounced":
                ev.update(bounce_type="Permanent", bounce_subtype="General",
                          diagnostic_code="smtp; 550 5.1.1 user unknown")
            elif effect == "suppress" and ivy == "delivered":
                effect = "none"  # IvyMail has no unsubscribe event
        elif source == "maildog":
            ev = {"event": "soft_bounce" if soft else hm, "timestamp": ts, "message_id": mid,
                  "recipient": addr}
            if soft:
                ev["reason"] = "452 4.2.2 mailbox full"
                effect = "none"
            elif hm == "hard_bounce":
                ev.update(reason="550 5.1.1 user unknown", smtp_code=550)
        else:
            data = {"emailId": mid, "from": "news@globex.example", "to": addr, "subject": "Hi"}
            t = gm
            if soft:
                t = "email.delivery_delayed"
                effect = "none"
            elif gm == "email.bounced":
                data.update(bounceType="hard", bounceReason="User unknown",
                            diagnosticCode="550 5.1.1 User not found")
            ev = {"id": f"evt_{mid}", "type": t, "timestamp": ts, "data": data}
        body = json.dumps(ev, separators=(",", ":")).encode()
        return Request(index, source, body, [Event(mid, source, SOURCES[source]["tenant"], addr,
                                                   effect)])

    def _poison(self, index: int, kind: str) -> Request:
        mid = self._mid()
        if kind == "unparseable":
            body = ('{"event":"delivered","message_id":"poison-%s","to":"x@y.example"' % mid).encode()
            return Request(index, "ivymail", body, [], poison=True)
        tenant = SOURCES["maildog"]["tenant"]
        addr = self._unique_addr(tenant, mid)
        if kind in ("year_zero", "year_99999", "long_event_id"):
            # Stored after a treatment: emitted once, like any event (effect none, so the
            # suppression check needs no time for it).
            ev = {"event": "delivered", "timestamp": _ts(self.rng), "message_id": mid,
                  "recipient": addr}
            if kind == "year_zero":
                ev["timestamp"] = "0000-01-01T00:00:00Z"
            elif kind == "year_99999":
                ev["timestamp"] = "99999-01-01T00:00:00Z"
            else:
                ev["id"] = f"{mid}-" + "i" * 5120
            body = json.dumps(ev, separators=(",", ":")).encode()
            treatment = "hashed_id" if kind == "long_event_id" else "no_time"
            return Request(index, "maildog", body,
                           [Event(mid, "maildog", tenant, addr, "none", treatment)])
        # Dead-lettered: over-long keys, and a \u0000 the JSON parser refuses.
        fields = {"long_recipient": ',"recipient":"%s"' % ("r" * 5120 + "@" + mid + ".example"),
                  "long_message_id": ',"message_id":"%s-%s","recipient":"%s"' % (mid, "m" * 5120, addr),
                  "nul": ',"message_id":"%s","recipient":"%s","subject":"a\\u0000b"' % (mid, addr)}
        body = (DLQ_MAILDOG_PREFIX + ',"timestamp":"2026-03-01T00:00:00Z"' + fields[kind] + "}").encode()
        return Request(index, "maildog", body, [], poison=True)

    def build(self) -> list[Request]:
        for i in range(self.n):
            if self.originals and self.rng.random() < self.dup_ratio:
                # A provider re-delivers an earlier webhook: same bytes, same events.
                j = self.rng.choice(self.originals[-5000:])
                o = self.requests[j]
                self.requests.append(Request(i, o.source, o.body, o.events, duplicate_of=j,
                                             poison=o.poison))
                continue
            r = self._new(i)
            self.requests.append(r)
            self.originals.append(i)
        return self.requests


# ---------------------------------------------------------------------------------------
# HTTP/1.1 keep-alive client


class HttpError(Exception):
    pass


class Conn:
    def __init__(self, host: str, port: int):
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def close(self) -> None:
        w, self.reader, self.writer = self.writer, None, None
        if w is not None:
            w.close()
            try:
                await w.wait_closed()
            except (OSError, asyncio.TimeoutError):
                pass

    async def post(self, path: str, headers: dict[str, str], body: bytes,
                   timeout: float) -> tuple[int, dict[str, str], bytes]:
        return await asyncio.wait_for(self._post(path, headers, body), timeout)

    async def _post(self, path, headers, body):
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        head = [f"POST {path} HTTP/1.1", f"Host: {self.host}:{self.port}",
                "Content-Type: application/json", f"Content-Length: {len(body)}"]
        head += [f"{k}: {v}" for k, v in headers.items()]
        self.writer.write(("\r\n".join(head) + "\r\n\r\n").encode() + body)
        await self.writer.drain()
        try:
            raw = await self.reader.readuntil(b"\r\n\r\n")
        except asyncio.IncompleteReadError as e:
            raise HttpError("connection closed before the reply") from e
        lines = raw.decode("latin-1").split("\r\n")
        parts = lines[0].split(" ", 2)
        if len(parts) < 2 or not parts[1].isdigit():
            raise HttpError(f"bad status line {lines[0]!r}")
        status = int(parts[1])
        rh = {}
        for ln in lines[1:]:
            if ":" in ln:
                k, v = ln.split(":", 1)
                rh[k.strip().lower()] = v.strip()
        if rh.get("transfer-encoding", "").lower() == "chunked":
            data = b""
            while True:
                size = int((await self.reader.readuntil(b"\r\n")).split(b";")[0], 16)
                chunk = await self.reader.readexactly(size + 2)
                if size == 0:
                    break
                data += chunk[:-2]
        else:
            data = await self.reader.readexactly(int(rh.get("content-length", "0")))
        if rh.get("connection", "").lower() == "close":
            await self.close()
        return status, rh, data


@dataclasses.dataclass
class LoadStats:
    attempts: int = 0
    acked: int = 0
    done: int = 0
    unavailable: int = 0
    conn_errors: int = 0
    other: int = 0
    gave_up: int = 0
    started: float = 0.0
    finished: float = 0.0
    unavailable_at: list = dataclasses.field(default_factory=list)  # monotonic, per 503


class Load:
    """Posts every request of a workload with `concurrency` connections; each request is
    retried until it gets a 2xx (after min(Retry-After, retry_cap) seconds on a 503, a
    short pause after a connection failure), for at most request_deadline seconds. With
    rate > 0, new requests start at no more than rate per second (retries are not
    counted), so that the load lasts through faults that take a while."""

    def __init__(self, requests: list[Request], host: str, port: int, secrets: dict[str, str],
                 concurrency: int = 48, retry_cap: float = 1.0, request_deadline: float = 900.0,
                 timeout: float = 20.0, rate: float = 0.0):
        self.requests, self.host, self.port, self.secrets = requests, host, port, secrets
        self.concurrency, self.retry_cap = concurrency, retry_cap
        self.request_deadline, self.timeout = request_deadline, timeout
        self.stats = LoadStats()
        self._next = 0
        self.rate = rate

    async def _one(self, conn: Conn, r: Request) -> None:
        path, headers = sign(r.source, self.secrets[r.source], r.body)
        rng = random.Random(r.index)
        deadline = time.monotonic() + self.request_deadline
        while True:
            r.attempts += 1
            self.stats.attempts += 1
            sent_at = time.monotonic()
            try:
                status, rh, _ = await conn.post(path, headers, r.body, self.timeout)
            except (OSError, HttpError, asyncio.TimeoutError, asyncio.IncompleteReadError):
                await conn.close()
                r.conn_errors += 1
                self.stats.conn_errors += 1
                pause = 0.1 + rng.random() * 0.4
            else:
                if 200 <= status < 300:
                    r.ack_sent_at, r.acked_at = sent_at, time.monotonic()
                    r.acked = True
                    self.stats.acked += 1
                    return
                if status == 503:
                    r.unavailable += 1
                    self.stats.unavailable += 1
                    self.stats.unavailable_at.append(time.monotonic())
                    try:
                        ra = float(rh.get("retry-after", "1"))
                    except ValueError:
                        ra = 1.0
                    pause = min(ra, self.retry_cap) * (0.5 + rng.random())
                else:
                    # Not what a valid request may get: counted, and retried like any
                    # other failure (a provider would).
                    r.other[status] = r.other.get(status, 0) + 1
                    self.stats.other += 1
                    pause = 0.5
            if time.monotonic() + pause > deadline:
                r.gave_up = True
                self.stats.gave_up += 1
                return
            await asyncio.sleep(pause)

    async def _sender(self) -> None:
        conn = Conn(self.host, self.port)
        try:
            while self._next < len(self.requests):
                r = self.requests[self._next]
                self._next += 1
                if self.rate > 0:
                    # Request i starts no sooner than i / rate seconds into the load.
                    due = self.stats.started + r.index / self.rate
                    if due > time.monotonic():
                        await asyncio.sleep(due - time.monotonic())
                await self._one(conn, r)
                self.stats.done += 1
        finally:
            await conn.close()

    async def run(self) -> LoadStats:
        self.stats.started = time.monotonic()
        await asyncio.gather(*(self._sender() for _ in range(self.concurrency)))
        self.stats.finished = time.monotonic()
        return self.stats

"""What the chaos test checks once the load and the faults are over.

Everything is read back the way a downstream consumer would: mailhook.events and
mailhook.dlq with isolation.level=read_committed, from the beginning to the end of every
partition. The client's record of what it sent and what got a 2xx says what must be
there (see loadgen.py); the checks are:

  events       every distinct event exactly once; every event of an acknowledged request
               present; nothing that was never sent
  dead letters every poison raw record exactly once on the dead-letter topic: bodies no
               provider can parse, and MailDog bodies with values PostgreSQL cannot hold
               (an over-long recipient or message id, a \u0000), known by their first
               bytes (DLQ_PREFIXES); nothing else
  treatments   the poison events mailhook stores after a defined treatment (design.md,
               "Storable events") come out exactly once like any event, and treated:
               an impossible timestamp absent, an over-long provider id hashed into the
               event id ("sha256:" + SHA-256 hex)
  suppression  (when the schema has mh_suppressions) the suppressed addresses in
               PostgreSQL equal those computed from the distinct emitted events with the
               rules of design.md: a hard bounce, a complaint or an unsubscribe suppresses,
               a resubscribe lifts; last writer wins on occurred_at, ties by event id;
               and the compacted suppressions topic's last record per address says the
               same as PostgreSQL
"""

from __future__ import annotations

import collections
import dataclasses
import json
import time

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, TopicPartition
from confluent_kafka.admin import AdminClient

POISON_PREFIX = b'{"event":"delivered","message_id":"poison-'
# Raw bodies that must end on the dead-letter topic (loadgen.Workload._poison).
DLQ_PREFIXES = (POISON_PREFIX, b'{"event":"delivered","poison":"dlq"')


@dataclasses.dataclass
class Rec:
    partition: int
    offset: int
    key: bytes | None
    headers: dict[str, str]
    value: bytes | None


def partitions(brokers: str, topic: str) -> list[int]:
    md = AdminClient({"bootstrap.servers": brokers}).list_topics(topic, timeout=20)
    t = md.topics.get(topic)
    if t is None or t.error is not None:
        raise RuntimeError(f"topic {topic} not available: {t.error if t else 'missing'}")
    return sorted(t.partitions)


def read_topic(brokers: str, topic: str, read_committed: bool = True,
               timeout: float = 180.0) -> list[Rec]:
    """Every record of topic, from the beginning to the end of each partition. For
    read_committed the end is the last stable offset; the read goes on (up to timeout)
    while that lies below the high watermark, i.e. while a transaction is still open."""
    parts = partitions(brokers, topic)
    c = Consumer({"bootstrap.servers": brokers, "group.id": f"mailhook-chaos-check-{time.time_ns()}",
                  "enable.auto.commit": False, "enable.partition.eof": True,
                  "isolation.level": "read_committed" if read_committed else "read_uncommitted",
                  "fetch.max.bytes": 16 << 20})
    out: list[Rec] = []
    try:
        c.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in parts])
        eof: set[int] = set()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            msgs = c.consume(2000, 0.5)
            for m in msgs:
                if m.error():
                    if m.error().code() == KafkaError._PARTITION_EOF:
                        eof.add(m.partition())
                        continue
                    raise RuntimeError(f"reading {topic}: {m.error()}")
                eof.discard(m.partition())
                out.append(Rec(m.partition(), m.offset(), m.key(),
                               {k: (v or b"").decode("utf-8", "replace") for k, v in (m.headers() or [])},
                               m.value()))
            if not msgs and eof >= set(parts):
                if not read_committed or _at_end(c, topic, parts):
                    return out
                eof.clear()  # an open transaction: wait for it, read on
        raise RuntimeError(f"reading {topic}: not at the end after {timeout:.0f}s "
                           f"(an open transaction?)")
    finally:
        c.close()


def _at_end(c: Consumer, topic: str, parts: list[int]) -> bool:
    pos = {tp.partition: tp.offset for tp in c.position([TopicPartition(topic, p) for p in parts])}
    for p in parts:
        # Asked of the broker (not the fetcher's cached value, which for read_committed is
        # the last stable offset). A consumer's position moves past transaction markers,
        # so at the end of a partition with no open transaction it equals the high mark.
        low, high = c.get_watermark_offsets(TopicPartition(topic, p), timeout=10, cached=False)
        at = pos.get(p, -1)
        if (at if at >= 0 else low) < high:
            return False
    return True


def end_offsets(brokers: str, topic: str) -> dict[int, int]:
    """{partition: high watermark} of topic."""
    c = Consumer({"bootstrap.servers": brokers, "group.id": "mailhook-chaos-offsets",
                  "enable.auto.commit": False})
    try:
        return {p: c.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1]
                for p in partitions(brokers, topic)}
    finally:
        c.close()


def group_lag(brokers: str, group: str, topic: str) -> int | None:
    """Records of topic not yet committed by group (None if it cannot be read now)."""
    c = Consumer({"bootstrap.servers": brokers, "group.id": group, "enable.auto.commit": False,
                  "isolation.level": "read_committed", "log_level": 0})
    try:
        parts = partitions(brokers, topic)
        committed = c.committed([TopicPartition(topic, p) for p in parts], timeout=10)
        lag = 0
        for tp in committed:
            _, high = c.get_watermark_offsets(TopicPartition(topic, tp.partition), timeout=10)
            lag += high - max(tp.offset, 0)
        return lag
    except Exception:
        return None
    finally:
        c.close()


# ---------------------------------------------------------------------------------------


def _suppression_effect(ev: dict) -> str | None:
    t = ev.get("type")
    if t in ("email.complained", "email.unsubscribed"):
        return "suppress"
    if t == "email.bounced" and (ev.get("bounce") or {}).get("class") == "hard":
        return "suppress"
    if t == "email.resubscribed":
        return "lift"
    return None


def expected_suppressions(events: list[dict]) -> set[tuple[str, str]]:
    """(tenant, address) pairs whose last-writer-wins register ends suppressed."""
    reg: dict[tuple[str, str], tuple[str, str, str]] = {}
    for ev in events:
        eff = _suppression_effect(ev)
        if eff is None or not ev.get("recipient"):
            continue
        k = (ev.get("tenant", ""), ev["recipient"].lower())
        stamp = (ev.get("occurred_at") or ev.get("received_at") or "", ev.get("event_id", ""))
        if k not in reg or stamp > reg[k][:2]:
            reg[k] = (stamp[0], stamp[1], eff)
    return {k for k, v in reg.items() if v[2] == "suppress"}


def actual_suppressions(dsn: str, sql: str | None) -> tuple[set[tuple[str, str]] | None, str]:
    """The suppressed (tenant, address) pairs in PostgreSQL, or None when the schema has
    no suppression table. With sql, that query (returning tenant, address, suppressed)
    is used; otherwise the view mh_suppressions_current (migrations/0003), or failing
    that the columns of a table mh_suppressions."""
    import psycopg
    with psycopg.connect(dsn, autocommit=True) as conn:
        if sql is None:
            if conn.execute("select to_regclass('mh_suppressions_current')").fetchone()[0]:
                sql = "select tenant, address, true from mh_suppressions_current"
                rows = conn.execute(sql).fetchall()
                return {(t, a.lower()) for t, a, s in rows if s}, sql
            if conn.execute("select to_regclass('mh_suppressions')").fetchone()[0] is None:
                return None, "no table mh_suppressions in the schema"
            cols = {r[0]: r[1] for r in conn.execute(
                "select column_name, data_type from information_schema.columns"
                " where table_name = 'mh_suppressions'")}
            addr = next((c for c in ("address", "recipient", "email") if c in cols), None)
            if addr is None or "tenant" not in cols:
                return None, f"mh_suppressions has no tenant/address columns ({sorted(cols)})"
            if cols.get("suppressed") == "boolean":
                state = "suppressed"
            elif "state" in cols:
                state = "state::text = 'suppressed'"
            elif cols.get("active") == "boolean":
                state = "active"
            elif "lifted_at" in cols:
                state = "lifted_at is null"
            elif "removed_at" in cols:
                state = "removed_at is null"
            else:
                state = "true"
            sql = f"select tenant, {addr}, {state} from mh_suppressions"
        rows = conn.execute(sql).fetchall()
    return {(t, a.lower()) for t, a, s in rows if s}, sql


def topic_suppressions(recs: list[Rec]) -> set[tuple[str, str]]:
    """(tenant, address) pairs whose last record on the compacted suppressions topic
    (key "<tenant>/<address>") is a state, not a tombstone."""
    last: dict[str, bytes | None] = {}
    for r in sorted(recs, key=lambda r: (r.partition, r.offset)):
        if r.key is not None:
            last[r.key.decode("utf-8", "replace")] = r.value
    out = set()
    for k, v in last.items():
        if v is not None and "/" in k:
            t, a = k.split("/", 1)
            out.add((t, a.lower()))
    return out


# ---------------------------------------------------------------------------------------


def verify(requests, events_recs: list[Rec], raw_recs: list[Rec], dlq_recs: list[Rec]) -> dict:
    """Counts and samples of everything that is wrong (see the module comment)."""
    sent = {}
    acked = set()
    for r in requests:
        for e in r.events:
            sent[e.key] = e
            if r.acked:
                acked.add(e.key)

    by_key: dict[str, list[dict]] = collections.defaultdict(list)
    by_id: collections.Counter = collections.Counter()
    bad_json = 0
    parsed = []
    for rec in events_recs:
        try:
            ev = json.loads(rec.value)
        except (TypeError, ValueError):
            bad_json += 1
            continue
        ev["_at"] = f"{rec.partition}@{rec.offset}"
        parsed.append(ev)
        by_key[ev.get("message_id") or "?"].append(ev)
        by_id[ev.get("event_id")] += 1

    doubled = {k: v for k, v in by_key.items() if len(v) > 1}
    doubled_ids = {k: n for k, n in by_id.items() if n > 1}
    missing = sorted(acked - by_key.keys())
    unexpected = sorted(k for k in by_key if k not in sent)
    without_2xx = sum(1 for k in by_key if k in sent and k not in acked)

    poison_raw = {(r.partition, r.offset) for r in raw_recs
                  if r.value is not None and r.value.startswith(DLQ_PREFIXES)}
    dlq = collections.Counter()
    for r in dlq_recs:
        try:
            dlq[(int(r.headers.get("mh-raw-partition", "-1")),
                 int(r.headers.get("mh-raw-offset", "-1")))] += 1
        except ValueError:
            dlq[(-1, -1)] += 1
    dlq_missing = sorted(poison_raw - dlq.keys())
    dlq_doubled = sorted(k for k, n in dlq.items() if n > 1)
    dlq_unexpected = sorted(k for k in dlq if k not in poison_raw)
    no_reason = sum(1 for r in dlq_recs if not r.headers.get("mh-dlq-reason"))
    acked_poison = sum(1 for r in requests if r.poison and r.acked and r.duplicate_of is None)

    # Poison events stored after a treatment: each emitted copy must show it.
    untreated = []
    treated = 0
    for k, e in sent.items():
        if not getattr(e, "treatment", None):
            continue
        for ev in by_key.get(k, []):
            treated += 1
            if e.treatment == "no_time" and "occurred_at" in ev:
                untreated.append(k)
            elif e.treatment == "hashed_id" and not (
                    str(ev.get("event_id", "")).startswith("sha256:") and
                    len(ev["event_id"]) == 7 + 64):
                untreated.append(k)

    def sample(keys, n=5):
        return [{"key": k, "at": [e["_at"] for e in by_key.get(k, [])],
                 "raw": [e.get("raw") for e in by_key.get(k, [])]} for k in list(keys)[:n]]

    return {
        "events_sent": len(sent),
        "events_expected": len(acked),
        "emitted": len(events_recs),
        "emitted_distinct": len(by_key),
        "missing": len(missing),
        "doubled": len(doubled),
        "doubled_event_ids": len(doubled_ids),
        "unexpected": len(unexpected),
        "bad_json": bad_json,
        "emitted_without_2xx": without_2xx,
        "raw_records": len(raw_recs),
        "poison_raw": len(poison_raw),
        "poison_acked": acked_poison,
        "dead_letters": len(dlq_recs),
        "dlq_missing": len(dlq_missing),
        "dlq_doubled": len(dlq_doubled),
        "dlq_unexpected": len(dlq_unexpected),
        "dlq_without_reason": no_reason,
        "treated_emitted": treated,
        "treatment_wrong": len(untreated),
        "samples": {"missing": sample(missing), "doubled": sample(doubled),
                    "unexpected": sample(unexpected), "treatment_wrong": untreated[:5],
                    "dlq_missing": dlq_missing[:5], "dlq_doubled": dlq_doubled[:5]},
        "_distinct_events": [v[0] for v in by_key.values()],
    }


def acked_not_on_raw(requests, raw_recs: list[Rec]) -> dict:
    """Acknowledged requests whose body is on no raw record: a 2xx for a write the
    brokers did not keep (the raw topic read without isolation, after every fault)."""
    bodies = {r.value for r in raw_recs if r.value is not None}
    lost = [r.index for r in requests if r.acked and r.body not in bodies]
    return {"acked_not_on_raw": len(lost), "acked_not_on_raw_samples": lost[:5]}

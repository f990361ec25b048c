"""`mailhook replay` end to end, on real Kafka and PostgreSQL, next to the session's live
workers: a replayed range equals what the live pipeline emitted for it, provider
duplicates come out once, expired claims are claimed anew, a changed mapping shows in
the replay, and an interrupted replay resumed writes exactly what an uninterrupted one
writes."""

from __future__ import annotations

import json
import os
import pty
import select
import signal
import subprocess
import time
import uuid

import psycopg
import pytest
from confluent_kafka import Consumer, Producer, TopicPartition

import helpers
from test_pipeline import assert_canonical, unique_bounce, uid


# ---------------------------------------------------------------------------------------
# helpers

def raw_headers(mailhook, source: str, request_id: str | None = None) -> list[tuple[str, bytes]]:
    """The headers mailhook-ingest puts on a raw record of a configured source."""
    src = mailhook.sources[source]
    now = time.time()
    received = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now)) + f".{int(now * 1000) % 1000:03d}Z"
    return [("mh-source", source.encode()), ("mh-provider", src["provider"].encode()),
            ("mh-tenant", src["tenant"].encode()), ("mh-received-at", received.encode()),
            ("mh-request-id", (request_id or uuid.uuid4().hex).encode()),
            ("content-type", b"application/json")]


def produce_raw(mailhook, records: list[tuple[str, bytes | dict | list]],
                partition: int | None = None) -> None:
    """Writes raw records straight to the session's raw topic, as ingest would:
    records are (source, body)."""
    p = Producer({"bootstrap.servers": mailhook.brokers, "enable.idempotence": True,
                  "linger.ms": 5})
    for i, (source, body) in enumerate(records):
        kw = {"partition": partition} if partition is not None else {}
        p.produce(mailhook.topics["raw"], helpers._bytes(body), key=str(i).encode(),
                  headers=raw_headers(mailhook, source), **kw)
        if i % 1000 == 0:
            p.poll(0)
    assert p.flush(30) == 0, "raw records not acknowledged"


def committed(group: str, topic: str, partitions: list[int], brokers: str) -> dict[int, int]:
    """A consumer group's committed offsets (read_committed: waits for open transactions);
    -1 where it has none. Reading them never joins the group."""
    c = Consumer({"bootstrap.servers": brokers, "group.id": group, "enable.auto.commit": False,
                  "isolation.level": "read_committed"})
    try:
        got = c.committed([TopicPartition(topic, p) for p in partitions], timeout=15)
        return {tp.partition: tp.offset if tp.offset >= 0 else -1 for tp in got}
    finally:
        c.close()


def wait_live(mailhook, raw_end: dict[int, int], timeout: float = 60) -> None:
    """Waits until the live workers have committed everything below raw_end."""
    group = mailhook.sections["worker"]["group_id"]

    def caught_up():
        have = committed(group, mailhook.topics["raw"], list(raw_end), mailhook.brokers)
        return all(raw_end[p] == 0 or have.get(p, -1) >= raw_end[p] for p in raw_end)
    helpers.wait_for(caught_up, timeout, interval=0.3, what="the live workers to catch up")


def offsets_arg(offsets: dict[int, int]) -> str:
    return ",".join(f"{p}:{o}" for p, o in sorted(offsets.items()))


def replay(mailhook, *args: str, check: bool = True, timeout: float = 180) -> dict:
    """Runs `mailhook replay ... --json` and returns its summary (exit status in "_rc")."""
    proc = mailhook.cli("replay", *args, "--json", check=False, timeout=timeout)
    out = proc.stdout.decode()
    if check and proc.returncode != 0:
        raise AssertionError(f"mailhook replay {' '.join(args)} exited {proc.returncode}\n"
                             f"stdout:\n{out}\nstderr:\n{proc.stderr.decode(errors='replace')}")
    summary = json.loads(out) if out.strip().startswith("{") else {}
    summary["_rc"] = proc.returncode
    summary["_stderr"] = proc.stderr.decode(errors="replace")
    return summary


def live_events(mailhook, start: dict[int, int], end: dict[int, int]) -> list[helpers.Record]:
    """What the live workers emitted for the raw records in [start, end)."""
    out = []
    for rec in mailhook.consume("events", timeout=60):
        raw = rec.value["raw"]
        if raw["topic"] == mailhook.topics["raw"] and \
                start.get(raw["partition"], 0) <= raw["offset"] < end.get(raw["partition"], 0):
            out.append(rec)
    return out


def topic_records(mailhook, topic: str) -> list[helpers.Record]:
    return helpers.consume(topic, brokers_=mailhook.brokers, timeout=60)


def canon(records) -> list[str]:
    """Records as comparable text: key, value and the CloudEvents headers."""
    return sorted(json.dumps([r.key, r.value, {k: v for k, v in r.headers.items()
                                               if k.startswith("ce_")}], sort_keys=True)
                  for r in records)


def target(name: str) -> str:
    return f"mailhook.replay-test.{name}.{uuid.uuid4().hex[:8]}"


def maildog(event: str, rid: str, i: int, **extra) -> dict:
    body = {"event": event, "timestamp": f"2026-06-15T10:{i // 60 % 60:02d}:{i % 60:02d}Z",
            "message_id": f"rp-{rid}-{i}", "recipient": f"r{i}.{rid}@example.com"}
    body.update(extra)
    return body


@pytest.fixture
def replay_topics(mailhook):
    """Target topics a test creates through replay, deleted afterwards."""
    made: list[str] = []
    yield made
    if os.environ.get("MH_E2E_KEEP") != "1":
        helpers.delete_topics(made, mailhook.brokers)


# ---------------------------------------------------------------------------------------
# tests

def test_replay_of_a_range_equals_the_live_output(mailhook, pg, replay_topics):
    rid = uid()
    start = mailhook.end_offsets("raw")
    # Through ingest: single events of two providers, a batch, a retried (duplicate)
    # delivery, and a body no provider can parse (dead letter).
    for i, ev in enumerate(["delivered", "hard_bounce", "opened", "clicked", "unsubscribed",
                            "mystery_event"]):
        assert mailhook.post("maildog", maildog(ev, rid, i, url="https://example.com/x")).status_code == 200
    for i in range(3):
        body = unique_bounce(f"live.{rid}.{i}@example.com", f"live-{rid}-{i}")
        assert mailhook.post("ivymail", body).status_code == 200
    batch = [maildog("delivered", rid, 100 + i) for i in range(4)]
    assert mailhook.post("maildog", batch).status_code == 200
    dup = unique_bounce(f"dup.{rid}@example.com", f"dup-{rid}")
    for _ in range(3):
        assert mailhook.post("ivymail", dup).status_code == 200
    assert mailhook.post("ivymail", b'{"event": "bounced", oops').status_code == 200
    end = mailhook.end_offsets("raw")
    n_raw = sum(end[p] - start[p] for p in end)
    assert n_raw == 6 + 3 + 1 + 3 + 1
    wait_live(mailhook, end)
    live = live_events(mailhook, start, end)
    assert len(live) == 6 + 3 + 4 + 1

    to = target("equal")
    replay_topics.append(to)
    s = replay(mailhook, "--from-offsets", offsets_arg(start), "--until", offsets_arg(end),
               "--to-topic", to)
    got = topic_records(mailhook, to)
    assert canon(got) == canon(live)
    for rec in got:
        assert_canonical(rec.value)
    assert s["status"] == "done" and s["dry_run"] is False
    assert s["records"] == n_raw
    assert s["events_written"] == len(live)
    assert s["duplicates_skipped"] == 2
    assert s["dead_letters"] == 1
    assert s["claimed_anew"] == 0
    assert sum(s["by_type"].values()) == len(live)
    assert s["by_source"] == {"maildog": 6 + 4, "ivymail": 4}
    assert s["by_type"]["email.bounced"] == 1 + 3 + 1
    assert [(p["partition"], p["start"], p["end"], p["position"]) for p in s["partitions"]] == \
        [(p, start[p], end[p], end[p]) for p in sorted(start)]
    # The checkpoint is the replay's own consumer group, committed with the output.
    assert committed(f"mailhook-replay-{s['replay_id']}", mailhook.topics["raw"], list(end),
                     mailhook.brokers) == {p: (end[p] if end[p] > start[p] else -1) for p in end}
    row = pg.execute("select status, progress from mh_replay_checkpoints where replay_id = %s",
                     (s["replay_id"],)).fetchone()
    assert row[0] == "done" and row[1]["events_written"] == len(live)

    # By time instead of offsets: the same records, the same events.
    def ts_of(partition, offset):
        c = Consumer({"bootstrap.servers": mailhook.brokers, "group.id": "mailhook-e2e-ts"})
        try:
            c.assign([TopicPartition(mailhook.topics["raw"], partition, offset)])
            msg = c.poll(10)
            assert msg is not None and not msg.error()
            return msg.timestamp()[1]
        finally:
            c.close()
    firsts = [ts_of(p, start[p]) for p in end if end[p] > start[p]]
    lasts = [ts_of(p, end[p] - 1) for p in end if end[p] > start[p]]

    def iso(ms):
        return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ms / 1000)) + f".{ms % 1000:03d}Z"
    to2 = target("bytime")
    replay_topics.append(to2)
    s2 = replay(mailhook, "--since", iso(min(firsts)), "--until", iso(max(lasts) + 1),
                "--to-topic", to2)
    assert s2["records"] == n_raw
    assert canon(topic_records(mailhook, to2)) == canon(live)


def test_replay_across_injected_duplicates_writes_each_event_once(mailhook, pg, replay_topics):
    """Provider duplicates injected into the raw topic (the same body again, an event
    delivered both alone and inside a batch) are written once; claims that expired are
    claimed anew by the first record carrying the event, and a second replay decides the
    same."""
    rid = uid()
    start = mailhook.end_offsets("raw")
    events = [maildog("delivered", rid, i) for i in range(10)]
    records = [("maildog", e) for e in events]
    records += [("maildog", events[2]), ("maildog", events[5]), ("maildog", events[5])]
    records += [("maildog", [events[7], events[8], maildog("opened", rid, 50)])]
    records += [("maildog", events[9])]
    produce_raw(mailhook, records, partition=0)
    end = mailhook.end_offsets("raw")
    wait_live(mailhook, end)
    live = live_events(mailhook, start, end)
    assert len(live) == 11

    # Expire some claims, as the retention window does.
    expired = [e["event_id"] for e in (r.value for r in live)
               if e["message_id"] in (f"rp-{rid}-5", f"rp-{rid}-8", f"rp-{rid}-50")]
    assert len(expired) == 3
    pg.execute("delete from mh_event_claims where event_id = any(%s)", (expired,))

    dry = replay(mailhook, "--from-offsets", offsets_arg(start), "--until", offsets_arg(end),
                 "--dry-run")
    # 13 distinct bodies carry 11 events: 3 repeated deliveries, 2 events of the batch
    # delivered alone before and one after.
    assert (dry["events_written"], dry["duplicates_skipped"], dry["claimed_anew"]) == (11, 6, 3)
    assert pg.execute("select count(*) from mh_event_claims where event_id = any(%s)",
                      (expired,)).fetchone()[0] == 0, "a dry run inserted claims"

    to = target("dups")
    replay_topics.append(to)
    s = replay(mailhook, "--from-offsets", offsets_arg(start), "--until", offsets_arg(end),
               "--to-topic", to)
    got = topic_records(mailhook, to)
    ids = [r.value["event_id"] for r in got]
    assert len(ids) == len(set(ids)) == 11
    assert canon(got) == canon(live)
    assert (s["events_written"], s["duplicates_skipped"], s["claimed_anew"]) == (11, 6, 3)
    # Claimed anew by the first record of the range that carries each event: the same
    # records as the first time.
    rows = dict(pg.execute("select event_id, raw_offset from mh_event_claims "
                           "where event_id = any(%s)", (expired,)).fetchall())
    assert rows == {r.value["event_id"]: r.value["raw"]["offset"] for r in live
                    if r.value["event_id"] in expired}

    to2 = target("dups-again")
    replay_topics.append(to2)
    s2 = replay(mailhook, "--from-offsets", offsets_arg(start), "--until", offsets_arg(end),
                "--to-topic", to2)
    assert s2["claimed_anew"] == 0
    assert canon(topic_records(mailhook, to2)) == canon(live)


def test_replay_after_a_mapping_change_emits_the_changed_events(mailhook, pg, replay_topics):
    """Fix-and-replay. The provider code cannot be swapped inside a test, so the older
    version's run is emulated: its output topic and the event log in PostgreSQL hold the
    events as the older mapping made them (here: "deferred" and "sent" were not known yet
    and came out as type "other" without a bounce object). The replay re-parses the raw
    bytes with the current code, so it writes the current mapping, keeps every event id,
    and leaves the stored claims alone."""
    rid = uid()
    start = mailhook.end_offsets("raw")
    bodies = [maildog("deferred", rid, 0, reason="452 4.2.2 mailbox full", smtp_code=452),
              maildog("sent", rid, 1), maildog("delivered", rid, 2)]
    produce_raw(mailhook, [("maildog", b) for b in bodies])
    end = mailhook.end_offsets("raw")
    wait_live(mailhook, end)
    current = {r.value["event_id"]: r.value for r in live_events(mailhook, start, end)}
    assert len(current) == 3

    def old_mapping(ev: dict) -> dict:
        old = dict(ev)
        if ev["provider_event"] in ("deferred", "sent"):
            old["type"] = "other"
            old.pop("bounce", None)
            old.pop("delay", None)
        return old
    old_topic = target("analytics-v1")
    replay_topics.append(old_topic)
    helpers.create_topics({old_topic: 1}, mailhook.brokers)
    p = Producer({"bootstrap.servers": mailhook.brokers})
    for ev in current.values():
        old = old_mapping(ev)
        p.produce(old_topic, json.dumps(old).encode(), key=ev["recipient"].encode())
        pg.execute("update mh_event_claims set event = %s, event_type = %s where event_id = %s",
                   (json.dumps(old), old["type"], ev["event_id"]))
    p.flush(30)
    before = {r.value["event_id"]: r.value for r in topic_records(mailhook, old_topic)}
    assert sorted(e["type"] for e in before.values()) == ["email.delivered", "other", "other"]

    new_topic = target("analytics-v2")
    replay_topics.append(new_topic)
    replay(mailhook, "--from-offsets", offsets_arg(start), "--until", offsets_arg(end),
           "--to-topic", new_topic)
    after = {r.value["event_id"]: r.value for r in topic_records(mailhook, new_topic)}
    assert set(after) == set(before), "a mapping change must not change event ids"
    assert after == current
    changed = {i for i in after if after[i] != before[i]}
    assert {after[i]["provider_event"] for i in changed} == {"deferred", "sent"}
    assert after[next(iter(i for i in changed if after[i]["provider_event"] == "deferred"))][
        "type"] == "email.delivery_delayed"
    assert {after[i]["type"] for i in changed} == {"email.delivery_delayed", "email.sent"}
    # The replay writes events; it does not rewrite the stored event log.
    stored = dict(pg.execute("select event_id, event_type from mh_event_claims "
                             "where event_id = any(%s)", (list(after),)).fetchall())
    assert sorted(stored.values()) == ["email.delivered", "other", "other"]


def _wait_committed_progress(group: str, mailhook, start: dict[int, int], proc: subprocess.Popen,
                             at_least: int, timeout: float = 60) -> int:
    """Waits until group has committed at least at_least records past start (while proc
    runs) and returns how many it has. The offsets are read as a read_uncommitted reader
    does: the offsets of the transactions committed so far. A read_committed reader asks
    for stable ones (KIP-447), which the broker holds back while a transaction has
    offsets pending, and a replay of one record a transaction nearly always has one."""
    c = Consumer({"bootstrap.servers": mailhook.brokers, "group.id": group,
                  "enable.auto.commit": False, "isolation.level": "read_uncommitted"})
    try:
        tps = [TopicPartition(mailhook.topics["raw"], p) for p in start]
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            have = {tp.partition: tp.offset for tp in c.committed(tps, timeout=15)}
            done = sum(max(0, have[p] - start[p]) for p in start if have.get(p, -1) >= 0)
            if done >= at_least:
                return done
            assert proc.poll() is None, f"replay exited early with status {proc.returncode}"
            time.sleep(0.02)
        raise AssertionError("the replay made no progress")
    finally:
        c.close()


def test_interrupted_replay_resumed_gives_the_same_result(mailhook, pg, replay_topics):
    rid = uid()
    start = mailhook.end_offsets("raw")
    kinds = ["delivered", "hard_bounce", "opened", "clicked", "soft_bounce"]
    records = []
    for i in range(3000):
        body: dict | bytes = maildog(kinds[i % 5], rid, i // 2, url=f"https://e.com/{i}")
        if i % 7 == 6:
            body = records[-1][1]          # a provider retry
        if i % 500 == 499:
            body = b'{"event": '            # a dead letter
        records.append(("maildog", body))
    produce_raw(mailhook, records)
    end = mailhook.end_offsets("raw")
    wait_live(mailhook, end, timeout=120)
    rng = ["--from-offsets", offsets_arg(start), "--until", offsets_arg(end)]

    whole = target("whole")
    replay_topics.append(whole)
    s_whole = replay(mailhook, *rng, "--to-topic", whole)
    want = canon(topic_records(mailhook, whole))
    assert len(want) == s_whole["events_written"] > 2000

    to = target("resumed")
    replay_topics.append(to)
    rid_replay = f"resume-{rid}"
    group = f"mailhook-replay-{rid_replay}"
    argv = [str(helpers.build_dir() / "mailhook"), "--config", str(mailhook.config_path), "replay"]

    # 1. Killed (no chance to clean up) after a few transactions. One record a
    # transaction keeps both runs below thousands of transactions from the end when
    # they are stopped, even where reading the group's offsets is slow.
    p1 = subprocess.Popen(argv + rng + ["--to-topic", to, "--id", rid_replay, "--batch-size", "1"],
                          env=mailhook.env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _wait_committed_progress(group, mailhook, start, p1, 20)
    p1.kill()
    p1.wait(10)
    status = pg.execute("select status from mh_replay_checkpoints where replay_id = %s",
                        (rid_replay,)).fetchone()[0]
    assert status == "running"

    # 2. Resumed, then stopped with SIGINT: finishes its batch and exits 130.
    p2 = subprocess.Popen(argv + ["--resume", rid_replay, "--batch-size", "1", "--json"],
                          env=mailhook.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    done_before = _wait_committed_progress(group, mailhook, start, p2, 0)
    _wait_committed_progress(group, mailhook, start, p2, done_before + 20)
    p2.send_signal(signal.SIGINT)
    out, err = p2.communicate(timeout=60)
    assert p2.returncode == 130, err.decode()
    s2 = json.loads(out)
    assert s2["status"] == "interrupted" and s2["resumed"] is True
    assert pg.execute("select status from mh_replay_checkpoints where replay_id = %s",
                      (rid_replay,)).fetchone()[0] == "interrupted"

    # 3. Resumed to the end.
    s3 = replay(mailhook, "--resume", rid_replay)
    assert s3["status"] == "done"
    got = topic_records(mailhook, to)
    assert canon(got) == want, "the resumed replay differs from the uninterrupted one"
    ids = [r.value["event_id"] for r in got]
    assert len(ids) == len(set(ids)), "an event was written twice"
    assert s3["totals"]["records"] <= s_whole["records"]
    assert pg.execute("select status from mh_replay_checkpoints where replay_id = %s",
                      (rid_replay,)).fetchone()[0] == "done"
    # Resuming a finished replay does nothing.
    again = replay(mailhook, "--resume", rid_replay)
    assert again["status"] == "done" and again["records"] == 0
    assert len(topic_records(mailhook, to)) == len(got)
    listing = json.loads(mailhook.cli("replay", "--list", "--json").stdout)
    mine = [r for r in listing if r["replay_id"] == rid_replay]
    assert mine and mine[0]["status"] == "done" and mine[0]["percent_done"] == 100.0


def test_dry_run_counts_by_type_and_source_and_writes_nothing(mailhook, pg):
    rid = uid()
    start = mailhook.end_offsets("raw")
    produce_raw(mailhook, [("maildog", maildog("delivered", rid, i)) for i in range(5)] +
                [("maildog", maildog("hard_bounce", rid, 10, reason="550 5.1.1 unknown"))] +
                [("ivymail", unique_bounce(f"dry.{rid}@example.com", f"dry-{rid}"))] +
                [("ivymail", b"not json")])
    end = mailhook.end_offsets("raw")
    wait_live(mailhook, end)
    claims_before = pg.execute("select count(*) from mh_event_claims").fetchone()[0]
    replays_before = pg.execute("select count(*) from mh_replay_checkpoints").fetchone()[0]
    to = target("never-created")
    s = replay(mailhook, "--from-offsets", offsets_arg(start), "--until", offsets_arg(end),
               "--to-topic", to, "--dry-run")
    assert s["dry_run"] is True and s["replay_id"] is None
    assert s["records"] == 8
    assert s["by_type"] == {"email.delivered": 5, "email.bounced": 2}
    assert s["by_source"] == {"maildog": 6, "ivymail": 1}
    assert s["dead_letters"] == 1
    assert to not in helpers.admin(mailhook.brokers).list_topics(timeout=10).topics
    assert pg.execute("select count(*) from mh_event_claims").fetchone()[0] == claims_before
    assert pg.execute("select count(*) from mh_replay_checkpoints").fetchone()[0] == replays_before

    # The human summary (no --json) names the same counts.
    out = mailhook.cli("replay", "--from-offsets", offsets_arg(start), "--until",
                       offsets_arg(end), "--dry-run").stdout.decode()
    assert "events to write" in out and "email.delivered" in out and "maildog" in out


def test_filters_by_source_provider_and_type(mailhook, replay_topics):
    rid = uid()
    start = mailhook.end_offsets("raw")
    produce_raw(mailhook, [("maildog", maildog("delivered", rid, 0)),
                           ("maildog", maildog("hard_bounce", rid, 1, reason="550 5.1.1 x")),
                           ("ivymail", unique_bounce(f"f.{rid}@example.com", f"f-{rid}"))])
    end = mailhook.end_offsets("raw")
    wait_live(mailhook, end)
    rng = ["--from-offsets", offsets_arg(start), "--until", offsets_arg(end)]
    to = target("filtered")
    replay_topics.append(to)
    s = replay(mailhook, *rng, "--to-topic", to, "--source", "maildog", "--type",
               "email.bounced,email.complained")
    got = topic_records(mailhook, to)
    assert [(r.value["source"], r.value["type"]) for r in got] == [("maildog", "email.bounced")]
    assert (s["records"], s["records_filtered"], s["events_filtered"]) == (3, 1, 1)
    s = replay(mailhook, *rng, "--dry-run", "--provider", "ivymail")
    assert s["by_source"] == {"ivymail": 1} and s["records_filtered"] == 2


def test_replay_never_passes_nor_joins_the_live_workers(mailhook, replay_topics):
    """The range ends where the live workers' group has committed (a record they have not
    processed is not claimed yet and must be theirs to claim first), unless --ignore-live;
    and the replay never becomes a member of their group."""
    rid = uid()
    start = mailhook.end_offsets("raw")
    produce_raw(mailhook, [("maildog", maildog("delivered", rid, i)) for i in range(6)],
                partition=0)
    end = mailhook.end_offsets("raw")
    wait_live(mailhook, end)
    # A stand-in for a live group that lags: committed 2 records into the range.
    lagging = f"mailhook-e2e-lagging-{rid}"
    c = Consumer({"bootstrap.servers": mailhook.brokers, "group.id": lagging,
                  "enable.auto.commit": False})
    c.commit(offsets=[TopicPartition(mailhook.topics["raw"], p, start[p] + (2 if p == 0 else 0))
                      for p in start], asynchronous=False)
    c.close()
    rng = ["--from-offsets", offsets_arg(start), "--until", offsets_arg(end)]
    s = replay(mailhook, *rng, "--dry-run", "--live-group", lagging)
    assert s["records"] == 2
    assert "live workers" in s["_stderr"]
    s = replay(mailhook, *rng, "--dry-run", "--live-group", lagging, "--ignore-live")
    assert s["records"] == 6

    group = mailhook.sections["worker"]["group_id"]
    members_before = _members(mailhook, group)
    to = target("not-joined")
    replay_topics.append(to)
    proc = subprocess.Popen([str(helpers.build_dir() / "mailhook"), "--config",
                             str(mailhook.config_path), "replay", *rng, "--to-topic", to,
                             "--batch-size", "1"],
                            env=mailhook.env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        seen = set()
        while proc.poll() is None:
            seen.add(tuple(_members(mailhook, group)))
            time.sleep(0.1)
    finally:
        proc.wait(120)
    assert proc.returncode == 0
    assert seen <= {tuple(members_before)}, "the replay joined the live workers' group"


def _members(mailhook, group: str) -> list[str]:
    admin = helpers.admin(mailhook.brokers)  # must outlive the future
    desc = admin.describe_consumer_groups([group])[group].result(30)
    return sorted(m.member_id for m in desc.members)


def test_refuses_the_pipeline_topics_and_bad_options(mailhook):
    start = mailhook.end_offsets("raw")
    rng = ["--from-offsets", offsets_arg(start)]
    for topic in ("events", "raw", "dlq", "suppressions"):
        r = mailhook.cli("replay", *rng, "--to-topic", mailhook.topics[topic], check=False)
        assert r.returncode == 1, topic
        assert b"refusing" in r.stderr, r.stderr
    r = mailhook.cli("replay", *rng, "--to-topic", mailhook.topics["events"], check=False)
    assert b"--yes" in r.stderr
    r = mailhook.cli("replay", *rng, "--to-topic", "x", "--dlq-topic", mailhook.topics["dlq"],
                     check=False)
    assert r.returncode == 1 and b"--yes" in r.stderr
    for args in ([], ["--to-topic", "x"], ["--since", "1h", "--from-beginning", "--dry-run"],
                 ["--from-beginning"], ["--resume", "x", "--to-topic", "y"],
                 ["--from-offsets", "0-1", "--dry-run"],
                 ["--from-beginning", "--dry-run", "--batch-size", "0"], ["--bogus"]):
        r = mailhook.cli("replay", *args, check=False)
        assert r.returncode in (1, 2), (args, r.returncode)
        assert r.stderr, args
    r = mailhook.cli("replay", "--from-offsets", "999:0", "--dry-run", check=False)
    assert r.returncode == 1 and b"no partition 999" in r.stderr
    r = mailhook.cli("replay", "--since", "yesterday-ish", "--dry-run", check=False)
    assert r.returncode == 1 and b"--since" in r.stderr
    # Relative times: "that long ago".
    s = replay(mailhook, "--since", "2s", "--until", "1s", "--dry-run")
    assert s["status"] == "done" and s["dry_run"] is True
    r = mailhook.cli("replay", "--resume", "no-such-replay", check=False)
    assert r.returncode == 1 and b"no replay" in r.stderr
    r = subprocess.run([str(helpers.build_dir() / "mailhook"), "replay", "--help"],
                       capture_output=True, timeout=20)
    assert r.returncode == 0
    for opt in (b"--from-offsets", b"--since", b"--from-beginning", b"--until", b"--source",
                b"--provider", b"--type", b"--to-topic", b"--yes", b"--dry-run",
                b"--apply-suppression", b"--resume", b"--json"):
        assert opt in r.stdout, opt


def test_id_is_unique(mailhook, replay_topics):
    start = mailhook.end_offsets("raw")
    rng = ["--from-offsets", offsets_arg(start)]
    to = target("unique-id")
    replay_topics.append(to)
    rid = f"unique-{uid()}"
    assert replay(mailhook, *rng, "--to-topic", to, "--id", rid)["status"] == "done"
    s = replay(mailhook, *rng, "--to-topic", to, "--id", rid, check=False)
    assert s["_rc"] == 1 and f"--resume {rid}" in s["_stderr"]


def test_progress_bar_on_a_terminal(mailhook, replay_topics):
    rid = uid()
    start = mailhook.end_offsets("raw")
    produce_raw(mailhook, [("maildog", maildog("delivered", rid, i)) for i in range(400)])
    end = mailhook.end_offsets("raw")
    wait_live(mailhook, end)
    to = target("tty")
    replay_topics.append(to)
    master, slave = pty.openpty()
    proc = subprocess.Popen([str(helpers.build_dir() / "mailhook"), "--config",
                             str(mailhook.config_path), "replay", "--from-offsets",
                             offsets_arg(start), "--until", offsets_arg(end), "--to-topic", to,
                             "--batch-size", "20"],
                            env=mailhook.env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=slave)
    os.close(slave)
    tty = b""
    while True:
        ready, _, _ = select.select([master], [], [], 0.5)
        if ready:
            try:
                chunk = os.read(master, 65536)
            except OSError:
                break
            if not chunk:
                break
            tty += chunk
        elif proc.poll() is not None:
            break
    os.close(master)
    out = proc.communicate(timeout=60)[0].decode()
    assert proc.returncode == 0
    text = tty.decode(errors="replace")
    for part in ("rec/s", "ev/s", "lag", "ETA", "%"):
        assert part in text, text
    # The summary goes to stdout, clean of the bar's control characters.
    assert "events written" in out and "\r" not in out and "400" in out


def test_apply_suppression_only_when_asked(mailhook, pg, replay_topics):
    """A replay claims an expired hard bounce anew; only with --apply-suppression does the
    address's suppression state change."""
    has_table = pg.execute("select to_regclass('mh_suppressions') is not null").fetchone()[0]
    if not has_table:
        pytest.skip("no suppression state in this build (mh_suppressions)")
    rid = uid()
    addr = f"supp.{rid}@example.com"
    start = mailhook.end_offsets("raw")
    produce_raw(mailhook, [("ivymail", unique_bounce(addr, f"supp-{rid}"))])
    end = mailhook.end_offsets("raw")
    wait_live(mailhook, end)
    tenant = mailhook.sources["ivymail"]["tenant"]

    def state():
        row = pg.execute("select state from mh_suppressions where tenant = %s and address = %s",
                         (tenant, addr)).fetchone()
        return row[0] if row else None
    try:
        helpers.wait_for(lambda: state() == "suppressed", 10, what="the live suppression")
    except AssertionError:
        pytest.skip("the live pipeline does not suppress hard bounces in this build")
    pg.execute("delete from mh_suppressions where tenant = %s and address = %s", (tenant, addr))
    rng = ["--from-offsets", offsets_arg(start), "--until", offsets_arg(end)]

    for flag, want in (([], None), (["--apply-suppression"], "suppressed")):
        pg.execute("delete from mh_event_claims where recipient = %s", (addr,))
        to = target("supp")
        replay_topics.append(to)
        s = replay(mailhook, *rng, "--to-topic", to, *flag)
        assert s["claimed_anew"] == 1 and s["apply_suppression"] == bool(flag)
        assert state() == want, flag


def test_aborted_transactions_are_retried_then_the_replay_stops_resumable(mailhook, replay_topics):
    """A target that refuses the events (records larger than its max.message.bytes) aborts
    every transaction: the replay retries the batch a few times, stops with nothing
    written and its checkpoint where it was, and once the cause is fixed a resume writes
    exactly the range's events."""
    from confluent_kafka.admin import AlterConfigOpType, ConfigEntry, ConfigResource

    rid = uid()
    start = mailhook.end_offsets("raw")
    produce_raw(mailhook, [("maildog", maildog("delivered", rid, i)) for i in range(30)])
    end = mailhook.end_offsets("raw")
    wait_live(mailhook, end)
    live = live_events(mailhook, start, end)
    to = target("too-small")
    replay_topics.append(to)
    helpers.create_topics({to: 2}, mailhook.brokers, config={"max.message.bytes": "200"})
    rid_replay = f"abort-{rid}"
    s = replay(mailhook, "--from-offsets", offsets_arg(start), "--until", offsets_arg(end),
               "--to-topic", to, "--id", rid_replay, "--batch-size", "10", check=False,
               timeout=300)
    assert s["_rc"] == 1 and s["status"] == "failed", s["_stderr"]
    assert "aborted 5 times in a row" in s["_stderr"]
    assert s["events_written"] == 0
    assert topic_records(mailhook, to) == []
    assert committed(f"mailhook-replay-{rid_replay}", mailhook.topics["raw"], list(end),
                     mailhook.brokers) == {p: (start[p] if end[p] > start[p] else -1) for p in end}

    admin = helpers.admin(mailhook.brokers)
    res = ConfigResource(ConfigResource.Type.TOPIC, to, incremental_configs=[
        ConfigEntry("max.message.bytes", "1048576",
                    incremental_operation=AlterConfigOpType.SET)])
    for f in admin.incremental_alter_configs([res]).values():
        f.result(30)
    time.sleep(1)
    s = replay(mailhook, "--resume", rid_replay)
    assert s["status"] == "done" and s["events_written"] == len(live) == 30
    assert canon(topic_records(mailhook, to)) == canon(live)

#!/usr/bin/env python3
"""Throughput of `mailhook replay` against the live worker, one process each, in one run.

Writes N raw records (the generic HMAC provider's shape: delivered, bounces, opens,
clicks; ~5% provider retries, ~0.2% unparseable) to a fresh raw topic, then

  1. live:   one mailhook-worker (a fresh consumer group) works through the backlog;
  2. replay: one `mailhook replay --from-beginning` re-reads the same records into
             another topic (every claim exists now, as after a live run).

Both are timed the same way: from the first to the last advance of their consumer
group's committed offsets (the offsets commit with each batch's Kafka transaction), so
start-up and group joins are not counted. The replay's own summary (--json) is shown as
well. Everything is created under a unique suffix (topics, database) and removed at the
end unless --keep.

Run it against the local stack (deploy/local/up, or the ports of MH_KAFKA_PORT /
MH_PG_PORT) with the test venv:

  .local/venv/bin/python tests/bench/replay_bench.py --records 50000
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "e2e"))

import psycopg  # noqa: E402
from confluent_kafka import Consumer, Producer, TopicPartition  # noqa: E402

import helpers  # noqa: E402

KINDS = ["delivered", "hard_bounce", "opened", "clicked", "soft_bounce", "delivered", "opened"]


def produce(brokers: str, topic: str, n: int, tenant: str) -> None:
    p = Producer({"bootstrap.servers": brokers, "enable.idempotence": True, "linger.ms": 20,
                  "batch.num.messages": 10000})
    prev = b"{}"
    for i in range(n):
        kind = KINDS[i % len(KINDS)]
        body = {"event": kind, "timestamp": f"2026-06-15T{i // 3600 % 24:02d}:{i // 60 % 60:02d}:"
                f"{i % 60:02d}Z", "message_id": f"bench-{i // 4}",
                "recipient": f"user{i % 5000}@example.com", "subject": "Your order", "tags": ["bench"]}
        if kind == "clicked":
            body["url"] = f"https://example.com/p/{i}"
        if "bounce" in kind:
            body.update({"reason": "550 5.1.1 user unknown" if kind == "hard_bounce"
                         else "452 4.2.2 mailbox full", "smtp_code": 550 if kind == "hard_bounce" else 452})
        raw = json.dumps(body).encode()
        if i % 20 == 19:
            raw = prev                      # a provider retry
        elif i % 500 == 498:
            raw = b'{"event": '             # cannot be parsed
        prev = raw
        headers = [("mh-source", b"maildog"), ("mh-provider", b"hmac"), ("mh-tenant", tenant.encode()),
                   ("mh-received-at", b"2026-06-15T12:00:00.000Z"), ("mh-request-id", str(i).encode())]
        while True:
            try:
                p.produce(topic, raw, key=str(i).encode(), headers=headers)
                break
            except BufferError:
                p.poll(0.1)
        if i % 5000 == 0:
            p.poll(0)
    assert p.flush(60) == 0


def committed_total(brokers: str, group: str, topic: str, parts: list[int]) -> int:
    c = Consumer({"bootstrap.servers": brokers, "group.id": group, "enable.auto.commit": False,
                  "isolation.level": "read_committed"})
    try:
        got = c.committed([TopicPartition(topic, p) for p in parts], timeout=15)
        return sum(tp.offset for tp in got if tp.offset > 0)
    finally:
        c.close()


def timed(brokers: str, group: str, topic: str, parts: list[int], total: int,
          proc: subprocess.Popen, timeout: float) -> tuple[float, int]:
    """(seconds, records) between the first and the last advance of group's offsets."""
    t_first = n_first = None
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        n = committed_total(brokers, group, topic, parts)
        now = time.monotonic()
        if n > 0 and t_first is None:
            t_first, n_first = now, n
        if n >= total:
            return now - t_first, total - n_first
        if proc.poll() is not None and proc.returncode != 0:
            raise SystemExit(f"{proc.args[0]} exited with status {proc.returncode}")
        time.sleep(0.05)
    raise SystemExit(f"group {group} did not finish within {timeout:.0f}s")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--records", type=int, default=50000)
    ap.add_argument("--partitions", type=int, default=3)
    ap.add_argument("--batch-size", type=int, default=500, help="[worker] batch_size, both sides")
    ap.add_argument("--build-dir", default=os.environ.get("MH_BUILD_DIR") or str(ROOT / "build"))
    ap.add_argument("--keep", action="store_true", help="keep the topics and the database")
    ap.add_argument("--timeout", type=float, default=900)
    args = ap.parse_args()

    brokers, dsn = helpers.brokers(), helpers.pg_dsn()
    build = Path(args.build_dir)
    sid = time.strftime("%Y%m%d%H%M%S") + "-" + secrets.token_hex(3)
    topics = {r: f"mailhook.{r}.bench-{sid}" for r in ("raw", "events", "dlq", "suppressions")}
    replay_topic = f"mailhook.replayed.bench-{sid}"
    dbname = "mailhook_bench_" + sid.replace("-", "_")
    workdir = Path(os.environ.get("MH_LOCAL") or ROOT / ".local") / "bench" / sid
    workdir.mkdir(parents=True, exist_ok=True)
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f'create database "{dbname}"')
    db = helpers.with_dbname(dsn, dbname)
    cfg = workdir / "mailhook.ini"
    group = f"mailhook-worker-bench-{sid}"
    helpers.write_ini(cfg, {
        "ingest": {"raw_topic": topics["raw"]},
        "worker": {"group_id": group, "raw_topic": topics["raw"], "events_topic": topics["events"],
                   "dlq_topic": topics["dlq"], "suppressions_topic": topics["suppressions"],
                   "raw_partitions": args.partitions, "batch_size": args.batch_size,
                   "log_level": "warn"},
        "postgres": {"dsn": db},
        "kafka": {"bootstrap.servers": brokers},
        "source.maildog": {"provider": "hmac", "tenant": "bench", "secret": secrets.token_hex(16)},
    })
    env = dict(os.environ, MAILHOOK_KAFKA_BROKERS=brokers, MAILHOOK_PG_DSN=db,
               MAILHOOK_LOG_LEVEL="warn")
    worker = None
    try:
        for cmd in ("topics", "migrate"):
            subprocess.run([str(build / "mailhook"), "--config", str(cfg), cmd], env=env,
                           check=True, stdout=subprocess.DEVNULL)
        t = time.monotonic()
        produce(brokers, topics["raw"], args.records, "bench")
        print(f"wrote {args.records} raw records to {topics['raw']} in {time.monotonic() - t:.1f}s",
              flush=True)
        parts = helpers.partitions(topics["raw"], brokers)

        worker = subprocess.Popen([str(build / "mailhook-worker"), "--config", str(cfg),
                                   "--instance", "bench-1"], env=env,
                                  stdout=open(workdir / "worker.log", "wb"), stderr=subprocess.STDOUT)
        live_s, live_n = timed(brokers, group, topics["raw"], parts, args.records, worker,
                               args.timeout)
        worker.send_signal(signal.SIGTERM)
        worker.wait(30)

        replay = subprocess.Popen([str(build / "mailhook"), "--config", str(cfg), "replay",
                                   "--from-beginning", "--to-topic", replay_topic, "--id", sid,
                                   "--json", "--no-progress"], env=env, stdout=subprocess.PIPE,
                                  stderr=open(workdir / "replay.log", "wb"))
        rep_s, rep_n = timed(brokers, f"mailhook-replay-{sid}", topics["raw"], parts,
                             args.records, replay, args.timeout)
        out, _ = replay.communicate(timeout=60)
        summary = json.loads(out)

        live_rate, rep_rate = live_n / live_s, rep_n / rep_s
        print(f"records: {args.records} in {len(parts)} partitions, batch size {args.batch_size}")
        print(f"live worker  {live_n:>8} records in {live_s:6.2f}s  {live_rate:9.0f} records/s")
        print(f"replay       {rep_n:>8} records in {rep_s:6.2f}s  {rep_rate:9.0f} records/s"
              f"   (ratio {rep_rate / live_rate:.2f})")
        print(f"replay summary: {summary['records']} records, {summary['events_written']} events "
              f"written, {summary['duplicates_skipped']} duplicates, {summary['dead_letters']} "
              f"dead letters, {summary['records_per_s']:.0f} records/s over {summary['elapsed_s']:.2f}s "
              f"including its start")
        return 0
    finally:
        if worker and worker.poll() is None:
            worker.kill()
        if not args.keep:
            helpers.delete_topics(list(topics.values()) + [replay_topic], brokers)
            with psycopg.connect(dsn, autocommit=True) as conn:
                conn.execute(f'drop database if exists "{dbname}" with (force)')


if __name__ == "__main__":
    sys.exit(main())

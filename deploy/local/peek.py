#!/usr/bin/env python3
"""Look at what mailhook wrote to a Kafka topic (used by deploy/local/up).

    peek.py offsets TOPIC
        print the topic's end offsets as JSON ({"partition": offset, ...})
    peek.py consume TOPIC [--from-offsets JSON|@FILE] [--count N] [--timeout S]
                          [--match FIELD=VALUE]... [--until-end]
        print records from those offsets (default: the beginning), pretty-printed,
        until N records were read, S seconds passed or (--until-end) every partition
        was read to its end; exit status 1 if fewer than N. With --match only records
        whose JSON value has those top-level fields are counted and printed.

Reads with isolation.level=read_committed, as every mailhook consumer should, so
records of aborted or still open transactions are never shown. The brokers come from
--brokers or MAILHOOK_KAFKA_BROKERS (default 127.0.0.1:9092).
"""

import argparse
import json
import os
import sys
import time
import uuid

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, TopicPartition


def consumer(brokers, eof=False):
    return Consumer({
        "bootstrap.servers": brokers,
        "group.id": "mailhook-peek-" + uuid.uuid4().hex,
        "enable.auto.commit": False,
        "isolation.level": "read_committed",
        "auto.offset.reset": "earliest",
        "enable.partition.eof": eof,
    })


def partitions(c, topic, timeout=10.0):
    md = c.list_topics(topic, timeout=timeout)
    t = md.topics.get(topic)
    if t is None or t.error is not None:
        err = t.error if t is not None else "not found"
        sys.exit(f"peek: topic \"{topic}\": {err}")
    return sorted(t.partitions)


def end_offsets(brokers, topic):
    c = consumer(brokers)
    try:
        out = {}
        for p in partitions(c, topic):
            _, high = c.get_watermark_offsets(TopicPartition(topic, p), timeout=10.0)
            out[str(p)] = high
        return out
    finally:
        c.close()


def decode(b):
    if b is None:
        return None
    try:
        return b.decode("utf-8")
    except UnicodeDecodeError:
        return repr(b)


def show(msg):
    print(f"--- {msg.topic()} partition {msg.partition()} offset {msg.offset()}")
    print(f"key: {decode(msg.key())}")
    headers = msg.headers() or []
    if headers:
        print("headers:")
        for k, v in headers:
            print(f"  {k}: {decode(v)}")
    value = msg.value()
    if value is None:
        print("value: (tombstone)")
        return
    try:
        print(json.dumps(json.loads(value), indent=2, ensure_ascii=False, sort_keys=False))
    except ValueError:
        print(decode(value))
    sys.stdout.flush()


def matches(msg, match):
    if not match:
        return True
    try:
        value = json.loads(msg.value())
    except (TypeError, ValueError):
        return False
    return isinstance(value, dict) and all(str(value.get(k)) == v for k, v in match.items())


def consume(brokers, topic, from_offsets, count, timeout, match=None, until_end=False):
    c = consumer(brokers, eof=until_end)
    try:
        assign = []
        parts = partitions(c, topic)
        at_end = set()
        for p in parts:
            off = from_offsets.get(str(p), OFFSET_BEGINNING) if from_offsets else OFFSET_BEGINNING
            assign.append(TopicPartition(topic, p, off))
        c.assign(assign)
        got = 0
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and (count is None or got < count):
            msg = c.poll(min(0.5, max(0.0, deadline - time.monotonic())))
            if msg is None:
                continue
            if msg.error():
                if msg.error().code() == KafkaError._PARTITION_EOF:
                    at_end.add(msg.partition())
                    if until_end and at_end >= set(parts):
                        break
                    continue
                print(f"peek: {msg.error()}", file=sys.stderr)
                continue
            at_end.discard(msg.partition())
            if not matches(msg, match):
                continue
            show(msg)
            got += 1
        return got
    finally:
        c.close()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--brokers", default=os.environ.get("MAILHOOK_KAFKA_BROKERS", "127.0.0.1:9092"))
    sub = ap.add_subparsers(dest="cmd", required=True)
    o = sub.add_parser("offsets", help="print end offsets as JSON")
    o.add_argument("topic")
    r = sub.add_parser("consume", help="print records")
    r.add_argument("topic")
    r.add_argument("--from-offsets", help="JSON from `offsets`, or @FILE holding it")
    r.add_argument("--count", type=int)
    r.add_argument("--timeout", type=float, default=30.0)
    r.add_argument("--match", action="append", default=[], metavar="FIELD=VALUE")
    r.add_argument("--until-end", action="store_true")
    args = ap.parse_args()

    if args.cmd == "offsets":
        print(json.dumps(end_offsets(args.brokers, args.topic)))
        return 0
    offsets = None
    if args.from_offsets:
        text = args.from_offsets
        if text.startswith("@"):
            with open(text[1:], encoding="utf-8") as f:
                text = f.read()
        offsets = json.loads(text)
    match = dict(m.split("=", 1) for m in args.match)
    got = consume(args.brokers, args.topic, offsets, args.count, args.timeout, match,
                  args.until_end)
    if args.count is not None and got < args.count:
        if args.until_end:
            return 1
        print(f"peek: {got} of {args.count} record(s) from {args.topic} within {args.timeout:g}s",
              file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

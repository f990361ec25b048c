"""Questions about the local Kafka cluster (deploy/local/cluster.sh), asked through the
admin API:

  ready --nodes N [--in-sync] [--node ID --node-addr HOST:PORT]
                                exit 0 when N brokers are registered and a controller is
                                elected (--in-sync: and every partition's ISR is whole;
                                --node: and node ID itself answers, listing itself, so
                                that a node just restarted is not taken for the crashed
                                one that the controller has not fenced yet)
  leader TOPIC PARTITION        the node id leading that partition
  leaders TOPIC                 the node ids leading TOPIC's partitions, one per line
  txn-coordinator ID            the node id coordinating transactional.id ID
  under-min-isr                 partitions whose ISR is shorter than min.insync.replicas
"""

from __future__ import annotations

import argparse
import sys

from confluent_kafka.admin import AdminClient, ConfigResource

TXN_TOPIC = "__transaction_state"


def java_string_hash(s: str) -> int:
    """java.lang.String.hashCode of s (UTF-16 code units), as a signed 32-bit int."""
    h = 0
    data = s.encode("utf-16-be")
    for i in range(0, len(data), 2):
        h = (31 * h + int.from_bytes(data[i:i + 2], "big")) & 0xFFFFFFFF
    return h - (1 << 32) if h & 0x80000000 else h


def txn_partition(transactional_id: str, partitions: int) -> int:
    """The __transaction_state partition of transactional_id, as the broker computes it
    (TransactionStateManager.partitionFor: Utils.abs(hashCode) % partitions, where
    Utils.abs is Math.abs with Integer.MIN_VALUE mapped to 0 — not a bit mask)."""
    h = java_string_hash(transactional_id)
    return (0 if h == -(1 << 31) else abs(h)) % partitions


def metadata(admin: AdminClient, topic: str | None = None):
    md = admin.list_topics(topic, timeout=10)
    if topic is not None:
        t = md.topics.get(topic)
        if t is None or t.error is not None:
            raise SystemExit(f"topic {topic}: {t.error if t else 'missing'}")
    return md


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--brokers", required=True)
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("ready")
    r.add_argument("--nodes", type=int, required=True)
    r.add_argument("--in-sync", action="store_true")
    r.add_argument("--node", type=int)
    r.add_argument("--node-addr")
    le = sub.add_parser("leader")
    le.add_argument("topic")
    le.add_argument("partition", type=int)
    ls = sub.add_parser("leaders")
    ls.add_argument("topic")
    tc = sub.add_parser("txn-coordinator")
    tc.add_argument("transactional_id")
    sub.add_parser("under-min-isr")
    a = ap.parse_args()
    admin = AdminClient({"bootstrap.servers": a.brokers, "log_level": 0})

    if a.cmd == "ready":
        if a.node is not None:
            own = AdminClient({"bootstrap.servers": a.node_addr, "log_level": 0})
            if a.node not in metadata(own).brokers:
                return 1
        md = metadata(admin)
        if len(md.brokers) < a.nodes or md.controller_id < 0:
            return 1
        if a.in_sync:
            for t in md.topics.values():
                for p in t.partitions.values():
                    if p.leader < 0 or len(p.isrs) < len(p.replicas):
                        return 1
        return 0
    if a.cmd == "leader":
        p = metadata(admin, a.topic).topics[a.topic].partitions.get(a.partition)
        if p is None or p.leader < 0:
            return 1
        print(p.leader)
        return 0
    if a.cmd == "leaders":
        parts = metadata(admin, a.topic).topics[a.topic].partitions
        for i in sorted(parts):
            print(parts[i].leader)
        return 0
    if a.cmd == "txn-coordinator":
        parts = metadata(admin, TXN_TOPIC).topics[TXN_TOPIC].partitions
        p = parts[txn_partition(a.transactional_id, len(parts))]
        if p.leader < 0:
            return 1
        print(p.leader)
        return 0
    if a.cmd == "under-min-isr":
        md = metadata(admin)
        names = list(md.topics)
        res = [ConfigResource(ConfigResource.Type.TOPIC, n) for n in names]
        configs = admin.describe_configs(res)
        for r_, fut in configs.items():
            min_isr = int(fut.result(timeout=10)["min.insync.replicas"].value)
            for i, p in sorted(md.topics[r_.name].partitions.items()):
                if len(p.isrs) < min_isr:
                    print(f"{r_.name}-{i} isr={p.isrs} min={min_isr}")
        return 0
    return 2


if __name__ == "__main__":
    sys.exit(main())

"""The faults of the cluster chaos run (tests/chaos/run --cluster): Kafka node crashes and
restarts in the local KRaft cluster of deploy/local/cluster.sh (replication factor 3,
min.insync.replicas 2), while the load runs.

  leader_raw     kill -9 the node leading most of the raw topic's partitions, restart it
  leader_events  the same for the events topic (the workers' transactional writes)
  coordinator    kill -9 the transaction coordinator of worker-1's transactional.id
  rolling        a rolling restart: each node in turn stopped (SIGTERM), started, and
                 waited for until every partition's ISR is whole again
  isr_short      one node held down (kill -9) while a second is stopped (SIGTERM): the
                 one left holds every partition alone, below min.insync.replicas, so no
                 write can be acknowledged; for --isr-short-s seconds the ingest must
                 answer 503, never 2xx. Then the second node comes back, then the first.

Every restart waits until the cluster is whole again (every ISR complete), so the next
fault starts from a healthy cluster.
"""

from __future__ import annotations

import collections
import time

import procs

FAULTS = ("leader_raw", "leader_events", "coordinator", "rolling", "isr_short")


def nodes() -> list[int]:
    import os
    return list(range(1, int(os.environ.get("MH_KAFKA_BROKERS_N", "3")) + 1))


class ClusterFaults:
    def __init__(self, run):
        self.run = run
        self.done: list[dict] = []
        # (start, end) of the time the ISR was short on purpose, monotonic
        self.isr_window: tuple[float, float] | None = None

    def _leaders(self, topic: str) -> list[int]:
        out = procs.stack_call(f"mh_kafka_cluster_py leaders '{topic}'")
        return [int(x) for x in out.split() if x.lstrip("-").isdigit()]

    def _crash_and_restart(self, kind: str, node: int, why: str) -> None:
        run = self.run
        span = run._outage(f"Kafka node {node}")
        try:
            run.note(f"kill -9 Kafka node {node} ({why})")
            t0 = time.monotonic()
            procs.stack_call(f"mh_kafka_node_kill {node}")
            time.sleep(run.args.broker_down_s)
            procs.stack_call(f"mh_kafka_node_restart {node}")
            took = time.monotonic() - t0
            run.note(f"Kafka node {node} back in every ISR {took:.1f}s after the crash")
            self.done.append({"fault": kind, "node": node, "why": why, "seconds": round(took, 1)})
        finally:
            span[2] = time.monotonic()

    def leader_raw(self, rng) -> None:
        self._kill_leader("leader_raw", "raw")

    def leader_events(self, rng) -> None:
        self._kill_leader("leader_events", "events")

    def _kill_leader(self, kind: str, role: str) -> None:
        leaders = self._leaders(self.run.topics[role])
        node, n = collections.Counter(x for x in leaders if x > 0).most_common(1)[0]
        self._crash_and_restart(kind, node, f"leader of {n}/{len(leaders)} {role} partitions")

    def coordinator(self, rng) -> None:
        tid = f"{self.run.group}-worker-1"
        node = int(procs.stack_call(f"mh_kafka_txn_coordinator '{tid}'").split()[-1])
        self._crash_and_restart("coordinator", node, f"transaction coordinator of {tid}")

    def rolling(self, rng) -> None:
        run = self.run
        span = run._outage("Kafka rolling restart")
        t0 = time.monotonic()
        try:
            for node in nodes():
                t1 = time.monotonic()
                run.note(f"rolling restart: stopping Kafka node {node} (SIGTERM)")
                procs.stack_call(f"mh_kafka_node_stop {node}")
                procs.stack_call(f"mh_kafka_node_restart {node}")
                run.note(f"rolling restart: node {node} back in every ISR after "
                         f"{time.monotonic() - t1:.1f}s")
            self.done.append({"fault": "rolling", "nodes": nodes(),
                              "seconds": round(time.monotonic() - t0, 1)})
        finally:
            span[2] = time.monotonic()

    def isr_short(self, rng) -> None:
        run = self.run
        ns = nodes()
        held, stopped = ns[0], ns[1]
        span = run._outage("Kafka ISR short")
        t_all = time.monotonic()
        try:
            run.note(f"ISR short: kill -9 Kafka node {held} and hold it down")
            procs.stack_call(f"mh_kafka_node_kill {held}")
            # Fenced after broker.session.timeout.ms (3 s): out of every ISR.
            time.sleep(5)
            run.note(f"ISR short: stopping Kafka node {stopped} (SIGTERM) while {held} is down")
            procs.stack_call(f"mh_kafka_node_stop {stopped}")
            t0 = time.monotonic()
            time.sleep(run.args.isr_short_s)
            t1 = time.monotonic()
            self.isr_window = (t0, t1)
            run.note(f"ISR short for {t1 - t0:.1f}s; starting node {stopped}, then node {held}")
            procs.stack_call(f"mh_kafka_node_start {stopped}")
            procs.stack_call(f"mh_kafka_node_restart {held}")
            run.note(f"ISR short: cluster whole again {time.monotonic() - t1:.1f}s later")
            self.done.append({"fault": "isr_short", "held_down": held, "stopped": stopped,
                              "short_seconds": round(t1 - t0, 1),
                              "seconds": round(time.monotonic() - t_all, 1)})
        finally:
            span[2] = time.monotonic()

    def window_report(self, requests, unavailable_at: list[float]) -> dict:
        """What the ingest answered while the ISR was short: 2xx answers to attempts sent
        within the window (each one a write acknowledged below min.insync.replicas: must
        be 0) and 503s."""
        if self.isr_window is None:
            return {"ran": False}
        t0, t1 = self.isr_window
        acked = [r.index for r in requests
                 if r.acked and r.ack_sent_at >= t0 and r.acked_at <= t1]
        answered = sum(1 for r in requests if r.acked and t0 <= r.acked_at <= t1)
        return {"ran": True, "seconds": round(t1 - t0, 1),
                "answers_503": sum(1 for t in unavailable_at if t0 <= t <= t1),
                "acked_sent_in_window": len(acked), "acked_samples": acked[:5],
                "acked_answered_in_window": answered}


def topic_replication(brokers: str, topics: list[str], want_rf: int, want_isr: int) -> list[str]:
    """The run's topics whose replication differs from what `mailhook topics` was asked
    for ([worker] replication_factor / min_insync_replicas): one line each."""
    from confluent_kafka.admin import AdminClient, ConfigResource
    admin = AdminClient({"bootstrap.servers": brokers, "log_level": 0})
    md = admin.list_topics(timeout=20)
    res = admin.describe_configs([ConfigResource(ConfigResource.Type.TOPIC, t) for t in topics])
    wrong = []
    for r, fut in res.items():
        isr = int(fut.result(timeout=20)["min.insync.replicas"].value)
        rfs = {len(p.replicas) for p in md.topics[r.name].partitions.values()}
        if rfs != {want_rf} or isr != want_isr:
            wrong.append(f"{r.name}: replicas {sorted(rfs)}, min.insync.replicas {isr}")
    return wrong

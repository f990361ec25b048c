"""End to end: the time from ingest's 200 to the event being visible to a read_committed
consumer of the events topic, at a constant request rate, with ingest and two workers
running. The sender is open loop (request i due at start + i/rate, each a distinct,
signed ivymail event): e2e_sender.c, which writes when each request was answered 200;
the rate it reached is reported next to the one asked for. The ceiling is the path without
the worker's part: 200 -> visible on the raw topic (what ingest and Kafka cost), measured
with the workers running, as they read the raw topic the ceiling's requests reach.

The highest sustained rate is measured twice: with single-event webhooks (a request is an
event) and with batch webhooks of BATCH_EVENTS events each (one request, one raw record,
BATCH_EVENTS events on the events topic), as providers that batch their deliveries send
them; both ladders count events per second."""

from __future__ import annotations

import json
import re
import statistics
import threading
import time

from common import Bench, Figure, log, run, wait_group

import check
import loadgen

CONNECTIONS = 256
# Events in one request of the batch-webhook ladder.
BATCH_EVENTS = 10


class Visible(threading.Thread):
    """Reads a topic read_committed from its end as it was when started (ready is set
    once the reader is placed there); when each message id became visible. Starting at
    the end, not the beginning, keeps the earlier runs' records out of the measurement:
    a reader still working through them would add its own delay to the first events."""

    def __init__(self, brokers: str, topic: str, key_of):
        super().__init__(daemon=True)
        self.brokers, self.topic, self.key_of = brokers, topic, key_of
        self.seen: dict[str, float] = {}
        self.ready = threading.Event()
        self._stop_ev = threading.Event()

    def run(self) -> None:
        from confluent_kafka import Consumer, TopicPartition
        c = Consumer({"bootstrap.servers": self.brokers, "group.id": f"bench-visible-{time.time_ns()}",
                      "enable.auto.commit": False, "auto.offset.reset": "earliest",
                      "isolation.level": "read_committed", "fetch.wait.max.ms": 5,
                      "log_level": 0})
        try:
            # Each partition's high watermark, asked before anything of this run is sent:
            # everything after it is this run's (or a later transaction of the one before).
            parts = c.list_topics(self.topic, timeout=30).topics[self.topic].partitions
            c.assign([TopicPartition(self.topic, p,
                                     c.get_watermark_offsets(TopicPartition(self.topic, p),
                                                             timeout=30)[1])
                      for p in sorted(parts)])
            self.ready.set()
            while not self._stop_ev.is_set():
                # consume() waits out its timeout unless 500 arrive first: the timeout is
                # added to the latency of what it returns, so it is kept short.
                for m in c.consume(500, 0.005):
                    if m.error():
                        continue
                    t = time.time()
                    k = self.key_of(m.value())
                    if k is not None:
                        self.seen.setdefault(k, t)
        finally:
            c.close()

    def stop(self) -> None:
        self._stop_ev.set()
        self.join(15)


# The first "message_id" of a record: an event's (the only message id the sender's ivymail
# events carry), a raw single-event body's, a raw batch body's first event's. A search,
# not json.loads: at tens of thousands of events a second the reader's own CPU would
# otherwise take a share of the cores the pipeline is measured on.
_MESSAGE_ID = re.compile(rb'"message_id":\s*"([^"\\]*)"')


def _message_id(value: bytes) -> str | None:
    m = _MESSAGE_ID.search(value or b"")
    return m.group(1).decode() if m else None


def send(bench: Bench, port: int, secret: str, rate: float, seconds: float,
         tag: str, per: int = 1, firsts: bool = False) -> tuple[dict, float]:
    """Open-loop sender (e2e_sender) of rate events/s, per events a request (a JSON array
    when more than one); ({message id: time of its request's 200}, achieved events/s).
    With firsts, only the first event of each request is in the answer (what a reader of
    the raw topic, one record a request, finds by _message_id)."""
    requests = max(int(rate * seconds / per), 1)
    reqs = bench.work / f"e2e-{tag}.requests"
    answers = bench.work / f"e2e-{tag}.answers"
    ids = [[f"e2e-{tag}-{i}.{j}" for j in range(per)] for i in range(requests)]
    with reqs.open("w") as f:
        for i, mids in enumerate(ids):
            evs = [{"event": "delivered", "message_id": mid, "to": f"e2e{i}.{j}@acme.example",
                    "timestamp": "2026-06-15T10:00:00Z"} for j, mid in enumerate(mids)]
            b = json.dumps(evs[0] if per == 1 else evs, separators=(",", ":"))
            f.write(f"{loadgen._hmac_hex(secret, b.encode())} {b}\n")
    out = run([str(bench.bin / "e2e_sender"), "127.0.0.1", str(port), "/v1/webhooks/ivymail",
               "x-ivymail-signature", str(rate / per), str(CONNECTIONS), str(reqs), str(answers)],
              seconds + 120)
    summary = json.loads(out.strip().splitlines()[-1])
    acked = {}
    for line in answers.read_text().splitlines():
        i, t = line.split()
        for mid in ids[int(i)][:1 if firsts else per]:
            acked[mid] = float(t)
    return acked, summary["achieved_rate"] * per


def caught_up(bench: Bench, cfg: dict, timeout: float = 300) -> None:
    """Waits until the workers have committed every raw record: the raw topic's figures
    load them too, and a measurement begun while they still work through an earlier
    one's records (a ladder's top steps are a backlog) would carry that backlog."""
    deadline = time.monotonic() + timeout
    while check.group_lag(bench.brokers, cfg["group"], cfg["topics"]["raw"]) != 0:
        if time.monotonic() > deadline:
            raise RuntimeError(f"the workers did not catch up with {cfg['topics']['raw']} "
                               f"in {timeout:.0f}s")
        time.sleep(0.2)


def latency(bench: Bench, cfg: dict, topic: str, key_of, rate: float, seconds: float,
            tag: str, per: int = 1) -> tuple[dict, float]:
    """p50, p99 and the drain of rate events/s (per a request) made visible on topic, once
    the workers have caught up."""
    caught_up(bench, cfg)
    vis = Visible(bench.brokers, topic, key_of)
    vis.start()
    if not vis.ready.wait(60):
        vis.stop()
        raise RuntimeError(f"the reader of {topic} could not find the topic's end")
    try:
        acked, achieved = send(bench, cfg["port"], bench.secret, rate, seconds, tag, per,
                               firsts=topic == cfg["topics"]["raw"])
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not all(k in vis.seen for k in acked):
            time.sleep(0.1)
    finally:
        vis.stop()
    missing = [k for k in acked if k not in vis.seen]
    if missing:
        raise RuntimeError(f"{len(missing)} of {len(acked)} events never became visible on {topic}")
    lat = sorted((vis.seen[k] - t) * 1000 for k, t in acked.items())
    q = statistics.quantiles(lat, n=100, method="inclusive") if len(lat) > 1 else [lat[0]] * 99
    # How long after the last 200 the last event became visible: the backlog left.
    drain = max(vis.seen.values()) - max(acked.values()) if acked else 0.0
    return {"p50": q[49], "p99": q[98], "drain_s": drain}, achieved


# A rate is sustained when the sender reached it and every event was visible within this
# many seconds of the last 200 (the backlog stayed bounded instead of growing).
SUSTAINED_DRAIN_S = 2.0


def highest_sustained(bench: Bench, cfg: dict, topic: str, ladder: list[int], seconds: float,
                      tag: str, per: int = 1) -> float:
    """The highest rate of the ladder (ascending, events/s; per events a request) sustained
    on topic; 0 when none was."""
    best = 0.0
    for rate in ladder:
        r, achieved = latency(bench, cfg, topic, _message_id, rate, seconds, f"{tag}-{rate}", per)
        ok = achieved >= 0.95 * rate and r["drain_s"] <= SUSTAINED_DRAIN_S
        log(f"e2e ladder {topic}, {per} event(s) a request: {rate} events/s asked, "
            f"{achieved:.0f}/s sent, last event visible "
            f"{r['drain_s']:.2f}s after the last 200: {'sustained' if ok else 'not sustained'}")
        if not ok:
            break
        best = float(rate)
    return best


def measure(bench: Bench, sizes: dict, runs: int) -> tuple[list[Figure], dict]:
    figs: list[Figure] = []
    cfg = bench.config("e2e", batch_size=sizes["batch_size"])
    ingest = bench.ingest(cfg)
    workers = [bench.worker(cfg, f"e{i}") for i in (1, 2)]
    try:
        # Warm-up, not counted: until its events are visible, the workers have joined the
        # group and hold their partitions (a join's rebalance would land in the first
        # figure's tail otherwise).
        latency(bench, cfg, cfg["topics"]["events"], _message_id, 100, 1, "warmup")
        wait_group(bench.brokers, cfg["group"], len(workers))
        for rate in sizes["e2e_rates"]:
            p = {k: Figure("e2e", f"200 -> visible on events (read_committed) {k} at {rate}/s",
                           "ms", f"open-loop sender (e2e_sender.c), {rate}/s for {sizes['e2e_seconds']}s, "
                                 f"{CONNECTIONS} connections; ingest + 2 workers",
                           ceiling_name="200 -> visible on the raw topic (workers running), same rate")
                 for k in ("p50", "p99")}
            achieved_all = []
            for i in range(runs):
                r, achieved = latency(bench, cfg, cfg["topics"]["events"], _message_id, rate,
                                      sizes["e2e_seconds"], f"{rate}-{i}")
                c, _ = latency(bench, cfg, cfg["topics"]["raw"], _message_id, rate,
                               sizes["e2e_seconds"], f"{rate}-{i}-raw")
                achieved_all.append(achieved)
                for k in p:
                    p[k].samples.append(r[k])
                    p[k].ceiling_samples.append(c[k])
                log(f"e2e at {rate}/s (achieved {achieved:.0f}/s): p50 {r['p50']:.1f} ms, "
                    f"p99 {r['p99']:.1f} ms (raw topic p50 {c['p50']:.1f}, p99 {c['p99']:.1f})")
            for f in p.values():
                f.note = f"sender achieved {min(achieved_all):.0f}..{max(achieved_all):.0f}/s"
            figs += p.values()
        for per, ladder in ((1, sizes["e2e_ladder"]), (BATCH_EVENTS, sizes["e2e_batch_ladder"])):
            kind = ("single-event webhooks" if per == 1 else
                    f"batch webhooks of {per} events")
            sust = Figure("e2e", f"highest sustained rate, {kind} (every event visible within "
                                 f"{SUSTAINED_DRAIN_S:.0f} s of the last 200)", "events/s",
                          f"open-loop sender (e2e_sender.c), {', '.join(map(str, ladder))} "
                          f"events/s ({per} a request) for {sizes['e2e_ladder_seconds']:g}s each, up to "
                          f"the first not sustained; ingest + 2 workers",
                          ceiling_name="the same ladder on the raw topic (workers running)")
            for i in range(runs):
                sust.samples.append(highest_sustained(
                    bench, cfg, cfg["topics"]["events"], ladder, sizes["e2e_ladder_seconds"],
                    f"ladder{per}-{i}", per))
                sust.ceiling_samples.append(highest_sustained(
                    bench, cfg, cfg["topics"]["raw"], ladder, sizes["e2e_ladder_seconds"],
                    f"ladder{per}-{i}-raw", per))
            sust.note = (f"ladder {', '.join(map(str, ladder))} events/s; the top of the ladder "
                         f"is a floor, not a maximum")
            figs.append(sust)
    finally:
        for w in workers:
            w.stop()
        ingest.stop()
    return figs, {}

"""Worker figures: records/s and events/s per process on a pre-filled raw topic (ingest
not running), 1 and 2 workers, single-event and batch webhooks, next to pgbench running
the claim statement's shape and a bare librdkafka transactional consume -> produce loop
on the same topic."""

from __future__ import annotations

import json
import re
import subprocess
import time
from datetime import datetime, timezone

import os
import signal

import cpu
from common import ROOT, TENANT, Bench, Figure, log, run, vm_hwm_kib, wait_group

import chaos  # WorkProgress: the group's committed offsets
import check  # end_offsets

PARTITIONS = 6  # the raw topic's, as Bench.config makes it
WARM_ROUNDS = 3  # the drain before the counted ones: this many worker parts' backlogs

# pgbench's script: the claim statement of pipeline/dedup.c (claims into mh_claims, the log
# rows of those it inserted into mh_event_claims) as the worker prepares it, read from that
# file so the ceiling runs the same SQL, with its array parameters made in SQL (p): BATCH
# rows like a claim's per transaction, each event an ivymail delivery of ~400 bytes of
# JSON text, which the statement stores as json as it does the worker's, with its log
# columns (type, recipient, message id, time, source) and claim keys beside it. Making
# the parameters is the database's work here, the worker's in the pipeline.
DEDUP_C = ROOT / "pipeline" / "dedup.c"
PGBENCH_PARAMS = """\\set base random(1, 1000000000000)
WITH p AS (SELECT array_agg(g ORDER BY g) AS a1, array_agg('acme'::text ORDER BY g) AS a2,
    array_agg('ivymail'::text ORDER BY g) AS a3, array_agg(eid ORDER BY g) AS a4,
    array_agg('mailhook.raw'::text ORDER BY g) AS a5, array_agg(g % 6 ORDER BY g) AS a6,
    array_agg(:base::bigint + g ORDER BY g) AS a7,
    array_agg(json_build_object('schema', 'mailhook.event.v1', 'type', 'email.delivered',
        'provider', 'ivymail', 'source', 'ivymail', 'tenant', 'acme',
        'recipient', 'u' || g || '@acme.example', 'message_id', eid, 'event_id', eid,
        'provider_event', 'delivered', 'occurred_at', now(), 'received_at', now(),
        'raw', json_build_object('topic', 'mailhook.raw', 'partition', g % 6,
                                 'offset', :base::bigint + g))::text ORDER BY g) AS a8,
    array_agg('email.delivered'::text ORDER BY g) AS a9,
    array_agg('u' || g || '@acme.example' ORDER BY g) AS a10, array_agg(eid ORDER BY g) AS a11,
    array_agg(now()::text ORDER BY g) AS a12, array_agg('ivymail'::text ORDER BY g) AS a13,
    array_agg(mh_claim_key('acme', 'ivymail', eid) ORDER BY g) AS a14
    FROM (SELECT g, 'pgb-' || :base::bigint || '-' || g AS eid
          FROM generate_series(1, :batch::integer) g) s),
"""


def pgbench_script() -> str:
    """The claim statement of pipeline/dedup.c with p's arrays for its parameters."""
    src = DEDUP_C.read_text()
    m = re.search(r"static const char insert_sql\[\] =((?:\s*\"[^\"]*\")+);", src)
    if not m:
        raise RuntimeError(f"no insert_sql in {DEDUP_C}: the bench's pgbench script needs updating")
    sql = "".join(re.findall(r'"([^"]*)"', m.group(1)))
    if not sql.startswith("WITH ") or " FROM unnest(" not in sql:
        raise RuntimeError(f"insert_sql of {DEDUP_C} is not WITH ... FROM unnest($n ...): "
                           "the bench's pgbench script needs updating")
    sql = sql.replace(" FROM unnest(", " FROM p, unnest(", 1)
    sql, n = re.subn(r"\$(\d+)::[a-z]+\[\]", r"p.a\1", sql)
    if n != 14 or "$" in sql:
        raise RuntimeError(f"insert_sql of {DEDUP_C} has other parameters than 14 arrays: "
                           "the bench's pgbench script needs updating")
    return PGBENCH_PARAMS + sql[len("WITH "):] + ";\n"


def ivymail_event(mid: str, n: int) -> dict:
    return {"event": "delivered", "message_id": mid, "to": f"u{n}@{TENANT}.example",
            "timestamp": "2026-06-15T10:00:00Z"}


def prefill(bench: Bench, topic: str, records: int, per_record: int, tag: str) -> None:
    """records raw records as ingest writes them (mailhook's record headers), each an
    ivymail body of per_record events (one object, or an array of per_record)."""
    from confluent_kafka import Producer
    p = Producer({"bootstrap.servers": bench.brokers, "linger.ms": 20, "acks": "all",
                  "enable.idempotence": True})
    now = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
    for i in range(records):
        evs = [ivymail_event(f"w{bench.id}-{tag}-{i}-{k}", i * per_record + k) for k in range(per_record)]
        body = json.dumps(evs[0] if per_record == 1 else evs).encode()
        headers = [("mh-source", b"ivymail"), ("mh-provider", b"ivymail"),
                   ("mh-tenant", TENANT.encode()), ("mh-received-at", now.encode()),
                   ("mh-request-id", f"{tag}-{i}".encode()), ("content-type", b"application/json")]
        while True:
            try:
                p.produce(topic, body, key=str(i).encode(), headers=headers)
                break
            except BufferError:
                p.poll(0.05)
        p.poll(0)
    if p.flush(60):
        raise RuntimeError("pre-fill: records left unsent")


def drain(bench: Bench, cfg: dict, workers: int, total: int, timeout: float, perf=None,
          fill=None, stop_for_fill: bool = False) -> dict:
    """Starts the workers on the backlog and times it from the first to the last advance
    of the group's committed offsets (start-up and the group join are not counted).
    With fill, the workers start on an empty raw topic, and fill() writes the backlog
    once the group is stable with every worker holding partitions: otherwise the first
    worker to join takes every partition and works alone until the others' joins
    rebalance the group, which on a backlog of seconds is most of the measurement. With
    stop_for_fill the workers are stopped (SIGSTOP) while fill() writes, so the load
    generator does not share the cores with them during the measurement. The group's
    offsets are read from before the workers can commit anything (before the fill, or
    from their start), so the first advance is seen when it happens, not when a reader
    started after it has joined the broker."""
    started = time.monotonic()
    procs = [bench.worker(cfg, f"w{i}") for i in range(1, workers + 1)]
    work = chaos.WorkProgress(bench.brokers, cfg["group"], cfg["topics"]["raw"], interval=0.05,
                              stable=False)
    work.start()
    first = last = None
    hwm = 0
    perf_on = False
    # CPU from the first commit on, as the rate; the workers' own at their end.
    cpu_first = cpu_last = None
    try:
        if not work.ready.wait(30):
            raise RuntimeError("the group's committed offsets could not be read")
        if fill is not None:
            wait_group(bench.brokers, cfg["group"], workers)
            stopped = procs if stop_for_fill else []
            for p in stopped:
                os.kill(p.pid, signal.SIGSTOP)
            try:
                fill()
            finally:
                for p in stopped:
                    os.kill(p.pid, signal.SIGCONT)
            total = sum(check.end_offsets(bench.brokers, cfg["topics"]["raw"]).values())
            started = time.monotonic()
        sampler = cpu.Sampler([p.pid for p in procs])
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            done, now = work.done, time.monotonic()
            if done and (last is None or done != last[1]):
                if first is None:
                    first = (now, done)
                    cpu_first = sampler.snapshot()
                    if perf is not None:
                        perf.start("worker", procs[0].pid)
                        perf_on = True
                last = (now, done)
                cpu_last = sampler.snapshot()
            if done >= total:
                break
            if not all(p.alive() for p in procs):
                raise RuntimeError(f"a worker exited; see {procs[0].log}")
            time.sleep(0.02)
        for p in procs:
            hwm = max(hwm, vm_hwm_kib(p.pid))
    finally:
        if perf_on:
            perf.stop("worker")
        work.stop()
        for p in procs:
            p.stop()
    if last is None or last[1] < total:
        raise RuntimeError(f"the workers did not commit the backlog in {timeout:.0f}s")
    if last[0] > first[0]:
        return {"records": total - first[1], "seconds": last[0] - first[0], "hwm_kib": hwm,
                "cpu": cpu.delta(cpu_first, cpu_last)}
    # One commit took it all (a tiny --quick backlog): timed from the start instead.
    return {"records": total, "seconds": last[0] - started, "hwm_kib": hwm, "cpu": None}


def pgbench(bench: Bench, clients: int, batch: int, seconds: float) -> tuple[str, float]:
    script = bench.work / "claim.sql"
    script.write_text(pgbench_script())
    argv = ["pgbench", "-n", "-M", "prepared", "-f", str(script), "-c", str(clients), "-j", str(clients),
            "-T", str(max(int(seconds), 1)), "-D", f"batch={batch}", bench.dsn()]
    out = run(argv, seconds + 120)
    m = re.search(r"tps = ([\d.]+)", out)
    if not m:
        raise RuntimeError(f"pgbench output not understood:\n{out[-1000:]}")
    shown = " ".join(argv[:-1] + ["DSN"]).replace(str(script), "claim.sql")
    return shown, float(m.group(1)) * batch


def txn_loops(bench: Bench, topic: str, n: int, batch: int, total: int, tag: str,
              partitions: int = PARTITIONS) -> tuple[str, float]:
    """n bare transactional loops in one group on topic; records/s of them together."""
    out = bench.create_topic(f"mailhook.txnloop.bench-{bench.id}-{tag}")
    group = f"bench-txnloop-{bench.id}-{tag}"
    argvs = [[str(bench.bin / "txn_loop"), bench.brokers, topic, out, group,
              f"{group}-{i}", str(batch), str(total), str(i), str(n), str(partitions)]
             for i in range(n)]
    ps = [subprocess.Popen(a, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
          for a in argvs]
    records, secs = 0, 0.0
    for p in ps:
        so, se = p.communicate(timeout=600)
        if p.returncode != 0:
            raise RuntimeError(f"txn_loop failed: {se[-1000:]}")
        r = json.loads(so.strip().splitlines()[-1])
        records += r["records"]
        secs = max(secs, r["seconds"])
    if records < total:
        raise RuntimeError(f"txn_loop: {records} of {total} records")
    return (f"{n} x txn_loop BROKERS RAW OUT GROUP TXN_ID {batch} {total} I {n} {partitions}",
            records / secs if secs else 0.0)


def backlog_records(sizes: dict, per_record: int, workers: int = 1) -> int:
    """The raw records a drain of this kind of webhook starts from: the single-event
    backlog, or the batch webhooks' own (the memory part drains the same), for each
    worker. Two workers drain twice as many as one, so each works through as many
    batches as one worker alone: the pipeline's start (a batch parsed and claimed before
    the first commit) and its end (the last batches no longer overlap, and a worker whose
    partitions held fewer records finishes first) weigh the same in both figures."""
    return workers * sizes["worker_records" if per_record == 1 else "worker_batch_records"]


def warm_up(bench: Bench, sizes: dict, perf=None, part: str = "worker") -> None:
    """A drain not counted, under perf when asked (perf slows what it watches). It warms
    the broker: in the first drains after a broker starts, while its JVM still compiles,
    the broker spent three to four times the CPU a record it spends warm
    (docs/performance.md, "Where the time goes"). Each part's drain has topics and a
    group of its own (bench.config's tag)."""
    tag = f"{part}-{'perf' if perf is not None else 'warm'}"
    cfg = bench.config(tag, batch_size=sizes["batch_size"])
    prefill(bench, cfg["topics"]["raw"], WARM_ROUNDS * sizes["worker_records"], 1, tag)
    total = sum(check.end_offsets(bench.brokers, cfg["topics"]["raw"]).values())
    drain(bench, cfg, 1, total, sizes["drain_timeout"], perf)


def measure(bench: Bench, sizes: dict, runs: int, perf=None) -> tuple[list[Figure], dict]:
    figs: list[Figure] = []
    # The largest VmHWM of the workers, per kind of webhook (the memory part reports them).
    result = {"worker_hwm_kib": {"single": 0, "batch": 0}}
    batch_size = sizes["batch_size"]
    warm_up(bench, sizes, perf)
    cores = os.cpu_count() or 1
    # CPU a record of single-event drains, one worker and two: where the rate's limit is
    # (the machine's cores, or one process's share of them).
    per_rec = {(workers, k): Figure("worker", f"CPU per record, single-event webhooks, {workers} "
                                    f"worker{'s' if workers > 1 else ''}: {what}",
                                    "µs/record", "", ceiling_name=ceiling)
               for workers in (1, 2)
               for k, what, ceiling in (
                   ("all", "worker + PostgreSQL + Kafka",
                    f"CPU time the machine has per record at the measured rate ({cores} cores / rate)"),
                   ("processes", "mailhook-worker" + (" (both)" if workers > 1 else ""), "-"),
                   ("postgres", "PostgreSQL (all its processes)", "-"),
                   ("kafka", "Kafka broker", "-"))}
    cpu_skip = "no local PostgreSQL or Kafka process to read (an external stack)"
    for kind, per_record in (("single", 1), ("batch", 10)):
        for workers in (1, 2):
            records = backlog_records(sizes, per_record, workers)
            label = f"worker, {kind}-event webhooks ({per_record} event{'s' if per_record > 1 else ''}/record), {workers} worker{'s' if workers > 1 else ''}"
            rec = Figure("worker", f"{label}: records/s per process", "records/s",
                         f"mailhook-worker x{workers} on {records} pre-filled raw records, "
                         f"[worker] batch_size {batch_size}, claims and event log emptied before",
                         ceiling_name=f"bare librdkafka transactional loop x{workers}, per process")
            ev = Figure("worker", f"{label}: events/s per process", "events/s", rec.command,
                        ceiling_name=f"pgbench claim statement ({batch_size * per_record} rows/txn, "
                                     f"{workers} client{'s' if workers > 1 else ''}, empty tables), rows/s per client")
            for i in range(runs):
                tag = f"{kind}{workers}-{i}"
                cfg = bench.config(tag, batch_size=batch_size)
                raw = cfg["topics"]["raw"]
                bench.empty_claims()
                d = drain(bench, cfg, workers, 0, sizes["drain_timeout"],
                          fill=lambda: prefill(bench, raw, records, per_record, tag),
                          stop_for_fill=True)
                total = sum(check.end_offsets(bench.brokers, raw).values())
                hwm = result["worker_hwm_kib"]
                hwm[kind] = max(hwm[kind], d["hwm_kib"])
                r_rate = d["records"] / d["seconds"] / workers if d["seconds"] else 0.0
                rec.samples.append(r_rate)
                if kind == "single" and not d["cpu"]:
                    cpu_skip = "not measured: the backlog went in one commit (a --quick run)"
                if kind == "single" and d["cpu"] and d["records"]:
                    c = d["cpu"]
                    parts = {k: c[k] for k in ("processes", "postgres", "kafka") if c[k] is not None}
                    for k, v in parts.items():
                        per_rec[workers, k].samples.append(v / d["records"] * 1e6)
                        per_rec[workers, k].command = rec.command + ", /proc CPU times over the same span"
                    if len(parts) == 3:
                        f = per_rec[workers, "all"]
                        f.samples.append(sum(parts.values()) / d["records"] * 1e6)
                        f.command = per_rec[workers, "processes"].command
                        f.ceiling_command = "os.cpu_count() / records per second (all workers)"
                        f.ceiling_samples.append(cores / (r_rate * workers) * 1e6 if r_rate else 0)
                ev.samples.append(r_rate * per_record)
                tcmd, t_rate = txn_loops(bench, raw, workers, batch_size, total, tag)
                rec.ceiling_command = tcmd
                rec.ceiling_samples.append(t_rate / workers)
                bench.empty_claims()
                pcmd, rows = pgbench(bench, workers, batch_size * per_record, sizes["pgbench_seconds"])
                ev.ceiling_command = pcmd
                ev.ceiling_samples.append(rows / workers)
                log(f"{label}: {r_rate:.0f} records/s, {r_rate * per_record:.0f} events/s per "
                    f"process (txn loop {t_rate / workers:.0f}, pgbench {rows / workers:.0f} rows/s)")
            figs += [rec, ev]
    for f in per_rec.values():
        if not f.samples:
            f.skip = cpu_skip
        figs.append(f)
    return figs, result

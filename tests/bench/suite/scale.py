"""Scale-out (--only scale, or --scale; long, not in the default run): how throughput
grows with processes. Meant for the local three-broker cluster, whose topics have
replication factor 3 and min.insync.replicas 2:

    MH_KAFKA_BROKERS_N=3 tests/bench/run --only scale

(it runs on one broker too). Two sets of figures:
  - workers: all workers' records/s together with 1, 2, 4 and 6 mailhook-worker
    processes on a pre-filled single-event backlog of 6 and of 12 raw partitions, next to
    as many bare librdkafka transactional loops (txn_loop.c) on the same backlog;
  - ingest: closed-loop requests/s (h2load, 64 connections, signed ivymail) of one
    mailhook-ingest, and of two sharing one port ([ingest] share_port, SO_REUSEPORT across
    processes), next to the bare libevent 200-server."""

from __future__ import annotations

import time
import urllib.request

from common import Bench, Figure, Server, free_port, log

import check
import ingest as ingest_part
import worker as worker_part

WORKERS = (1, 2, 4, 6)
PARTITIONS = (6, 12)


def workers(bench: Bench, sizes: dict, runs: int) -> list[Figure]:
    figs = []
    records, batch = sizes["scale_records"], sizes["batch_size"]
    for parts in PARTITIONS:
        for n in WORKERS:
            fig = Figure("scale", f"workers x{n}, {parts} raw partitions: records/s, all together",
                         "records/s", f"mailhook-worker x{n} on {records} pre-filled single-event "
                                      f"raw records, {parts} partitions, [worker] batch_size {batch}",
                         ceiling_name=f"bare librdkafka transactional loops x{n}, all together")
            for i in range(runs):
                tag = f"scale-p{parts}-w{n}-{i}"
                cfg = bench.config(tag, partitions=parts, batch_size=batch)
                raw = cfg["topics"]["raw"]
                d = worker_part.drain(bench, cfg, n, 0, sizes["drain_timeout"],
                                      fill=lambda: worker_part.prefill(bench, raw, records, 1, tag))
                total = sum(check.end_offsets(bench.brokers, raw).values())
                rate = d["records"] / d["seconds"] if d["seconds"] else 0.0
                fig.samples.append(rate)
                tcmd, t_rate = worker_part.txn_loops(bench, raw, n, batch, total, tag, parts)
                fig.ceiling_command = tcmd
                fig.ceiling_samples.append(t_rate)
                log(f"scale: {n} workers, {parts} partitions: {rate:.0f} records/s "
                    f"(txn loops {t_rate:.0f})")
            figs.append(fig)
    return figs


def all_ready(port: int, proc: Server, timeout: float = 60) -> None:
    """Waits until proc said it started and every fresh connection to the shared port is
    answered ready (the /readyz Bench.ingest waited for may have been another's)."""
    proc.wait_line("started", timeout)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if all(urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2).status
                   == 200 for _ in range(20)):
                return
        except OSError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"the ingests on port {port} are not all ready")


def ingests(bench: Bench, sizes: dict, runs: int) -> list[Figure]:
    port = free_port()
    cfg = bench.config("scale-ingest", ingest_port=port,
                       ingest_extra={"share_port": "true", "log_level": "info"})
    headers, body = bench.signed(cfg, "ivymail", ingest_part.BODIES["ivymail"])
    bfile = bench.work / "scale-ivymail.body"
    bfile.write_bytes(body)
    url = f"http://127.0.0.1:{port}/v1/webhooks/ivymail"
    bare_port = free_port()
    bare = Server("bare_server", [str(bench.bin / "bare_server"), str(bare_port), "2"],
                  bench.out / "logs").start()
    figs = {n: Figure("scale", f"ingest x{n} on one port: requests/s, all together", "req/s", "",
                      ceiling_name="bare libevent 200-server")
            for n in (1, 2)}
    procs = []
    try:
        bare.wait_line("ready")
        bare_url = f"http://127.0.0.1:{bare_port}/v1/webhooks/ivymail"
        procs.append(bench.ingest(cfg, "ingest-1"))
        for i in range(runs):
            for n, fig in figs.items():
                while len(procs) < n:
                    procs.append(bench.ingest(cfg, f"ingest-{len(procs) + 1}"))
                    all_ready(port, procs[-1])
                cmd, rate = ingest_part.closed_loop(url, headers, bfile, sizes)
                fig.command = f"{n} x mailhook-ingest ([ingest] share_port = true): " + \
                    cmd.replace(str(bfile), "ivymail.body")
                fig.samples.append(rate)
                ccmd, crate = ingest_part.closed_loop(bare_url, headers, bfile, sizes)
                fig.ceiling_command = ccmd.replace(str(bfile), "ivymail.body")
                fig.ceiling_samples.append(crate)
                log(f"scale: {n} ingest processes: {rate:.0f} req/s (bare server {crate:.0f})")
            while len(procs) > 1:
                procs.pop().stop()
    finally:
        for p in procs:
            p.stop()
        bare.stop()
    return list(figs.values())


def measure(bench: Bench, sizes: dict, runs: int) -> tuple[list[Figure], dict]:
    return workers(bench, sizes, runs) + ingests(bench, sizes, runs), {}

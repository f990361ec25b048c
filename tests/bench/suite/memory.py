"""Memory: VmHWM of mailhook-ingest holding many open idle connections (next to the bare
libevent server holding as many), of a worker draining a backlog at full speed, and of
one draining a deep backlog (next to the same worker reading ahead as far as
librdkafka's own defaults let it)."""

from __future__ import annotations

import socket
import time

from common import Bench, Figure, Server, free_port, log, raise_nofile, vm_hwm_kib

import check
import worker as worker_part


def hold_idle(port: int, n: int) -> list[socket.socket]:
    """n connections to port that send nothing."""
    socks = []
    for _ in range(n):
        s = socket.socket()
        s.connect(("127.0.0.1", port))
        socks.append(s)
    return socks


def connected(socks: list[socket.socket]) -> int:
    """How many of socks the server still keeps open (a closed one reads EOF)."""
    alive = 0
    for s in socks:
        s.setblocking(False)
        try:
            alive += s.recv(1) != b""
        except BlockingIOError:
            alive += 1
        except OSError:
            pass
    return alive


def idle_hwm(server: Server, port: int, n: int, hold: float) -> tuple[int, int]:
    """(VmHWM in KiB, connections still open) after n idle connections for hold seconds."""
    socks = hold_idle(port, n)
    try:
        time.sleep(hold)
        return vm_hwm_kib(server.pid), connected(socks)
    finally:
        for s in socks:
            s.close()


def measure(bench: Bench, sizes: dict, runs: int, worker_hwm_kib: dict | None = None) -> tuple[list[Figure], dict]:
    n = sizes["idle_connections"]
    limit = raise_nofile()
    # Each end is a process of its own: this one holds the client sockets, the server
    # (started from here, so with this limit) the accepted ones.
    if limit < n + 200:
        raise RuntimeError(f"open-file limit {limit} is too low for {n} connections")
    fig = Figure("memory", f"ingest VmHWM with {n} open idle connections", "MiB",
                 f"mailhook-ingest (max_connections {n + 100}), {n} idle TCP connections held "
                 f"{sizes['idle_hold']}s, VmHWM from /proc/PID/status",
                 ceiling_name="bare libevent 200-server, same connections",
                 ceiling_command=f"bare_server PORT 2, {n} idle connections")
    opened = []
    for i in range(runs):
        cfg = bench.config(f"mem-{i}", ingest_extra={"max_connections": n + 100})
        ingest = bench.ingest(cfg, name=f"ingest-mem-{i}")
        try:
            hwm, alive = idle_hwm(ingest, cfg["port"], n, sizes["idle_hold"])
        finally:
            ingest.stop()
        bport = free_port()
        bare = Server(f"bare_server-mem-{i}", [str(bench.bin / "bare_server"), str(bport), "2"],
                      bench.out / "logs").start()
        try:
            bare.wait_line("ready")
            chwm, _ = idle_hwm(bare, bport, n, sizes["idle_hold"])
        finally:
            bare.stop()
        fig.samples.append(hwm / 1024)
        fig.ceiling_samples.append(chwm / 1024)
        opened.append(alive)
        log(f"ingest VmHWM {hwm / 1024:.1f} MiB with {alive} of {n} connections open "
            f"(bare server {chwm / 1024:.1f} MiB)")
    fig.note = f"connections still open when measured: {min(opened)}..{max(opened)} of {n}"
    figs = [fig]

    hwm = worker_hwm_kib or {}
    kinds = (("single", "single-event webhooks", 1), ("batch", "batch webhooks, 10 events each", 10))
    for kind, what, per_record in kinds:
        wfig = Figure("memory", f"worker VmHWM at full load, {what}", "MiB",
                      f"mailhook-worker draining a pre-filled raw topic ({what}, [worker] "
                      f"batch_size {sizes['batch_size']}), VmHWM from /proc/PID/status before "
                      "it stops")
        if hwm.get(kind):
            wfig.samples.append(hwm[kind] / 1024)
            wfig.note = "the largest of the worker part's processes of this kind"
        else:
            cfg = bench.config(f"mem-worker-{kind}", batch_size=sizes["batch_size"])
            raw = cfg["topics"]["raw"]
            worker_part.prefill(bench, raw, worker_part.backlog_records(sizes, per_record),
                                per_record, f"memw{kind}")
            total = sum(check.end_offsets(bench.brokers, raw).values())
            d = worker_part.drain(bench, cfg, 1, total, sizes["drain_timeout"])
            wfig.samples.append(d["hwm_kib"] / 1024)
        figs.append(wfig)
    figs.append(deep_backlog(bench, sizes, runs))
    return figs, {}


# librdkafka's own read-ahead, which the worker's defaults replace (worker/prefetch.h).
LIBRDKAFKA_READ_AHEAD = {"queued.min.messages": "100000", "queued.max.messages.kbytes": "65536"}


def deep_backlog(bench: Bench, sizes: dict, runs: int) -> Figure:
    """A worker's VmHWM on a backlog many times its read-ahead: the memory a blast
    campaign's backlog costs, next to the same worker with librdkafka's read-ahead."""
    records = sizes["backlog_records"]
    shown = ", ".join(f"{k} {v}" for k, v in LIBRDKAFKA_READ_AHEAD.items())
    fig = Figure("memory", f"worker VmHWM on a deep backlog, {records} single-event records",
                 "MiB",
                 f"mailhook-worker draining {records} pre-filled raw records ([worker] batch_size "
                 f"{sizes['batch_size']}, its own read-ahead), VmHWM from /proc/PID/status "
                 "before it stops",
                 ceiling_name=f"the same with librdkafka's read-ahead ([kafka] {shown})",
                 ceiling_command=f"the same, [kafka] {shown}")
    rates = {"own": [], "librdkafka": []}
    for i in range(runs):
        for which, extra in (("own", None), ("librdkafka", LIBRDKAFKA_READ_AHEAD)):
            tag = f"mem-deep-{which}-{i}"
            cfg = bench.config(tag, batch_size=sizes["batch_size"], kafka_extra=extra)
            raw = cfg["topics"]["raw"]
            d = worker_part.drain(bench, cfg, 1, 0, sizes["drain_timeout"],
                                  fill=lambda: worker_part.prefill(bench, raw, records, 1, tag),
                                  stop_for_fill=True)
            (fig.samples if which == "own" else fig.ceiling_samples).append(d["hwm_kib"] / 1024)
            rates[which].append(d["records"] / d["seconds"] if d["seconds"] else 0.0)
            log(f"worker VmHWM on {records} records, {which} read-ahead: "
                f"{d['hwm_kib'] / 1024:.1f} MiB, {rates[which][-1]:.0f} records/s")
    own, lib = (Figure.stats(rates[k]) for k in ("own", "librdkafka"))
    fig.note = (f"records/s while draining, median: {own['median']:.0f} with its own read-ahead, "
                f"{lib['median']:.0f} with librdkafka's")
    return fig

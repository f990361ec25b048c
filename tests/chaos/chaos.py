"""mailhook's chaos test: nothing lost, nothing doubled, under crashes and outages.

One run:
  1. topics, a database and a config of its own (nothing of another run is visible);
     one mailhook-ingest and --workers mailhook-worker processes (stable instance names);
  2. a load client posts --n signed webhooks across four providers (IvyMail, a
     MailDog-style HMAC source, GetMailer, CloudMailin), ~10% of them duplicate
     deliveries of earlier webhooks and a few signed bodies no provider can parse, and
     retries every request that did not get a 2xx, as a provider does;
  3. meanwhile, at fixed points of the load's progress, it kill -9s the ingest and the
     workers (starting them again after a short pause), restarts each of them once
     gracefully (SIGTERM: must exit within 10 s with status 0), and crashes and restarts
     the Kafka broker and the PostgreSQL server; a supervisor restarts any mailhook
     process that exits by itself (counted as an unexpected exit);
  4. when every request is answered it waits for the workers to commit the whole raw
     topic, stops everything with SIGTERM (each must exit within 10 s, status 0), and
     checks the topics and the database (check.py).

With --cluster the Kafka faults are those of cluster_faults.py instead, against the
local 3-node cluster (replication factor 3, min.insync.replicas 2): partition leaders and
a transaction coordinator crash, a rolling restart, and a spell below min.insync.replicas
in which no request may get a 2xx; the load is paced (--rate) to last through them.

It prints the counts (sent, acknowledged, duplicates injected, kills, emitted, missing,
doubled, ...), writes them as JSON to report.json in the run's folder
($MH_LOCAL/chaos/<run>/, with the config and every process's log), and exits 0 only
if nothing is missing, doubled or unexpected. Use tests/chaos/run, which prepares the
build and the local stack; this file expects both.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import secrets
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import check  # noqa: E402
import cluster_faults  # noqa: E402
import loadgen  # noqa: E402
import procs  # noqa: E402
from procs import Proc  # noqa: E402

SHUTDOWN_LIMIT_S = 10.0
SESSION_TIMEOUT_MS = 10000


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def write_ini(path: Path, sections: dict) -> None:
    lines = ["# mailhook configuration of one chaos run (tests/chaos)"]
    for name, keys in sections.items():
        lines.append(f"\n[{name}]")
        lines += [f"{k} = {v}" for k, v in keys.items()]
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write("\n".join(lines) + "\n")


class Run:
    """One run: its topics, group, database and config, its mailhook processes, and the
    faults it injects into them and into the local Kafka and PostgreSQL."""

    def __init__(self, args):
        self.args = args
        self.id = time.strftime("%Y%m%d%H%M%S") + "-" + secrets.token_hex(2)
        self.dir = procs.LOCAL / "chaos" / self.id
        self.brokers = procs.brokers()
        self.base_dsn = procs.pg_dsn()
        self.topics = {r: f"mailhook.{r}.chaos-{self.id}" for r in ("raw", "events", "dlq", "suppressions")}
        self.group = f"mailhook-worker-chaos-{self.id}"
        self.dbname = "mailhook_chaos_" + self.id.replace("-", "_")
        self.secrets = {s: secrets.token_hex(32) for s in loadgen.SOURCES}
        self.port = 0
        self.ingest: Proc | None = None
        self.workers: list[Proc] = []
        self.counts = {"ingest_kills": 0, "worker_kills": 0, "ingest_terms": 0,
                       "worker_terms": 0, "zombies": 0, "broker_restarts": 0,
                       "pg_restarts": 0, "unexpected_exits": 0}
        # (process, exit status, seconds, outage in progress, within the rules)
        self.graceful: list[tuple[str, int | None, float, str | None, bool]] = []
        # [what, start, end or None]: Kafka, PostgreSQL, a frozen worker
        self.outages: list[list] = []
        self.unexpected: list[str] = []
        self.events_log: list[str] = []
        self.local_kafka = os.environ.get("MH_CHAOS_LOCAL_KAFKA") == "1"
        self.local_pg = os.environ.get("MH_CHAOS_LOCAL_PG") == "1"
        self.cluster = cluster_faults.ClusterFaults(self) if getattr(args, "cluster", False) else None

    # --- set-up ---------------------------------------------------------------------------
    def dsn(self) -> str:
        from psycopg.conninfo import conninfo_to_dict, make_conninfo
        p = conninfo_to_dict(self.base_dsn)
        p["dbname"] = self.dbname
        return make_conninfo(**p)

    def setup(self, start_workers: bool = True) -> None:
        import psycopg
        import socket
        self.dir.mkdir(parents=True, exist_ok=True)
        with psycopg.connect(self.base_dsn, autocommit=True) as conn:
            conn.execute(f'create database "{self.dbname}"')
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        sections = {
            "ingest": {"listen": f"127.0.0.1:{self.port}", "raw_topic": self.topics["raw"],
                       "ack_deadline_ms": self.args.ack_deadline_ms,
                       "threads": getattr(self.args, "ingest_threads", 0)},
            "worker": {"group_id": self.group, "raw_topic": self.topics["raw"],
                       "events_topic": self.topics["events"], "dlq_topic": self.topics["dlq"],
                       "suppressions_topic": self.topics["suppressions"],
                       "raw_partitions": self.args.partitions,
                       "batch_size": self.args.batch_size,
                       "batch_max_events": self.args.batch_max_events,
                       "commit_interval_ms": self.args.commit_interval_ms,
                       **self.replication()},
            "postgres": {"dsn": self.dsn()},
            "kafka": {"bootstrap.servers": self.brokers,
                      # A shorter session than librdkafka's 45 s: a zombie is noticed
                      # sooner (and the test is shorter). Only the workers' consumers
                      # read it; the producers say they ignore it.
                      "session.timeout.ms": SESSION_TIMEOUT_MS},
        }
        sections.update(loadgen.source_config(lambda s: self.secrets[s]))
        self.config = self.dir / "mailhook.ini"
        write_ini(self.config, sections)
        self.env = dict(os.environ, MAILHOOK_KAFKA_BROKERS=self.brokers, MAILHOOK_PG_DSN=self.dsn())
        for cmd in ("topics", "migrate"):
            p = subprocess.run([str(procs.build_dir() / "mailhook"), "--config", str(self.config), cmd],
                               env=self.env, capture_output=True, text=True, timeout=120)
            if p.returncode != 0:
                raise RuntimeError(f"mailhook {cmd} failed:\n{p.stdout}{p.stderr}")
        bd = procs.build_dir()
        self.ingest = Proc("ingest", [str(bd / "mailhook-ingest"), "--config", str(self.config)],
                           self.env, self.dir / "ingest.log")
        self.workers = [Proc(f"worker-{i}", [str(bd / "mailhook-worker"), "--config", str(self.config),
                                             "--instance", f"worker-{i}"],
                             self.env, self.dir / f"worker-{i}.log")
                        for i in range(1, self.args.workers + 1)]
        self.ingest.start()
        if not procs.wait_http(f"{self.url()}/readyz", 60, self.ingest):
            raise RuntimeError(f"mailhook-ingest not ready; see {self.ingest.log}")
        if start_workers:
            for w in self.workers:
                w.start()

    def replication(self) -> dict:
        """[worker] keys of a cluster run: the topics replicated as the cluster's own
        (deploy/local/cluster.sh: RF 3, min ISR 2)."""
        if self.cluster is None:
            return {}
        n = len(cluster_faults.nodes())
        rf = min(int(os.environ.get("MH_KAFKA_CLUSTER_RF", "3")), n)
        isr = min(int(os.environ.get("MH_KAFKA_CLUSTER_MIN_ISR", "2")), rf)
        return {"replication_factor": rf, "min_insync_replicas": isr}

    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def all_procs(self) -> list[Proc]:
        return [self.ingest, *self.workers]

    def note(self, msg: str) -> None:
        self.events_log.append(f"{time.strftime('%H:%M:%S')} {msg}")
        log(msg)

    # --- faults -------------------------------------------------------------------------
    def _take(self, candidates: list[Proc], rng: random.Random) -> Proc:
        """One of candidates that no other fault is acting on (waits for one), locked."""
        while True:
            free = [p for p in candidates if not p.busy.locked()]
            rng.shuffle(free)
            for p in free:
                if p.busy.acquire(blocking=False):
                    return p
            time.sleep(0.1)

    def kill_ingest(self, rng: random.Random) -> None:
        p = self._take([self.ingest], rng)
        try:
            p.kill9()
            self.counts["ingest_kills"] += 1
            self.note(f"kill -9 ingest (#{self.counts['ingest_kills']})")
            time.sleep(rng.uniform(0.2, 1.5))
            p.start()
        finally:
            p.busy.release()

    def kill_worker(self, rng: random.Random) -> None:
        w = self._take(self.workers, rng)
        try:
            w.kill9()
            self.counts["worker_kills"] += 1
            self.note(f"kill -9 {w.name} (#{self.counts['worker_kills']})")
            time.sleep(rng.uniform(0.2, 3.0))
            w.start()
        finally:
            w.busy.release()

    def zombie_worker(self, rng: random.Random) -> None:
        """A worker stops dead (SIGSTOP: a long GC or VM pause) for longer than the group's
        session timeout, so the group gives its partitions to the others, then wakes up
        (SIGCONT) believing it still owns them: its open transaction must be fenced."""
        w = self._take(self.workers, rng)
        try:
            if not w.alive():
                return
            self.counts["zombies"] += 1
            pause = SESSION_TIMEOUT_MS / 1000 + 5
            self.note(f"SIGSTOP {w.name} for {pause:.0f}s (zombie #{self.counts['zombies']})")
            span = self._outage(f"frozen {w.name}")
            w.popen.send_signal(signal.SIGSTOP)
            time.sleep(pause)
            w.popen.send_signal(signal.SIGCONT)
            self.note(f"SIGCONT {w.name}")
            span[2] = time.monotonic()
        finally:
            w.busy.release()

    def term_ingest(self, rng: random.Random) -> None:
        self._graceful(self._take([self.ingest], rng), "ingest_terms")

    def term_worker(self, rng: random.Random) -> None:
        self._graceful(self._take(self.workers, rng), "worker_terms")

    def _graceful(self, p: Proc, counter: str) -> None:
        """A graceful restart under load (a deploy): SIGTERM, which must end the process
        within 10 s with status 0, then start it again."""
        try:
            self.counts[counter] += 1
            t0 = time.monotonic()
            rc, took = p.terminate(30)
            outage = self._outages_between(t0, time.monotonic())
            # During a Kafka or PostgreSQL outage, or while a frozen worker holds locks in
            # PostgreSQL that this one waits for, a worker may not finish its batch in
            # time; its watchdog then exits with status 1 (as safe as a crash).
            ok = took <= SHUTDOWN_LIMIT_S and (rc == 0 or (outage is not None and rc == 1))
            self.graceful.append((p.name, rc, round(took, 2), outage, ok))
            self.note(f"SIGTERM {p.name}: exited with status {rc} after {took:.2f}s"
                      + (f" (during: {outage})" if outage else ""))
            p.start()
        finally:
            p.busy.release()

    def _outage(self, what: str) -> list:
        span = [what, time.monotonic(), None]
        self.outages.append(span)
        return span

    def _outages_between(self, t0: float, t1: float) -> str | None:
        """The outages that overlap [t0, t1], counting 5 s of after-effects (sessions that
        timed out meanwhile, a woken worker still holding its locks)."""
        hit = sorted({w for w, a, b in list(self.outages)
                      if a <= t1 and (b is None or b + 5 >= t0)})
        return ", ".join(hit) or None

    def restart_broker(self, rng: random.Random) -> None:
        span = self._outage("Kafka")
        try:
            self.note("crash Kafka (kill -9)")
            procs.stack_call("mh_kafka_kill")
            time.sleep(self.args.broker_down_s)
            t0 = time.monotonic()
            procs.stack_call("mh_kafka_up")
            self.counts["broker_restarts"] += 1
            self.note(f"Kafka back after {time.monotonic() - t0:.1f}s start-up")
        finally:
            span[2] = time.monotonic()

    def restart_pg(self, rng: random.Random) -> None:
        span = self._outage("PostgreSQL")
        try:
            self.note("crash PostgreSQL (kill -9)")
            procs.stack_call("mh_pg_kill")
            time.sleep(self.args.pg_down_s)
            procs.stack_call("mh_pg_up")
            self.counts["pg_restarts"] += 1
            self.note("PostgreSQL back")
        finally:
            span[2] = time.monotonic()

    def schedule(self, rng: random.Random) -> list[tuple[str, float, str]]:
        """(measure, fraction, fault) triples. Faults of the ingest, the broker and the
        database happen at fractions of the load (requests answered); worker faults at
        fractions of the workers' progress (raw records committed, out of --n), so they
        hit workers that are busy, in the drain after the load too."""
        a = self.args
        plan = []

        def spread(n, lo, hi, name, measure="load"):
            for i in range(n):
                f = lo + (hi - lo) * (i + 0.5) / n
                plan.append((measure, min(hi, max(lo, f + rng.uniform(-0.02, 0.02))), name))
        spread(a.worker_kills, 0.04, 0.95, "worker", "work")
        spread(a.worker_terms, 0.15, 0.35, "worker_term", "work")
        spread(a.zombies, 0.55, 0.75, "zombie", "work")
        spread(a.ingest_kills, 0.08, 0.88, "ingest")
        spread(a.ingest_terms, 0.50, 0.55, "ingest_term")
        if a.broker_restarts:
            if self.local_kafka:
                spread(a.broker_restarts, 0.25, 0.45, "broker")
            else:
                log("Kafka is external: no broker restart")
        if self.cluster is not None:
            if self.local_kafka:
                for f, name in zip((0.08, 0.20, 0.32, 0.44, 0.70), cluster_faults.FAULTS):
                    plan.append(("load", f, name))
            else:
                log("Kafka is external: no cluster faults")
        if a.pg_restarts:
            if self.local_pg:
                spread(a.pg_restarts, 0.55, 0.75, "pg")
            else:
                log("PostgreSQL is external: no PostgreSQL restart")
        return sorted(plan, key=lambda x: x[1])

    # --- load, faults and supervision, concurrently -------------------------------------
    async def chaos(self, measure, plan, rng) -> None:
        """Runs the faults of plan in order, each once measure() reaches its fraction."""
        loop = asyncio.get_running_loop()
        running: list[tuple[asyncio.Future, bool]] = []
        actions = {"worker": self.kill_worker, "ingest": self.kill_ingest,
                   "worker_term": self.term_worker, "ingest_term": self.term_ingest,
                   "zombie": self.zombie_worker,
                   "broker": self.restart_broker, "pg": self.restart_pg}
        if self.cluster is not None:
            actions.update({n: getattr(self.cluster, n) for n in cluster_faults.FAULTS})
        for _, frac, name in plan:
            while measure() < frac:
                await asyncio.sleep(0.05)
            # One broker or database outage at a time; process faults overlap freely.
            outage = name in ("broker", "pg", *cluster_faults.FAULTS)
            if outage:
                for f, was_outage in running:
                    if was_outage:
                        await f
            fut = loop.run_in_executor(None, actions[name], random.Random(rng.random()))
            running.append((fut, outage))
        for f, _ in running:
            await f

    async def supervise(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            for p in self.all_procs():
                if not p.down and not p.alive():
                    rc = p.returncode()
                    self.counts["unexpected_exits"] += 1
                    self.unexpected.append(f"{p.name} exited with status {rc}")
                    self.note(f"{p.name} exited by itself (status {rc}); restarting it")
                    p.start()
            await asyncio.sleep(0.5)

    async def progress(self, load: loadgen.Load, stop: asyncio.Event) -> None:
        t0 = time.monotonic()
        while not stop.is_set():
            await asyncio.sleep(10)
            s = load.stats
            if s.done < len(load.requests):
                log(f"progress: {s.done}/{len(load.requests)} answered, {s.acked} acknowledged, "
                    f"{s.attempts} attempts ({s.unavailable} x 503, {s.conn_errors} connection "
                    f"errors), {s.done / max(time.monotonic() - t0, 1e-9):.0f} req/s; "
                    f"{self.work.done} raw records committed")
            else:
                log(f"progress: {self.work.done} raw records committed")

    async def load_with_chaos(self, requests) -> loadgen.LoadStats:
        rng = random.Random(self.args.seed)
        plan = self.schedule(rng)
        log("fault plan: " + ", ".join(f"{n}@{f:.0%} of the {m}" for m, f, n in plan))
        load = loadgen.Load(requests, "127.0.0.1", self.port, self.secrets,
                            concurrency=self.args.concurrency, retry_cap=self.args.retry_cap,
                            rate=getattr(self.args, "rate", 0.0))
        total = len(requests)
        self.work = WorkProgress(self.brokers, self.group, self.topics["raw"])
        self.work.start()
        stop = asyncio.Event()
        self._stop_sup = stop
        self._sup = asyncio.create_task(self.supervise(stop))
        self._prog = asyncio.create_task(self.progress(load, stop))
        self._chaos = [
            asyncio.create_task(self.chaos(lambda: load.stats.done / total,
                                           [p for p in plan if p[0] == "load"], rng)),
            asyncio.create_task(self.chaos(lambda: self.work.done / total,
                                           [p for p in plan if p[0] == "work"], rng)),
        ]
        stats = await load.run()
        self.load_stats = stats
        self.load_secs = stats.finished - stats.started
        return stats

    async def drain(self) -> float:
        """Until the workers committed the whole raw topic and every fault happened; the
        supervisor keeps restarting what exits meanwhile."""
        t0 = time.monotonic()
        loop = asyncio.get_running_loop()
        deadline = t0 + self.args.drain_timeout
        last = None
        while time.monotonic() < deadline:
            if all(c.done() for c in self._chaos):
                lag = await loop.run_in_executor(None, check.group_lag, self.brokers, self.group,
                                                 self.topics["raw"])
                if lag == 0:
                    break
                if lag != last:
                    log(f"drain: {lag} raw records not committed yet")
                    last = lag
            await asyncio.sleep(1)
        else:
            log(f"drain: not done after {self.args.drain_timeout:.0f}s")
        for c in self._chaos:
            if c.done():
                c.result()  # a fault that failed (say, Kafka did not come back) fails the run
            else:
                c.cancel()
        self._stop_sup.set()
        await self._sup
        self._prog.cancel()
        self.work.stop()
        return time.monotonic() - t0

    def stop_all(self) -> dict:
        out = {}
        # Workers first (they may be mid-transaction), then the ingest; one SIGTERM to
        # each process of a group at once, as a supervisor stopping the service would.
        for group in (self.workers, [self.ingest]):
            t0 = time.monotonic()
            for p in group:
                p.down = True
                if p.alive():
                    p.popen.send_signal(signal.SIGTERM)
            for p in group:
                rc = p.wait(t0 + 30 - time.monotonic())
                out[p.name] = (rc, round(time.monotonic() - t0, 2))
        return out


class WorkProgress(threading.Thread):
    """Raw records the worker group has committed, read every interval seconds."""

    def __init__(self, brokers: str, group: str, topic: str, interval: float = 0.5,
                 stable: bool = True):
        super().__init__(daemon=True)
        self.brokers, self.group, self.topic, self.interval = brokers, group, topic, interval
        # A read_committed reader asks for *stable* offsets (KIP-447): the broker answers
        # only once no transaction holds offsets of the group's partitions pending, which
        # under a backlog of pipelined transactions may be never until the end. With
        # stable=False it reads the offsets of the transactions committed so far.
        self.isolation = "read_committed" if stable else "read_uncommitted"
        self.done = 0
        self.ready = threading.Event()  # set once the first reading is in
        self._stop_ev = threading.Event()

    def run(self) -> None:
        from confluent_kafka import Consumer, TopicPartition
        c = Consumer({"bootstrap.servers": self.brokers, "group.id": self.group,
                      "enable.auto.commit": False, "log_level": 0,
                      "isolation.level": self.isolation})
        try:
            parts = None
            while not self._stop_ev.wait(self.interval):
                try:
                    if parts is None:
                        parts = [TopicPartition(self.topic, p)
                                 for p in check.partitions(self.brokers, self.topic)]
                    self.done = sum(max(tp.offset, 0) for tp in c.committed(parts, timeout=5))
                    self.ready.set()
                except Exception:
                    pass  # the broker is away: keep the last figure
        finally:
            c.close()

    def stop(self) -> None:
        self._stop_ev.set()
        self.join(15)


def main() -> int:
    ap = argparse.ArgumentParser(prog="tests/chaos/run", description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=100000, help="webhooks to post (default 100000)")
    ap.add_argument("--workers", type=int, default=3)
    ap.add_argument("--ingest-kills", type=int, default=3)
    ap.add_argument("--worker-kills", type=int, default=10)
    ap.add_argument("--broker-restarts", type=int, default=1)
    ap.add_argument("--pg-restarts", type=int, default=1)
    ap.add_argument("--broker-down-s", type=float, default=3.0,
                    help="seconds the broker stays down before it is started again")
    ap.add_argument("--pg-down-s", type=float, default=3.0,
                    help="seconds PostgreSQL stays down (over 30 makes the workers give the "
                         "batch up and rewind)")
    ap.add_argument("--worker-terms", type=int, default=1,
                    help="graceful restarts (SIGTERM) of a worker under load")
    ap.add_argument("--zombies", type=int, default=1,
                    help="workers frozen (SIGSTOP) past the session timeout, then woken")
    ap.add_argument("--ingest-terms", type=int, default=1,
                    help="graceful restarts (SIGTERM) of the ingest under load")
    ap.add_argument("--concurrency", type=int, default=48, help="parallel connections")
    ap.add_argument("--dup-ratio", type=float, default=0.10)
    ap.add_argument("--poison-ratio", type=float, default=0.003)
    ap.add_argument("--retry-cap", type=float, default=1.0,
                    help="longest pause before a retry in seconds (Retry-After is capped to it)")
    ap.add_argument("--partitions", type=int, default=6)
    ap.add_argument("--batch-size", type=int, default=500)
    ap.add_argument("--batch-max-events", type=int, default=2000,
                    help="[worker] batch_max_events (a small value splits most batches)")
    ap.add_argument("--commit-interval-ms", type=int, default=200)
    ap.add_argument("--ack-deadline-ms", type=int, default=5000)
    ap.add_argument("--drain-timeout", type=float, default=600.0)
    ap.add_argument("--seed", type=int, default=None)
    ap.add_argument("--check-suppressions", choices=("auto", "on", "off"), default="auto",
                    help="auto: when the schema has mh_suppressions; on: fail without it")
    ap.add_argument("--suppression-sql", default=None,
                    help="query returning (tenant, address, suppressed) rows")
    ap.add_argument("--keep", action="store_true",
                    help="keep topics and database (always kept when the run fails)")
    ap.add_argument("--rate", type=float, default=0.0,
                    help="new requests per second at most (0: as fast as the ingest answers)")
    ap.add_argument("--cluster", action="store_true",
                    help="against the local 3-node Kafka cluster (RF 3, min ISR 2): crashes "
                         "of partition leaders and of a transaction coordinator, a rolling "
                         "restart, and the ISR held below min.insync.replicas "
                         "(cluster_faults.py); no whole-Kafka restart")
    ap.add_argument("--isr-short-s", type=float, default=12.0,
                    help="seconds the cluster stays below min.insync.replicas (--cluster)")
    ap.add_argument("--ci", action="store_true",
                    help="the CI size: --n 6000 --ingest-kills 2 --worker-kills 4, one Kafka "
                         "and one PostgreSQL restart; with --cluster --n 4000 --rate 20 "
                         "(explicit options still win)")
    args = ap.parse_args()
    if args.cluster:
        # The load lasts the five cluster faults (each waits for the cluster to heal).
        ap.set_defaults(n=20000, rate=40.0, broker_restarts=0)
        args = ap.parse_args()
    if args.ci:
        ap.set_defaults(n=6000, ingest_kills=2, worker_kills=4, drain_timeout=300.0)
        if args.cluster:
            ap.set_defaults(n=4000, rate=20.0)
        args = ap.parse_args()
    if args.seed is None:
        args.seed = random.randrange(1 << 30)

    run = Run(args)
    t_start = time.monotonic()
    ok = False
    report: dict = {"run": run.id, "args": vars(args)}
    try:
        log(f"chaos run {run.id}: {args.n} webhooks, {args.workers} workers, seed {args.seed}, "
            f"Kafka {run.brokers}; logs in {run.dir}")
        run.setup()
        requests = loadgen.Workload(args.n, run.id.split("-")[1], seed=args.seed,
                                    dup_ratio=args.dup_ratio,
                                    poison_ratio=args.poison_ratio).build()

        async def body():
            await run.load_with_chaos(requests)
            return await run.drain()
        drain_secs = asyncio.run(body())
        shutdown = run.stop_all()

        log("reading the topics back (read_committed)")
        ev = check.read_topic(run.brokers, run.topics["events"])
        raw = check.read_topic(run.brokers, run.topics["raw"], read_committed=False)
        dlq = check.read_topic(run.brokers, run.topics["dlq"])
        uncommitted = check.read_topic(run.brokers, run.topics["events"], read_committed=False)
        res = check.verify(requests, ev, raw, dlq)
        distinct = res.pop("_distinct_events")
        res.update(check.acked_not_on_raw(requests, raw))

        supp = {"ran": False}
        if args.check_suppressions != "off":
            actual, how = check.actual_suppressions(run.dsn(), args.suppression_sql)
            if actual is None:
                supp["why_not"] = how
            else:
                expected = check.expected_suppressions(distinct)
                on_topic = check.topic_suppressions(
                    check.read_topic(run.brokers, run.topics["suppressions"]))
                supp = {"ran": True, "query": how, "expected": len(expected),
                        "actual": len(actual), "only_expected": len(expected - actual),
                        "only_actual": len(actual - expected),
                        "samples": sorted(expected ^ actual)[:5],
                        "topic": len(on_topic), "topic_differs": len(on_topic ^ actual),
                        "topic_samples": sorted(on_topic ^ actual)[:5]}

        s = run.load_stats
        dups = sum(1 for r in requests if r.duplicate_of is not None)
        poison = sum(1 for r in requests if r.poison and r.duplicate_of is None)
        other_status = {}
        for r in requests:
            for k, v in r.other.items():
                other_status[k] = other_status.get(k, 0) + v
        bad_shutdown = {n: v for n, v in shutdown.items()
                        if v[0] != 0 or v[1] > SHUTDOWN_LIMIT_S}
        bad_shutdown.update({f"{n} under load": (rc, t) for n, rc, t, _, ok in run.graceful
                             if not ok})
        sanitizer = procs.sanitizer_reports(run.all_procs())
        report.update({
            "sent": len(requests), "acknowledged": s.acked, "duplicates_injected": dups,
            "poison_injected": poison, "attempts": s.attempts, "answers_503": s.unavailable,
            "connection_errors": s.conn_errors, "other_status": other_status,
            "gave_up": s.gave_up, **run.counts, "unexpected": run.unexpected,
            **res, "events_uncommitted_view": len(uncommitted), "suppression": supp,
            "shutdown": shutdown, "graceful_restarts": run.graceful,
            "sanitizer_reports": sanitizer,
            "load_seconds": round(run.load_secs, 1), "drain_seconds": round(drain_secs, 1),
            "faults": run.events_log,
        })
        if run.cluster is not None:
            rep = run.replication()
            report["cluster"] = {"replication": rep,
                                 "topic_replication_wrong": cluster_faults.topic_replication(
                                     run.brokers, list(run.topics.values()),
                                     rep["replication_factor"], rep["min_insync_replicas"]),
                                 "faults": run.cluster.done,
                                 "isr_short": run.cluster.window_report(
                                     requests, s.unavailable_at)}
        problems = []
        for k in ("missing", "doubled", "doubled_event_ids", "unexpected", "bad_json",
                  "dlq_missing", "dlq_doubled", "dlq_unexpected", "dlq_without_reason",
                  "treatment_wrong"):
            if res[k]:
                problems.append(f"{k}={res[k]}")
        if res["acked_not_on_raw"]:
            problems.append(f"acked_not_on_raw={res['acked_not_on_raw']}")
        if s.gave_up:
            problems.append(f"gave_up={s.gave_up}")
        if run.cluster is not None and run.local_kafka:
            done = {f["fault"] for f in run.cluster.done}
            if set(cluster_faults.FAULTS) - done:
                problems.append(f"cluster faults not done: "
                                f"{sorted(set(cluster_faults.FAULTS) - done)}")
            if report["cluster"]["topic_replication_wrong"]:
                problems.append("topics not replicated as configured: "
                                + "; ".join(report["cluster"]["topic_replication_wrong"]))
            w = report["cluster"]["isr_short"]
            if w.get("ran") and w["acked_sent_in_window"]:
                problems.append(f"2xx while the ISR was short: {w['acked_sent_in_window']}")
            if w.get("ran") and not w["answers_503"]:
                problems.append("no 503 while the ISR was short (no load then?)")
        if other_status:
            problems.append(f"unexpected HTTP statuses {other_status}")
        if run.counts["ingest_kills"] < args.ingest_kills or \
                run.counts["worker_kills"] < args.worker_kills:
            problems.append("not every planned kill happened")
        if supp.get("ran") and (supp["only_expected"] or supp["only_actual"]):
            problems.append("suppression state differs")
        if supp.get("ran") and supp["topic_differs"]:
            problems.append("suppressions topic differs from PostgreSQL")
        if args.check_suppressions == "on" and not supp.get("ran"):
            problems.append(f"suppression check could not run: {supp.get('why_not')}")
        if bad_shutdown:
            problems.append(f"graceful shutdown: {bad_shutdown}")
        if sanitizer:
            problems.append(f"sanitizer reports: {sanitizer}")
        ok = not problems
        report["problems"] = problems
        print_report(report)
    except KeyboardInterrupt:
        log("interrupted")
        report["problems"] = ["interrupted"]
    except Exception as e:  # the report says what failed; the folder keeps the logs
        log(f"error: {e}")
        report["problems"] = [f"error: {e}"]
    finally:
        for p in run.all_procs() if run.ingest else []:
            if p.alive():
                p.terminate(15)
        report["total_seconds"] = round(time.monotonic() - t_start, 1)
        report["result"] = "PASS" if ok else "FAIL"
        if run.dir.is_dir():
            (run.dir / "report.json").write_text(json.dumps(report, indent=2, default=str) + "\n")
        cleanup(run, keep=args.keep or not ok)
        log(f"{report['result']} in {report['total_seconds']}s"
            + ("" if ok else f": {'; '.join(report.get('problems', []))} (logs: {run.dir})"))
    return 0 if ok else 1


def print_report(r: dict) -> None:
    supp = r["suppression"]
    if supp.get("ran"):
        supp_line = (f"checked: expected {supp['expected']} suppressed, actual {supp['actual']}, "
                     f"only expected {supp['only_expected']}, only actual {supp['only_actual']}; "
                     f"topic {supp['topic']}, differs from PostgreSQL {supp['topic_differs']}")
    else:
        supp_line = f"not checked ({supp.get('why_not', 'off')})"
    lines = [
        "",
        "==================== chaos report ====================",
        f"sent                 {r['sent']}  (distinct events {r['events_sent']})",
        f"acknowledged         {r['acknowledged']}  (events expected {r['events_expected']})",
        f"duplicates injected  {r['duplicates_injected']}",
        f"poison injected      {r['poison_injected']}",
        f"attempts             {r['attempts']}  (503: {r['answers_503']}, connection errors: "
        f"{r['connection_errors']}, gave up: {r['gave_up']})",
        f"kills                ingest {r['ingest_kills']}, workers {r['worker_kills']}, "
        f"broker restarts {r['broker_restarts']}, postgres restarts {r['pg_restarts']}, "
        f"unexpected exits {r['unexpected_exits']}",
        f"zombies              {r['zombies']} (workers frozen past the session timeout)",
        "graceful restarts    " + (", ".join(
            f"{n} {t}s status {rc}" + (f" (during: {o})" if o else "")
            for n, rc, t, o, _ in r["graceful_restarts"]) or "none"),
        f"emitted              {r['emitted']}  (distinct {r['emitted_distinct']}; "
        f"{r['events_uncommitted_view']} records incl. aborted transactions)",
        f"missing              {r['missing']}",
        f"doubled              {r['doubled']}  (event ids: {r['doubled_event_ids']})",
        f"unexpected           {r['unexpected']}",
        f"landed without 2xx   {r['emitted_without_2xx']}",
        f"2xx not on raw       {r['acked_not_on_raw']}  (acknowledged requests whose body no "
        f"raw record holds)",
        f"dead letters         {r['dead_letters']}  (poison raw records {r['poison_raw']}; "
        f"missing {r['dlq_missing']}, doubled {r['dlq_doubled']}, unexpected {r['dlq_unexpected']})",
        f"stored after a fix   {r['treated_emitted']}  (poison events emitted with their "
        f"treatment; wrong {r['treatment_wrong']})",
        f"suppression          {supp_line}",
        "shutdown (SIGTERM)   " + ", ".join(f"{n} {t}s status {rc}"
                                          for n, (rc, t) in r["shutdown"].items()),
        f"durations            load {r['load_seconds']}s, drain {r['drain_seconds']}s",
    ]
    if r.get("cluster"):
        c = r["cluster"]
        lines.append(f"replication          factor {c['replication']['replication_factor']}, "
                     f"min.insync.replicas {c['replication']['min_insync_replicas']}: "
                     + ("every topic of the run" if not c["topic_replication_wrong"] else
                        f"WRONG {c['topic_replication_wrong']}"))
        lines.append("cluster faults       " + (", ".join(
            f"{f['fault']} node {f.get('node', f.get('held_down', '-'))} {f['seconds']}s"
            for f in c["faults"]) or "none"))
        w = c["isr_short"]
        if w.get("ran"):
            lines.append(f"ISR short            {w['seconds']}s below min.insync.replicas: "
                         f"503 {w['answers_503']}, 2xx to requests sent then "
                         f"{w['acked_sent_in_window']} (answered then, sent earlier: "
                         f"{w['acked_answered_in_window'] - w['acked_sent_in_window']})")
        else:
            lines.append("ISR short            not run")
    if r["unexpected"]:
        lines.append("unexpected exits     " + "; ".join(r["unexpected"]))
    for k, v in r["samples"].items():
        if v:
            lines.append(f"sample {k}: {v}")
    print("\n".join(lines), flush=True)


def cleanup(run: Run, keep: bool) -> None:
    if keep:
        log(f"kept topics {', '.join(run.topics.values())} and database {run.dbname}")
        return
    procs.drop_topics_and_database(run.brokers, list(run.topics.values()), run.base_dsn,
                                   run.dbname, log)
    runs = sorted(d for d in (procs.LOCAL / "chaos").iterdir() if d.is_dir())
    for d in runs[:-5]:
        shutil.rmtree(d, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())

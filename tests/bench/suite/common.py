"""What every part of the benchmark suite shares: the bench's own topics, database,
config and keys (Bench), the processes it starts (Server), figures (Figure: median and
spread of several samples) and small probes (/proc VmHWM, free ports, load average)."""

from __future__ import annotations

import json
import os
import resource
import secrets
import shlex
import socket
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(ROOT / "tests" / "chaos"))

import chaos  # noqa: E402  (write_ini)
import procs  # noqa: E402  (build_dir, brokers, pg_dsn)

# The three providers whose verification the ingest figures compare, and their schemes.
PROVIDERS = {"ivymail": "HMAC-SHA256", "sendgrid": "ECDSA P-256", "postal": "RSA-SHA256 2048"}
TENANT = "acme"


def log(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def vm_hwm_kib(pid: int) -> int:
    """Peak resident set (VmHWM) of a live process, in KiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmHWM for pid {pid}")


def loadavg() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def raise_nofile() -> int:
    """Raises this process's (and so its children's) open-file limit to the hard limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def run(argv: list[str], timeout: float, env: dict | None = None, check: bool = True) -> str:
    """Runs a command to the end; its stdout (its stderr too when it fails)."""
    p = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, env=env)
    if check and p.returncode != 0:
        raise RuntimeError(f"{shlex.join(argv)} exited {p.returncode}:\n{p.stdout[-2000:]}{p.stderr[-2000:]}")
    return p.stdout


# ---------------------------------------------------------------------------------------
# figures


@dataclass
class Figure:
    """One line of the report: samples of one measurement next to its ceiling's."""
    part: str
    name: str
    unit: str
    command: str
    samples: list[float] = field(default_factory=list)
    ceiling_name: str = ""
    ceiling_command: str = ""
    ceiling_samples: list[float] = field(default_factory=list)
    note: str = ""
    skip: str = ""          # why the figure (or its ceiling) was not measured

    @staticmethod
    def stats(xs: list[float]) -> dict | None:
        if not xs:
            return None
        return {"median": statistics.median(xs), "min": min(xs), "max": max(xs), "n": len(xs)}

    def as_dict(self) -> dict:
        return {"part": self.part, "name": self.name, "unit": self.unit,
                "command": self.command, "samples": self.samples,
                "result": self.stats(self.samples),
                "ceiling": {"name": self.ceiling_name, "command": self.ceiling_command,
                            "samples": self.ceiling_samples,
                            "result": self.stats(self.ceiling_samples)},
                "note": self.note, "skip": self.skip}


# ---------------------------------------------------------------------------------------
# processes


class Server(procs.Proc):
    """A long-running program the bench starts (ingest, a worker, a ceiling server):
    the chaos test's Proc (its pid file under the folder tests/run's cleanup sweeps), with
    the waits the bench needs and a stop that answers the exit status."""

    def __init__(self, name: str, argv: list[str], logdir: Path, env: dict | None = None):
        super().__init__(name, argv, env, logdir / f"{name}.log")

    def wait_http(self, url: str, timeout: float = 60) -> None:
        if not procs.wait_http(url, timeout, self):
            raise RuntimeError(f"{self.name} not ready at {url}; see {self.log}")

    def wait_line(self, text: str, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self.alive():
            # This start's lines only: a log of an earlier run in the same --out says it too.
            log_text = self.text()
            if text in log_text[log_text.rfind("--- start"):]:
                return
            time.sleep(0.1)
        raise RuntimeError(f"{self.name} did not say {text!r}; see {self.log}")

    def stop(self, timeout: float = 20) -> int | None:
        """SIGTERM, SIGKILL after timeout; the exit status (None if never started)."""
        if self.popen is None:
            return None
        status, _ = self.terminate(timeout)
        self._pidfile().unlink(missing_ok=True)
        return status


# ---------------------------------------------------------------------------------------
# the bench's own Kafka topics, database and config


class Bench:
    """One bench run's resources on the shared Kafka and PostgreSQL: a database, key
    pairs for the signing providers, and configs (one per set of topics) whose topics
    are all named after the run id. cleanup() drops the database and deletes every topic
    made here."""

    def __init__(self, out: Path, build: Path, bin_dir: Path, kafka: dict | None = None,
                 worker: dict | None = None):
        self.out, self.build, self.bin = out, build, bin_dir
        self.kafka = kafka or {}  # --kafka: [kafka] settings for every config
        self.worker_kv = worker or {}  # --worker: [worker] settings for every config
        self.id = time.strftime("%Y%m%d%H%M%S") + "-" + secrets.token_hex(2)
        self.work = out / "work"
        self.work.mkdir(parents=True, exist_ok=True)
        self.brokers = procs.brokers()
        self.base_dsn = procs.pg_dsn()
        self.dbname = "mailhook_bench_" + self.id.replace("-", "_")
        self.secret = secrets.token_hex(32)
        self.topics: list[str] = []
        self.env = dict(os.environ, MAILHOOK_KAFKA_BROKERS=self.brokers)

    def dsn(self) -> str:
        from psycopg.conninfo import conninfo_to_dict, make_conninfo
        p = conninfo_to_dict(self.base_dsn)
        p["dbname"] = self.dbname
        return make_conninfo(**p)

    def setup(self) -> None:
        import psycopg
        with psycopg.connect(self.base_dsn, autocommit=True) as conn:
            conn.execute(f'create database "{self.dbname}"')
        self.env["MAILHOOK_PG_DSN"] = self.dsn()
        keys = self.work / "keys"
        keys.mkdir(exist_ok=True)
        run(["openssl", "ecparam", "-name", "prime256v1", "-genkey", "-noout",
             "-out", str(keys / "sendgrid.pem")], 30)
        run(["openssl", "genrsa", "-out", str(keys / "postal.pem"), "2048"], 60)
        for p in ("sendgrid", "postal"):
            run(["openssl", "pkey", "-in", str(keys / f"{p}.pem"), "-pubout",
                 "-out", str(keys / f"{p}.pub.pem")], 30)
        self.keys = keys
        # The database schema once, with the first config.
        self.config("setup", ingest_port=free_port(), migrate=True)

    def empty_claims(self) -> None:
        """Empties the claims and the event log (TRUNCATE; no worker may be claiming).
        Every part starts from empty tables, and each drain and pgbench run of the worker
        part too, so that a figure's runs repeat one measurement instead of each running
        on the rows every run and part before it left: a claim costs PostgreSQL more as
        the tables grow (docs/performance.md, the worker's "What moved"), and the order of the
        runs would decide the figures. What the size costs is the growth part's figure."""
        import psycopg
        with psycopg.connect(self.dsn(), autocommit=True) as conn:
            conn.execute("TRUNCATE mh_claims, mh_event_claims")

    # The server settings a claim's cost depends on, for the report's header.
    PG_SETTINGS = ("server_version", "shared_buffers", "max_wal_size", "checkpoint_timeout",
                   "wal_compression", "synchronous_commit")

    def pg_settings(self) -> str:
        import psycopg
        with psycopg.connect(self.dsn()) as conn:
            return ", ".join(f"{k} {conn.execute(f'show {k}').fetchone()[0]}"
                             for k in self.PG_SETTINGS)

    def config(self, tag: str, ingest_port: int = 0, partitions: int = 6,
               batch_size: int = 500, migrate: bool = False, ingest_threads: int = 0,
               ingest_extra: dict | None = None, kafka_extra: dict | None = None) -> dict:
        """A config whose topics are mailhook.<role>.bench-<id>-<tag>, created here
        (`mailhook topics`). Returns {"path", "topics", "group", "port"}."""
        suffix = f"bench-{self.id}-{tag}"
        topics = {r: f"mailhook.{r}.{suffix}" for r in ("raw", "events", "dlq", "suppressions")}
        group = f"mailhook-worker-{suffix}"
        port = ingest_port or free_port()
        sections = {
            "ingest": {"listen": f"127.0.0.1:{port}", "raw_topic": topics["raw"],
                       "threads": ingest_threads, "log_level": "warn", **(ingest_extra or {})},
            "worker": {"group_id": group, "raw_topic": topics["raw"],
                       "events_topic": topics["events"], "dlq_topic": topics["dlq"],
                       "suppressions_topic": topics["suppressions"],
                       "raw_partitions": partitions, "batch_size": batch_size,
                       "log_level": "warn", **self.worker_kv},
            "postgres": {"dsn": self.dsn()},
            "kafka": {"bootstrap.servers": self.brokers, **self.kafka, **(kafka_extra or {})},
            "source.ivymail": {"provider": "ivymail", "tenant": TENANT, "secret": self.secret},
            "source.sendgrid": {"provider": "sendgrid", "tenant": TENANT,
                                "public_key_file": str(self.keys / "sendgrid.pub.pem")},
            "source.postal": {"provider": "postal", "tenant": TENANT,
                              "public_key_file": str(self.keys / "postal.pub.pem")},
        }
        path = self.work / f"{tag}.ini"
        chaos.write_ini(path, sections)
        for cmd in (["topics"] + (["migrate"] if migrate else [])):
            run([str(self.build / "mailhook"), "--config", str(path), cmd], 120, env=self.env)
        self.topics += topics.values()
        self.wait_topics(list(topics.values()))
        return {"path": path, "topics": topics, "group": group, "port": port}

    def wait_topics(self, names: list[str], timeout: float = 30) -> None:
        """Waits until every broker knows every partition of the topics with a leader: on a
        cluster a client that asks a broker the creation has not reached yet finds no such
        topic, and a subscribed consumer then waits minutes for its next metadata refresh."""
        from confluent_kafka.admin import AdminClient
        deadline = time.monotonic() + timeout
        for broker in self.brokers.split(","):
            admin = AdminClient({"bootstrap.servers": broker})
            while True:
                md = admin.list_topics(timeout=10).topics
                if all(n in md and md[n].error is None and md[n].partitions and
                       all(p.leader >= 0 for p in md[n].partitions.values()) for n in names):
                    break
                if time.monotonic() > deadline:
                    raise RuntimeError(f"broker {broker} does not know topics {names}")
                time.sleep(0.1)

    def create_topic(self, name: str, partitions: int = 6) -> str:
        from confluent_kafka.admin import AdminClient, NewTopic
        a = AdminClient({"bootstrap.servers": self.brokers})
        # The broker's default replication (3 on the local cluster, as mailhook's topics).
        for f in a.create_topics([NewTopic(name, partitions, -1)]).values():
            f.result(30)
        self.topics.append(name)
        return name

    def ingest(self, cfg: dict, name: str = "ingest") -> Server:
        s = Server(name, [str(self.build / "mailhook-ingest"), "--config", str(cfg["path"])],
                   self.out / "logs", env=self.env).start()
        s.wait_http(f"http://127.0.0.1:{cfg['port']}/readyz")
        return s

    def worker(self, cfg: dict, instance: str) -> Server:
        return Server(f"worker-{instance}", [str(self.build / "mailhook-worker"), "--config",
                                             str(cfg["path"]), "--instance", instance],
                      self.out / "logs", env=self.env).start()

    def signed(self, cfg: dict, source: str, body: Path) -> tuple[list[str], bytes]:
        """(headers as "Name: value", body) of a request `mailhook sign` makes for
        source: the provider's own signing, stamped now."""
        out = run([str(self.build / "mailhook"), "--config", str(cfg["path"]), "sign",
                   "--source", source, str(body)], 30, env=self.env)
        words = shlex.split(out.strip())
        headers = [words[i + 1] for i, w in enumerate(words) if w == "-H"]
        if words[0] == "printf":        # a re-stamped body, piped into curl
            data = words[2].encode()
        else:
            data = Path(words[words.index("--data-binary") + 1].lstrip("@")).read_bytes()
        return headers, data

    def cleanup(self) -> None:
        procs.drop_topics_and_database(self.brokers, self.topics, self.base_dsn, self.dbname,
                                       log)


def wait_group(brokers: str, group: str, members: int, timeout: float = 60) -> None:
    """Waits until the consumer group is stable with this many members, each holding
    partitions: a join after the measurement began would put its rebalance in the tail."""
    from confluent_kafka import ConsumerGroupState
    from confluent_kafka.admin import AdminClient
    admin = AdminClient({"bootstrap.servers": brokers})
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            g = admin.describe_consumer_groups([group])[group].result(10)
            if (g.state == ConsumerGroupState.STABLE and len(g.members) == members and
                    all(m.assignment.topic_partitions for m in g.members)):
                return
        except Exception:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"consumer group {group} not stable with {members} members")


def dump_json(path: Path, obj) -> None:
    path.write_text(json.dumps(obj, indent=2, sort_keys=True) + "\n")

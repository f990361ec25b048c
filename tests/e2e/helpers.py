"""Helpers for mailhook's end-to-end tests.

Everything here talks to the real services: HTTP to mailhook-ingest, Kafka through
confluent-kafka (librdkafka), PostgreSQL through psycopg. The fixtures in conftest.py
build on these; tests may use them directly too (e.g. to start a third worker or to
read a topic from a given offset).

Conventions:
- Kafka offsets are dicts {partition: offset}. `end_offsets(topic)` taken before an
  action, passed to `consume(topic, from_offsets=...)` after it, yields exactly what the
  action produced.
- Consumers read with isolation.level=read_committed unless told otherwise, as every
  downstream consumer of mailhook should.
- Bodies are bytes on the wire; a dict is serialized as compact JSON.
"""

from __future__ import annotations

import base64
import configparser
import dataclasses
import datetime as dt
import hashlib
import hmac
import json
import os
import signal
import socket
import subprocess
import time
import uuid
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

import requests
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, TopicPartition
from confluent_kafka.admin import AdminClient

ROOT = Path(__file__).resolve().parents[2]
# The local stack's files: $MH_LOCAL as deploy/local/lib.sh defines it (default .local).
LOCAL = Path(os.environ.get("MH_LOCAL") or ROOT / ".local")
LIB_SH = ROOT / "deploy" / "local" / "lib.sh"
# Pid files of the processes the fixtures start: tests/run and deploy/local/down stop
# whatever is left there ($MH_LOCAL/run/e2e) if a test run dies before its teardown.
PID_DIR = LOCAL / "run" / "e2e"


# ---------------------------------------------------------------------------------------
# environment

def build_dir() -> Path:
    """Where the mailhook binaries are (MH_BUILD_DIR, as set by tests/run)."""
    return Path(os.environ.get("MH_BUILD_DIR") or ROOT / "build")


def brokers() -> str:
    """Kafka bootstrap servers (MAILHOOK_KAFKA_BROKERS, default: the local stack)."""
    return os.environ.get("MAILHOOK_KAFKA_BROKERS") or \
        f"127.0.0.1:{os.environ.get('MH_KAFKA_PORT', '9092')}"


def pg_dsn() -> str:
    """The PostgreSQL database given to the tests (MAILHOOK_PG_DSN, default: local stack)."""
    return os.environ.get("MAILHOOK_PG_DSN") or \
        f"postgresql://postgres@127.0.0.1:{os.environ.get('MH_PG_PORT', '5433')}/mailhook"


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that is free right now (for an ingest listener)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def tail(path: Path | str, n: int = 60) -> str:
    """The last n lines of a text file ('' if it does not exist)."""
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - 256 * 1024))
            lines = f.read().decode("utf-8", "replace").splitlines()
    except FileNotFoundError:
        return ""
    return "\n".join(lines[-n:])


def wait_for(predicate: Callable[[], Any], timeout: float = 30.0, interval: float = 0.2,
             what: str = "condition") -> Any:
    """Poll predicate until it returns something truthy; return that, or fail after
    timeout seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout:g}s waiting for {what}")
        time.sleep(interval)


def http_get_ok(url: str, timeout: float = 2.0) -> bool:
    """True when GET url answers 200; False on any other answer or no answer."""
    try:
        return requests.get(url, timeout=timeout).status_code == 200
    except requests.RequestException:
        return False


# ---------------------------------------------------------------------------------------
# signing and posting

def _bytes(body: bytes | str | dict | list) -> bytes:
    if isinstance(body, bytes):
        return body
    if isinstance(body, str):
        return body.encode("utf-8")
    return json.dumps(body, separators=(",", ":")).encode("utf-8")


def sign(body: bytes | str | dict, secret: str | bytes, encoding: str = "hex",
         algorithm: str = "sha256") -> str:
    """HMAC of the raw body. The key is the secret's bytes as configured (the hex string
    itself, not its decoded value), as providers hand secrets to their customers.
    encoding: "hex" or "base64"."""
    key = secret if isinstance(secret, bytes) else secret.encode("utf-8")
    mac = hmac.new(key, _bytes(body), getattr(hashlib, algorithm)).digest()
    if encoding == "hex":
        return mac.hex()
    if encoding == "base64":
        return base64.b64encode(mac).decode("ascii")
    raise ValueError(f"unknown encoding {encoding!r}")


def hmac_sha256_hex(body: bytes | str | dict, secret: str | bytes) -> str:
    return sign(body, secret, "hex", "sha256")


def post(base_url: str, source: str, body: bytes | str | dict,
         headers: dict[str, str] | None = None, timeout: float = 10.0) -> requests.Response:
    """POST body to <base_url>/v1/webhooks/<source> exactly as given (no signing)."""
    h = {"content-type": "application/json"}
    h.update(headers or {})
    return requests.post(f"{base_url}/v1/webhooks/{source}", data=_bytes(body), headers=h,
                         timeout=timeout)


# ---------------------------------------------------------------------------------------
# Kafka

@dataclasses.dataclass
class Record:
    """One Kafka record. Unpacks as (key, headers, value)."""
    key: str | None
    headers: dict[str, str]
    value: Any  # parsed JSON; bytes if the value is not JSON; None for a tombstone
    topic: str
    partition: int
    offset: int
    raw_value: bytes | None = None
    header_list: list[tuple[str, bytes]] = dataclasses.field(default_factory=list)

    def __iter__(self) -> Iterator[Any]:
        return iter((self.key, self.headers, self.value))


def _decode(b: bytes | None) -> str | None:
    return None if b is None else b.decode("utf-8", "replace")


def _record(msg) -> Record:
    raw = msg.value()
    value: Any = None
    if raw is not None:
        try:
            value = json.loads(raw)
        except ValueError:
            value = raw
    hl = [(k, v) for k, v in (msg.headers() or [])]
    return Record(key=_decode(msg.key()), headers={k: _decode(v) for k, v in hl}, value=value,
                  topic=msg.topic(), partition=msg.partition(), offset=msg.offset(),
                  raw_value=raw, header_list=hl)


def admin(brokers_: str | None = None) -> AdminClient:
    return AdminClient({"bootstrap.servers": brokers_ or brokers()})


def _consumer(brokers_: str | None, read_committed: bool, eof: bool = False) -> Consumer:
    return Consumer({
        "bootstrap.servers": brokers_ or brokers(),
        "group.id": "mailhook-e2e-reader-" + uuid.uuid4().hex,
        "enable.auto.commit": False,
        "auto.offset.reset": "earliest",
        "isolation.level": "read_committed" if read_committed else "read_uncommitted",
        "enable.partition.eof": eof,
    })


def partitions(topic: str, brokers_: str | None = None, timeout: float = 10.0) -> list[int]:
    md = admin(brokers_).list_topics(topic, timeout=timeout)
    t = md.topics.get(topic)
    if t is None or t.error is not None:
        raise AssertionError(f"topic {topic!r} not available: {t.error if t else 'missing'}")
    return sorted(t.partitions)


def end_offsets(topic: str, brokers_: str | None = None) -> dict[int, int]:
    """Snapshot of the topic's end offsets (high watermarks), {partition: offset}."""
    c = _consumer(brokers_, True)
    try:
        out = {}
        for p in partitions(topic, brokers_):
            _, high = c.get_watermark_offsets(TopicPartition(topic, p), timeout=10.0)
            out[p] = high
        return out
    finally:
        c.close()


def consume(topic: str, from_offsets: dict[int, int] | None = None, expect_n: int | None = None,
            timeout: float = 30.0, read_committed: bool = True, settle: float = 0.0,
            brokers_: str | None = None) -> list[Record]:
    """Read records of topic.

    from_offsets: {partition: offset} (e.g. an end_offsets() snapshot); partitions not in
    it, and everything when it is None, are read from the beginning.
    expect_n: return as soon as that many records arrived, after waiting `settle` more
    seconds for any surplus (use settle to prove there are no duplicates). Without
    expect_n, read until every partition is at its end (for read_committed: its last
    stable offset) or until timeout.
    Never raises on a short read: the caller asserts on what it got.
    """
    c = _consumer(brokers_, read_committed, eof=expect_n is None)
    out: list[Record] = []
    try:
        parts = partitions(topic, brokers_)
        offs = from_offsets or {}
        c.assign([TopicPartition(topic, p, offs.get(p, OFFSET_BEGINNING)) for p in parts])
        at_eof: set[int] = set()
        deadline = time.monotonic() + timeout
        settle_until = None
        while True:
            now = time.monotonic()
            if now >= deadline:
                break
            if settle_until is not None and now >= settle_until:
                break
            msg = c.poll(min(0.2, deadline - now))
            if msg is None:
                continue
            if msg.error():
                if msg.error().code() == KafkaError._PARTITION_EOF:
                    at_eof.add(msg.partition())
                    if expect_n is None and at_eof >= set(parts):
                        break
                    continue
                raise AssertionError(f"consuming {topic}: {msg.error()}")
            at_eof.discard(msg.partition())
            out.append(_record(msg))
            if expect_n is not None and len(out) >= expect_n and settle_until is None:
                if settle <= 0:
                    break
                settle_until = time.monotonic() + settle
        return out
    finally:
        c.close()


def create_topics(names: dict[str, int], brokers_: str | None = None, config: dict | None = None):
    """Create topics {name: partitions} (replication factor 1); existing ones are kept."""
    from confluent_kafka.admin import NewTopic
    a = admin(brokers_)
    existing = a.list_topics(timeout=10).topics
    new = [NewTopic(n, p, 1, config=config or {}) for n, p in names.items() if n not in existing]
    for f in (a.create_topics(new).values() if new else []):
        f.result()


def delete_topics(names: Iterable[str], brokers_: str | None = None) -> None:
    """Delete topics, ignoring those that do not exist."""
    a = admin(brokers_)
    existing = a.list_topics(timeout=10).topics
    names = [n for n in names if n in existing]
    if not names:
        return
    for f in a.delete_topics(names, operation_timeout=30).values():
        try:
            f.result()
        except Exception:  # best effort: a leftover topic only costs disk
            pass


# ---------------------------------------------------------------------------------------
# PostgreSQL

def with_dbname(dsn: str, dbname: str) -> str:
    """The same connection string with another database."""
    from psycopg.conninfo import conninfo_to_dict, make_conninfo
    params = conninfo_to_dict(dsn)
    params["dbname"] = dbname
    return make_conninfo(**params)


# ---------------------------------------------------------------------------------------
# local stack control (fault injection)

def stack_call(*functions: str, timeout: float = 180.0) -> subprocess.CompletedProcess:
    """Run functions of deploy/local/lib.sh (e.g. "mh_kafka_kill", "mh_kafka_up") in one
    bash, against the local stack (the MAILHOOK_* addresses are dropped so lib.sh acts on
    the processes it manages). Raises if one fails."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("MAILHOOK_KAFKA_BROKERS", "MAILHOOK_PG_DSN")}
    script = f'set -euo pipefail; source "{LIB_SH}"; ' + "; ".join(functions)
    proc = subprocess.run(["bash", "-c", script], env=env, stdin=subprocess.DEVNULL,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                          timeout=timeout)
    if proc.returncode != 0:
        raise AssertionError(f"{'; '.join(functions)} failed:\n{proc.stdout}")
    return proc


# ---------------------------------------------------------------------------------------
# sources and config

# How to sign for a provider whose source block does not name its own header:
# provider -> (header, encoding, prefix). The generic "hmac" provider takes header,
# encoding and prefix from its source block.
PROVIDER_SIGNATURE: dict[str, tuple[str, str, str]] = {
    "ivymail": ("x-ivymail-signature", "hex", ""),
}


def new_secret() -> str:
    return os.urandom(32).hex()


def default_sources(tenant: str) -> dict[str, dict[str, str]]:
    """The sources every test session configures: name -> INI keys of [source.<name>]."""
    return {
        "ivymail": {"provider": "ivymail", "tenant": tenant, "secret": new_secret()},
        "maildog": {"provider": "hmac", "tenant": tenant, "header": "x-maildog-signature",
                    "encoding": "hex", "secret": new_secret()},
    }


def signature_headers(source: dict[str, str], body: bytes | str | dict,
                      secret: str | None = None) -> dict[str, str]:
    """The header(s) that sign body for a configured HMAC source."""
    if "header" in source:
        header, encoding, prefix = (source["header"], source.get("encoding", "hex"),
                                    source.get("prefix", ""))
    elif source.get("provider") in PROVIDER_SIGNATURE:
        header, encoding, prefix = PROVIDER_SIGNATURE[source["provider"]]
    else:
        raise ValueError(f"no known signature scheme for provider {source.get('provider')!r}; "
                         "pass the headers yourself")
    secret = secret or source["secret"].split(",")[0].strip()
    return {header: prefix + sign(body, secret, encoding)}


def pipeline_sections(topics: dict[str, str], group_id: str, dsn: str,
                      kafka_brokers: str) -> dict[str, dict[str, str]]:
    """[ingest], [worker], [postgres] and [kafka] of a pipeline of its own: the topics
    {raw, events, dlq, suppressions: name}, a consumer group and an ingest on a free port."""
    return {
        "ingest": {"listen": f"127.0.0.1:{free_port()}", "raw_topic": topics["raw"]},
        "worker": {"group_id": group_id, **{f"{role}_topic": t for role, t in topics.items()}},
        "postgres": {"dsn": dsn},
        "kafka": {"bootstrap.servers": kafka_brokers},
    }


def write_ini(path: Path, sections: dict[str, dict[str, Any]]) -> None:
    """Write an INI file (mode 0600: it holds secrets)."""
    cp = configparser.ConfigParser(interpolation=None)
    cp.optionxform = str  # keep keys as written (bootstrap.servers, ...)
    for name, keys in sections.items():
        cp[name] = {k: str(v) for k, v in keys.items()}
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write("# mailhook configuration written by the end-to-end test fixtures\n")
        cp.write(f)


# ---------------------------------------------------------------------------------------
# mailhook processes

class Proc:
    """A mailhook program started by a test, with its log file."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str], log: Path):
        self.name, self.argv, self.env, self.log = name, argv, env, log
        self.popen: subprocess.Popen | None = None
        self.expected_exit = False

    def start(self) -> "Proc":
        self.log.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log, "ab") as logf:
            logf.write(f"--- start {' '.join(self.argv)}\n".encode())
            logf.flush()
            self.popen = subprocess.Popen(self.argv, env=self.env, stdin=subprocess.DEVNULL,
                                          stdout=logf, stderr=subprocess.STDOUT,
                                          start_new_session=True)
        self.expected_exit = False
        PID_DIR.mkdir(parents=True, exist_ok=True)
        (PID_DIR / f"{os.getpid()}-{self.name}.pid").write_text(f"{self.popen.pid}\n")
        return self

    @property
    def pid(self) -> int | None:
        return self.popen.pid if self.popen else None

    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def returncode(self) -> int | None:
        return None if self.popen is None else self.popen.poll()

    def send_signal(self, sig: int) -> None:
        if self.alive():
            self.popen.send_signal(sig)

    def stop(self, timeout: float = 10.0, sig: int = signal.SIGTERM) -> int | None:
        """Signal (default SIGTERM), wait up to timeout, then SIGKILL. Returns the exit
        status (negative: killed by that signal)."""
        self.expected_exit = True
        if self.popen is None:
            return None
        if self.popen.poll() is None:
            self.popen.send_signal(sig)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(10)
        (PID_DIR / f"{os.getpid()}-{self.name}.pid").unlink(missing_ok=True)
        return self.popen.returncode

    def kill(self) -> int | None:
        """SIGKILL now (a crash)."""
        return self.stop(timeout=10.0, sig=signal.SIGKILL)

    def tail(self, n: int = 60) -> str:
        return tail(self.log, n)


class Mailhook:
    """The mailhook programs of one test session: one config, any number of ingest and
    worker processes. Created by the `mailhook` fixture (conftest.py)."""

    def __init__(self, config_path: Path, sections: dict[str, dict[str, Any]], env: dict[str, str],
                 workdir: Path, topics: dict[str, str], sources: dict[str, dict[str, str]],
                 kafka_brokers: str, dsn: str):
        self.config_path = config_path
        self.sections = sections
        self.env = env
        self.workdir = workdir
        self.topics = topics
        self.sources = sources
        self.brokers = kafka_brokers
        self.dsn = dsn
        self.procs: dict[str, Proc] = {}
        listen = sections["ingest"]["listen"]
        host, port = listen.rsplit(":", 1)
        self.base_url = f"http://{'127.0.0.1' if host in ('0.0.0.0', '*', '') else host}:{port}"

    # --- CLI ---------------------------------------------------------------------------
    def cli(self, *args: str, check: bool = True, timeout: float = 120.0,
            input: bytes | None = None) -> subprocess.CompletedProcess:
        """Run `mailhook --config <session config> args...`; stdout/stderr captured."""
        argv = [str(build_dir() / "mailhook"), "--config", str(self.config_path), *args]
        proc = subprocess.run(argv, env=self.env, input=input, capture_output=True,
                              timeout=timeout, stdin=None if input is not None else subprocess.DEVNULL)
        if check and proc.returncode != 0:
            raise AssertionError(
                f"{' '.join(argv)} exited {proc.returncode}\n"
                f"stdout:\n{proc.stdout.decode(errors='replace')}\n"
                f"stderr:\n{proc.stderr.decode(errors='replace')}")
        return proc

    # --- processes -----------------------------------------------------------------------
    def _proc(self, name: str, program: str, config: Path | None = None,
              extra: list[str] | None = None) -> Proc:
        old = self.procs.get(name)
        if old is not None and old.alive():
            raise RuntimeError(f"{name} is already running (pid {old.pid})")
        argv = [str(build_dir() / program), "--config", str(config or self.config_path),
                *(extra or [])]
        p = Proc(name, argv, self.env, self.workdir / f"{name}.log")
        self.procs[name] = p
        return p.start()

    def start_ingest(self, name: str = "ingest", config: Path | None = None,
                     url: str | None = None, timeout: float = 30.0) -> Proc:
        """Start a mailhook-ingest and wait until its /readyz answers 200."""
        p = self._proc(name, "mailhook-ingest", config)
        url = url or self.base_url

        def ready():
            if not p.alive():
                raise AssertionError(f"{name} exited with status {p.returncode()} during "
                                     f"start-up:\n{p.tail()}")
            try:
                return requests.get(f"{url}/readyz", timeout=2).status_code == 200
            except requests.RequestException:
                return False
        wait_for(ready, timeout, what=f"{name} {url}/readyz")
        return p

    def start_api(self, name: str, sections: dict[str, dict[str, Any]]) -> tuple[str, Proc]:
        """Start a mailhook-api with these INI sections (written to <name>.ini; [api]
        listen is its address) and wait until its /readyz answers 200. Returns its base
        URL and process."""
        ini = self.workdir / f"{name}.ini"
        write_ini(ini, sections)
        proc = self._proc(name, "mailhook-api", ini)
        base = "http://" + sections["api"]["listen"]

        def ready():
            if not proc.alive():
                raise AssertionError(f"{name} exited during start-up:\n{proc.tail()}")
            try:
                return requests.get(base + "/readyz", timeout=2).status_code == 200
            except requests.RequestException:
                return False
        wait_for(ready, 30, what=f"{name} /readyz")
        return base, proc

    def start_worker(self, index: int | None = None, config: Path | None = None) -> Proc:
        """Start one mailhook-worker (worker-<index>, default: the next free index)."""
        if index is None:
            index = 1
            while f"worker-{index}" in self.procs and self.procs[f"worker-{index}"].alive():
                index += 1
        # A stable instance name: a restarted worker fences (and aborts the open
        # transaction of) the one it replaces instead of waiting for it to time out.
        p = self._proc(f"worker-{index}", "mailhook-worker", config,
                       ["--instance", f"worker-{index}"])
        time.sleep(0.3)
        if not p.alive():
            raise AssertionError(f"worker-{index} exited with status {p.returncode()} during "
                                 f"start-up:\n{p.tail()}")
        return p

    def workers(self) -> list[Proc]:
        return [p for n, p in sorted(self.procs.items()) if n.startswith("worker-") and p.alive()]

    def stop_all(self, timeout: float = 10.0) -> list[Proc]:
        """Stop every process; returns those that had exited although no test stopped
        them (crashed() as it was before stopping)."""
        crashed = self.crashed()
        for p in self.procs.values():
            if p.alive():
                p.send_signal(signal.SIGTERM)
                p.expected_exit = True
        for p in self.procs.values():
            p.stop(timeout)
        return crashed

    def crashed(self) -> list[Proc]:
        """Processes that exited although no test stopped them."""
        return [p for p in self.procs.values()
                if p.popen is not None and not p.expected_exit and not p.alive()]

    # --- requests ------------------------------------------------------------------------
    def url(self, source: str) -> str:
        return f"{self.base_url}/v1/webhooks/{source}"

    def post(self, source: str, body: bytes | str | dict, headers: dict[str, str] | None = None,
             sign: bool = True, secret: str | None = None, base_url: str | None = None,
             timeout: float = 10.0) -> requests.Response:
        """POST a webhook to a configured source. With sign=True (default) the source's
        signature header is added (computed with `secret` or the source's first secret);
        explicit headers win over it."""
        h: dict[str, str] = {}
        if sign:
            h.update(signature_headers(self.sources[source], body, secret))
        h.update(headers or {})
        return post(base_url or self.base_url, source, body, h, timeout)

    # --- Kafka shortcuts on this session's topics ----------------------------------------
    def end_offsets(self, topic: str = "events") -> dict[int, int]:
        return end_offsets(self.topics.get(topic, topic), self.brokers)

    def consume(self, topic: str = "events", **kw) -> list[Record]:
        return consume(self.topics.get(topic, topic), brokers_=self.brokers, **kw)

    # --- diagnostics ---------------------------------------------------------------------
    def log_tails(self, n: int = 60) -> dict[str, str]:
        return {name: p.tail(n) for name, p in sorted(self.procs.items())}

    def sanitizer_reports(self) -> list[str]:
        marks = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:",
                 "WARNING: ThreadSanitizer")
        found = []
        for name, p in sorted(self.procs.items()):
            try:
                text = p.log.read_text(errors="replace")
            except FileNotFoundError:
                continue
            if any(m in text for m in marks):
                found.append(name)
        return found


# A test that compares the database's day (now() at time zone 'UTC') with its own waits
# for the next day when it starts this close to midnight UTC.
MIDNIGHT_MARGIN_S = 120


def today_with_margin() -> dt.date:
    """Today (UTC), with at least MIDNIGHT_MARGIN_S of it left: a test that takes its
    day when its module is collected, or near the day's end, would meet a database
    already on the next one."""
    now = dt.datetime.now(dt.timezone.utc)
    midnight = dt.datetime.combine(now.date() + dt.timedelta(days=1), dt.time(0, 0),
                                   tzinfo=dt.timezone.utc)
    left = (midnight - now).total_seconds()
    if left < MIDNIGHT_MARGIN_S:
        time.sleep(left + 1)
    return dt.datetime.now(dt.timezone.utc).date()

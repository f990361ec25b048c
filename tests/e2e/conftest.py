"""Fixtures for mailhook's end-to-end tests.

The tests run against real services: Kafka at MAILHOOK_KAFKA_BROKERS and PostgreSQL at
MAILHOOK_PG_DSN (tests/run sets both; without them, the local stack of deploy/local on
its default ports). Each pytest session isolates itself from every other run:

- topics   mailhook.{raw,events,dlq,suppressions,quarantine}.e2e-<session id>
- group    mailhook-worker-e2e-<session id>
- database mailhook_e2e_<session id> (created next to the given one, dropped at the end)
- config   $MH_LOCAL/e2e/<session id>/mailhook.ini (MH_LOCAL: default .local) with its
           own sources and fresh secrets; the programs' logs are in the same folder.

Fixtures (session scope unless noted):
  stack            Stack(brokers, dsn): the services answer
  session_id       the suffix used for every name above
  e2e_db           DSN of the session's database
  mailhook_config  MailhookConfig: path, INI sections, topics, sources (nothing started)
  mailhook         helpers.Mailhook: topics created and database migrated by the CLI, one
                   mailhook-ingest on a free port and MH_E2E_WORKERS (default 2) workers
  pg               (function) psycopg connection to the session's database, autocommit
  stack_control    kill/stop/start the local Kafka and PostgreSQL (fault tests; skips
                   when they are external)

Set MH_E2E_KEEP=1 to keep the session's topics and database for inspection.
"""

from __future__ import annotations

import dataclasses
import os
import secrets
import shutil
import time
from pathlib import Path

import psycopg
import pytest

import helpers
from helpers import Mailhook

E2E_DIR = helpers.LOCAL / "e2e"
KEEP = os.environ.get("MH_E2E_KEEP") == "1"
SKIP_BUILD = os.environ.get("MH_SKIP_BUILD") == "1"


# ---------------------------------------------------------------------------------------
# services

@dataclasses.dataclass
class Stack:
    brokers: str
    dsn: str


def _kafka_answers(brokers: str, timeout: float) -> str | None:
    """None if the cluster answers metadata requests within timeout, else the error."""
    deadline = time.monotonic() + timeout
    err = "no answer"
    while time.monotonic() < deadline:
        try:
            md = helpers.admin(brokers).list_topics(timeout=5)
            if md.brokers:
                return None
            err = "no brokers in metadata"
        except Exception as e:  # KafkaException carries the reason
            err = str(e)
        time.sleep(0.5)
    return err


def _pg_answers(dsn: str, timeout: float) -> str | None:
    deadline = time.monotonic() + timeout
    err = "no answer"
    while time.monotonic() < deadline:
        try:
            with psycopg.connect(dsn, connect_timeout=5) as conn:
                conn.execute("select 1")
            return None
        except psycopg.Error as e:
            err = str(e).strip()
        time.sleep(0.5)
    return err


@pytest.fixture(scope="session")
def stack() -> Stack:
    s = Stack(helpers.brokers(), helpers.pg_dsn())
    hint = ("start the services with deploy/local/up (or run tests/run), or point "
            "MAILHOOK_KAFKA_BROKERS / MAILHOOK_PG_DSN at running ones")
    err = _kafka_answers(s.brokers, 30)
    if err:
        pytest.fail(f"Kafka at {s.brokers} does not answer: {err}; {hint}", pytrace=False)
    err = _pg_answers(s.dsn, 30)
    if err:
        pytest.fail(f"PostgreSQL does not answer: {err}; {hint}", pytrace=False)
    return s


@pytest.fixture(scope="session")
def session_id() -> str:
    return time.strftime("%Y%m%d%H%M%S") + "-" + secrets.token_hex(3)


@pytest.fixture(scope="session")
def e2e_db(stack: Stack, session_id: str):
    """A database of its own for this session (dedup claims and suppression state of an
    earlier run would otherwise swallow this run's events). Falls back to the given
    database if the role may not create one."""
    name = "mailhook_e2e_" + session_id.replace("-", "_")
    try:
        with psycopg.connect(stack.dsn, autocommit=True) as conn:
            conn.execute(f'create database "{name}"')
    except psycopg.Error as e:
        print(f"\nnote: cannot create database {name} ({str(e).strip()}); "
              "using the database of MAILHOOK_PG_DSN as it is")
        yield stack.dsn
        return
    yield helpers.with_dbname(stack.dsn, name)
    if KEEP:
        print(f"\nkept database {name} (MH_E2E_KEEP=1)")
        return
    try:
        with psycopg.connect(stack.dsn, autocommit=True) as conn:
            conn.execute(f'drop database if exists "{name}" with (force)')
    except psycopg.Error as e:
        print(f"\nwarning: could not drop database {name}: {str(e).strip()}")


@pytest.fixture
def pg(e2e_db: str):
    """psycopg connection (autocommit) to the session's database."""
    with psycopg.connect(e2e_db, autocommit=True) as conn:
        yield conn


# ---------------------------------------------------------------------------------------
# mailhook

@dataclasses.dataclass
class MailhookConfig:
    path: Path
    workdir: Path
    sections: dict
    topics: dict        # role (raw, events, dlq, suppressions) -> topic name
    sources: dict       # source name -> its INI keys (secret included)
    group_id: str
    tenant: str


def _prune_old_runs(keep: int = 5) -> None:
    if not E2E_DIR.is_dir():
        return
    runs = sorted((d for d in E2E_DIR.iterdir() if d.is_dir()), key=lambda d: d.name)
    for d in runs[:-keep]:
        shutil.rmtree(d, ignore_errors=True)


@pytest.fixture(scope="session")
def mailhook_config(stack: Stack, session_id: str, e2e_db: str) -> MailhookConfig:
    _prune_old_runs()
    workdir = E2E_DIR / session_id
    workdir.mkdir(parents=True, exist_ok=True)
    topics = {role: f"mailhook.{role}.e2e-{session_id}"
              for role in ("raw", "events", "dlq", "suppressions")}
    group_id = f"mailhook-worker-e2e-{session_id}"
    tenant = "e2e"
    sources = helpers.default_sources(tenant)
    sections = {
        # [ingest]'s own topic, not a worker role: kept out of `topics`.
        "ingest": {"listen": f"127.0.0.1:{helpers.free_port()}", "raw_topic": topics["raw"],
                   "quarantine_topic": f"mailhook.quarantine.e2e-{session_id}"},
        "worker": {"group_id": group_id, "raw_topic": topics["raw"],
                   "events_topic": topics["events"], "dlq_topic": topics["dlq"],
                   "suppressions_topic": topics["suppressions"]},
        "postgres": {"dsn": e2e_db},
        "kafka": {"bootstrap.servers": stack.brokers},
    }
    for name, keys in sources.items():
        sections[f"source.{name}"] = keys
    path = workdir / "mailhook.ini"
    helpers.write_ini(path, sections)
    _SESSION_DIR.append(workdir)
    return MailhookConfig(path, workdir, sections, topics, sources, group_id, tenant)


def _require_binaries() -> None:
    missing = [b for b in ("mailhook", "mailhook-ingest", "mailhook-worker")
               if not os.access(helpers.build_dir() / b, os.X_OK)]
    if missing:
        msg = (f"mailhook not built: {', '.join(missing)} missing in {helpers.build_dir()} "
               "(tests/run builds it; MH_BUILD_DIR selects another build directory)")
        if SKIP_BUILD:
            pytest.skip(msg)
        pytest.fail(msg, pytrace=False)


_SESSION_MAILHOOK: list[Mailhook] = []
_SESSION_DIR: list[Path] = []


@pytest.fixture(scope="session")
def mailhook(stack: Stack, mailhook_config: MailhookConfig):
    """Topics created and database migrated with the CLI, then one ingest and
    MH_E2E_WORKERS workers (default 2) running with the session's config."""
    _require_binaries()
    cfg = mailhook_config
    env = dict(os.environ)
    # The programs let these override the config file: point them at this session's
    # database (and the same brokers) so the file and the environment agree.
    env["MAILHOOK_KAFKA_BROKERS"] = stack.brokers
    env["MAILHOOK_PG_DSN"] = cfg.sections["postgres"]["dsn"]
    mh = Mailhook(cfg.path, cfg.sections, env, cfg.workdir, cfg.topics, cfg.sources,
                  stack.brokers, cfg.sections["postgres"]["dsn"])
    _SESSION_MAILHOOK.append(mh)

    mh.cli("topics")
    md = helpers.admin(stack.brokers).list_topics(timeout=10)
    missing = [t for t in cfg.topics.values() if t not in md.topics]
    assert not missing, f"`mailhook topics` did not create {missing}"
    mh.cli("migrate")

    try:
        mh.start_ingest()
        for i in range(int(os.environ.get("MH_E2E_WORKERS", "2"))):
            mh.start_worker(i + 1)
    except BaseException:
        mh.stop_all()
        raise

    yield mh

    crashed = mh.crashed()
    mh.stop_all()
    _SESSION_MAILHOOK.remove(mh)
    if not KEEP:
        helpers.delete_topics([*cfg.topics.values(), cfg.sections["ingest"]["quarantine_topic"]],
                              stack.brokers)
    problems = []
    if crashed:
        problems.append("exited unexpectedly: " + ", ".join(
            f"{p.name} (status {p.returncode()})" for p in crashed))
    bad = mh.sanitizer_reports()
    if bad:
        problems.append("sanitizer reports in the logs of: " + ", ".join(bad))
    if problems:
        details = "\n".join(f"--- {p.name}: {p.log}\n{p.tail(80)}" for p in crashed or
                            [mh.procs[n] for n in bad])
        pytest.fail("; ".join(problems) + "\n" + details, pytrace=False)


@pytest.fixture(scope="session")
def stack_control():
    """Fault injection on the local stack: kafka_kill(), kafka_up(), kafka_down(),
    pg_kill(), pg_up(), pg_down(). Skips the test when the service is external."""

    class Control:
        @staticmethod
        def _need(kind: str) -> None:
            if os.environ.get(f"MH_E2E_LOCAL_{kind}") != "1" and \
                    os.environ.get(f"MAILHOOK_{'KAFKA_BROKERS' if kind == 'KAFKA' else 'PG_DSN'}"):
                pytest.skip(f"{kind.lower()} is external; fault injection needs the local stack")

        def kafka_kill(self):
            self._need("KAFKA")
            helpers.stack_call("mh_kafka_kill")

        def kafka_down(self):
            self._need("KAFKA")
            helpers.stack_call("mh_kafka_down")

        def kafka_up(self):
            self._need("KAFKA")
            helpers.stack_call("mh_kafka_up")

        def pg_kill(self):
            self._need("PG")
            helpers.stack_call("mh_pg_kill")

        def pg_down(self):
            self._need("PG")
            helpers.stack_call("mh_pg_down")

        def pg_up(self):
            self._need("PG")
            helpers.stack_call("mh_pg_up")

    return Control()


# ---------------------------------------------------------------------------------------
# reporting: the programs' log tails with every failed test that used them

@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    if rep.failed and _SESSION_MAILHOOK and "mailhook" in getattr(item, "fixturenames", ()):
        for name, text in _SESSION_MAILHOOK[-1].log_tails(40).items():
            rep.sections.append((f"{name} log (last 40 lines)", text))


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    if exitstatus != 0 and _SESSION_DIR:
        terminalreporter.write_line(f"mailhook logs and config of this run: {_SESSION_DIR[-1]}")

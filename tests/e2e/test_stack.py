"""The services the end-to-end tests run against answer (no mailhook program needed), and
deploy/local/up and down start and stop the local stack's mailhook programs."""

import os
import subprocess
import uuid
from pathlib import Path

import psycopg
import pytest
import requests

import helpers


def test_kafka_answers_metadata(stack):
    md = helpers.admin(stack.brokers).list_topics(timeout=10)
    assert md.brokers, "no broker in the cluster metadata"
    assert md.controller_id >= 0


def test_kafka_round_trip_read_committed(stack):
    """A committed transactional record is visible to a read_committed consumer and an
    aborted one is not: the broker is set up for mailhook's exactly-once path."""
    from confluent_kafka import Producer

    topic = f"mailhook.e2e-smoke-{uuid.uuid4().hex[:8]}"
    helpers.create_topics({topic: 1}, stack.brokers)
    try:
        start = helpers.end_offsets(topic, stack.brokers)
        p = Producer({"bootstrap.servers": stack.brokers,
                      "transactional.id": f"mailhook-e2e-smoke-{uuid.uuid4().hex}"})
        p.init_transactions(30)
        p.begin_transaction()
        p.produce(topic, b'{"n":1}', key=b"committed")
        p.commit_transaction(30)
        p.begin_transaction()
        p.produce(topic, b'{"n":2}', key=b"aborted")
        p.abort_transaction(30)
        got = helpers.consume(topic, from_offsets=start, timeout=20, brokers_=stack.brokers)
        assert [(r.key, r.value) for r in got] == [("committed", {"n": 1})]
    finally:
        helpers.delete_topics([topic], stack.brokers)


def test_postgres_answers(stack, pg):
    assert pg.execute("select 1").fetchone() == (1,)
    assert pg.execute("select current_setting('server_version_num')::int").fetchone()[0] >= 130000


# ---------------------------------------------------------------------------------------
# deploy/local/up and down

UP = helpers.ROOT / "deploy" / "local" / "up"
DOWN = helpers.ROOT / "deploy" / "local" / "down"


def _running(pid: int) -> bool:
    """The process exists and is not a zombie (an exited process nobody reaped yet)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] not in ("Z", "X")


def _run(argv, env, timeout):
    return subprocess.run([str(a) for a in argv], env=env, stdin=subprocess.DEVNULL,
                          capture_output=True, text=True, timeout=timeout)


@pytest.fixture
def own_database(stack):
    """A database of the test's own (mailhook-api runs maintenance on the database it
    serves; the session's other tests must not see it)."""
    name = f"mailhook_e2e_up_{uuid.uuid4().hex[:10]}"
    try:
        with psycopg.connect(stack.dsn, autocommit=True) as conn:
            conn.execute(f'create database "{name}"')
    except psycopg.Error as e:
        pytest.skip(f"cannot create a database for deploy/local/up: {str(e).strip()}")
    yield helpers.with_dbname(stack.dsn, name)
    with psycopg.connect(stack.dsn, autocommit=True) as conn:
        conn.execute(f'drop database if exists "{name}" with (force)')


@pytest.mark.timeout(360)
def test_local_up_serves_the_api_and_down_stops_it(stack, own_database, tmp_path):
    """deploy/local/up starts mailhook-api next to the ingest and the workers, with a
    bearer token it generates into $MH_LOCAL and never prints; the API answers a
    may-I-send lookup (404 for an unknown address with the token, 401 without); down
    stops it. Runs in a $MH_LOCAL of its own against this session's Kafka and a database
    of its own, with topics and ports of its own, so a running local stack is untouched."""
    venv = helpers.LOCAL / "venv"
    if not (venv / "bin" / "python").exists():
        pytest.skip(f"no tooling venv at {venv} (tests/run or deploy/local/up makes it)")
    for b in ("mailhook", "mailhook-ingest", "mailhook-worker", "mailhook-api"):
        if not (helpers.build_dir() / b).exists():
            pytest.fail(f"{b} not built in {helpers.build_dir()}", pytrace=False)

    local = tmp_path / "local"
    local.mkdir()
    tag = uuid.uuid4().hex[:8]
    topics = {role: f"mailhook.{role}.e2e-up-{tag}" for role in ("raw", "events", "dlq",
                                                                 "suppressions")}
    # The config up would write, with this test's topics, group and ingest port; up adds
    # the sources and, since there is none, the [api] section with a new token.
    helpers.write_ini(local / "mailhook.ini", helpers.pipeline_sections(
        topics, f"mailhook-worker-e2e-up-{tag}", own_database, stack.brokers))
    api_port = helpers.free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("MH_")}
    env.update(MH_LOCAL=str(local), MH_VENV=str(venv), MH_BUILD_DIR=str(helpers.build_dir()),
               MH_SKIP_DEPS="1", MH_SKIP_BUILD="1", MH_API_PORT=str(api_port),
               MAILHOOK_KAFKA_BROKERS=stack.brokers, MAILHOOK_PG_DSN=own_database)
    api = f"http://127.0.0.1:{api_port}"
    lookup = f"{api}/v1/suppressions/nobody.{tag}%40example.com"
    try:
        up = _run([UP, "--workers", "1", "--no-sample"], env, 300)
        output = up.stdout + up.stderr
        assert up.returncode == 0, f"deploy/local/up failed:\n{output}\n" + \
            helpers.tail(local / "log" / "api.log")
        token_file = local / "api-token"
        assert token_file.stat().st_mode & 0o077 == 0, "the token file is readable by others"
        token = token_file.read_text().strip()
        assert len(token) == 64
        assert str(token_file) in output and api in output
        assert token not in output, "deploy/local/up printed the API token"

        r = requests.get(lookup, params={"tenant": "local"},
                         headers={"Authorization": f"Bearer {token}"}, timeout=10)
        assert r.status_code == 404, r.text
        assert r.json()["suppressed"] is False
        r = requests.get(lookup, params={"tenant": "local"}, timeout=10)
        assert r.status_code == 401, r.text
        assert token not in (local / "log" / "api.log").read_text()
        pid = int((local / "run" / "api.pid").read_text())
    finally:
        down = _run([DOWN], env, 120)
        helpers.delete_topics(topics.values(), stack.brokers)
    assert down.returncode == 0, f"deploy/local/down failed:\n{down.stdout}{down.stderr}"
    assert not _running(pid), "mailhook-api still runs after down"
    with pytest.raises(requests.ConnectionError):
        requests.get(f"{api}/healthz", timeout=5)
    assert not list((local / "run").glob("*.pid"))


# ---------------------------------------------------------------------------------------
# the local PostgreSQL's shared memory

LIB = helpers.ROOT / "deploy" / "local" / "lib.sh"


def _meminfo(field: str) -> int:
    """A /proc/meminfo field's number (kB, or pages for the HugePages_ counts)."""
    return next(int(line.split()[1]) for line in Path("/proc/meminfo").read_text().splitlines()
                if line.startswith(f"{field}:"))


def _shared_buffers(env_extra: dict) -> str:
    env = {k: v for k, v in os.environ.items() if k != "MH_PG_SHARED_BUFFERS"}
    env.update(env_extra)
    out = _run(["bash", "-c", 'source "$0" && mh_pg_shared_buffers', LIB], env, 30)
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


def test_local_postgres_shared_buffers_follow_memory():
    """The local stack gives PostgreSQL an eighth of the machine's memory, between 128MB
    and 2GB, unless MH_PG_SHARED_BUFFERS says otherwise."""
    kib = _meminfo("MemTotal")
    want = min(max(kib // 1024 // 8, 128), 2048)
    assert _shared_buffers({}) == f"{want}MB"
    assert _shared_buffers({"MH_PG_SHARED_BUFFERS": "768MB"}) == "768MB"


def test_local_postgres_shared_memory_in_huge_pages(stack, pg):
    """As root, the local stack reserves the 2 MB pages PostgreSQL's shared memory needs
    before it starts the server (mh_pg_huge_pages), and the server maps its shared memory
    in them: a backend's largest shared mapping has 2048 kB pages and holds the buffers."""
    if os.environ.get("MH_E2E_LOCAL_PG") != "1":
        pytest.skip("PostgreSQL is external; its memory is its host's setting")
    if os.geteuid() != 0 or os.environ.get("MH_PG_HUGE_PAGES") == "0":
        pytest.skip("the local stack reserves huge pages only as root")
    need = int(pg.execute("show shared_memory_size_in_huge_pages").fetchone()[0])
    if _meminfo("HugePages_Total") < need:
        pytest.skip(f"the kernel had fewer than {need} free 2 MB pages to reserve")
    backend = pg.execute("select pg_backend_pid()").fetchone()[0]
    maps, cur = [], None
    for line in Path(f"/proc/{backend}/smaps").read_text().splitlines():
        first, rest = line.split(maxsplit=1)
        if ":" not in first:  # a mapping's header: "start-end perms offset dev inode path"
            cur = {"shared": rest[3] == "s"}
            maps.append(cur)
        elif cur is not None and first in ("Size:", "KernelPageSize:"):
            cur[first[:-1]] = int(rest.split()[0])
    largest = max((m for m in maps if m["shared"]), key=lambda m: m.get("Size", 0))
    buffers_kib = int(pg.execute("select setting::bigint * 8 from pg_settings"
                                 " where name = 'shared_buffers'").fetchone()[0])
    assert largest["KernelPageSize"] == 2048, largest
    assert largest["Size"] >= buffers_kib, (largest, buffers_kib)

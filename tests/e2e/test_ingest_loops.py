"""mailhook-ingest with several event loops ([ingest] threads): each loop has its own
SO_REUSEPORT socket, the kernel spreads connections over them, every loop's requests are
answered from the producer the loops share, a SIGHUP reaches every loop, and a port that
is already taken is still an error — unless [ingest] share_port lets several processes
serve it."""

from __future__ import annotations

import json
import re
import signal
import subprocess
from concurrent.futures import ThreadPoolExecutor

import requests

import helpers
from test_pipeline import uid, unique_bounce

LOOPS = 4


def _metrics(base: str) -> str:
    return requests.get(base + "/metrics", timeout=5).text


def _loop_counts(base: str) -> list[int]:
    return [int(n) for n in re.findall(r'mailhook_ingest_loop_requests_total\{loop="\d+"\} (\d+)',
                                       _metrics(base))]


def _post_fresh(base: str, source: dict, body: dict, secret: str | None = None) -> int:
    """One request on a connection of its own (no keep-alive reuse)."""
    headers = helpers.signature_headers(source, body, secret)
    headers["Connection"] = "close"
    return helpers.post(base, "ivymail", body, headers).status_code


def test_loops_share_the_port_and_the_reload(mailhook, tmp_path):
    port = helpers.free_port()
    base = f"http://127.0.0.1:{port}"
    # A raw topic of its own: the session's workers must not get this test's backlog.
    raw = f"{mailhook.topics['raw']}.loops"
    helpers.create_topics({raw: 4}, mailhook.brokers)
    sections = json.loads(json.dumps(mailhook.sections))
    sections["ingest"].update({"listen": f"127.0.0.1:{port}", "threads": str(LOOPS),
                               "raw_topic": raw})
    path = tmp_path / "loops.ini"
    helpers.write_ini(path, sections)
    proc = mailhook.start_ingest("ingest-loops", config=path, url=base)
    try:
        assert f"mailhook_ingest_loops {LOOPS}" in _metrics(base)
        assert f"{LOOPS} event loops" in proc.log.read_text()

        # Many connections: every one answered, every one published, spread over loops.
        src = mailhook.sources["ivymail"]
        rid = uid()
        raw_before = sum(mailhook.end_offsets(raw).values())
        bodies = [unique_bounce(f"loop{i}.{rid}@example.com", f"loop-{rid}-{i}")
                  for i in range(200)]
        with ThreadPoolExecutor(8) as pool:
            codes = list(pool.map(lambda b: _post_fresh(base, src, b), bodies))
        assert codes == [200] * len(bodies)
        helpers.wait_for(lambda: sum(mailhook.end_offsets(raw).values()) - raw_before >= 200,
                         30, what="200 records on the raw topic")
        counts = _loop_counts(base)
        assert len(counts) == LOOPS
        assert sum(counts) >= 200
        assert sum(1 for n in counts if n > 0) >= 2, f"one loop took every connection: {counts}"

        # A reload reaches every loop: the new secret works on every new connection.
        new = helpers.new_secret()
        old = sections["source.ivymail"]["secret"]
        text = path.read_text().replace(f"secret = {old}\n", f"secret = {new}\n", 1)
        path.write_text(text)
        proc.send_signal(signal.SIGHUP)
        probe = unique_bounce(f"reload.{rid}@example.com", f"reload-{rid}")
        helpers.wait_for(lambda: _post_fresh(base, src, probe, secret=new) == 200, 10,
                         what="the reloaded secret")
        with ThreadPoolExecutor(8) as pool:
            after = list(pool.map(lambda i: (_post_fresh(base, src, probe, secret=new),
                                             _post_fresh(base, src, probe, secret=old)),
                                  range(40)))
        assert after == [(200, 401)] * 40

        # The port is taken: a second ingest on it fails instead of sharing it.
        second = subprocess.run([str(helpers.build_dir() / "mailhook-ingest"), "--config",
                                 str(path)], env=mailhook.env, capture_output=True, text=True,
                                timeout=30)
        assert second.returncode != 0
        assert f"cannot listen on 127.0.0.1:{port}" in second.stderr + second.stdout
    finally:
        status = proc.stop(timeout=15)
        helpers.delete_topics([raw], mailhook.brokers)
    assert status == 0, proc.tail()


def _served_200(base: str) -> int:
    m = re.search(r'mailhook_ingest_responses_total\{code="200"\} (\d+)', _metrics(base))
    assert m
    return int(m.group(1))


def test_two_processes_share_one_port(mailhook, tmp_path):
    """share_port: a second ingest joins the port, the kernel spreads new connections over
    both processes, and when one stops the other goes on serving the port alone."""
    port = helpers.free_port()
    base = f"http://127.0.0.1:{port}"
    raw = f"{mailhook.topics['raw']}.shared"
    helpers.create_topics({raw: 2}, mailhook.brokers)
    sections = json.loads(json.dumps(mailhook.sections))
    sections["ingest"].update({"listen": f"127.0.0.1:{port}", "threads": "1",
                               "raw_topic": raw, "share_port": "true"})
    path = tmp_path / "shared.ini"
    helpers.write_ini(path, sections)
    first = mailhook.start_ingest("ingest-shared-1", config=path, url=base)
    second = mailhook.start_ingest("ingest-shared-2", config=path, url=base)
    try:
        # /readyz above may have been the first's answer: the second is up once it says so
        # and every fresh connection is answered ready.
        helpers.wait_for(lambda: "started" in second.log.read_text(), 30, what="second ingest")
        helpers.wait_for(lambda: all(requests.get(f"{base}/readyz", timeout=2,
                                                  headers={"Connection": "close"}).status_code
                                     == 200 for _ in range(20)), 30, what="both ready")
        assert second.alive(), second.tail()
        src = mailhook.sources["ivymail"]
        rid = uid()
        n = 200
        bodies = [unique_bounce(f"share{i}.{rid}@example.com", f"share-{rid}-{i}")
                  for i in range(n)]
        with ThreadPoolExecutor(8) as pool:
            codes = list(pool.map(lambda b: _post_fresh(base, src, b), bodies))
        assert codes == [200] * n
        assert first.stop(timeout=15) == 0, first.tail()
        # Only the second serves the port now: what it answered is its share.
        served = _served_200(base)
        assert 0 < served < n, f"the second process answered {served} of {n}"
        late = unique_bounce(f"late.{rid}@example.com", f"late-{rid}")
        assert [_post_fresh(base, src, late) for _ in range(5)] == [200] * 5
        helpers.wait_for(lambda: sum(mailhook.end_offsets(raw).values()) >= n + 5, 30,
                         what="every answered request on the raw topic")
    finally:
        first.stop(timeout=15)
        status = second.stop(timeout=15)
        helpers.delete_topics([raw], mailhook.brokers)
    assert status == 0, second.tail()

"""Slow clients cannot starve mailhook-ingest: a request must arrive whole within
[ingest] request_deadline_ms of its connection being accepted, however steadily its
bytes trickle in, so a Slowloris attack (partial requests, one byte at a time, each
byte well inside read_timeout_ms) holds a connection for the deadline and no longer,
while signed webhooks keep getting their 200 on time. Connections over [ingest]
max_connections wait in the kernel's backlog meanwhile, and are served once the slow
ones have been cut."""

from __future__ import annotations

import asyncio
import http.client
import json
import os
import random
import re
import resource
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

import helpers
from test_pipeline import uid, unique_bounce

# The first bytes of a webhook whose headers never end.
PARTIAL_REQUEST = (b"POST /v1/webhooks/ivymail HTTP/1.1\r\nHost: mailhook\r\n"
                   b"Content-Type: application/json\r\nContent-Length: 4096\r\n"
                   b"X-Slow: " + b"x" * 200)

SLOW_CONNECTIONS = 2000
BYTE_EVERY_S = 9.0        # inside the default read_timeout_ms (10 s): it never fires
ATTACK_S = 60.0
DEFAULT_DEADLINE_S = 30.0  # the default [ingest] request_deadline_ms
SIGNED_PER_S = 200
SIGNED_THREADS = 10


def _raise_fd_limit(need: int) -> None:
    """This process holds every slow connection, and the ingest it starts inherits the
    limit: raise the soft limit (up to the hard one) or skip."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = need if hard == resource.RLIM_INFINITY else min(hard, max(need, soft))
    if want < need:
        pytest.skip(f"needs {need} file descriptors, the hard limit is {hard}")
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))


def _start_ingest(mailhook, tmp_path, name: str, raw: str, **keys):
    port = helpers.free_port()
    base = f"http://127.0.0.1:{port}"
    sections = json.loads(json.dumps(mailhook.sections))
    sections["ingest"].update({"listen": f"127.0.0.1:{port}", "raw_topic": raw},
                              **{k: str(v) for k, v in keys.items()})
    path = tmp_path / f"{name}.ini"
    helpers.write_ini(path, sections)
    return mailhook.start_ingest(name, config=path, url=base), port, base


def _metric(base: str, name: str) -> float:
    text = requests.get(base + "/metrics", timeout=5).text
    m = re.search(rf"^{name} ([0-9.]+)$", text, re.M)
    assert m, f"{name} missing from /metrics"
    return float(m.group(1))


class SlowClients:
    """Connections that send PARTIAL_REQUEST one byte every `every` seconds for
    `duration` seconds (or until the server closes them), on an asyncio loop of their
    own thread. closed_after[i]: seconds from connect to the server's close, or None if
    connection i was still open at the end."""

    def __init__(self, port: int, n: int, every: float, duration: float):
        self.port, self.n, self.every, self.duration = port, n, every, duration
        self.connected = 0
        self.failed: list[str] = []
        self.closed_after: list[float | None] = [None] * n
        self._thread = threading.Thread(target=lambda: asyncio.run(self._run()), daemon=True)

    def start(self) -> "SlowClients":
        self._thread.start()
        return self

    def join(self, timeout: float) -> None:
        self._thread.join(timeout)
        assert not self._thread.is_alive(), "the slow clients did not stop"

    async def _run(self) -> None:
        gate = asyncio.Semaphore(100)  # connects in flight at once
        await asyncio.gather(*(self._one(i, gate) for i in range(self.n)))

    async def _one(self, i: int, gate: asyncio.Semaphore) -> None:
        try:
            async with gate:
                reader, writer = await asyncio.wait_for(
                    asyncio.open_connection("127.0.0.1", self.port), 10)
        except (OSError, asyncio.TimeoutError) as e:
            self.failed.append(f"connect: {e!r}")
            return
        self.connected += 1
        t0 = time.monotonic()
        end = t0 + self.duration
        closed = asyncio.ensure_future(reader.read(1))  # b"" (or an error) once closed
        try:
            # Spread the bytes of different connections over the interval.
            wait = random.uniform(0, self.every)
            pos = 0
            while not closed.done() and pos < len(PARTIAL_REQUEST):
                writer.write(PARTIAL_REQUEST[pos:pos + 1])
                pos += 1
                left = end - time.monotonic()
                if left <= 0:
                    break
                await asyncio.wait({closed}, timeout=min(wait, left))
                wait = self.every
            if closed.done():
                got = None if closed.exception() else closed.result()
                if got:
                    self.failed.append(f"the server answered a partial request: {got!r}")
                self.closed_after[i] = time.monotonic() - t0
        finally:
            closed.cancel()
            writer.close()


class SignedTraffic:
    """Signed ivymail webhooks at `per_s` requests per second for `duration` seconds,
    from threads each on a keep-alive connection of its own (http.client: light enough
    that the client's own overhead stays out of the latencies): each request's status
    (0: no answer) and latency."""

    def __init__(self, port: int, source: dict, per_s: int, duration: float):
        self.port, self.source, self.per_s, self.duration = port, source, per_s, duration
        self.results: list[tuple[int, float]] = []
        self._lock = threading.Lock()

    def run(self) -> None:
        per_thread = int(self.per_s * self.duration) // SIGNED_THREADS
        work = [self._requests(per_thread) for _ in range(SIGNED_THREADS)]
        t0 = time.monotonic() + 0.2
        with ThreadPoolExecutor(SIGNED_THREADS) as pool:
            for f in [pool.submit(self._thread, k, t0, work[k]) for k in range(SIGNED_THREADS)]:
                f.result()

    def _requests(self, n: int) -> list[tuple[bytes, dict]]:
        rid = uid()
        out = []
        for i in range(n):
            body = unique_bounce(f"slow.{rid}.{i}@example.com", f"slow-{rid}-{i}")
            data = json.dumps(body, separators=(",", ":")).encode()
            out.append((data, {"Content-Type": "application/json",
                               **helpers.signature_headers(self.source, data)}))
        return out

    def _thread(self, k: int, t0: float, work: list[tuple[bytes, dict]]) -> None:
        interval = SIGNED_THREADS / self.per_s
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
        try:
            for n, (data, headers) in enumerate(work):
                delay = t0 + k / self.per_s + n * interval - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
                start = time.perf_counter()
                try:
                    conn.request("POST", "/v1/webhooks/ivymail", body=data, headers=headers)
                    resp = conn.getresponse()
                    resp.read()
                    status = resp.status
                except (OSError, http.client.HTTPException):
                    conn.close()  # reconnects on the next request
                    status = 0
                with self._lock:
                    self.results.append((status, time.perf_counter() - start))
        finally:
            conn.close()


def test_slowloris_neither_starves_signed_traffic_nor_keeps_its_connections(mailhook, tmp_path):
    _raise_fd_limit(SLOW_CONNECTIONS + 2000)
    raw = f"{mailhook.topics['raw']}.slow"
    helpers.create_topics({raw: 2}, mailhook.brokers)
    # Room for every slow connection under the cap (2 loops x 2,000): what is tested is
    # that they cannot keep it, not that the cap holds them back.
    proc, port, base = _start_ingest(mailhook, tmp_path, "ingest-slowloris", raw, threads=2,
                                     max_connections=2 * SLOW_CONNECTIONS)
    try:
        slow = SlowClients(port, SLOW_CONNECTIONS, BYTE_EVERY_S, ATTACK_S).start()
        helpers.wait_for(lambda: slow.connected + len(slow.failed) >= SLOW_CONNECTIONS, 20,
                         what="the slow connections to connect")
        assert not slow.failed, slow.failed[:5]
        # Every one of them holds a connection (the one asking is counted too).
        helpers.wait_for(lambda: _metric(base, "mailhook_ingest_connections")
                         >= SLOW_CONNECTIONS, 10, what="the slow connections to be accepted")

        traffic = SignedTraffic(port, mailhook.sources["ivymail"], SIGNED_PER_S, ATTACK_S)
        traffic.run()
        slow.join(15)
        assert not slow.failed, slow.failed[:5]

        statuses = [st for st, _ in traffic.results]
        assert len(statuses) == SIGNED_PER_S * ATTACK_S
        bad = {st: statuses.count(st) for st in set(statuses) if not 200 <= st < 300}
        assert not bad, f"signed requests not answered 2xx: {bad} (0 = no answer)"
        latencies = sorted(t for _, t in traffic.results)
        p99 = latencies[int(len(latencies) * 0.99) - 1]
        assert p99 < 0.100, f"p99 {p99 * 1000:.1f} ms (p50 " \
                            f"{latencies[len(latencies) // 2] * 1000:.1f} ms)"

        # Every slow connection was cut at the deadline, not held for the whole attack.
        still_open = sum(1 for c in slow.closed_after if c is None)
        assert still_open == 0, f"{still_open} slow connections open after {ATTACK_S:g} s"
        early = [c for c in slow.closed_after if c < DEFAULT_DEADLINE_S - 0.5]
        late = [c for c in slow.closed_after if c > DEFAULT_DEADLINE_S + 5]
        assert not early and not late, \
            f"closed before the deadline: {len(early)}, well after it: {len(late)} " \
            f"(first {min(slow.closed_after):.1f} s, last {max(slow.closed_after):.1f} s)"
        assert _metric(base, "mailhook_ingest_request_deadline_closes_total") >= SLOW_CONNECTIONS
        helpers.wait_for(lambda: _metric(base, "mailhook_ingest_connections") == 1, 10,
                         what="only the connection asking to be left")
    finally:
        status = proc.stop(timeout=15)
        helpers.delete_topics([raw], mailhook.brokers)
    assert status == 0, proc.tail()


def _accepted(pid: int, port: int) -> int:
    """Connections to port the process has accepted (those still in the kernel's
    backlog have no socket in its descriptor table)."""
    inodes = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    n = 0
    for line in open("/proc/net/tcp").read().splitlines()[1:]:
        f = line.split()
        if int(f[1].split(":")[1], 16) == port and f[3] == "01" and f[9] in inodes:
            n += 1
    return n


def test_slow_connections_over_the_cap_wait_and_are_cut_in_turn(mailhook, tmp_path):
    cap, n, deadline_s = 50, 80, 2.0
    raw = f"{mailhook.topics['raw']}.slowcap"
    helpers.create_topics({raw: 1}, mailhook.brokers)
    proc, port, base = _start_ingest(mailhook, tmp_path, "ingest-slowcap", raw, threads=1,
                                     max_connections=cap,
                                     request_deadline_ms=int(deadline_s * 1000))
    try:
        helpers.wait_for(lambda: _metric(base, "mailhook_ingest_connections") == 1, 10,
                         what="the probes' connections to close")
        slow = SlowClients(port, n, 0.5, 4 * deadline_s + 2).start()
        helpers.wait_for(lambda: slow.connected == n, 10, what="the slow connections")
        time.sleep(0.3)
        # The cap holds under slow clients: the rest wait in the backlog...
        assert _accepted(proc.pid, port) == cap
        # ...and so does a healthy request, until the deadline frees the slots.
        start = time.monotonic()
        r = requests.get(base + "/healthz", headers={"Connection": "close"},
                         timeout=3 * deadline_s)
        waited = time.monotonic() - start
        assert r.status_code == 200
        assert waited > deadline_s / 2, f"served after {waited:.2f} s although at the cap"
        slow.join(4 * deadline_s + 10)
        # The first `cap` were cut at the deadline, the others a deadline after they
        # were accepted; none lasted the attack.
        closed = sorted(c for c in slow.closed_after if c is not None)
        assert len(closed) == n, f"{n - len(closed)} slow connections never closed"
        assert closed[0] > deadline_s - 0.3 and closed[cap - 1] < deadline_s + 1.0, closed
        assert closed[-1] < 2 * deadline_s + 1.5, closed
        assert not slow.failed, slow.failed[:5]
        assert _metric(base, "mailhook_ingest_request_deadline_closes_total") == n
    finally:
        status = proc.stop(timeout=15)
        helpers.delete_topics([raw], mailhook.brokers)
    assert status == 0, proc.tail()

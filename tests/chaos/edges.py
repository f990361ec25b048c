"""Edges under a stalled broker: the ingest's deadlines, disconnects and shutdown, and
a worker's shutdown.

With the broker frozen (SIGSTOP: connections stay open, nothing is acknowledged — the
"Kafka is slow" case, harder than "Kafka is down", which the readiness probe answers at
once), it checks that:

  1. requests waiting for an acknowledgement get 503 + Retry-After within the ack
     deadline (plus a small margin), never a 2xx;
  2. clients that disconnect before the acknowledgement break nothing: the ingest keeps
     serving, and when the broker thaws the records may still land (dedup's business);
  3. SIGTERM with requests in flight exits within 10 s, status 0, and the requests
     answered meanwhile get no 2xx; a second SIGTERM during a drain exits at once;
  4. the ingest recovers by itself when the broker thaws (no restart);
  5. a worker with a batch in hand when the broker freezes still obeys SIGTERM within
     10 s (its watchdog cuts the wait for Kafka short), and what it leaves is redone;
  6. the process logs have no sanitizer report (run it with MH_SANITIZE=1 too).

Use tests/chaos/run --edges, which prepares the build and the local stack. It freezes
only the local stack's broker (this machine's, through its pid file).
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import chaos  # noqa: E402
import loadgen  # noqa: E402
import procs  # noqa: E402
from chaos import log  # noqa: E402

DEADLINE_MS = 2000


def broker_pid() -> int:
    pid = int((procs.LOCAL / "kafka" / "kafka.pid").read_text().split()[0])
    if b"kafka.Kafka" not in Path(f"/proc/{pid}/cmdline").read_bytes():
        raise RuntimeError("the local broker's pid file names another process")
    return pid


async def post_some(run, requests, close_early: bool) -> list[tuple[int | None, float]]:
    """Posts each request on its own connection; with close_early, closes it right
    after sending (no answer read). Returns (status or None, seconds) per request."""
    async def one(r):
        path, headers = loadgen.sign(r.source, run.secrets[r.source], r.body)
        t0 = time.monotonic()
        reader, writer = await asyncio.open_connection("127.0.0.1", run.port)
        head = [f"POST {path} HTTP/1.1", f"Host: 127.0.0.1:{run.port}",
                "Content-Type: application/json", f"Content-Length: {len(r.body)}"]
        head += [f"{k}: {v}" for k, v in headers.items()]
        writer.write(("\r\n".join(head) + "\r\n\r\n").encode() + r.body)
        await writer.drain()
        status = None
        if not close_early:
            line = await asyncio.wait_for(reader.readline(), 30)
            status = int(line.split()[1]) if line else None
        writer.close()
        return status, time.monotonic() - t0
    return await asyncio.gather(*(one(r) for r in requests))


def freeze(kpid: int, on: bool) -> None:
    os.kill(kpid, signal.SIGSTOP if on else signal.SIGCONT)
    log("broker " + ("frozen (SIGSTOP)" if on else "thawed (SIGCONT)"))


async def stalled_posts(run, reqs, term: int = 0):
    """Half the clients hang up at once, the others wait for their answer; with term,
    that many SIGTERMs go to the ingest 0.5 s (and 0.8 s) into the wait."""
    async def signals():
        for i in range(term):
            await asyncio.sleep(0.5 if i == 0 else 0.3)
            run.ingest.popen.send_signal(signal.SIGTERM)
    half = len(reqs) // 2
    t0 = time.monotonic()
    _, waited, _ = await asyncio.gather(post_some(run, reqs[:half], close_early=True),
                                        post_some(run, reqs[half:], close_early=False),
                                        signals())
    return waited, t0


def main() -> int:
    class A:  # the chaos run's settings this scenario needs
        ack_deadline_ms = DEADLINE_MS
        partitions, batch_size, commit_interval_ms, workers = 3, 500, 200, 1
    run = chaos.Run(A)
    problems = []
    kpid = None
    frozen = False
    try:
        run.setup(start_workers=False)
        kpid = broker_pid()
        reqs = iter(loadgen.Workload(400, "e", seed=3, dup_ratio=0, poison_ratio=0).build())
        take = lambda n: [next(reqs) for _ in range(n)]  # noqa: E731
        ready = lambda: procs.wait_http(f"{run.url()}/readyz", 90, run.ingest)  # noqa: E731

        ok = asyncio.run(post_some(run, take(20), close_early=False))
        if any(st != 200 for st, _ in ok):
            problems.append(f"healthy broker: not every request got 200: {ok}")

        # 1-2: a stalled broker; requests wait for acknowledgements that do not come.
        freeze(kpid, True)
        frozen = True
        waited, _ = asyncio.run(stalled_posts(run, take(80)))
        log(f"stalled broker: waiting clients got {sorted(set(st for st, _ in waited))}, "
            f"the slowest after {max(t for _, t in waited):.2f}s")
        for st, t in waited:
            if st != 503:
                problems.append(f"stalled broker: a request got {st}, not 503")
            if t > DEADLINE_MS / 1000 + 1.0:
                problems.append(f"stalled broker: 503 after {t:.2f}s (deadline {DEADLINE_MS} ms)")
        if not run.ingest.alive():
            problems.append("the ingest died after clients hung up before their answer")

        # 4: the broker comes back; the same ingest serves again.
        freeze(kpid, False)
        frozen = False
        t0 = time.monotonic()
        st = None
        while time.monotonic() - t0 < 60:
            st = asyncio.run(post_some(run, take(1), close_early=False))[0][0]
            if st == 200:
                break
            time.sleep(0.5)
        log(f"after the thaw: {st} within {time.monotonic() - t0:.1f}s, same process")
        if st != 200:
            problems.append("the ingest did not recover by itself after the broker thawed")

        # 3: SIGTERM while requests wait on a stalled broker.
        freeze(kpid, True)
        frozen = True
        waited, t0 = asyncio.run(stalled_posts(run, take(40), term=1))
        rc = run.ingest.wait(30)
        took = time.monotonic() - t0
        log(f"SIGTERM with requests in flight: status {rc}, gone {took:.2f}s after the first "
            f"request; answers {sorted(set(st for st, _ in waited))}")
        if rc != 0 or took > 10.5 + 0.5:
            problems.append(f"SIGTERM under a stalled broker: status {rc} after {took:.2f}s")
        if any(st == 200 for st, _ in waited):
            problems.append("a request got 200 from a stalled broker during shutdown")
        freeze(kpid, False)
        frozen = False

        # 3: a second SIGTERM during the drain exits at once.
        run.ingest.start()
        if not ready():
            raise RuntimeError("the ingest did not become ready")
        freeze(kpid, True)
        frozen = True
        waited, t0 = asyncio.run(stalled_posts(run, take(40), term=2))
        rc = run.ingest.wait(30)
        took = time.monotonic() - t0
        log(f"two SIGTERMs: status {rc}, gone {took:.2f}s after the first request")
        if took > 2.0:
            problems.append(f"a second SIGTERM did not exit at once ({took:.2f}s)")
        if any(st == 200 for st, _ in waited):
            problems.append("a request got 200 from a stalled broker")
        freeze(kpid, False)
        frozen = False

        run.ingest.start()
        if not ready():
            problems.append("the ingest did not become ready again")

        # 5: a worker mid-batch when the broker freezes, then SIGTERM.
        w = run.workers[0]
        w.start()
        time.sleep(3)  # joined the group, working through what is there
        batch = asyncio.run(post_some(run, take(60), close_early=False))
        if any(st != 200 for st, _ in batch):
            problems.append("healthy broker: not every request got 200")
        freeze(kpid, True)
        frozen = True
        time.sleep(0.5)
        rc, took = w.terminate(30)
        log(f"worker SIGTERM with the broker frozen: status {rc} after {took:.2f}s")
        if took > 10:
            problems.append(f"worker SIGTERM under a stalled broker took {took:.2f}s")
        freeze(kpid, False)
        frozen = False
        rc, took = run.ingest.terminate(30)
        if rc != 0:
            problems.append(f"final SIGTERM: status {rc}")
        if procs.sanitizer_reports([run.ingest, w]):
            problems.append(f"sanitizer report in {run.ingest.log} or {w.log}")
    except Exception as e:
        problems.append(f"error: {e}")
    finally:
        if frozen and kpid:
            freeze(kpid, False)
        if run.ingest and run.ingest.alive():
            run.ingest.terminate(15)
        chaos.cleanup(run, keep=bool(problems))
    for p in problems:
        log(f"problem: {p}")
    log("PASS" if not problems else f"FAIL (logs: {run.dir})")
    return 0 if not problems else 1


if __name__ == "__main__":
    sys.exit(main())

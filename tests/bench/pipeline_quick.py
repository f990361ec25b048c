"""Quick throughput of the pipeline, no faults: ingest requests/s, then worker events/s.

  1. ingest:  one mailhook-ingest, no worker running; the chaos test's load client posts
              --n signed webhooks (four providers, ~10% duplicates) over --concurrency
              keep-alive connections. Requests/s = requests answered 2xx / wall time of
              the load (every answer waits for Kafka's acks=all acknowledgement).
  2. workers: --workers mailhook-worker processes start on the backlog this left in the
              raw topic. Events/s = events emitted / time from the first to the last
              advance of the group's committed offsets (each advance is one committed
              Kafka transaction), so start-up and the group join are not counted.

Each run has its own topics, database and config (as the chaos test's runs do), removed
at the end. Use tests/bench/pipeline_quick, which prepares the build and the local stack.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "chaos"))

import chaos  # noqa: E402
import check  # noqa: E402
import loadgen  # noqa: E402
from chaos import log  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(prog="tests/bench/pipeline_quick", description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=30000, help="webhooks to post (default 30000)")
    ap.add_argument("--concurrency", type=int, default=64)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--partitions", type=int, default=6)
    ap.add_argument("--batch-size", type=int, default=500)
    ap.add_argument("--commit-interval-ms", type=int, default=200)
    ap.add_argument("--ingest-threads", type=int, default=0,
                    help="[ingest] threads: event loops (default 0: one per CPU)")
    args = ap.parse_args()
    # The chaos run's settings, without faults.
    args.ack_deadline_ms, args.retry_cap, args.drain_timeout = 5000, 1.0, 600.0
    args.keep = False

    run = chaos.Run(args)
    ok = False
    try:
        run.setup(start_workers=False)
        requests = loadgen.Workload(args.n, "b", seed=7, poison_ratio=0).build()
        load = loadgen.Load(requests, "127.0.0.1", run.port, run.secrets,
                            concurrency=args.concurrency)
        stats = asyncio.run(load.run())
        secs = stats.finished - stats.started
        if stats.acked != len(requests):
            raise RuntimeError(f"only {stats.acked} of {len(requests)} requests acknowledged")
        log(f"ingest: {stats.acked} requests in {secs:.1f}s")

        raw_total = sum(check.end_offsets(run.brokers, run.topics["raw"]).values())
        for w in run.workers:
            w.start()
        first = last = None   # (when, committed) at the first and the last advance
        deadline = time.monotonic() + args.drain_timeout
        work = chaos.WorkProgress(run.brokers, run.group, run.topics["raw"], interval=0.1)
        work.start()
        try:
            while time.monotonic() < deadline:
                done, now = work.done, time.monotonic()
                if done and (last is None or done != last[1]):
                    if first is None:
                        first = (now, done)
                    last = (now, done)
                if done >= raw_total:
                    break
                time.sleep(0.02)
        finally:
            work.stop()
        if last is None or last[1] < raw_total:
            raise RuntimeError("the workers did not commit the backlog in time")
        events = check.read_topic(run.brokers, run.topics["events"])
        span = last[0] - first[0]
        # What the first advance committed was processed before the measured span.
        records_in_span = raw_total - first[1]
        ev_rate = len(events) * records_in_span / raw_total / span if span > 0 else float("nan")
        print()
        print("==================== pipeline_quick ====================")
        print(f"ingest   {stats.acked} webhooks acknowledged in {secs:.1f}s = "
              f"{stats.acked / secs:.0f} requests/s "
              f"(1 ingest with threads={args.ingest_threads}, {args.concurrency} connections, "
              f"acks=all)")
        print(f"workers  {raw_total} raw records -> {len(events)} events in {span:.1f}s = "
              f"{records_in_span / span:.0f} records/s, {ev_rate:.0f} events/s "
              f"({args.workers} workers, batch_size {args.batch_size}, "
              f"{args.partitions} partitions)")
        ok = True
    except Exception as e:
        log(f"error: {e}")
    finally:
        for p in run.all_procs() if run.ingest else []:
            if p.alive():
                p.terminate(15)
        # Each worker logs its per-stage busy time on the way out: where the time went.
        for w in run.workers if ok else []:
            stats = [ln for ln in w.text().splitlines() if "stats:" in ln]
            if stats:
                line = stats[-1].split("stats: ", 1)[-1].rstrip('"}')
                print(f"{w.name}: {line}")
        chaos.cleanup(run, keep=False)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

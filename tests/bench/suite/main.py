"""tests/bench/run's driver: runs the chosen parts, each figure --runs times next to its
ceiling measured in the same run, and writes report.md and report.json to --out."""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
import traceback
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import ROOT, Bench, log, loadavg  # noqa: E402
import report  # noqa: E402

PARTS = ("ingest", "worker", "e2e", "memory")
# Long, so only when asked for (--growth, or --only growth).
OPTIONAL = ("growth", "scale")
GROWTH_CLAIMS = {"full": "0,1000000,10000000", "quick": "0,1000,10000"}

SIZES = {
    "full": {"quick": False, "connections": 64, "seconds": 5, "requests": 0,
             "py_requests": 5000, "latency_seconds": 5, "latency_rates": [5000],
             "worker_records": 40000, "worker_batch_records": 5000, "growth_records": 60000,
             "backlog_records": 300000,
             "batch_size": 1000, "drain_timeout": 300, "pgbench_seconds": 5, "e2e_rates": [1000, 5000],
             "e2e_seconds": 5, "idle_connections": 10000, "idle_hold": 2,
             "scale_records": 30000, "e2e_ladder": [2000, 4000, 6000, 8000, 10000, 12000, 13000, 14000, 15000],
             "e2e_batch_ladder": [5000, 10000, 15000, 20000, 25000, 30000]},
    "quick": {"quick": True, "connections": 64, "seconds": 1, "requests": 640,
              "py_requests": 300, "latency_seconds": 1, "latency_rates": [],
              "worker_records": 200, "worker_batch_records": 50, "growth_records": 200,
              "backlog_records": 2000,
              "batch_size": 10, "drain_timeout": 60, "pgbench_seconds": 1, "e2e_rates": [100],
              "e2e_seconds": 1, "idle_connections": 500, "idle_hold": 0.5,
              "scale_records": 200, "e2e_ladder": [100, 200],
              "e2e_batch_ladder": [100, 200]},
}


def machine() -> str:
    cpu = next((ln.split(":", 1)[1].strip() for ln in open("/proc/cpuinfo")
                if ln.startswith("model name")), platform.processor())
    mem = next(int(ln.split()[1]) for ln in open("/proc/meminfo") if ln.startswith("MemTotal"))
    return (f"{os.cpu_count()} CPUs ({cpu}), {mem / 1048576:.1f} GiB RAM, "
            f"Linux {platform.release()}")


def main() -> int:
    ap = argparse.ArgumentParser(prog="tests/bench/run")
    ap.add_argument("--out", type=Path)
    ap.add_argument("--runs", type=int)
    ap.add_argument("--only", default=",".join(PARTS))
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--perf", action="store_true")
    ap.add_argument("--growth", action="store_true")
    ap.add_argument("--scale", action="store_true")
    ap.add_argument("--growth-claims")
    ap.add_argument("--kafka", action="append", default=[], metavar="KEY=VALUE",
                    help="a [kafka] setting for every config the run writes (repeatable)")
    ap.add_argument("--worker", action="append", default=[], metavar="KEY=VALUE",
                    help="a [worker] setting for every config the run writes (repeatable)")
    ap.add_argument("--ladder", metavar="RATE,...",
                    help="the e2e part's single-event ladder, events/s (default 2000 to 15000)")
    ap.add_argument("--batch-ladder", metavar="RATE,...",
                    help="the e2e part's batch-webhook ladder, events/s (default 5000 to 30000)")
    ap.add_argument("--ladder-seconds", type=float, metavar="S",
                    help="how long each ladder step sends (default 5): a longer step tells a "
                         "rate the pipeline holds from a burst it absorbs")
    ap.add_argument("--bin", type=Path, required=True)
    ap.add_argument("--argv", default="")
    args = ap.parse_args()
    parts = [p.strip() for p in args.only.split(",") if p.strip()]
    for opt in OPTIONAL:
        if getattr(args, opt) and opt not in parts:
            parts.append(opt)
    unknown = [p for p in parts if p not in PARTS + OPTIONAL]
    if unknown:
        ap.error(f"unknown part(s) {', '.join(unknown)}; parts: {', '.join(PARTS + OPTIONAL)}")
    runs = args.runs or (1 if args.quick else 3)
    sizes = dict(SIZES["quick" if args.quick else "full"])
    for key, value in (("e2e_ladder", args.ladder), ("e2e_batch_ladder", args.batch_ladder)):
        if value:
            sizes[key] = sorted(int(r) for r in value.split(","))
    sizes["e2e_ladder_seconds"] = args.ladder_seconds or sizes["e2e_seconds"]
    out = args.out or ROOT / ".local" / "bench" / time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    out.mkdir(parents=True, exist_ok=True)
    build = Path(os.environ.get("MH_BUILD_DIR") or ROOT / "build").resolve()
    meta = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
            "command": "tests/bench/run " + args.argv, "machine": machine(),
            "load_before": loadavg(), "runs": runs, "parts": parts}
    perf = None
    if args.perf:
        from perf import Perf
        perf = Perf(out)
    kafka = dict(kv.split("=", 1) for kv in args.kafka)
    worker_kv = dict(kv.split("=", 1) for kv in args.worker)
    bench = Bench(out, build, args.bin, kafka, worker_kv)
    figs, failures, state = [], {}, {}
    try:
        bench.setup()
        meta["postgres"] = bench.pg_settings()
        for part in parts:
            t0 = time.monotonic()
            log(f"part {part}")
            try:
                bench.empty_claims()
                if part == "ingest":
                    import ingest
                    f, r = ingest.measure(bench, sizes, runs, perf)
                elif part == "worker":
                    import worker
                    f, r = worker.measure(bench, sizes, runs, perf)
                elif part == "growth":
                    import growth
                    spec = args.growth_claims or GROWTH_CLAIMS["quick" if args.quick else "full"]
                    f, r = growth.measure(bench, sizes, runs, [int(x) for x in spec.split(",")])
                elif part == "scale":
                    import scale
                    f, r = scale.measure(bench, sizes, runs)
                elif part == "e2e":
                    import e2e
                    f, r = e2e.measure(bench, sizes, runs)
                else:
                    import memory
                    f, r = memory.measure(bench, sizes, runs, state.get("worker_hwm_kib"))
                figs += f
                state.update(r)
                log(f"part {part} done in {time.monotonic() - t0:.0f}s")
            except Exception as e:
                traceback.print_exc()
                failures[part] = f"{type(e).__name__}: {e}"
    finally:
        bench.cleanup()
        meta["load_after"] = loadavg()
        report.write(out, meta, figs, perf.tops if perf else {}, failures)
    print((out / "report.md").read_text())
    print(f"report: {out}/report.md, {out}/report.json")
    if failures:
        print("FAILED parts: " + ", ".join(failures), file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())

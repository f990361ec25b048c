"""Ingest figures: closed-loop throughput per provider next to a bare libevent server and
the Go peer receiver, and open-loop latency at shares of the measured maximum."""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import subprocess
from pathlib import Path

from common import PROVIDERS, ROOT, Bench, Figure, Server, free_port, log, run

FIXTURES = ROOT / "tests" / "fixtures"
# A single delivery event per provider (what a provider sends most).
BODIES = {"ivymail": FIXTURES / "ivymail" / "delivered" / "body.json",
          "sendgrid": FIXTURES / "sendgrid" / "bounce-hard" / "body.json",
          "postal": FIXTURES / "postal" / "MessageSent" / "body.json"}
CONNECTIONS = 64


def h2load_argv(url: str, headers: list[str], body: Path, connections: int,
                how: list[str]) -> list[str]:
    """h2load over HTTP/1.1, one request in flight a connection; how: its run options
    (-n, or -D and the rest)."""
    argv = ["h2load", "--h1", "-c", str(connections), "-t", "1", "-m", "1", *how]
    for h in headers:
        argv += ["-H", h]
    return argv + ["-d", str(body), url]


def h2load_rate(out: str) -> float:
    """Requests/s of 2xx answers from h2load's summary; raises if any failed."""
    m = re.search(r"finished in ([\d.]+)(m?s), ([\d.]+) req/s", out)
    codes = re.search(r"status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx", out)
    req = re.search(r"requests: \d+ total, \d+ started, (\d+) done, (\d+) succeeded, (\d+) failed, (\d+) errored", out)
    if not m or not codes or not req:
        raise RuntimeError(f"h2load output not understood:\n{out[-1500:]}")
    bad = int(codes.group(3)) + int(codes.group(4)) + int(req.group(3)) + int(req.group(4))
    if bad:
        raise RuntimeError(f"h2load: {bad} requests failed or answered 4xx/5xx:\n{out[-1500:]}")
    return float(m.group(3))


def closed_loop(url: str, headers: list[str], body: Path, sizes: dict) -> tuple[str, float]:
    how = (["-n", str(sizes["requests"])] if sizes["quick"]
           else ["-D", str(sizes["seconds"]), "--warm-up-time", "1"])
    argv = h2load_argv(url, headers, body, sizes["connections"], how)
    out = run(argv, 120)
    return " ".join(argv), h2load_rate(out)


def write_request(path: Path, port: int, source: str, headers: list[str], body: bytes) -> None:
    """One whole HTTP request for suppression_lookup_load's MH_BENCH_REQUEST mode."""
    head = f"POST /v1/webhooks/{source} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
    head += "".join(f"{h}\r\n" for h in headers)
    head += f"Content-Length: {len(body)}\r\n\r\n"
    path.write_bytes(head.encode() + body)


def open_loop(bench: Bench, port: int, request: Path, rate: float, seconds: float,
              connections: int) -> tuple[str, dict]:
    argv = [str(bench.bin / "open_loop_load"), "127.0.0.1", str(port), "-", "-",
            f"{rate:.0f}", str(seconds), "1", "0", str(connections)]
    env = dict(bench.env, MH_BENCH_REQUEST=str(request))
    out = run(argv, seconds + 120, env=env)
    shown = ["open_loop_load", "127.0.0.1", "PORT"] + argv[3:]
    return f"MH_BENCH_REQUEST={request.name} " + " ".join(shown), json.loads(out.strip().splitlines()[-1])


def h2load_rps(url: str, headers: list[str], body: Path, rate: float, seconds: float,
               connections: int, logfile: Path) -> tuple[str, dict]:
    """h2load's own open loop (--rps, a rate for each connection): percentiles of its
    per-request log (--log-file: start, status, microseconds). h2load counts a request's
    time from when it sent it; a connection still waiting for its answer sends its next
    request late, and that wait is not counted (open_loop above counts from the due
    time)."""
    argv = h2load_argv(url, headers, body, connections,
                       [f"--rps={rate / connections:.3f}", "-D", f"{seconds:g}",
                        "--warm-up-time", "1", f"--log-file={logfile}"])
    logfile.unlink(missing_ok=True)
    out = run(argv, seconds + 120)
    h2load_rate(out)  # raises on a failed or non-2xx request
    lat = sorted(int(f[2]) for f in (ln.split("\t") for ln in logfile.read_text().splitlines())
                 if len(f) == 3)
    if not lat:
        raise RuntimeError(f"h2load --rps logged no request:\n{out[-1500:]}")
    pct = {k: lat[int((len(lat) - 1) * q)] / 1000 for k, q in
           (("p50_ms", 0.50), ("p99_ms", 0.99), ("p999_ms", 0.999))}
    pct["achieved_rate"] = len(lat) / seconds
    shown = " ".join(a for a in argv[:-1] if not a.startswith("--log-file"))
    return shown.replace(str(body), body.name) + " URL", pct


def latency_figures(label: str, ceiling: str, runs: int, measure) -> list[Figure]:
    """p50, p99 and p99.9 of runs of measure(), which answers (command, percentiles,
    ceiling command, ceiling percentiles), percentiles as open_loop's."""
    lat = {k: Figure("ingest", f"ingest latency {k} at {label}", "ms", "", ceiling_name=ceiling)
           for k in ("p50", "p99", "p99.9")}
    for _ in range(runs):
        cmd, r, ccmd, c = measure()
        for k, key in (("p50", "p50_ms"), ("p99", "p99_ms"), ("p99.9", "p999_ms")):
            lat[k].command, lat[k].ceiling_command = cmd, ccmd
            lat[k].samples.append(r[key])
            lat[k].ceiling_samples.append(c[key])
        log(f"latency at {label}: p50 {r['p50_ms']:.2f} p99 {r['p99_ms']:.2f} "
            f"p99.9 {r['p999_ms']:.2f} ms (achieved {r['achieved_rate']:.0f}/s)")
    return list(lat.values())


def python_client_rate(port: int, n: int) -> float:
    """Requests/s the chaos test's Python load client reaches against a server."""
    import loadgen
    reqs = loadgen.Workload(n, "py", seed=3, poison_ratio=0).build()
    secrets = {s: "x" for s in loadgen.SOURCES}
    stats = asyncio.run(loadgen.Load(reqs, "127.0.0.1", port, secrets, concurrency=CONNECTIONS).run())
    return stats.acked / (stats.finished - stats.started)


def build_peer(bench: Bench) -> tuple[Path | None, str]:
    """The Go peer receiver, built into .local/bench-peer; (binary, "") or (None, why)."""
    go = shutil.which("go") or "/usr/local/go/bin/go"
    if not Path(go).exists():
        return None, "Go not installed"
    dest = ROOT / ".local" / "bench-peer"
    dest.mkdir(parents=True, exist_ok=True)
    for f in ("main.go", "go.mod", "go.sum"):
        shutil.copy(ROOT / "tests" / "bench" / "peer" / f, dest / f)
    env = dict(bench.env, GOFLAGS="-mod=mod", GOCACHE=str(dest / "cache"),
               GOPATH=str(dest / "gopath"))
    p = subprocess.run([go, "build", "-o", "peer", "."], cwd=dest, env=env,
                       capture_output=True, text=True, timeout=600)
    if p.returncode != 0:
        reason = (p.stderr.strip().splitlines() or ["go build failed"])[-1]
        return None, f"Go peer not built (module download or build failed: {reason[:200]})"
    return dest / "peer", ""


def measure(bench: Bench, sizes: dict, runs: int, perf=None) -> tuple[list[Figure], dict]:
    """The ingest figures; also returns {"max_rate": ivymail's median} for the latency
    part and the memory part."""
    figs: list[Figure] = []
    cfg = bench.config("ingest")
    port = cfg["port"]
    reqdir = bench.work / "requests"
    reqdir.mkdir(exist_ok=True)

    # The ceilings' servers: bare libevent, and the Go peer unless --quick.
    bare_port = free_port()
    bare = Server("bare_server", [str(bench.bin / "bare_server"), str(bare_port), "2"],
                  bench.out / "logs").start()
    ingest = None
    try:
        bare.wait_line("ready")
        bare_url = f"http://127.0.0.1:{bare_port}/v1/webhooks/ivymail"

        # Which load client can saturate a C server: h2load or the Python one.
        py_n = sizes["py_requests"]
        py_rate = python_client_rate(bare_port, py_n)
        hl_cmd, hl_rate = closed_loop(bare_url, [], BODIES["ivymail"], sizes)
        figs.append(Figure("ingest", "load client: Python loadgen vs bare server", "req/s",
                           f"tests/chaos/loadgen.py Load, {py_n} requests, {CONNECTIONS} connections",
                           [py_rate], "h2load vs bare server", hl_cmd, [hl_rate],
                           note="the faster client is the one the ingest figures use (h2load)"))

        ingest = bench.ingest(cfg)
        result = {"ingest_pid": ingest.pid}
        # The Go peer: the same ivymail request, answered after Kafka's acks=all.
        peer_fig = Figure("ingest", "ingest throughput, ivymail, vs Go peer", "req/s", "",
                          ceiling_name="Go peer (net/http + HMAC + franz-go acks=all, "
                                       "idempotent, linger 0)")
        peer, pport = None, 0
        if sizes["quick"]:
            peer_fig.skip = "skipped in --quick"
        else:
            binary, why = build_peer(bench)
            if binary is None:
                peer_fig.skip = why
            else:
                ptopic = bench.create_topic(f"mailhook.raw.bench-{bench.id}-peer")
                pport = free_port()
                peer = Server("peer", [str(binary), "-listen", f"127.0.0.1:{pport}", "-brokers",
                                       bench.brokers, "-topic", ptopic, "-secret", bench.secret],
                              bench.out / "logs").start()
                peer.wait_http(f"http://127.0.0.1:{pport}/healthz")

        # Runs outside, providers inside: the machine's changing load falls on all alike.
        tput = {source: Figure("ingest", f"ingest throughput, {source} ({scheme})", "req/s", "",
                               ceiling_name="bare libevent 200-server")
                for source, scheme in PROVIDERS.items()}
        figs += tput.values()
        try:
            for i in range(runs):
                for source, fig in tput.items():
                    headers, body = bench.signed(cfg, source, BODIES[source])
                    bfile = reqdir / f"{source}.body"
                    bfile.write_bytes(body)
                    url = f"http://127.0.0.1:{port}/v1/webhooks/{source}"
                    if perf is not None and source == "ivymail" and i == 0:
                        # An extra run under perf, not counted (perf slows what it watches).
                        perf.start("ingest", ingest.pid)
                        closed_loop(url, headers, bfile, sizes)
                        perf.stop("ingest")
                    cmd, rate = closed_loop(url, headers, bfile, sizes)
                    fig.command = cmd.replace(str(bfile), f"{source}.body")
                    fig.samples.append(rate)
                    ccmd, crate = closed_loop(bare_url, headers, bfile, sizes)
                    fig.ceiling_command = ccmd.replace(str(bfile), f"{source}.body")
                    fig.ceiling_samples.append(crate)
                    log(f"{source}: {rate:.0f} req/s (bare server {crate:.0f})")
                    if source == "ivymail" and peer is not None:
                        peer_fig.command = fig.command
                        peer_fig.samples.append(rate)
                        pcmd, prate = closed_loop(f"http://127.0.0.1:{pport}/v1/webhooks/ivymail",
                                                  headers, bfile, sizes)
                        peer_fig.ceiling_command = pcmd.replace(str(bfile), "ivymail.body")
                        peer_fig.ceiling_samples.append(prate)
                        log(f"Go peer: {prate:.0f} req/s")
        finally:
            if peer is not None:
                peer.stop()
        if not peer_fig.samples:
            peer_fig.samples = list(tput["ivymail"].samples)
            peer_fig.command = tput["ivymail"].command
        figs.append(peer_fig)
        ivy = Figure.stats(tput["ivymail"].samples)["median"]
        result["max_rate"] = ivy

        # Latency, open loop, at 25/50/75% of ivymail's measured maximum, and (full runs)
        # at the fixed rate the performance targets name, when it is below the maximum.
        headers, body = bench.signed(cfg, "ivymail", BODIES["ivymail"])
        rfile = reqdir / "ivymail.http"
        write_request(rfile, port, "ivymail", headers, body)
        bfile = reqdir / "ivymail-bare.http"
        write_request(bfile, bare_port, "ivymail", headers, body)
        points = [(f"{share}% of max ({max(ivy * share / 100, 10):.0f}/s)",
                   max(ivy * share / 100, 10)) for share in (25, 50, 75)]
        points += [(f"{rate:.0f}/s", rate) for rate in sizes["latency_rates"] if rate < ivy * 0.9]
        hbody = reqdir / "ivymail.body"
        hbody.write_bytes(body)
        hlog = reqdir / "h2load-rps.log"
        secs = sizes["latency_seconds"]
        for name, rate in points:
            figs += latency_figures(
                name, "bare libevent 200-server, same rate", runs,
                lambda: open_loop(bench, port, rfile, rate, secs, CONNECTIONS)
                + open_loop(bench, bare_port, bfile, rate, secs, CONNECTIONS))
            # The same rate with h2load --rps, the HTTP benchmark tool most readers know:
            # its figures beside the due-time ones show what counting from the send hides.
            # At least ~50 requests/s a connection, so a low rate still sends some in a
            # short (--quick) run.
            conns = max(1, min(CONNECTIONS, int(rate // 50)))
            figs += latency_figures(
                f"{name}, h2load --rps", "bare libevent 200-server, same rate, h2load --rps", runs,
                lambda: h2load_rps(f"http://127.0.0.1:{port}/v1/webhooks/ivymail", headers,
                                   hbody, rate, secs, conns, hlog)
                + h2load_rps(bare_url, headers, hbody, rate, secs, conns, hlog))
    finally:
        if ingest is not None:
            ingest.stop()
        bare.stop()
    return figs, result

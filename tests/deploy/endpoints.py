"""The programs themselves, started on loopback with a deployment's config and
unreachable Kafka/PostgreSQL: health endpoints, a bounded stop on SIGTERM, and the
metrics they serve (every family with HELP text; `promtool check metrics` when there)."""

from __future__ import annotations

import http.client
import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from config_loader import DEAD_ADDR, set_key
from programs import Programs
from report import R, run

# The ingest drains in-flight requests for this long on SIGTERM (ingest/main.c).
INGEST_DRAIN_S = 10

# {metric name as queried: [label sets of its series]}
Served = dict[str, list[dict[str, str]]]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http_get(port: int, path: str, timeout: float = 3.0) -> tuple[int, str]:
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        c.request("GET", path)
        r = c.getresponse()
        return r.status, r.read().decode("utf-8", "replace")
    finally:
        c.close()


def served_series(text: str) -> Served:
    series: Served = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            series.setdefault(s.name, []).append(dict(s.labels))
    return series


def probe_program(progs: Programs, program: str, section: str, text: str, env: dict[str, str],
                  tmp: Path, listen_key: str = "listen", serves_traffic: bool = True) -> str | None:
    """Starts program with the config on a loopback port, reports one line, returns its
    /metrics text. serves_traffic=False (the worker's metrics endpoint): no /readyz, and
    with Kafka unreachable the stop may come from the shutdown watchdog (any exit status),
    but it must still come within the bound."""
    name = f"programs: {program} endpoints"
    port = free_port()
    text = set_key(text, section, listen_key, f"127.0.0.1:{port}")
    text = set_key(text, "kafka", "bootstrap.servers", f"{DEAD_ADDR[0]}:{DEAD_ADDR[1]}")
    cfg = tmp / f"{program}-probe.ini"
    cfg.write_text(text)
    # Sanitizer builds: a leak report would turn a clean stop into exit status 1.
    env = dict(env, ASAN_OPTIONS=":".join(x for x in [env.get("ASAN_OPTIONS", ""), "detect_leaks=0"] if x))
    log = tmp / f"{program}-probe.log"
    with open(log, "wb") as logf:
        proc = subprocess.Popen([str(progs.path(program)), "--config", str(cfg)], env=env,
                                stdin=subprocess.DEVNULL, stdout=logf, stderr=logf)
    problems: list[str] = []
    metrics = None
    try:
        deadline, status = time.monotonic() + 10, None
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                status, _ = http_get(port, "/healthz", 1.0)
                break
            except OSError:
                time.sleep(0.1)
        if status is None:
            tail = log.read_text(errors="replace")[-400:]
            R.fail(name, f"{program} did not answer on 127.0.0.1:{port} (exit {proc.poll()}): {tail}")
            return None
        if status != 200:
            problems.append(f"/healthz answered {status}, want 200")
        if serves_traffic and (status := http_get(port, "/readyz")[0]) != 503:
            problems.append(f"/readyz answered {status} with its dependencies unreachable, want 503")
        status, body = http_get(port, "/metrics")
        if status != 200 or not served_series(body):
            problems.append(f"/metrics answered {status} with {len(body)} bytes and no series")
        else:
            metrics = body
    finally:
        t0 = time.monotonic()
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        try:
            rc = proc.wait(timeout=INGEST_DRAIN_S + 10)
            if rc != 0 and serves_traffic:
                problems.append(f"exit status {rc} after SIGTERM")
            elif time.monotonic() - t0 > INGEST_DRAIN_S + 2:
                problems.append(f"took {time.monotonic() - t0:.1f}s to stop on SIGTERM when idle")
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            problems.append("still running 20 s after SIGTERM")
    R.check(name, problems, "/healthz 200, /readyz 503 without Kafka/PostgreSQL, /metrics, clean "
            "SIGTERM stop" if serves_traffic else
            "/healthz 200 and /metrics without Kafka/PostgreSQL, bounded SIGTERM stop")
    return metrics


def help_problems(text: str) -> list[str]:
    """Families without HELP text or without a TYPE (the text itself is read by the
    Prometheus client's parser, which refuses what it cannot read)."""
    problems = []
    for family in text_string_to_metric_families(text):
        if not family.documentation.strip():
            problems.append(f"{family.name} has no HELP text")
        if family.type == "unknown":
            problems.append(f"{family.name} has no TYPE")
    return problems


# An exposition whose second family has neither HELP nor TYPE.
NO_HELP_EXPOSITION = ("# HELP mailhook_selftest_total Requests.\n# TYPE mailhook_selftest_total counter\n"
                      "mailhook_selftest_total 1\nmailhook_selftest_inflight 0\n")


def promtool_path() -> str | None:
    p = os.environ.get("MH_PROMTOOL") or shutil.which("promtool")
    return p if p and os.access(p, os.X_OK) else None


def promtool_metrics(promtool: str, text: str) -> list[str]:
    """`promtool check metrics` of an exposition: its complaints, empty when none."""
    p = run([promtool, "check", "metrics"], input=text)
    if p.returncode == 0:
        return []
    return [ln.strip() for ln in (p.stdout + p.stderr).splitlines() if ln.strip()] or \
        [f"exit status {p.returncode}"]


def check_expositions(expositions: dict[str, str]) -> None:
    """Every family of every program's /metrics has HELP text and a TYPE; promtool's
    linter, when there, finds nothing. Both must refuse an exposition without HELP."""
    broken = help_problems(NO_HELP_EXPOSITION)
    if "mailhook_selftest_inflight has no HELP text" not in broken:
        R.fail("metrics: HELP self-test", f"an exposition without HELP passed: {broken}")
    else:
        problems = [f"{prog}: {p}" for prog, text in sorted(expositions.items())
                    for p in help_problems(text)]
        families = sum(len(list(text_string_to_metric_families(t))) for t in expositions.values())
        R.check("metrics: HELP and TYPE", problems,
                f"{families} families of {', '.join(sorted(expositions))} (a family without HELP fails)")
    promtool = promtool_path()
    if not promtool:
        R.skip("metrics: promtool check metrics", "promtool not installed (set MH_PROMTOOL)")
    elif not any("no help text" in p for p in promtool_metrics(promtool, NO_HELP_EXPOSITION)):
        R.fail("metrics: promtool check metrics", "self-test: a metric without HELP passed promtool")
    else:
        problems = [f"{prog}: {p}" for prog, text in sorted(expositions.items())
                    for p in promtool_metrics(promtool, text)]
        R.check("metrics: promtool check metrics", problems,
                ", ".join(sorted(expositions)) + " (a metric without HELP fails)")

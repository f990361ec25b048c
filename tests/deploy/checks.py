#!/usr/bin/env python3
"""Structural and semantic checks of mailhook's deployment files.

tests/deploy/validate runs this with the test venv's Python (it needs PyYAML,
kubernetes-validate and promql-parser from tests/requirements.txt). Everything runs offline on one
machine: no Docker engine, no Kubernetes cluster, no Kafka or PostgreSQL server. What it
checks, against the built programs (MH_BUILD_DIR, default build/) wherever it can:

  config     every INI file a deployment mounts (deploy/compose/mailhook.ini, the
             rendered ConfigMap of deploy/k8s) loads with mailhook's own config loader;
             the secret files and variables it names are provided by that deployment.
  programs   mailhook-ingest and mailhook-api, started on loopback with those configs and
             unreachable Kafka/PostgreSQL, answer /healthz 200, /readyz 503 and serve the
             metric names the alert rules use; they stop on SIGTERM in time.
  image      Dockerfile: pinned bases, multi-stage, non-root USER, HEALTHCHECK, the
             runtime packages cover every shared library the programs link, the build
             targets exist in CMake; .dockerignore keeps the context to what is copied.
  compose    docker-compose.yml: images/builds, commands and flags, ports and healthcheck
             URLs against the INI, dependencies, secrets, worker instances.
  k8s        deploy/k8s rendered with `kubectl kustomize`, every object validated against
             the Kubernetes JSON schemas (kubernetes-validate, strict), plus selectors,
             probes, resources, security contexts, ports, secrets, flags.
  systemd    ExecStart programs and flags, instance naming, stop timeout and hardening
             (systemd-analyze itself runs from tests/deploy/validate).
  prometheus scrape targets against the deployments, alert rules' metric names, labels
             and label values against what the programs serve; every family of the
             programs' /metrics has # HELP and # TYPE (and passes `promtool check
             metrics` when promtool is there: MH_PROMTOOL or PATH).
  grafana    deploy/grafana/mailhook.json: every query's metrics and labels (matchers,
             by/without/on/ignoring) are served by the programs; the datasource is the
             dashboard's variable, ranges are $__rate_interval; the provisioning files
             point at the compose Prometheus and at where compose mounts the dashboard.

Schema-level checks are left to the validators tests/deploy/validate runs: the
Kubernetes API's schemas (kubernetes-validate, strict: field types, required fields,
unknown keys), the Compose Specification (check-jsonschema), hadolint (root USER,
untagged FROM), systemd-analyze verify, promtool. This file keeps what only mailhook's
programs and files can tell.

Each check prints one line: "ok   NAME", "FAIL NAME: why" or "skip NAME: why". The exit
status is 1 when any check failed.
"""

from __future__ import annotations

import argparse
import contextlib
import fnmatch
import http.client
import json
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Iterable, Iterator
from urllib.parse import urlsplit, urlunsplit

import yaml

ROOT = Path(__file__).resolve().parents[2]
PROGRAMS = ("mailhook-ingest", "mailhook-worker", "mailhook-api", "mailhook")
# Where the image keeps the migrations (Dockerfile) and so what the INI files must name.
IMAGE_MIGRATIONS_DIR = "/usr/share/mailhook/migrations"
# mailhook-api's compiled-in console directory in the image: <install prefix>/share/mailhook/console.
IMAGE_CONSOLE_DIR = "/usr/share/mailhook/console"
# Metrics (and their labels) of the Kafka exporter the dead-letter and group-lag alerts
# and the dashboard rely on (github.com/danielqsj/kafka_exporter).
KAFKA_EXPORTER_METRICS = {"kafka_topic_partition_current_offset": {"topic", "partition"},
                          "kafka_consumergroup_lag": {"consumergroup", "topic", "partition"}}
# Labels Prometheus adds to every scraped series.
TARGET_LABELS = {"job", "instance"}
# The ingest drains in-flight requests for this long on SIGTERM (ingest/main.c).
INGEST_DRAIN_S = 10
# An address where nothing listens: the programs under test get "connection refused".
DEAD_ADDR = ("127.0.0.1", 1)
# Secret-ish keys of the INI whose value is a file to read at load time.
FILE_KEYS = ("secret_file", "token_file", "public_key_file")
ENV_KEYS = ("secret_env", "token_env")


def env_var(value: str) -> str:
    """The variable an ENV_KEYS value names ([api] token_env may add tenants after it)."""
    return (value.split() or [""])[0]


# ---------------------------------------------------------------------------------------
# reporting

class Report:
    def __init__(self) -> None:
        self.counts = {"ok": 0, "FAIL": 0, "skip": 0}

    def _line(self, status: str, name: str, detail: str = "") -> None:
        self.counts[status] += 1
        print(f"{status:<4} {name}{': ' + detail if detail else ''}", flush=True)

    def ok(self, name: str, detail: str = "") -> None:
        self._line("ok", name, detail)

    def fail(self, name: str, detail: str) -> None:
        self._line("FAIL", name, detail)

    def skip(self, name: str, why: str) -> None:
        self._line("skip", name, why)

    def check(self, name: str, problems: list[str], detail: str = "") -> bool:
        """ok when problems is empty, else one FAIL naming them all."""
        if problems:
            self.fail(name, "; ".join(problems))
            return False
        self.ok(name, detail)
        return True


R = Report()


@contextlib.contextmanager
def guard(name: str) -> Iterator[None]:
    """A check that crashes is a failed check, not a crashed script."""
    try:
        yield
    except Exception as e:  # noqa: BLE001 - report whatever went wrong
        R.fail(name, f"{type(e).__name__}: {e}")


# ---------------------------------------------------------------------------------------
# INI files (the subset of inih's syntax mailhook's loader sees)

class Ini:
    """Entries of an INI file in order, with line numbers; duplicate keys kept."""

    def __init__(self, text: str, label: str) -> None:
        self.text = text
        self.label = label
        self.entries: list[tuple[str, str, str, int]] = []  # section, key, value, line
        section = ""
        for n, raw in enumerate(text.splitlines(), 1):
            line = raw.strip()
            if not line or line[0] in ";#":
                continue
            if line.startswith("[") and "]" in line:
                section = line[1:line.index("]")].strip()
                continue
            if "=" not in line:
                continue
            key, value = line.split("=", 1)
            value = re.sub(r"\s;.*$", "", value).strip()  # inih: inline ';' after space
            self.entries.append((section, key.strip(), value, n))

    def get(self, section: str, key: str, default: str | None = None) -> str | None:
        for s, k, v, _ in self.entries:
            if s == section and k == key:
                return v
        return default

    def sections(self) -> list[str]:
        seen: list[str] = []
        for s, *_ in self.entries:
            if s not in seen:
                seen.append(s)
        return seen

    def where(self, key_names: Iterable[str]) -> list[tuple[str, str, str, int]]:
        names = set(key_names)
        return [e for e in self.entries if e[1] in names]


def split_listen(listen: str) -> tuple[str, int]:
    host, _, port = listen.rpartition(":")
    return host.strip("[]"), int(port)


def replace_line_value(text: str, line: int, new_value: str) -> str:
    lines = text.splitlines(keepends=True)
    key = lines[line - 1].split("=", 1)[0]
    lines[line - 1] = f"{key}= {new_value}\n"
    return "".join(lines)


def set_key(text: str, section: str, key: str, value: str) -> str:
    """Sets key in section (replacing its line, or adding the line, or the section)."""
    ini = Ini(text, "")
    for s, k, _, n in ini.entries:
        if s == section and k == key:
            return replace_line_value(text, n, value)
    lines = text.splitlines(keepends=True)
    for i, raw in enumerate(lines):
        if raw.strip() == f"[{section}]":
            lines.insert(i + 1, f"{key} = {value}\n")
            return "".join(lines)
    return text + f"\n[{section}]\n{key} = {value}\n"


def strip_section(text: str, section: str) -> str:
    """Blanks a section's lines (keeping line numbers)."""
    out, inside = [], False
    for raw in text.splitlines(keepends=True):
        line = raw.strip()
        if line.startswith("[") and "]" in line:
            inside = line[1:line.index("]")].strip() == section
        out.append("\n" if inside else raw)
    return "".join(out)


def dead_dsn(dsn: str) -> str:
    """The same DSN (user, database, options) pointed at an address where nothing listens."""
    host, port = DEAD_ADDR
    if "://" in dsn:
        u = urlsplit(dsn)
        userinfo = u.netloc.rpartition("@")[0]
        netloc = (userinfo + "@" if userinfo else "") + f"{host}:{port}"
        query = u.query + ("&" if u.query else "") + "connect_timeout=3"
        return urlunsplit((u.scheme, netloc, u.path, query, u.fragment))
    return f"{dsn} host={host} port={port} connect_timeout=3"


# ---------------------------------------------------------------------------------------
# the programs

class Programs:
    def __init__(self, build: Path) -> None:
        self.build = build
        self.help: dict[str, str] = {}
        self.flags: dict[str, set[str]] = {}
        self.commands: set[str] = set()
        self.cmd_help: dict[str, str] = {}
        self.api_section = False  # the config loader knows [api]
        for p in PROGRAMS:
            exe = build / p
            if not os.access(exe, os.X_OK):
                continue
            out = run([str(exe), "--help"]).stdout
            self.help[p] = out
            self.flags[p] = flags_of(out)
        if "mailhook" in self.help:
            block = self.help["mailhook"].split("commands:", 1)[-1]
            for line in block.splitlines():
                m = re.match(r"^  ([a-z][a-z-]*)\s{2,}\S", line)
                if m:
                    self.commands.add(m.group(1))

    def has(self, program: str) -> bool:
        return program in self.help

    def path(self, program: str) -> Path:
        return self.build / program

    def command_flags(self, command: str) -> set[str]:
        if command not in self.cmd_help:
            self.cmd_help[command] = run([str(self.path("mailhook")), command, "--help"]).stdout
        return flags_of(self.cmd_help[command]) | {"--help", "-h"}


def run(argv: list[str], **kw: Any) -> subprocess.CompletedProcess:
    kw.setdefault("capture_output", True)
    kw.setdefault("text", True)
    kw.setdefault("timeout", 60)
    return subprocess.run(argv, stdin=subprocess.DEVNULL, **kw)


def flags_of(help_text: str) -> set[str]:
    flags = set(re.findall(r"(?<![\w-])(--[a-z][a-z0-9-]*|-[a-zA-Z])\b", help_text))
    return flags


def check_argv(progs: Programs, argv: list[str], where: str) -> list[str]:
    """Problems with one command line of a mailhook program (or a shell running several)."""
    if not argv:
        return [f"{where}: empty command"]
    prog = os.path.basename(argv[0])
    if prog in ("sh", "bash") and len(argv) >= 3 and argv[1] == "-c":
        problems = []
        for part in re.split(r"&&|\|\||;", argv[2]):
            words = shlex.split(part)
            if words and words[0] in ("exec",):
                words = words[1:]
            if words:
                problems += check_argv(progs, words, where)
        return problems
    if prog not in PROGRAMS:
        return [f"{where}: {prog} is not a mailhook program"]
    if not progs.has(prog):
        return []  # reported once as "not built" elsewhere
    problems = []
    known = progs.flags[prog]
    args = argv[1:]
    i = 0
    command = None
    while i < len(args):
        a = args[i]
        if a.startswith("-"):
            flag = a.split("=", 1)[0]
            if command is None and flag not in known:
                problems.append(f"{where}: {prog} has no option {flag}")
            if command is not None and flag not in progs.command_flags(command):
                problems.append(f"{where}: mailhook {command} has no option {flag}")
            if "=" not in a and flag in ("--config", "-c", "--instance", "-i", "--metrics-listen", "-m"):
                i += 1  # the option's value
        elif prog == "mailhook" and command is None:
            command = a
            if a not in progs.commands:
                problems.append(f"{where}: mailhook has no command {a!r}")
        elif prog != "mailhook":
            problems.append(f"{where}: {prog} takes no argument {a!r}")
        i += 1
    if "--config" not in args and "-c" not in args and prog != "mailhook":
        problems.append(f"{where}: {prog} without --config")
    return problems


def config_path_of(argv: list[str]) -> str | None:
    if argv and os.path.basename(argv[0]) in ("sh", "bash") and len(argv) >= 3:
        m = re.search(r"--config[= ](\S+)", argv[2])
        return m.group(1) if m else None
    for i, a in enumerate(argv):
        if a in ("--config", "-c") and i + 1 < len(argv):
            return argv[i + 1]
        if a.startswith("--config="):
            return a.split("=", 1)[1]
    return None


# ---------------------------------------------------------------------------------------
# the config loader check

def clean_env() -> dict[str, str]:
    """The environment without the overrides that would point a program at real services
    (MAILHOOK_PG_DSN would make `mailhook migrate` migrate that database)."""
    return {k: v for k, v in os.environ.items()
            if k not in ("MAILHOOK_KAFKA_BROKERS", "MAILHOOK_PG_DSN", "MAILHOOK_CONFIG")
            and not k.startswith("PG")}


class LoaderCheck:
    """Loads an INI with mailhook's own loader, offline.

    There is no "check the config" command; `mailhook --config FILE migrate` loads and
    validates the whole file (every section, every source with its provider, the secret
    files) before it opens the migrations directory and connects to PostgreSQL. With the
    DSN pointed at an address where nothing listens, a good file ends in a connection
    error and a bad one in "FILE:LINE: problem". Paths that exist only inside the
    deployment (secret files, the image's migrations directory) are replaced, line for
    line, by local stand-ins, so line numbers in errors are the original file's.
    """

    def __init__(self, progs: Programs, tmp: Path) -> None:
        self.progs = progs
        self.tmp = tmp

    def prepare(self, ini: Ini, drop_api: bool) -> tuple[str, dict[str, str]]:
        text = ini.text
        env = clean_env()
        d = Path(tempfile.mkdtemp(dir=self.tmp, prefix="secrets-"))
        for section, key, value, line in ini.where(FILE_KEYS):
            stand_in = d / f"line{line}"
            if key == "public_key_file":
                stand_in.write_text(self.public_key())
            else:
                stand_in.write_text(f"placeholder-{section}-{key}\n")
            text = replace_line_value(text, line, str(stand_in))
        for _, _, value, _ in ini.where(ENV_KEYS):
            env[env_var(value)] = f"placeholder-{env_var(value)}"
        for _, key, value, line in ini.where(["migrations_dir"]):
            text = replace_line_value(text, line, str(ROOT / "migrations"))
        dsn = ini.get("postgres", "dsn")
        if dsn:
            text = set_key(text, "postgres", "dsn", dead_dsn(dsn))
        else:
            text = set_key(text, "postgres", "dsn", dead_dsn("postgresql://mailhook@x/mailhook"))
        if ini.get("postgres", "migrations_dir") is None:
            text = set_key(text, "postgres", "migrations_dir", str(ROOT / "migrations"))
        if drop_api:
            text = strip_section(text, "api")
        return text, env

    def public_key(self) -> str:
        key = run(["openssl", "genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"])
        pub = run(["openssl", "pkey", "-pubout"], input=key.stdout)
        return pub.stdout

    def load(self, text: str, env: dict[str, str], label: str) -> tuple[bool, str]:
        """(loaded, message): message is the loader's error with label for the file."""
        path = Path(tempfile.mkstemp(dir=self.tmp, suffix=".ini")[1])
        path.write_text(text)
        p = run([str(self.progs.path("mailhook")), "--config", str(path), "migrate"], env=env)
        err = p.stderr.replace(str(path), label).strip()
        if p.returncode != 0 and "mailhook migrate: postgres:" in err and "127.0.0.1" in err:
            return True, ""
        if p.returncode == 0:
            return False, "migrate succeeded against an address where nothing listens?"
        return False, err.splitlines()[0] if err else f"exit status {p.returncode}"

    def api_supported(self) -> bool:
        ok, msg = self.load(f"[api]\nlisten = 127.0.0.1:1\ntoken = x\n[postgres]\n"
                            f"dsn = {dead_dsn('postgresql://x@x/x')}\n"
                            f"migrations_dir = {ROOT / 'migrations'}\n",
                            clean_env(), "probe.ini")
        return ok


def check_config(loader: LoaderCheck, ini: Ini, name: str) -> tuple[str, dict[str, str]] | None:
    """Runs the loader on ini; returns the prepared (text, env) for later use, or None."""
    drop_api = "api" in ini.sections() and not loader.progs.api_section
    text, env = loader.prepare(ini, drop_api)
    ok, msg = loader.load(text, env, ini.label)
    if not ok:
        R.fail(name, msg)
        return None
    R.ok(name, "loads with mailhook's config loader" +
         (" ([api] left out: this build's loader predates it)" if drop_api else ""))
    return text, env


# ---------------------------------------------------------------------------------------
# running a program briefly

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


def parse_metrics(text: str) -> dict[str, list[dict[str, str]]]:
    series: dict[str, list[dict[str, str]]] = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = re.match(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{([^}]*)\})?\s", line)
        if not m:
            continue
        labels = dict(re.findall(r'([a-zA-Z_][a-zA-Z0-9_]*)="([^"]*)"', m.group(3) or ""))
        series.setdefault(m.group(1), []).append(labels)
    return series


def probe_program(progs: Programs, program: str, section: str, text: str, env: dict[str, str],
                  tmp: Path, name: str, listen_key: str = "listen",
                  serves_traffic: bool = True) -> str | None:
    """Starts program with the config on a loopback port; returns its /metrics text.
    serves_traffic=False (the worker's metrics endpoint): no /readyz, and with Kafka
    unreachable the stop may come from the shutdown watchdog (any exit status), but it
    must still come within the bound."""
    port = free_port()
    text = set_key(text, section, listen_key, f"127.0.0.1:{port}")
    text = set_key(text, "kafka", "bootstrap.servers", f"{DEAD_ADDR[0]}:{DEAD_ADDR[1]}")
    cfg = tmp / f"{program}-probe.ini"
    cfg.write_text(text)
    # Sanitizer builds: this probe is about the stop, not leak hunting (the sanitizer
    # test runs do that); a leak report would turn a clean stop into exit status 1.
    env = dict(env)
    env["ASAN_OPTIONS"] = ":".join(x for x in [env.get("ASAN_OPTIONS", ""), "detect_leaks=0"] if x)
    log = tmp / f"{program}-probe.log"
    with open(log, "wb") as logf:
        proc = subprocess.Popen([str(progs.path(program)), "--config", str(cfg)], env=env,
                                stdin=subprocess.DEVNULL, stdout=logf, stderr=logf)
    problems: list[str] = []
    metrics = None
    try:
        deadline = time.monotonic() + 10
        status = None
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
        if serves_traffic:
            status, body = http_get(port, "/readyz")
            if status != 503:
                problems.append(f"/readyz answered {status} with its dependencies unreachable, want 503")
        status, body = http_get(port, "/metrics")
        if status != 200:
            problems.append(f"/metrics answered {status}")
        else:
            metrics = body
            if not parse_metrics(body):
                problems.append("/metrics has no series")
    finally:
        t0 = time.monotonic()
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        try:
            rc = proc.wait(timeout=INGEST_DRAIN_S + 10)
            took = time.monotonic() - t0
            if rc != 0 and serves_traffic:
                problems.append(f"exit status {rc} after SIGTERM")
            elif took > INGEST_DRAIN_S + 2:
                problems.append(f"took {took:.1f}s to stop on SIGTERM when idle")
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            problems.append("still running 20 s after SIGTERM")
    R.check(name, problems, "/healthz 200, /readyz 503 without Kafka/PostgreSQL, /metrics, "
            "clean SIGTERM stop" if serves_traffic else
            "/healthz 200 and /metrics without Kafka/PostgreSQL, bounded SIGTERM stop")
    return metrics


# ---------------------------------------------------------------------------------------
# Dockerfile

def dockerfile_instructions(text: str) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    buf = ""
    for raw in text.splitlines():
        line = raw.rstrip()
        if not buf and (not line.strip() or line.lstrip().startswith("#")):
            continue
        if buf and line.lstrip().startswith("#"):
            continue
        if line.endswith("\\"):
            buf += line[:-1] + " "
            continue
        buf += line
        word, _, rest = buf.strip().partition(" ")
        out.append((word.upper(), rest.strip()))
        buf = ""
    return out


def apt_packages(run_args: str) -> set[str]:
    pkgs: set[str] = set()
    for m in re.finditer(r"apt-get install ([^&;|]*)", run_args):
        pkgs |= {w for w in m.group(1).split() if not w.startswith("-")}
    return pkgs


def lib_sh_dev_packages() -> set[str]:
    text = (ROOT / "deploy/local/lib.sh").read_text()
    m = re.search(r"MH_APT_PACKAGES=\((.*?)\)", text, re.S)
    words = set(m.group(1).split()) if m else set()
    return {w for w in words if w.endswith("-dev") or w in ("build-essential", "cmake", "pkg-config")}


_DPKG_CACHE: dict[str, str] = {}


def shared_lib_packages(binary: Path) -> tuple[dict[str, str], list[str]]:
    """{soname: Debian package} of the binary's direct dependencies, and problems."""
    problems = []
    out = run(["readelf", "-d", str(binary)]).stdout
    needed = re.findall(r"\(NEEDED\)\s+Shared library: \[([^\]]+)\]", out)
    ldcache = run(["ldconfig", "-p"]).stdout
    paths: dict[str, list[str]] = {}
    for so in needed:
        m = re.search(rf"^\s*{re.escape(so)} \(([^)]*)\) => (\S+)$", ldcache, re.M)
        if not m:
            problems.append(f"{so} not in the linker cache")
            continue
        # dpkg knows a file by the path its package ships (/lib or /usr/lib).
        paths[so] = list(dict.fromkeys([m.group(2), os.path.realpath(m.group(2))]))
    todo = [p for ps in paths.values() for p in ps if p not in _DPKG_CACHE]
    if todo:
        for line in run(["dpkg", "-S", *todo]).stdout.splitlines():
            pkg, _, path = line.partition(": ")
            _DPKG_CACHE[path.strip()] = pkg.split(":")[0].strip()
    found = {}
    for so, ps in paths.items():
        found[so] = next((_DPKG_CACHE[p] for p in ps if p in _DPKG_CACHE), "?")
    return found, problems


def dockerignore_excluded(patterns: list[tuple[str, bool]], rel: str) -> bool:
    """Docker's rule: the last pattern matching the path or one of its parents decides."""
    parts = rel.split("/")
    candidates = ["/".join(parts[:i]) for i in range(1, len(parts) + 1)]
    def matches(pat: str, path: str) -> bool:
        if "**" in pat:  # "**" crosses directories; fnmatch's "*" does too
            return fnmatch.fnmatchcase(path, pat) or (
                pat.endswith("/**") and path.startswith(pat[:-3] + "/"))
        # "*" and "?" stay within one path segment
        return pat.count("/") == path.count("/") and fnmatch.fnmatchcase(path, pat)

    excluded = False
    for pat, negated in patterns:
        if any(matches(pat, c) for c in candidates):
            excluded = not negated
    return excluded


def check_image(progs: Programs, cmake_version: str) -> dict[str, Any]:
    info: dict[str, Any] = {}
    path = ROOT / "Dockerfile"
    if not path.exists():
        R.fail("image: Dockerfile", "no Dockerfile at the top of the project")
        return info
    ins = dockerfile_instructions(path.read_text())
    args: dict[str, str] = {}
    stages: list[dict[str, Any]] = []
    for word, rest in ins:
        if word == "ARG" and not stages:
            k, _, v = rest.partition("=")
            args[k.strip()] = v.strip()
        elif word == "FROM":
            m = re.match(r"(?:--platform=\S+\s+)?(\S+)(?:\s+AS\s+(\S+))?", rest, re.I)
            image = re.sub(r"\$\{?(\w+)\}?", lambda mm: args.get(mm.group(1), mm.group(0)), m.group(1))
            stages.append({"image": image, "name": m.group(2), "ins": []})
        elif stages:
            stages[-1]["ins"].append((word, rest))

    problems = []
    if len(stages) < 2:
        problems.append("not multi-stage")
    for img in dict.fromkeys(st["image"] for st in stages):
        if "@sha256:" in img:
            continue
        tag = img.rsplit("/", 1)[-1].partition(":")[2]
        if not tag or tag == "latest":
            problems.append(f"base image {img} is not pinned to a tag or digest")
        elif not re.match(r"(debian:)?(12([.-]|$)|bookworm)", img.rsplit("/", 1)[-1]):
            problems.append(f"base image {img} is not Debian 12")
    if len({st['image'] for st in stages}) > 1:
        problems.append("build and runtime stages use different base images")
    R.check("image: base images", problems, ", ".join(st["image"] for st in stages))
    if len(stages) < 2:
        return info
    build, final = stages[0], stages[-1]

    def words(stage: dict[str, Any], kind: str) -> list[str]:
        return [rest for w, rest in stage["ins"] if w == kind]

    # A root or non-numeric last USER is hadolint's (DL3002, DL3066); a runtime stage
    # without USER is not.
    users = words(final, "USER")
    problems = [] if users else ["runtime stage has no USER"]
    R.check("image: non-root user", problems, f"USER {users[-1] if users else '?'}")

    hc = words(final, "HEALTHCHECK")
    problems = [] if hc and "NONE" not in hc[-1].upper().split()[:1] else ["no HEALTHCHECK"]
    if hc and "/readyz" not in hc[-1]:
        problems.append("HEALTHCHECK does not probe /readyz")
    R.check("image: HEALTHCHECK", problems)

    runtime_pkgs = set().union(*(apt_packages(r) for r in words(final, "RUN")))
    build_pkgs = set().union(*(apt_packages(r) for r in words(build, "RUN")))
    problems = [f"runtime stage installs build package {p}" for p in sorted(runtime_pkgs)
                if p.endswith("-dev") or p in ("build-essential", "cmake", "gcc", "pkg-config")]
    want_build = lib_sh_dev_packages() - {"libcmocka-dev"}
    problems += [f"build stage lacks {p} (deploy/local/lib.sh builds with it)"
                 for p in sorted(want_build - build_pkgs)]
    R.check("image: packages", problems,
            f"build: {len(build_pkgs)} packages; runtime: {' '.join(sorted(runtime_pkgs))}")
    info["runtime_pkgs"] = runtime_pkgs

    # Every shared library the programs link comes from a runtime package (or libc6).
    if shutil.which("readelf") and shutil.which("dpkg") and progs.help:
        problems = []
        notes = []
        for p in PROGRAMS:
            if not progs.has(p):
                continue
            libs, probs = shared_lib_packages(progs.path(p))
            problems += [f"{p}: {x}" for x in probs]
            for so, pkg in libs.items():
                if re.match(r"lib(a|ub|t|l)san", so):
                    notes.append(f"{so} (sanitizer build) ignored")
                elif pkg not in runtime_pkgs and pkg != "libc6":
                    problems.append(f"{p} links {so} from {pkg}, which the runtime stage does not install")
        R.check("image: runtime libraries", problems,
                "every NEEDED library of the built programs is installed" +
                (f" ({'; '.join(sorted(set(notes)))})" if notes else ""))
    else:
        R.skip("image: runtime libraries", "readelf/dpkg or the programs are missing")

    # The programs the image ships are CMake targets, built and installed.
    cmake_targets = set()
    for f in [ROOT / "CMakeLists.txt", *ROOT.glob("*/CMakeLists.txt")]:
        cmake_targets |= set(re.findall(r"add_executable\(\s*([\w-]+)", f.read_text()))
    build_text = " ".join(words(build, "RUN"))
    problems = []
    for p in PROGRAMS:
        if p not in cmake_targets:
            problems.append(f"{p} is not a CMake target")
        if not re.search(rf"--target[^&]*\b{re.escape(p)}(\s|$)", build_text):
            problems.append(f"the build stage does not build {p}")
        if not re.search(rf"/{re.escape(p)}(\s|$)", build_text):
            problems.append(f"the build stage does not install {p}")
    copies = " | ".join(words(final, "COPY"))
    if "/usr/local/bin" not in copies:
        problems.append("the runtime stage copies no programs to /usr/local/bin")
    R.check("image: programs", problems, ", ".join(PROGRAMS))

    # Migrations: where the runtime keeps them == the compiled-in default == the INIs.
    problems = []
    workdir = (words(build, "WORKDIR") or [""])[-1]
    if workdir.rstrip("/") + "/migrations" != IMAGE_MIGRATIONS_DIR:
        problems.append(f"build WORKDIR {workdir}: the compiled-in migrations_dir would be "
                        f"{workdir}/migrations, not {IMAGE_MIGRATIONS_DIR}")
    if not re.search(rf"\S+migrations/?\s+{re.escape(IMAGE_MIGRATIONS_DIR)}/?$", copies, re.M) \
            and IMAGE_MIGRATIONS_DIR not in copies:
        problems.append(f"the runtime stage does not copy migrations/ to {IMAGE_MIGRATIONS_DIR}")
    R.check("image: migrations", problems, IMAGE_MIGRATIONS_DIR)

    # The console: its files where mailhook-api looks for them, i.e. the build's install
    # prefix's share/mailhook/console.
    problems = []
    prefix = re.search(r"-DCMAKE_INSTALL_PREFIX=(\S+)", build_text)
    if not prefix or prefix.group(1).rstrip("/") + "/share/mailhook/console" != IMAGE_CONSOLE_DIR:
        problems.append("the build stage does not configure -DCMAKE_INSTALL_PREFIX=/usr: "
                        f"mailhook-api would not look in {IMAGE_CONSOLE_DIR}")
    if not re.search(rf"api/console/?\s+{re.escape(IMAGE_CONSOLE_DIR)}/?(\s*\||$)", copies):
        problems.append(f"the runtime stage does not copy api/console/ to {IMAGE_CONSOLE_DIR}")
    R.check("image: console", problems, IMAGE_CONSOLE_DIR)

    version = next((r.split("=", 1)[1] for w, r in final["ins"]
                    if w == "ARG" and r.startswith("MAILHOOK_VERSION=")), None)
    R.check("image: version label", [] if version == cmake_version else
            [f"ARG MAILHOOK_VERSION={version}, CMakeLists.txt says {cmake_version}"], version or "")

    # Build context: .dockerignore keeps out what the build must not see, and keeps in
    # everything the build stage copies.
    di = ROOT / ".dockerignore"
    if not di.exists():
        R.fail("image: .dockerignore", "missing: the whole tree (build dirs, .local) would be sent")
        return info
    patterns = []
    for raw in di.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        neg = line.startswith("!")
        pat = os.path.normpath(line.lstrip("!").strip()).lstrip("/")
        patterns.append((pat, neg))
    problems = []
    sources = []
    for w, rest in build["ins"]:
        if w == "COPY" and "--from" not in rest:
            sources += rest.split()[:-1]
    for src in sources:
        base = ROOT / src
        files = [base] if base.is_file() else [f for f in base.rglob("*") if f.is_file()]
        if not files:
            problems.append(f"COPY {src}: nothing there")
        for f in files:
            rel = f.relative_to(ROOT).as_posix()
            if dockerignore_excluded(patterns, rel):
                problems.append(f"{rel} is copied by the Dockerfile but excluded by .dockerignore")
                break
    for entry in sorted(ROOT.iterdir()):
        name = entry.name
        if name == ".git" or name.startswith((".local", "build")) or name in ("tests", "deploy"):
            probe = f"{name}/x" if entry.is_dir() else name
            if not dockerignore_excluded(patterns, probe):
                problems.append(f"{name} is part of the build context")
    R.check("image: .dockerignore", problems, f"context = {', '.join(sources)}")
    return info


# ---------------------------------------------------------------------------------------
# docker-compose.yml

def compose_command(svc: dict[str, Any]) -> list[str]:
    cmd = svc.get("command")
    if isinstance(cmd, str):
        return shlex.split(cmd)
    return [str(c) for c in cmd or []]


def interpolate_default(value: str) -> str:
    return re.sub(r"\$\{[A-Z0-9_]+:?-([^}]*)\}", r"\1", value)


def bind_mounts(svc: dict[str, Any]) -> dict[Path, Path]:
    """{path in the container: path on the host} of a service's bind mounts."""
    out: dict[Path, Path] = {}
    for v in svc.get("volumes") or []:
        if isinstance(v, str):
            src, _, rest = v.partition(":")
            dst = rest.split(":")[0]
        else:
            src, dst = str(v.get("source", "")), str(v.get("target", ""))
        src = interpolate_default(src)
        if src.startswith((".", "/")):
            out[Path(dst)] = (ROOT / src).resolve() if not src.startswith("/") else Path(src)
    return out


def check_compose(progs: Programs, loader: LoaderCheck, tmp: Path,
                  cmake_version: str) -> dict[str, Any]:
    info: dict[str, Any] = {}
    path = ROOT / "docker-compose.yml"
    try:
        doc = yaml.safe_load(path.read_text())
    except Exception as e:  # noqa: BLE001
        R.fail("compose: parse", f"{path.name}: {e}")
        return info
    services: dict[str, Any] = doc.get("services") or {}
    R.check("compose: parse", [] if services else ["no services"], f"{len(services)} services")

    # Images and builds.
    problems = []
    for name, svc in services.items():
        image, build = svc.get("image"), svc.get("build")
        if not image and not build:
            problems.append(f"{name}: neither image nor build")
        if image:
            tag = image.rsplit("/", 1)[-1].partition(":")[2]
            if not tag or tag == "latest":
                problems.append(f"{name}: image {image} has no pinned tag")
        if build:
            ctx = build if isinstance(build, str) else build.get("context", ".")
            dockerfile = "Dockerfile" if isinstance(build, str) else build.get("dockerfile", "Dockerfile")
            if not (ROOT / ctx / dockerfile).is_file():
                problems.append(f"{name}: build {ctx}/{dockerfile} does not exist")
    R.check("compose: images and builds", problems)

    kafka = services.get("kafka", {})
    pg = services.get("postgres", {})
    problems = []
    if not re.match(r"(docker\.io/)?apache/kafka:3\.9\.\d+$", str(kafka.get("image", ""))):
        problems.append(f"kafka image {kafka.get('image')}: want apache/kafka:3.9.x")
    kenv = {k: str(v) for k, v in (kafka.get("environment") or {}).items()}
    if "broker" not in kenv.get("KAFKA_PROCESS_ROLES", "") or \
            "controller" not in kenv.get("KAFKA_PROCESS_ROLES", ""):
        problems.append("kafka is not a combined KRaft broker+controller")
    for k in ("KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR", "KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR",
              "KAFKA_TRANSACTION_STATE_LOG_MIN_ISR", "KAFKA_DEFAULT_REPLICATION_FACTOR"):
        if kenv.get(k) != "1":
            problems.append(f"single broker needs {k}=1 (workers use transactions)")
    cid = kenv.get("CLUSTER_ID", "")
    if not re.fullmatch(r"[A-Za-z0-9_-]{22}", cid):
        problems.append(f"CLUSTER_ID {cid!r} is not a base64 UUID (22 characters)")
    if not str(pg.get("image", "")).startswith("postgres:15"):
        problems.append(f"postgres image {pg.get('image')}: want postgres:15")
    R.check("compose: kafka and postgres", problems, f"{kafka.get('image')}, {pg.get('image')}")

    # The mailhook services: commands, config mount, secrets.
    mh = {n: s for n, s in services.items() if str(s.get("image", "")).split(":")[0] == "mailhook"}
    problems = []
    config_mounts: dict[str, str] = {}
    for name, svc in mh.items():
        argv = compose_command(svc)
        problems += check_argv(progs, argv, name)
        cfg = config_path_of(argv)
        mounts = {}
        for v in svc.get("volumes") or []:
            parts = v.split(":") if isinstance(v, str) else [v.get("source"), v.get("target")]
            if len(parts) >= 2:
                mounts[parts[1]] = parts[0]
        if cfg not in mounts:
            problems.append(f"{name}: --config {cfg} is not a mounted file")
        else:
            config_mounts[name] = mounts[cfg]
        if str(svc.get("image")) != f"mailhook:{cmake_version}":
            problems.append(f"{name}: image {svc.get('image')}, want mailhook:{cmake_version}")
        if not svc.get("read_only"):
            problems.append(f"{name}: root file system not read_only")
        if "ALL" not in (svc.get("cap_drop") or []):
            problems.append(f"{name}: capabilities not dropped")
    R.check("compose: mailhook commands", problems,
            "programs, options and --config mounts of " + ", ".join(mh))
    srcs = set(config_mounts.values())
    if len(srcs) != 1:
        R.fail("compose: config", f"mailhook services mount different configs: {sorted(srcs)}")
        return info
    ini_path = ROOT / next(iter(srcs))
    ini = Ini(ini_path.read_text(), ini_path.relative_to(ROOT).as_posix())
    prepared = check_config(loader, ini, f"config: {ini.label}")
    info["ini"] = ini
    info["prepared"] = prepared

    roles: dict[str, list[str]] = {}
    for name, svc in mh.items():
        argv = compose_command(svc)
        prog = os.path.basename(argv[0]) if argv else ""
        if prog in ("sh", "bash"):
            prog = "init"
        roles.setdefault(prog, []).append(name)
    problems = []
    for want in ("mailhook-ingest", "mailhook-worker", "mailhook-api", "init"):
        if want not in roles:
            problems.append(f"no {want} service")
    init_cmd = " ".join(compose_command(services[roles["init"][0]])) if "init" in roles else ""
    if not re.search(r"\btopics\b", init_cmd) or not re.search(r"\bmigrate\b", init_cmd):
        problems.append("init does not run both `mailhook topics` and `mailhook migrate`")
    workers = roles.get("mailhook-worker", [])
    instances = []
    for w in workers:
        argv = compose_command(services[w])
        inst = argv[argv.index("--instance") + 1] if "--instance" in argv else None
        instances.append(inst)
    if len(workers) < 2:
        problems.append(f"{len(workers)} worker(s), want two")
    if None in instances or len(set(instances)) != len(instances):
        problems.append(f"workers need distinct --instance values, have {instances}")
    parts = int(ini.get("worker", "raw_partitions", "6") or 6)
    if len(workers) > parts:
        problems.append(f"{len(workers)} workers > raw_partitions {parts}")
    R.check("compose: roles", problems, f"workers {instances}")

    # Ports and healthchecks against the INI's listeners.
    problems = []
    for prog, section in (("mailhook-ingest", "ingest"), ("mailhook-api", "api")):
        for name in roles.get(prog, []):
            svc = services[name]
            listen = ini.get(section, "listen", "127.0.0.1:8080" if section == "ingest" else "127.0.0.1:8081")
            host, port = split_listen(listen)
            if host not in ("0.0.0.0", "::", ""):
                problems.append(f"{name}: [{section}] listen {listen} is not reachable from outside the container")
            published = []
            for p in svc.get("ports") or []:
                spec = str(p if not isinstance(p, dict) else p.get("target"))
                published.append(int(spec.split(":")[-1].split("/")[0]))
            if port not in published:
                problems.append(f"{name}: container port {port} ([{section}] listen) is not published (have {published})")
            hc = svc.get("healthcheck") or {}
            test = " ".join(hc.get("test") or []) if isinstance(hc.get("test"), list) else str(hc.get("test", ""))
            if f"127.0.0.1:{port}/readyz" not in test and f"localhost:{port}/readyz" not in test:
                problems.append(f"{name}: healthcheck does not probe /readyz on port {port}: {test!r}")
            grace = str(svc.get("stop_grace_period", "10s"))
            if seconds(grace) < INGEST_DRAIN_S + 5:
                problems.append(f"{name}: stop_grace_period {grace} < {INGEST_DRAIN_S + 5}s")
    for name in roles.get("init", []):
        hc = services[name].get("healthcheck") or {}
        if not hc.get("disable"):
            problems.append(f"{name}: serves no HTTP, disable the image's healthcheck")
    for name in workers:
        svc = services[name]
        cmd = [str(x) for x in svc.get("command") or []]
        hc = svc.get("healthcheck") or {}
        if "--metrics-listen" not in cmd:
            if not hc.get("disable"):
                problems.append(f"{name}: serves no HTTP without --metrics-listen, disable the "
                                "image's healthcheck")
            continue
        port = split_listen(cmd[cmd.index("--metrics-listen") + 1])[1]
        test = " ".join(hc.get("test") or []) if isinstance(hc.get("test"), list) else str(hc.get("test", ""))
        if f"127.0.0.1:{port}/healthz" not in test and f"localhost:{port}/healthz" not in test:
            problems.append(f"{name}: healthcheck does not probe /healthz on its metrics port {port}: {test!r}")
    R.check("compose: ports and healthchecks", problems)

    # Every bind mount's source exists; the monitoring profile publishes on loopback only.
    problems = []
    for name, svc in services.items():
        for dst, src in bind_mounts(svc).items():
            if not src.exists():
                problems.append(f"{name}: volume source {src.relative_to(ROOT) if src.is_relative_to(ROOT) else src} "
                                f"({dst}) does not exist")
    monitoring = [n for n, s in services.items() if "monitoring" in (s.get("profiles") or [])]
    for name in monitoring:
        for p in services[name].get("ports") or []:
            spec = str(p) if not isinstance(p, dict) else f"{p.get('host_ip', '')}:{p.get('published')}:{p.get('target')}"
            if not spec.startswith("127.0.0.1:"):
                problems.append(f"{name}: port {spec} is published beyond 127.0.0.1")
    for want in ("prometheus", "grafana"):
        if want not in monitoring:
            problems.append(f"no {want} service in the monitoring profile")
    R.check("compose: volumes and monitoring", problems,
            f"bind mounts exist; {', '.join(monitoring)} on 127.0.0.1 only")

    # Dependencies.
    problems = []
    for name, svc in services.items():
        deps = svc.get("depends_on") or {}
        if isinstance(deps, list):
            deps = {d: {"condition": "service_started"} for d in deps}
        for dep, how in deps.items():
            if dep not in services:
                problems.append(f"{name} depends on unknown service {dep}")
                continue
            cond = (how or {}).get("condition")
            if cond == "service_healthy" and not (services[dep].get("healthcheck") or {}).get("test"):
                problems.append(f"{name} waits for {dep} to be healthy, which has no healthcheck")
    for name in ("kafka", "postgres"):
        cond = ((services.get(roles.get("init", ["?"])[0], {}).get("depends_on") or {}).get(name) or {})
        if cond.get("condition") != "service_healthy":
            problems.append(f"init does not wait for {name} to be healthy")
    for prog in ("mailhook-ingest", "mailhook-worker", "mailhook-api"):
        for name in roles.get(prog, []):
            cond = ((services[name].get("depends_on") or {}).get(roles.get("init", ["?"])[0]) or {})
            if cond.get("condition") != "service_completed_successfully":
                problems.append(f"{name} does not wait for init to complete")
    R.check("compose: dependencies", problems)

    # Where the INI points: Kafka and PostgreSQL services, secrets, migrations.
    problems = []
    bootstrap = ini.get("kafka", "bootstrap.servers", "")
    adv = kenv.get("KAFKA_ADVERTISED_LISTENERS", "")
    for hp in bootstrap.split(","):
        if f"//{hp.strip()}" not in adv:
            problems.append(f"bootstrap.servers {hp} is not an advertised listener of kafka ({adv})")
    dsn = urlsplit(ini.get("postgres", "dsn", ""))
    penv = {k: str(v) for k, v in (pg.get("environment") or {}).items()}
    if dsn.hostname not in services or services.get(dsn.hostname) is not pg:
        problems.append(f"[postgres] dsn host {dsn.hostname} is not the postgres service")
    if dsn.username != penv.get("POSTGRES_USER") or dsn.path.lstrip("/") != penv.get("POSTGRES_DB"):
        problems.append("[postgres] dsn user/database differ from POSTGRES_USER/POSTGRES_DB")
    if ini.get("postgres", "migrations_dir") not in (None, IMAGE_MIGRATIONS_DIR):
        problems.append(f"[postgres] migrations_dir {ini.get('postgres', 'migrations_dir')} "
                        f"is not where the image keeps them ({IMAGE_MIGRATIONS_DIR})")
    pw = {k: interpolate_default(str(v)) for k, v in penv.items()}.get("POSTGRES_PASSWORD")
    top_secrets = doc.get("secrets") or {}
    for name, svc in mh.items():
        env = {k: interpolate_default(str(v)) for k, v in (svc.get("environment") or {}).items()}
        if name in roles.get("mailhook-worker", []) + roles.get("mailhook-api", []) + roles.get("init", []) \
                and env.get("PGPASSWORD") != pw and "MAILHOOK_PG_DSN" not in env:
            problems.append(f"{name}: PGPASSWORD does not match the postgres service's password")
        svc_secrets = {s if isinstance(s, str) else s.get("source"): s for s in svc.get("secrets") or []}
        for section, key, value, line in ini.where(FILE_KEYS):
            if not value.startswith("/run/secrets/"):
                problems.append(f"{ini.label}:{line}: {key} {value} is not a compose secret")
                continue
            sname = value[len("/run/secrets/"):]
            if sname not in svc_secrets:
                problems.append(f"{name}: lacks secret {sname} ({ini.label}:{line}); every program reads every secret")
        for _, _, var, line in ini.where(ENV_KEYS):
            var = env_var(var)
            if var not in env:
                problems.append(f"{name}: variable {var} ({ini.label}:{line}) is not set")
    for sname, spec in top_secrets.items():
        f = ROOT / interpolate_default(str((spec or {}).get("file", "")))
        if not f.is_file():
            problems.append(f"secret {sname}: file {f.relative_to(ROOT) if f.is_relative_to(ROOT) else f} missing")
    R.check("compose: kafka, postgres and secrets of the INI", problems)
    info["services"] = services
    info["roles"] = roles
    return info


def seconds(value: str) -> float:
    total = 0.0
    for num, unit in re.findall(r"(\d+(?:\.\d+)?)(ms|s|m|h|min)?", str(value)):
        total += float(num) * {"ms": 0.001, "s": 1, "": 1, "m": 60, "min": 60, "h": 3600}[unit]
    return total


# ---------------------------------------------------------------------------------------
# Kubernetes

def k8s_objects(tmp: Path) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(objects of the files, objects as rendered by kustomize)."""
    kdir = ROOT / "deploy/k8s"
    kust = yaml.safe_load((kdir / "kustomization.yaml").read_text())
    files = list(kust.get("resources") or [])
    raw: list[dict[str, Any]] = []
    problems = []
    for f in files:
        for doc in yaml.safe_load_all((kdir / f).read_text()):
            if doc is None:
                continue
            doc["__file"] = f
            raw.append(doc)
    listed = set(files) | {"kustomization.yaml"}
    for f in sorted(kdir.glob("*.yaml")):
        if f.name not in listed:
            problems.append(f"{f.name} is not listed in kustomization.yaml resources")
    R.check("k8s: files", problems, f"{len(raw)} objects in {len(files)} files")

    rendered: list[dict[str, Any]] = []
    kubectl = shutil.which("kubectl")
    if kubectl:
        p = run([kubectl, "kustomize", str(kdir)], timeout=60)
        if p.returncode != 0:
            R.fail("k8s: kustomize", p.stderr.strip()[:500])
        else:
            rendered = [d for d in yaml.safe_load_all(p.stdout) if d]
            R.ok("k8s: kustomize", f"`kubectl kustomize deploy/k8s` renders {len(rendered)} objects")
    if not rendered:
        if not kubectl:
            R.skip("k8s: kustomize", "kubectl not found; checking the files and a ConfigMap built here")
        rendered = [{k: v for k, v in d.items() if k != "__file"} for d in raw]
        for gen in kust.get("configMapGenerator") or []:
            data = {}
            for f in gen.get("files") or []:
                key, _, src = f.partition("=")
                data[key if src else Path(key).name] = (kdir / (src or key)).read_text()
            rendered.append({"apiVersion": "v1", "kind": "ConfigMap",
                             "metadata": {"name": gen["name"]}, "data": data})
    return raw, rendered


def pod_spec(obj: dict[str, Any]) -> dict[str, Any] | None:
    if obj.get("kind") in ("Deployment", "StatefulSet", "DaemonSet", "Job", "ReplicaSet"):
        return ((obj.get("spec") or {}).get("template") or {}).get("spec") or {}
    return None


def labels_match(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


def check_k8s(progs: Programs, loader: LoaderCheck, tmp: Path, cmake_version: str) -> dict[str, Any]:
    info: dict[str, Any] = {}
    raw, objs = k8s_objects(tmp)

    # apiVersion, kind and metadata.name: kubernetes-validate and kustomize refuse objects
    # without them. Not a rule of the API: the manifests are namespace-agnostic.
    problems = []
    for d in raw:
        if "namespace" in (d.get("metadata") or {}):
            problems.append(f"{d.get('__file')}: {d.get('kind')}/{(d.get('metadata') or {}).get('name')}: "
                            "names a namespace")
    kust = yaml.safe_load((ROOT / "deploy/k8s/kustomization.yaml").read_text())
    if kust.get("namespace"):
        problems.append("kustomization.yaml sets a namespace")
    R.check("k8s: no namespace", problems, "the manifests are namespace-agnostic")

    # Schemas of the Kubernetes API (bundled with kubernetes-validate).
    try:
        import kubernetes_validate  # type: ignore
    except ImportError:
        R.skip("k8s: schemas", "kubernetes-validate is not installed (tests/requirements.txt)")
    else:
        # The oldest Kubernetes the manifests support (or the oldest schema bundled, if
        # newer) and the newest bundled.
        want_min = os.environ.get("MH_K8S_MIN_VERSION", "1.29.0")
        have = sorted(set(kubernetes_validate.utils.all_versions()),
                      key=lambda v: tuple(int(x) for x in v.split(".")))
        oldest = want_min if want_min in have else have[0]
        versions = [oldest, kubernetes_validate.latest_version()]
        problems = []
        for v in dict.fromkeys(versions):
            for o in objs:
                try:
                    kubernetes_validate.validate(o, v, strict=True)
                except kubernetes_validate.ValidationError as e:
                    problems.append(f"{o['kind']}/{o['metadata']['name']} @ {v}: "
                                    f"{'.'.join(str(p) for p in e.path)}: {e.message}")
                except Exception as e:  # noqa: BLE001 - unknown kind or version
                    problems.append(f"{o.get('kind')}/{(o.get('metadata') or {}).get('name')} @ {v}: {e}")
        R.check("k8s: schemas", problems,
                f"{len(objs)} objects valid (strict) against Kubernetes {', '.join(dict.fromkeys(versions))}")

    by_kind: dict[str, dict[str, dict[str, Any]]] = {}
    for o in objs:
        by_kind.setdefault(o["kind"], {})[o["metadata"]["name"]] = o
    configmaps = by_kind.get("ConfigMap", {})
    secrets = by_kind.get("Secret", {})
    workloads = {f"{o['kind']}/{o['metadata']['name']}": o for o in objs if pod_spec(o) is not None}

    # The INI of the ConfigMap, through the real loader.
    ini_cms = [cm for cm in configmaps.values() if "mailhook.ini" in (cm.get("data") or {})]
    ini = None
    if len(ini_cms) != 1:
        R.fail("k8s: ConfigMap", f"want one ConfigMap with key mailhook.ini, have {len(ini_cms)}")
    else:
        cm = ini_cms[0]
        ini = Ini(cm["data"]["mailhook.ini"], f"ConfigMap {cm['metadata']['name']}: mailhook.ini")
        prep = check_config(loader, ini, "config: deploy/k8s ConfigMap mailhook.ini")
        info["ini"] = ini
        info["prepared"] = prep

    # Workloads: selectors, containers, probes, resources, security, flags, mounts.
    problems = []
    role_of: dict[str, str] = {}
    for key, o in workloads.items():
        spec = o["spec"]
        tmpl_labels = ((spec.get("template") or {}).get("metadata") or {}).get("labels") or {}
        if o["kind"] != "Job":
            sel = (spec.get("selector") or {}).get("matchLabels") or {}
            if not labels_match(sel, tmpl_labels):
                problems.append(f"{key}: selector {sel} does not match template labels {tmpl_labels}")
        ps = pod_spec(o) or {}
        psc = ps.get("securityContext") or {}
        if not psc.get("runAsNonRoot") or psc.get("runAsUser") in (None, 0):
            problems.append(f"{key}: pod securityContext lacks runAsNonRoot and a non-zero runAsUser")
        if ps.get("automountServiceAccountToken") is not False:
            problems.append(f"{key}: mounts a service account token it does not need")
        volumes = {v["name"]: v for v in ps.get("volumes") or []}
        for c in ps.get("containers") or []:
            cw = f"{key}/{c.get('name')}"
            if not c.get("image"):
                problems.append(f"{cw}: no image")
            res = c.get("resources") or {}
            for kind in ("requests", "limits"):
                for r in ("cpu", "memory"):
                    if r not in (res.get(kind) or {}):
                        problems.append(f"{cw}: no {kind}.{r}")
            sc = c.get("securityContext") or {}
            if sc.get("allowPrivilegeEscalation") is not False:
                problems.append(f"{cw}: allowPrivilegeEscalation not false")
            if sc.get("readOnlyRootFilesystem") is not True:
                problems.append(f"{cw}: root file system not read-only")
            if "ALL" not in ((sc.get("capabilities") or {}).get("drop") or []):
                problems.append(f"{cw}: capabilities not dropped")
            argv = [str(x) for x in (c.get("command") or []) + (c.get("args") or [])]
            problems += check_argv(progs, argv, cw)
            prog = os.path.basename(argv[0]) if argv else ""
            role_of[key] = "init" if prog in ("sh", "bash") else prog
            ports = {p.get("name"): p.get("containerPort") for p in c.get("ports") or []}
            if ports:
                # A worker takes no traffic: liveness only.
                probes = ((("livenessProbe", "/healthz"),) if prog == "mailhook-worker" else
                          (("readinessProbe", "/readyz"), ("livenessProbe", "/healthz")))
                for probe, path in probes:
                    hg = (c.get(probe) or {}).get("httpGet") or {}
                    if hg.get("path") != path:
                        problems.append(f"{cw}: {probe} is not an HTTP GET of {path}")
                    elif hg.get("port") not in ports and hg.get("port") not in ports.values():
                        problems.append(f"{cw}: {probe} port {hg.get('port')} is not a container port")
            elif prog in ("mailhook-ingest", "mailhook-api"):
                problems.append(f"{cw}: {prog} declares no container port")
            # --config FILE is the ConfigMap's mailhook.ini, mounted.
            cfg = config_path_of(argv)
            mounted = False
            for m in c.get("volumeMounts") or []:
                vol = volumes.get(m["name"]) or {}
                cmref = (vol.get("configMap") or {}).get("name")
                if cmref and cfg and (cfg == f"{m['mountPath'].rstrip('/')}/mailhook.ini" or cfg == m["mountPath"]):
                    if ini_cms and cmref != ini_cms[0]["metadata"]["name"]:
                        problems.append(f"{cw}: mounts ConfigMap {cmref}, not {ini_cms[0]['metadata']['name']}")
                    mounted = True
            if not mounted:
                problems.append(f"{cw}: --config {cfg} is not the mounted ConfigMap")
            # Secrets the INI reads, from the pod's secret volumes; env from existing keys.
            if ini is not None:
                for section, k, value, line in ini.where(FILE_KEYS):
                    hit = False
                    for m in c.get("volumeMounts") or []:
                        sec = (volumes.get(m["name"]) or {}).get("secret")
                        mp = m["mountPath"].rstrip("/") + "/"
                        if sec and value.startswith(mp):
                            key_name = value[len(mp):]
                            s = secrets.get(sec.get("secretName"))
                            items = [i["path"] for i in sec.get("items") or []]
                            if items and key_name not in items:
                                continue
                            if s is not None and key_name not in {**(s.get("data") or {}), **(s.get("stringData") or {})}:
                                problems.append(f"{cw}: Secret {s['metadata']['name']} has no key {key_name} "
                                                f"({ini.label}:{line})")
                            hit = True
                    if not hit:
                        problems.append(f"{cw}: {value} ({k}, {ini.label}:{line}) is not mounted from a Secret; "
                                        f"every program reads every secret file")
                env_names = {e["name"] for e in c.get("env") or []}
                for _, _, var, line in ini.where(ENV_KEYS):
                    var = env_var(var)
                    if var not in env_names:
                        problems.append(f"{cw}: variable {var} ({ini.label}:{line}) is not set")
            for e in c.get("env") or []:
                ref = ((e.get("valueFrom") or {}).get("secretKeyRef")) or {}
                if ref:
                    s = secrets.get(ref.get("name"))
                    if s is not None and ref.get("key") not in {**(s.get("data") or {}), **(s.get("stringData") or {})}:
                        problems.append(f"{cw}: env {e['name']} refers to missing key {ref.get('key')}")
            if str(c.get("image", "")).split(":")[0].split("/")[-1] == "mailhook":
                tag = c["image"].partition(":")[2]
                if tag != cmake_version:
                    problems.append(f"{cw}: image {c['image']}, want tag {cmake_version} (kustomization images)")
    R.check("k8s: workloads", problems,
            "selectors, resources, security contexts, probes, flags, config and secret mounts")

    # Roles: ingest Deployment + HPA + PDB + Service, worker StatefulSet, init Job, api.
    problems = []
    roles = {}
    for key, role in role_of.items():
        roles.setdefault(role, []).append(key)
    want = {"mailhook-ingest": "Deployment", "mailhook-worker": "StatefulSet",
            "mailhook-api": "Deployment", "init": "Job"}
    for role, kind in want.items():
        if not any(k.startswith(kind + "/") for k in roles.get(role, [])):
            problems.append(f"no {kind} runs {role}")
    for key in roles.get("init", []):
        c = (pod_spec(workloads[key]) or {}).get("containers", [{}])[0]
        text = " ".join(str(x) for x in (c.get("command") or []) + (c.get("args") or []))
        if not (re.search(r"\btopics\b", text) and re.search(r"\bmigrate\b", text)):
            problems.append(f"{key} does not run both `mailhook topics` and `mailhook migrate`")
    for key in roles.get("mailhook-worker", []):
        o = workloads[key]
        c = (pod_spec(o) or {}).get("containers", [{}])[0]
        argv = [str(x) for x in (c.get("command") or []) + (c.get("args") or [])]
        inst = argv[argv.index("--instance") + 1] if "--instance" in argv else None
        m = re.fullmatch(r"\$\((\w+)\)", inst or "")
        env = {e["name"]: e for e in c.get("env") or []}
        src = ((env.get(m.group(1)) or {}).get("valueFrom") or {}).get("fieldRef", {}).get("fieldPath") if m else None
        if src != "metadata.name":
            problems.append(f"{key}: --instance is not the pod name from the downward API")
        svc = by_kind.get("Service", {}).get(o["spec"].get("serviceName"))
        if svc is None or (svc.get("spec") or {}).get("clusterIP") != "None":
            problems.append(f"{key}: serviceName {o['spec'].get('serviceName')} is not a headless Service here")
        if ini is not None:
            parts = int(ini.get("worker", "raw_partitions", "6") or 6)
            if int(o["spec"].get("replicas", 1)) > parts:
                problems.append(f"{key}: {o['spec'].get('replicas')} replicas > raw_partitions {parts}")
    R.check("k8s: roles", problems, "ingest, worker (pod name as --instance), api, init Job")

    # Services, PDBs, HPAs point at real pods and ports; ports match the INI.
    problems = []
    for name, svc in by_kind.get("Service", {}).items():
        sel = (svc.get("spec") or {}).get("selector") or {}
        targets = [o for o in workloads.values()
                   if labels_match(sel, ((o["spec"].get("template") or {}).get("metadata") or {}).get("labels") or {})]
        if not targets:
            problems.append(f"Service/{name}: selector {sel} matches no pods")
            continue
        cports = {}
        for o in targets:
            for c in (pod_spec(o) or {}).get("containers") or []:
                for p in c.get("ports") or []:
                    cports[p.get("name")] = p.get("containerPort")
        for p in (svc.get("spec") or {}).get("ports") or []:
            tp = p.get("targetPort", p.get("port"))
            if tp not in cports and tp not in cports.values():
                problems.append(f"Service/{name}: targetPort {tp} is not a port of its pods")
    for name, pdb in by_kind.get("PodDisruptionBudget", {}).items():
        sel = ((pdb.get("spec") or {}).get("selector") or {}).get("matchLabels") or {}
        if not any(labels_match(sel, ((o["spec"].get("template") or {}).get("metadata") or {}).get("labels") or {})
                   for o in workloads.values() if o["kind"] != "Job"):
            problems.append(f"PodDisruptionBudget/{name}: selector matches no workload")
    hpa_targets = set()
    for name, hpa in by_kind.get("HorizontalPodAutoscaler", {}).items():
        ref = (hpa.get("spec") or {}).get("scaleTargetRef") or {}
        key = f"{ref.get('kind')}/{ref.get('name')}"
        hpa_targets.add(key)
        if key not in workloads:
            problems.append(f"HorizontalPodAutoscaler/{name}: target {key} does not exist")
        elif "replicas" in workloads[key]["spec"]:
            problems.append(f"{key}: sets replicas although HorizontalPodAutoscaler/{name} owns them")
    for key in roles.get("mailhook-ingest", []):
        if key not in hpa_targets:
            problems.append(f"{key}: no HorizontalPodAutoscaler")
        if not any(labels_match(((p.get("spec") or {}).get("selector") or {}).get("matchLabels") or {},
                                ((workloads[key]["spec"].get("template") or {}).get("metadata") or {}).get("labels") or {})
                   for p in by_kind.get("PodDisruptionBudget", {}).values()):
            problems.append(f"{key}: no PodDisruptionBudget")
    if ini is not None:
        for role, section in (("mailhook-ingest", "ingest"), ("mailhook-api", "api")):
            listen = ini.get(section, "listen", "127.0.0.1:8080" if section == "ingest" else "127.0.0.1:8081")
            host, port = split_listen(listen)
            if host not in ("0.0.0.0", "::", ""):
                problems.append(f"[{section}] listen {listen} is not reachable from outside the pod")
            for key in roles.get(role, []):
                ps = pod_spec(workloads[key]) or {}
                cports = [p.get("containerPort") for c in ps.get("containers") or [] for p in c.get("ports") or []]
                if port not in cports:
                    problems.append(f"{key}: containerPort {cports} is not [{section}] listen port {port}")
                ann = ((workloads[key]["spec"].get("template") or {}).get("metadata") or {}).get("annotations") or {}
                if ann.get("prometheus.io/scrape") == "true" and ann.get("prometheus.io/port") != str(port):
                    problems.append(f"{key}: prometheus.io/port {ann.get('prometheus.io/port')} is not {port}")
        mdir = ini.get("postgres", "migrations_dir")
        if mdir not in (None, IMAGE_MIGRATIONS_DIR):
            problems.append(f"[postgres] migrations_dir {mdir} is not where the image keeps them")
    R.check("k8s: services, disruption budgets, autoscaler, ports", problems)

    # Graceful stop: the grace period covers preStop and the ingest's drain.
    problems = []
    for key in roles.get("mailhook-ingest", []) + roles.get("mailhook-worker", []) + roles.get("mailhook-api", []):
        ps = pod_spec(workloads[key]) or {}
        grace = int(ps.get("terminationGracePeriodSeconds", 30))
        pre = 0
        for c in ps.get("containers") or []:
            cmd = (((c.get("lifecycle") or {}).get("preStop") or {}).get("exec") or {}).get("command") or []
            if cmd[:1] == ["sleep"]:
                pre = max(pre, int(cmd[1]))
        if grace < pre + INGEST_DRAIN_S + 5:
            problems.append(f"{key}: terminationGracePeriodSeconds {grace} < preStop {pre}s + drain {INGEST_DRAIN_S}s + 5s")
    R.check("k8s: graceful stop", problems)
    info["objects"] = objs
    info["workloads"] = workloads
    return info


# ---------------------------------------------------------------------------------------
# systemd (static part; systemd-analyze runs from tests/deploy/validate)

def parse_unit(text: str) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    section = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line[0] in "#;":
            continue
        if line.startswith("["):
            section = line.strip("[]")
            continue
        k, _, v = line.partition("=")
        out.setdefault(f"{section}.{k.strip()}", []).append(v.strip())
    return out


def check_systemd(progs: Programs) -> None:
    d = ROOT / "deploy/systemd"
    units = {"mailhook-ingest.service": "mailhook-ingest",
             "mailhook-worker@.service": "mailhook-worker",
             "mailhook-api.service": "mailhook-api"}
    problems = []
    for fname, prog in units.items():
        f = d / fname
        if not f.exists():
            problems.append(f"{fname} missing")
            continue
        u = parse_unit(f.read_text())
        execs = u.get("Service.ExecStart", [])
        if len(execs) != 1:
            problems.append(f"{fname}: want one ExecStart")
            continue
        argv = shlex.split(execs[0])
        if os.path.basename(argv[0]) != prog:
            problems.append(f"{fname}: ExecStart runs {argv[0]}, not {prog}")
        problems += check_argv(progs, argv, fname)
        if prog == "mailhook-worker":
            if "--instance" not in argv or argv[argv.index("--instance") + 1] != "%i":
                problems.append(f"{fname}: --instance is not %i")
        def one(key: str) -> str | None:
            v = u.get(f"Service.{key}")
            return v[-1] if v else None
        if one("Restart") != "on-failure":
            problems.append(f"{fname}: Restart={one('Restart')}, want on-failure")
        if one("KillSignal") not in ("SIGTERM", "TERM", "15"):
            problems.append(f"{fname}: KillSignal={one('KillSignal')}, want SIGTERM")
        stop = seconds(one("TimeoutStopSec") or "90s")
        if not INGEST_DRAIN_S + 5 <= stop <= 60:
            problems.append(f"{fname}: TimeoutStopSec={one('TimeoutStopSec')} does not fit a "
                            f"{INGEST_DRAIN_S} s graceful stop (want {INGEST_DRAIN_S + 5}..60 s)")
        for key, want in (("NoNewPrivileges", "yes"), ("ProtectSystem", "strict"),
                          ("ProtectHome", "yes"), ("PrivateTmp", "yes")):
            if one(key) != want:
                problems.append(f"{fname}: {key}={one(key)}, want {want}")
        if not one("User") or one("User") == "root":
            problems.append(f"{fname}: runs as root")
        if "Install.WantedBy" not in u:
            problems.append(f"{fname}: no [Install] WantedBy")
    R.check("systemd: units", problems, "ExecStart programs and options, %i instance, "
            "Restart, KillSignal, TimeoutStopSec, hardening")


# ---------------------------------------------------------------------------------------
# Prometheus

# The PromQL of the alert rules and the dashboard is read with promql-parser (the Rust
# parser Prometheus-compatible databases use, tests/requirements.txt): metric names and
# the labels of matchers and by/without/on/ignoring clauses come from its syntax tree.
try:
    import promql_parser  # type: ignore
except ImportError:  # reported as a skip by the checks that need it
    promql_parser = None


class PromqlUse:
    """What one PromQL expression relies on: selectors and grouping labels."""

    def __init__(self, expr: str) -> None:
        tree = promql_parser.parse(expr)  # ValueError on a syntax error
        # (metric, [(label, op, value)]) of every vector selector
        self.selectors: list[tuple[str, list[tuple[str, str, str]]]] = []
        # (clause, labels, metrics in its scope) of every by/without/on/ignoring/group_x
        self.groupings: list[tuple[str, list[str], set[str]]] = []

        def metrics_under(node: Any) -> set[str]:
            names: set[str] = set()

            def visit(n: Any) -> None:
                if isinstance(n, promql_parser.VectorSelector) and n.name:
                    names.add(n.name)
            promql_parser.walk(node, pre_visit=visit)
            return names

        def visit(n: Any) -> None:
            if isinstance(n, promql_parser.VectorSelector) and n.name:
                ms = [(m.name, str(m.op).rsplit(".", 1)[-1], m.value) for m in n.matchers.matchers
                      if m.name != "__name__"]
                self.selectors.append((n.name, ms))
            elif isinstance(n, promql_parser.AggregateExpr) and n.modifier is not None:
                kind = "by" if "By" in str(n.modifier.type) else "without"
                self.groupings.append((kind, list(n.modifier.labels), metrics_under(n.expr)))
            elif isinstance(n, promql_parser.BinaryExpr) and n.modifier is not None:
                scope = metrics_under(n.lhs) | metrics_under(n.rhs)
                if n.modifier.matching is not None:
                    kind = "on" if "Include" in str(n.modifier.matching.type) else "ignoring"
                    self.groupings.append((kind, list(n.modifier.matching.labels), scope))
                group = list(getattr(n.modifier, "group_labels", None) or [])
                if group:
                    self.groupings.append(("group_left/right", group, scope))
        promql_parser.walk(tree, pre_visit=visit)


def series_labels(served: dict[str, list[dict[str, str]]], metric: str) -> set[str] | None:
    """Labels a metric's series have once scraped (None: the metric is unknown)."""
    if metric in served:
        return set().union(*(s.keys() for s in served[metric])) | TARGET_LABELS
    if metric in KAFKA_EXPORTER_METRICS:
        return KAFKA_EXPORTER_METRICS[metric] | TARGET_LABELS
    if metric == "up":
        return set(TARGET_LABELS)
    return None


def histogram_family(metric: str) -> str:
    return re.sub(r"_(bucket|sum|count)$", "", metric)


def check_queries(queries: list[tuple[str, str]], served: dict[str, list[dict[str, str]]],
                  served_from: set[str]) -> tuple[list[str], set[str]]:
    """(problems, metrics not verifiable with this build) of (where, PromQL) pairs: every
    metric is one the programs (or the Kafka exporter) serve, every label of a matcher or
    a by/without/on/ignoring clause is one of its series' labels, and an = matcher's
    value is one a series has."""
    problems: list[str] = []
    unverified: set[str] = set()
    for where, expr in queries:
        try:
            use = PromqlUse(expr)
        except ValueError as e:
            problems.append(f"{where}: PromQL does not parse: {e}")
            continue
        labels_of: dict[str, set[str]] = {}
        for metric, matchers in use.selectors:
            labels = series_labels(served, metric)
            if labels is None:
                prefix = metric.split("_")[1] if metric.startswith("mailhook_") else ""
                if prefix and f"mailhook-{prefix}" not in served_from:
                    unverified.add(metric)
                elif prefix:
                    problems.append(f"{where}: {metric} is not served by mailhook-{prefix} "
                                    f"(family {histogram_family(metric)})")
                else:
                    problems.append(f"{where}: unknown metric {metric}")
                continue
            labels_of[metric] = labels
            for label, op, value in matchers:
                if label not in labels:
                    problems.append(f"{where}: {metric} has no label {label} (has {', '.join(sorted(labels))})")
                elif op == "Equal" and metric in served and label not in TARGET_LABELS \
                        and not any(s.get(label) == value for s in served[metric]):
                    problems.append(f"{where}: no {metric} series has {label}=\"{value}\"")
        for kind, labels, scope in use.groupings:
            known = [labels_of[m] for m in scope if m in labels_of]
            if len(known) != len(scope):
                continue  # a metric of the scope is reported (or unverifiable) above
            for label in labels:
                if not any(label in ls for ls in known):
                    problems.append(f"{where}: {kind} ({label}): no label {label} on "
                                    f"{', '.join(sorted(scope))}")
    return problems, unverified


# ---------------------------------------------------------------------------------------
# the programs' /metrics text

METRIC_TYPES = {"counter", "gauge", "histogram", "summary", "untyped"}
_NAME = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
_LABEL = r'[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\[\\"n])*"'
_SAMPLE = re.compile(rf"^({_NAME})(\{{(?:{_LABEL}(?:,{_LABEL})*,?)?\}})? (\S+)( -?\d+)?$")
_VALUE = re.compile(r"^[+-]?(Inf|NaN|\d+(\.\d*)?([eE][+-]?\d+)?|\.\d+([eE][+-]?\d+)?)$")


def exposition_problems(text: str) -> list[str]:
    """Strict line check of Prometheus' text format (0.0.4): every line is a HELP, TYPE,
    comment or sample line of the right form, and every metric family has exactly one
    # HELP with text and one # TYPE, both before its first sample."""
    problems: list[str] = []
    helps: dict[str, str] = {}
    types: dict[str, str] = {}
    sampled: set[str] = set()
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        if line.startswith("#"):
            m = re.match(rf"^# (HELP|TYPE) ({_NAME})(?: (.*))?$", line)
            if not m:
                continue  # a plain comment
            kind, name, rest = m.group(1), m.group(2), (m.group(3) or "").strip()
            seen = helps if kind == "HELP" else types
            if name in seen:
                problems.append(f"line {n}: second # {kind} of {name}")
            if name in sampled:
                problems.append(f"line {n}: # {kind} of {name} after its samples")
            if kind == "TYPE" and rest not in METRIC_TYPES:
                problems.append(f"line {n}: {name} has type {rest!r}")
            if kind == "HELP" and not rest:
                problems.append(f"line {n}: {name} has an empty HELP")
            seen[name] = rest
            continue
        m = _SAMPLE.match(line)
        if not m or not _VALUE.match(m.group(3)):
            problems.append(f"line {n}: not a sample line: {line[:80]!r}")
            continue
        name = m.group(1)
        family = histogram_family(name)
        if family == name or types.get(family) not in ("histogram", "summary"):
            family = name
        sampled.add(family)
    for family in sorted(sampled):
        for kind, seen in (("HELP", helps), ("TYPE", types)):
            if family not in seen:
                problems.append(f"{family} has no # {kind}")
    return problems


def promtool_path() -> str | None:
    p = os.environ.get("MH_PROMTOOL") or shutil.which("promtool")
    return p if p and os.access(p, os.X_OK) else None


def promtool_metrics_problems(promtool: str, text: str) -> list[str]:
    """`promtool check metrics` of an exposition: its complaints (no HELP, bad names,
    counters without _total, ...), empty when it has none."""
    p = subprocess.run([promtool, "check", "metrics"], input=text, capture_output=True, text=True,
                       timeout=60)
    out = (p.stdout + p.stderr).strip()
    if p.returncode == 0:
        return []
    return [ln.strip() for ln in out.splitlines() if ln.strip()] or [f"exit status {p.returncode}"]


# Expositions the checks must refuse: a family without # HELP; and a sample before its
# TYPE too (promtool stops at that one with a parse error).
NO_HELP_EXPOSITION = ("# HELP mailhook_selftest_total Requests.\n# TYPE mailhook_selftest_total counter\n"
                      "mailhook_selftest_total 1\n# TYPE mailhook_selftest_inflight gauge\n"
                      "mailhook_selftest_inflight 0\n")
BROKEN_EXPOSITION = NO_HELP_EXPOSITION + "mailhook_selftest_late 1\n# TYPE mailhook_selftest_late gauge\n"


def check_expositions(expositions: dict[str, str]) -> None:
    """Every program's live /metrics text: the strict line check, and promtool's linter
    when promtool is there (MH_PROMTOOL or PATH). Both must refuse a broken text."""
    broken = exposition_problems(BROKEN_EXPOSITION)
    if not any("mailhook_selftest_inflight has no # HELP" in p for p in broken) or \
            not any("mailhook_selftest_late after its samples" in p for p in broken):
        R.fail("metrics: text format self-test", f"a broken exposition passed: {broken}")
        return
    problems = [f"{prog}: {p}" for prog, text in sorted(expositions.items())
                for p in exposition_problems(text)]
    families = sum(len(re.findall(r"^# TYPE ", t, re.M)) for t in expositions.values())
    R.check("metrics: HELP and TYPE", problems,
            f"{families} families of {', '.join(sorted(expositions))}, each with # HELP and # TYPE "
            "(a family without HELP would fail)")
    promtool = promtool_path()
    if not promtool:
        R.skip("metrics: promtool check metrics", "promtool not installed (set MH_PROMTOOL)")
        return
    if not any("no help text" in p for p in promtool_metrics_problems(promtool, NO_HELP_EXPOSITION)):
        R.fail("metrics: promtool check metrics", "self-test: a metric without HELP passed promtool")
        return
    problems = [f"{prog}: {p}" for prog, text in sorted(expositions.items())
                for p in promtool_metrics_problems(promtool, text)]
    R.check("metrics: promtool check metrics", problems, ", ".join(sorted(expositions)))


def check_prometheus(served: dict[str, list[dict[str, str]]], served_from: set[str],
                     compose: dict[str, Any], k8s: dict[str, Any]) -> None:
    d = ROOT / "deploy/prometheus"
    rules_file = d / "mailhook.rules.yml"
    problems = []
    try:
        rules = yaml.safe_load(rules_file.read_text())
    except Exception as e:  # noqa: BLE001
        R.fail("prometheus: rules", str(e))
        return
    alerts = {}
    for g in rules.get("groups") or []:
        for r in g.get("rules") or []:
            if "alert" not in r:
                continue
            alerts[r["alert"]] = r
            if not (r.get("labels") or {}).get("severity"):
                problems.append(f"{r['alert']}: no severity label")
            if not (r.get("annotations") or {}).get("summary"):
                problems.append(f"{r['alert']}: no summary")
    R.check("prometheus: rules", problems, f"{len(alerts)} alerts")

    if promql_parser is None:
        R.skip("prometheus: alert metrics", "promql-parser is not installed (tests/requirements.txt)")
        problems, unverified = [], set()
    else:
        problems, unverified = check_queries(
            [(name, str(r.get("expr", ""))) for name, r in alerts.items()], served, served_from)
    for what, pattern in (("ingest 503 rate", r'mailhook_ingest_responses_total\{[^}]*code="503"'),
                          ("Kafka not ready", r"mailhook_ingest_kafka_ready"),
                          ("worker dead letters", r'topic="mailhook\.dlq"')):
        if not any(re.search(pattern, str(r.get("expr", ""))) for r in alerts.values()):
            problems.append(f"no alert for {what}")
    R.check("prometheus: alert metrics", problems,
            "metric names, labels and label values as the programs serve them" +
            (f" (not verifiable with this build: {', '.join(sorted(unverified))})" if unverified else ""))

    # Scrape targets: compose service names and the INI's ports; rule files exist.
    problems = []
    for f in ("prometheus.yml", "prometheus-kubernetes.yml"):
        cfg = yaml.safe_load((d / f).read_text())
        for rf in cfg.get("rule_files") or []:
            if not (d / rf).exists():
                problems.append(f"{f}: rule file {rf} missing")
        jobs = {j["job_name"]: j for j in cfg.get("scrape_configs") or []}
        for r in alerts.values():
            for job in re.findall(r'job="([^"]+)"', str(r.get("expr", ""))):
                k8s_jobs = {"mailhook-ingest", "mailhook-worker", "mailhook-api"} if "mailhook-pods" in jobs else set()
                if job not in jobs and job not in k8s_jobs:
                    problems.append(f"{f}: alert {r['alert']} uses job {job}, which is not scraped")
        if f == "prometheus.yml" and compose.get("ini") is not None:
            ini, services = compose["ini"], compose.get("services", {})
            roles = compose.get("roles", {})
            for job, prog, section, default in (("mailhook-ingest", "mailhook-ingest", "ingest", 8080),
                                                ("mailhook-api", "mailhook-api", "api", 8081)):
                listen = ini.get(section, "listen")
                port = split_listen(listen)[1] if listen else default
                targets = [t for sc in (jobs.get(job) or {}).get("static_configs") or [] for t in sc.get("targets") or []]
                if not targets:
                    problems.append(f"{f}: no static targets for {job}")
                for t in targets:
                    host, _, p = t.rpartition(":")
                    if host not in roles.get(prog, []) or int(p) != port:
                        problems.append(f"{f}: {job} target {t} is not a compose {prog} service on port {port}")
            for sc in (jobs.get("kafka-exporter") or {}).get("static_configs") or []:
                for t in sc.get("targets") or []:
                    if t.rpartition(":")[0] not in services:
                        problems.append(f"{f}: kafka-exporter target {t} is not a compose service")
    R.check("prometheus: scrape configs", problems, "targets match the compose services and the INI ports")


# ---------------------------------------------------------------------------------------
# Grafana

GRAFANA_DASHBOARD = "deploy/grafana/mailhook.json"
GRAFANA_PROVISIONING = "deploy/grafana/provisioning"
# Grafana's global variables, as a query would see them (ranges need a duration).
GRAFANA_RANGE_VARS = re.compile(r"\$\{?__(rate_interval|interval|range)(_ms|_s)?\}?")
GRAFANA_VARS = re.compile(r"\$\{(\w+)(?::[^}]*)?\}|\$(\w+)|\[\[(\w+)\]\]")
# label_values(metric{matchers}, label) / label_values(label) of a query variable.
LABEL_VALUES = re.compile(r"^\s*label_values\(\s*(?:(.+?)\s*,\s*)?([a-zA-Z_][a-zA-Z0-9_]*)\s*\)\s*$")


def grafana_panels(panels: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    """Every panel, those inside collapsed rows too."""
    for p in panels or []:
        yield p
        yield from grafana_panels(p.get("panels") or [])


def grafana_promql(expr: str, variables: set[str]) -> tuple[str, list[str]]:
    """(PromQL with Grafana's variables replaced by sample values, unknown variables)."""
    unknown: list[str] = []

    def one(m: re.Match) -> str:
        name = m.group(1) or m.group(2) or m.group(3)
        if name not in variables:
            unknown.append(name)
        return "placeholder"
    return GRAFANA_VARS.sub(one, GRAFANA_RANGE_VARS.sub("5m", expr)), unknown


def dashboard_queries(doc: dict[str, Any]) -> tuple[list[tuple[str, str]], list[str]]:
    """(where, PromQL) of every panel target and query variable, and problems found on the
    way (unknown variables). label_values(metric, label) becomes metric{label=~".+"}, so
    that the query check sees its metric and label."""
    variables = {v.get("name") for v in (doc.get("templating") or {}).get("list") or []}
    queries: list[tuple[str, str]] = []
    problems: list[str] = []
    for v in (doc.get("templating") or {}).get("list") or []:
        if v.get("type") != "query":
            continue
        q = v.get("query")
        q = q.get("query", "") if isinstance(q, dict) else str(q or "")
        m = LABEL_VALUES.match(q)
        if not m:
            problems.append(f"variable {v.get('name')}: query {q!r} is not label_values(metric, label)")
            continue
        metric, label = m.group(1), m.group(2)
        if not metric:
            problems.append(f"variable {v.get('name')}: label_values({label}) names no metric")
            continue
        # the series label_values reads: metric{..., label=~".+"}
        name, _, matchers = metric.partition("{")
        matchers = matchers.rstrip("}").strip()
        queries.append((f"variable {v.get('name')}",
                        f'{name}{{{matchers + "," if matchers else ""}{label}=~".+"}}'))
    for p in grafana_panels(doc.get("panels") or []):
        for t in p.get("targets") or []:
            if "expr" not in t:
                continue
            where = f"panel {p.get('id')} {p.get('title')!r} {t.get('refId', '')}".rstrip()
            expr, unknown = grafana_promql(str(t["expr"]), variables)
            problems += [f"{where}: unknown variable ${u}" for u in unknown]
            queries.append((where, expr))
    return queries, problems


def dashboard_problems(doc: dict[str, Any], served: dict[str, list[dict[str, str]]],
                       served_from: set[str]) -> tuple[list[str], set[str], int]:
    """(problems, unverifiable metrics, number of queries) of a dashboard."""
    problems: list[str] = []
    tvars = {v.get("name"): v for v in (doc.get("templating") or {}).get("list") or []}
    ds = [n for n, v in tvars.items() if v.get("type") == "datasource" and v.get("query") == "prometheus"]
    if not ds:
        problems.append("no Prometheus datasource variable (templating type datasource, query prometheus)")
    ds_refs = {f"${{{n}}}" for n in ds} | {f"${n}" for n in ds}
    ids = [p.get("id") for p in grafana_panels(doc.get("panels") or [])]
    if len(ids) != len(set(ids)):
        problems.append(f"panel ids repeat: {sorted(i for i in ids if ids.count(i) > 1)}")
    for p in grafana_panels(doc.get("panels") or []):
        if p.get("type") == "row":
            continue
        where = f"panel {p.get('id')} {p.get('title')!r}"
        for d in [p.get("datasource")] + [t.get("datasource") for t in p.get("targets") or []]:
            if d is not None and (d.get("uid") if isinstance(d, dict) else d) not in ds_refs:
                problems.append(f"{where}: datasource {d} is not the datasource variable")
        if not p.get("targets"):
            problems.append(f"{where}: no queries")
        for t in p.get("targets") or []:
            for rng in re.findall(r"\[([^\]]*)\]", str(t.get("expr", ""))):
                if rng.split(":")[0] != "$__rate_interval":
                    problems.append(f"{where}: range [{rng}], use [$__rate_interval]")
    for v in tvars.values():
        d = v.get("datasource")
        if v.get("type") == "query" and (d.get("uid") if isinstance(d, dict) else d) not in ds_refs:
            problems.append(f"variable {v.get('name')}: datasource {d} is not the datasource variable")
    queries, found = dashboard_queries(doc)
    problems += found
    qp, unverified = check_queries(queries, served, served_from)
    return problems + qp, unverified, len(queries)


def misspelled_dashboard(doc: dict[str, Any]) -> tuple[dict[str, Any], str, str]:
    """A copy of the dashboard with one metric misspelled and one grouping label renamed:
    (copy, the misspelled metric, the wrong label)."""
    bad = json.loads(json.dumps(doc))
    metric = label = ""
    for p in grafana_panels(bad.get("panels") or []):
        for t in p.get("targets") or []:
            expr = str(t.get("expr", ""))
            if not metric:
                m = re.search(r"\b(mailhook_[a-z_]+?)(_total|_bucket)\b", expr)
                if m:
                    metric = m.group(1) + "s" + m.group(2)
                    t["expr"] = expr.replace(m.group(0), metric, 1)
                    continue
            if not label:
                m = re.search(r"\bby \(([a-z_]+)", expr)
                if m and m.group(1) not in ("le",):
                    label = m.group(1) + "_name"
                    t["expr"] = expr.replace(m.group(0), f"by ({label}", 1)
    return bad, metric, label


def check_grafana(served: dict[str, list[dict[str, str]]], served_from: set[str],
                  compose: dict[str, Any]) -> None:
    path = ROOT / GRAFANA_DASHBOARD
    try:
        doc = json.loads(path.read_text())
    except Exception as e:  # noqa: BLE001
        R.fail("grafana: dashboard", f"{GRAFANA_DASHBOARD}: {e}")
        return
    if promql_parser is None:
        R.skip("grafana: dashboard queries", "promql-parser is not installed (tests/requirements.txt)")
        return
    # Self-test: the same dashboard with a misspelled metric and a label no series has fails.
    bad, metric, label = misspelled_dashboard(doc)
    found = " ".join(dashboard_problems(bad, served, served_from)[0])
    if not metric or not label or metric not in found or f"no label {label}" not in found:
        R.fail("grafana: dashboard self-test", f"a dashboard using {metric or '?'} and by ({label or '?'}) "
               f"passed: {found[:300]}")
        return
    problems, unverified, n = dashboard_problems(doc, served, served_from)
    R.check("grafana: dashboard queries", problems,
            f"{n} queries: every metric is served, every label exists (a misspelled metric or "
            "label fails)" + (f"; not verifiable with this build: {', '.join(sorted(unverified))}"
                              if unverified else ""))

    # Provisioning: the datasource is the compose Prometheus, the dashboards provider reads
    # the directory where compose mounts the dashboard.
    problems = []
    prov = ROOT / GRAFANA_PROVISIONING
    try:
        dsdoc = yaml.safe_load((prov / "datasources/prometheus.yml").read_text()) or {}
        dbdoc = yaml.safe_load((prov / "dashboards/mailhook.yml").read_text()) or {}
    except Exception as e:  # noqa: BLE001
        R.fail("grafana: provisioning", str(e))
        return
    proms = [d for d in dsdoc.get("datasources") or [] if d.get("type") == "prometheus"]
    if len(proms) != 1:
        problems.append(f"datasources/prometheus.yml: want one Prometheus datasource, have {len(proms)}")
    services = compose.get("services") or {}
    grafana = services.get("grafana")
    if grafana is None:
        problems.append("docker-compose.yml has no grafana service")
    for d in proms:
        u = urlsplit(str(d.get("url", "")))
        prom = services.get(u.hostname or "")
        if prom is None or "prometheus" not in str(prom.get("image", "")):
            problems.append(f"datasource url {d.get('url')}: {u.hostname} is not the compose Prometheus")
        elif u.port != 9090:
            problems.append(f"datasource url {d.get('url')}: Prometheus listens on 9090")
    if grafana is not None:
        env = {k: str(v) for k, v in (grafana.get("environment") or {}).items()}
        mounts = bind_mounts(grafana)
        prov_in = env.get("GF_PATHS_PROVISIONING", "/etc/grafana/provisioning")
        if mounts.get(Path(prov_in)) != prov.resolve():
            problems.append(f"grafana: {prov_in} is not mounted from {GRAFANA_PROVISIONING}")
        for p in dbdoc.get("providers") or []:
            target = str((p.get("options") or {}).get("path", ""))
            host = next((src / Path(target).relative_to(dst) for dst, src in mounts.items()
                         if Path(target).is_relative_to(dst)), None)
            if host is None or not (host.is_dir() and (host / path.name).is_file() or host == path):
                problems.append(f"dashboards provider {p.get('name')}: {target} is not where compose "
                                f"mounts {GRAFANA_DASHBOARD}")
        if "monitoring" not in (grafana.get("profiles") or []):
            problems.append("grafana is not in the monitoring profile")
        for k, v in env.items():
            if re.search(r"PASSWORD|SECRET|TOKEN|KEY", k) and not k.endswith("__FILE"):
                problems.append(f"grafana: {k} is set in docker-compose.yml; use a secret ({k}__FILE)")
            elif k.endswith("__FILE"):
                sname = v.removeprefix("/run/secrets/")
                have = {s if isinstance(s, str) else s.get("source") for s in grafana.get("secrets") or []}
                if not v.startswith("/run/secrets/") or sname not in have:
                    problems.append(f"grafana: {k}={v} is not a secret of the service")
    R.check("grafana: provisioning", problems,
            "datasource is the compose Prometheus; the provider reads the mounted dashboard; "
            "passwords from secrets")


# ---------------------------------------------------------------------------------------

def cmake_project_version() -> str:
    m = re.search(r"project\(\s*mailhook\s+VERSION\s+([\d.]+)", (ROOT / "CMakeLists.txt").read_text())
    return m.group(1) if m else "?"


def main() -> int:
    global ROOT
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--build-dir", default=os.environ.get("MH_BUILD_DIR") or str(ROOT / "build"))
    ap.add_argument("--section", action="append",
                    help="only these sections (image, compose, k8s, systemd, prometheus, grafana)")
    ap.add_argument("--root", default=os.environ.get("MH_DEPLOY_ROOT"),
                    help="check the deployment files of this tree instead (default: this project)")
    opts = ap.parse_args()
    if opts.root:
        ROOT = Path(opts.root).resolve()
    sections = set(opts.section or ["image", "compose", "k8s", "systemd", "prometheus", "grafana"])
    build = Path(opts.build_dir)
    progs = Programs(build)
    missing = [p for p in PROGRAMS if not progs.has(p)]
    core_missing = [p for p in missing if p != "mailhook-api"]
    if core_missing:
        R.fail("programs", f"not built in {build}: {', '.join(core_missing)} (run tests/run or deploy/local/up)")
        print_summary()
        return 1
    if missing:
        R.skip("programs: mailhook-api", f"not built in {build}: its flags, [api] and runtime checks are left out")
    else:
        R.ok("programs", f"{', '.join(PROGRAMS)} in {build}")

    version = cmake_project_version()
    with tempfile.TemporaryDirectory(prefix="mh-deploy-") as t:
        tmp = Path(t)
        loader = LoaderCheck(progs, tmp)
        with guard("config: loader self-test"):
            # The loader check must be able to fail: a file with an unknown key is refused.
            bad = Ini("[ingest]\nlisten = 0.0.0.0:8080\nno_such_key = 1\n", "self-test.ini")
            text, env = loader.prepare(bad, drop_api=False)
            ok, msg = loader.load(text, env, bad.label)
            good = Ini("[ingest]\nlisten = 0.0.0.0:8080\n", "self-test.ini")
            text, env = loader.prepare(good, drop_api=False)
            ok2, msg2 = loader.load(text, env, good.label)
            progs.api_section = loader.api_supported()
            R.check("config: loader self-test",
                    ([] if not ok and "self-test.ini:3" in msg else [f"bad file not refused ({msg})"]) +
                    ([] if ok2 else [f"good file refused: {msg2}"]),
                    "`mailhook migrate` refuses a bad file with FILE:LINE and gets to PostgreSQL with a good one"
                    + ("" if progs.api_section else "; this build's loader has no [api]"))

        compose: dict[str, Any] = {}
        k8s: dict[str, Any] = {}
        if "image" in sections:
            with guard("image"):
                check_image(progs, version)
        if sections & {"compose", "prometheus", "grafana"}:
            with guard("compose"):
                compose = check_compose(progs, loader, tmp, version)
        if "k8s" in sections:
            with guard("k8s"):
                k8s = check_k8s(progs, loader, tmp, version)
        if "systemd" in sections:
            with guard("systemd"):
                check_systemd(progs)

        # The programs themselves, with the compose config: health endpoints and metrics.
        served: dict[str, list[dict[str, str]]] = {}
        served_from: set[str] = set()
        expositions: dict[str, str] = {}
        prepared = compose.get("prepared")
        if sections & {"compose", "prometheus", "grafana"}:
            if prepared is None:
                # The compose config did not load (reported above): run the programs with
                # a minimal config so that the alert rules are still checked.
                text = (f"[postgres]\ndsn = {dead_dsn('postgresql://mailhook@x/mailhook')}\n"
                        + ("[api]\ntoken = placeholder\n" if progs.api_section else ""))
                env = clean_env()
            else:
                text, env = prepared
            for prog, section in (("mailhook-ingest", "ingest"), ("mailhook-api", "api"),
                                  ("mailhook-worker", "worker")):
                if not progs.has(prog):
                    R.skip(f"programs: {prog} endpoints", "not built")
                    continue
                if section == "api" and not progs.api_section:
                    R.skip(f"programs: {prog} endpoints", "this build's loader has no [api]")
                    continue
                if section == "worker" and "--metrics-listen" not in progs.help.get(prog, ""):
                    R.skip(f"programs: {prog} endpoints", "this build's worker serves no metrics")
                    continue
                worker = section == "worker"
                with guard(f"programs: {prog} endpoints"):
                    m = probe_program(progs, prog, section, text, env, tmp, f"programs: {prog} endpoints",
                                      listen_key="metrics_listen" if worker else "listen",
                                      serves_traffic=not worker)
                    if m:
                        served.update(parse_metrics(m))
                        served_from.add(prog)
                        expositions[prog] = m
        if "prometheus" in sections:
            with guard("prometheus"):
                check_prometheus(served, served_from, compose, k8s)
            with guard("metrics"):
                check_expositions(expositions)
        if "grafana" in sections:
            with guard("grafana"):
                check_grafana(served, served_from, compose)
    print_summary()
    return 1 if R.counts["FAIL"] else 0


def print_summary() -> None:
    c = R.counts
    print(f"checks.py: {c['ok']} passed, {c['FAIL']} failed, {c['skip']} skipped", flush=True)


if __name__ == "__main__":
    sys.exit(main())

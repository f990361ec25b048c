"""docker-compose.yml against the programs and mailhook.ini (the Compose Specification
schema and compose-go's loader, from tests/deploy/validate, check the file itself): the
commands' programs and options, the mounted config through mailhook's loader, the roles
(init, two workers with distinct --instance), ports and health checks against the INI's
listeners, the start order, and where the INI points (Kafka, PostgreSQL, secrets)."""

from __future__ import annotations

import os
import re
import shlex
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

from config_loader import ENV_KEYS, FILE_KEYS, Ini, LoaderCheck, env_var
from endpoints import INGEST_DRAIN_S
from image import IMAGE_MIGRATIONS_DIR
from programs import Programs, check_argv, option_value, split_listen
from report import R

DEFAULT_LISTEN = {"ingest": "127.0.0.1:8080", "api": "127.0.0.1:8081"}


def command(svc: dict[str, Any]) -> list[str]:
    cmd = svc.get("command")
    return shlex.split(cmd) if isinstance(cmd, str) else [str(c) for c in cmd or []]


def default_of(value: str) -> str:
    """${VAR:-default} as Compose reads it when VAR is unset."""
    return re.sub(r"\$\{[A-Z0-9_]+:?-([^}]*)\}", r"\1", value)


def bind_mounts(root: Path, svc: dict[str, Any]) -> dict[Path, Path]:
    """{path in the container: path on the host} of a service's bind mounts."""
    out: dict[Path, Path] = {}
    for v in svc.get("volumes") or []:
        src, _, rest = v.partition(":") if isinstance(v, str) else (str(v.get("source", "")), "", str(v.get("target")))
        src = default_of(src)
        if src.startswith((".", "/")):
            out[Path(rest.split(":")[0])] = (root / src).resolve()
    return out


def healthcheck_test(svc: dict[str, Any]) -> str:
    test = (svc.get("healthcheck") or {}).get("test") or ""
    return " ".join(test) if isinstance(test, list) else str(test)


def seconds(value: str) -> float:
    units = {"ms": 0.001, "s": 1, "": 1, "m": 60, "h": 3600}
    return sum(float(n) * units[u] for n, u in re.findall(r"(\d+(?:\.\d+)?)(ms|s|m|h)?", str(value)))


def check_compose(root: Path, progs: Programs, loader: LoaderCheck, version: str) -> dict[str, Any]:
    doc = yaml.safe_load((root / "docker-compose.yml").read_text())
    services: dict[str, Any] = doc.get("services") or {}
    mh = {n: s for n, s in services.items() if str(s.get("image", "")).split(":")[0] == "mailhook"}

    problems = []
    config_files = set()
    roles: dict[str, list[str]] = {}
    for name, svc in mh.items():
        argv = command(svc)
        problems += check_argv(progs, argv, name)
        cfg = option_value(argv, "--config", "-c")
        mounts = bind_mounts(root, svc)
        if cfg is None or Path(cfg) not in mounts:
            problems.append(f"{name}: --config {cfg} is not a mounted file")
        else:
            config_files.add(mounts[Path(cfg)])
        if str(svc.get("image")) != f"mailhook:{version}":
            problems.append(f"{name}: image {svc.get('image')}, want mailhook:{version}")
        prog = os.path.basename(argv[0]) if argv else ""
        roles.setdefault("init" if prog in ("sh", "bash") else prog, []).append(name)
    R.check("compose: mailhook commands", problems, "programs, options and --config mounts of " + ", ".join(mh))
    if len(config_files) != 1:
        R.fail("compose: config", f"the mailhook services mount {len(config_files)} configs, want one")
        return {}
    ini_path = next(iter(config_files))
    ini = Ini(ini_path.read_text(), ini_path.relative_to(root.resolve()).as_posix())
    info: dict[str, Any] = {"ini": ini, "services": services, "roles": roles,
                            "prepared": loader.check(ini, f"config: {ini.label}")}

    problems = [f"no {want} service" for want in ("mailhook-ingest", "mailhook-worker", "mailhook-api", "init")
                if want not in roles]
    init = roles.get("init", ["?"])[0]
    init_cmd = " ".join(command(services.get(init, {})))
    if not (re.search(r"\btopics\b", init_cmd) and re.search(r"\bmigrate\b", init_cmd)):
        problems.append("init does not run both `mailhook topics` and `mailhook migrate`")
    workers = roles.get("mailhook-worker", [])
    instances = [option_value(command(services[w]), "--instance", "-i") for w in workers]
    if len(workers) < 2:
        problems.append(f"{len(workers)} worker(s), want two")
    if None in instances or len(set(instances)) != len(instances):
        problems.append(f"workers need distinct --instance values, have {instances}")
    parts = int(ini.get("worker", "raw_partitions", "6") or 6)
    if len(workers) > parts:
        problems.append(f"{len(workers)} workers > raw_partitions {parts}")
    R.check("compose: roles", problems, f"init, ingest, api, workers {instances}")

    # Ports and health checks against the INI's listeners and the worker's --metrics-listen.
    problems = []
    for prog, section in (("mailhook-ingest", "ingest"), ("mailhook-api", "api")):
        listen = ini.get(section, "listen", DEFAULT_LISTEN[section]) or ""
        host, port = split_listen(listen)
        for name in roles.get(prog, []):
            svc = services[name]
            if host not in ("0.0.0.0", "::", ""):
                problems.append(f"{name}: [{section}] listen {listen} is not reachable from outside the container")
            published = [int(str(p if not isinstance(p, dict) else p.get("target")).split(":")[-1].split("/")[0])
                         for p in svc.get("ports") or []]
            if port not in published:
                problems.append(f"{name}: container port {port} ([{section}] listen) is not published")
            if not re.search(rf"(127\.0\.0\.1|localhost):{port}/readyz", healthcheck_test(svc)):
                problems.append(f"{name}: healthcheck does not probe /readyz on port {port}")
    for name in mh:
        if seconds(str(mh[name].get("stop_grace_period", "10s"))) < INGEST_DRAIN_S + 5:
            problems.append(f"{name}: stop_grace_period < {INGEST_DRAIN_S + 5}s (the ingest drains {INGEST_DRAIN_S}s)")
    for name in workers + roles.get("init", []):
        svc = services[name]
        metrics = option_value(command(svc), "--metrics-listen", "-m")
        if metrics is None:
            if not (svc.get("healthcheck") or {}).get("disable"):
                problems.append(f"{name}: serves no HTTP, disable the image's healthcheck")
        elif not re.search(rf"(127\.0\.0\.1|localhost):{split_listen(metrics)[1]}/healthz", healthcheck_test(svc)):
            problems.append(f"{name}: healthcheck does not probe /healthz on its metrics port")
    R.check("compose: ports and healthchecks", problems)

    def waits(name: str, dep: str, condition: str) -> bool:
        deps = services.get(name, {}).get("depends_on") or {}
        return isinstance(deps, dict) and (deps.get(dep) or {}).get("condition") == condition

    problems = [f"init does not wait for {d} to be healthy" for d in ("kafka", "postgres")
                if not waits(init, d, "service_healthy")]
    problems += [f"{n} does not wait for init to complete" for p in ("mailhook-ingest", "mailhook-worker",
                 "mailhook-api") for n in roles.get(p, []) if not waits(n, init, "service_completed_successfully")]
    R.check("compose: start order", problems, "init after Kafka and PostgreSQL are healthy, the programs after init")

    # Where the INI points: the Kafka and PostgreSQL services, secrets, variables.
    problems = []
    kenv = {k: str(v) for k, v in (services.get("kafka", {}).get("environment") or {}).items()}
    adv = kenv.get("KAFKA_ADVERTISED_LISTENERS", "")
    for hp in (ini.get("kafka", "bootstrap.servers", "") or "").split(","):
        if f"//{hp.strip()}" not in adv:
            problems.append(f"bootstrap.servers {hp} is not an advertised listener of kafka ({adv})")
    dsn = urlsplit(ini.get("postgres", "dsn", "") or "")
    pg = services.get(dsn.hostname or "", {})
    penv = {k: default_of(str(v)) for k, v in (pg.get("environment") or {}).items()}
    if not str(pg.get("image", "")).startswith("postgres:"):
        problems.append(f"[postgres] dsn host {dsn.hostname} is not a postgres service")
    elif dsn.username != penv.get("POSTGRES_USER") or dsn.path.lstrip("/") != penv.get("POSTGRES_DB"):
        problems.append("[postgres] dsn user/database differ from POSTGRES_USER/POSTGRES_DB")
    if ini.get("postgres", "migrations_dir") not in (None, IMAGE_MIGRATIONS_DIR):
        problems.append(f"[postgres] migrations_dir is not where the image keeps them ({IMAGE_MIGRATIONS_DIR})")
    for name, svc in mh.items():
        env = {k: default_of(str(v)) for k, v in (svc.get("environment") or {}).items()}
        if env.get("PGPASSWORD") != penv.get("POSTGRES_PASSWORD") and "MAILHOOK_PG_DSN" not in env:
            problems.append(f"{name}: PGPASSWORD does not match the postgres service's password")
        have = {s if isinstance(s, str) else s.get("source") for s in svc.get("secrets") or []}
        for _, key, value, line in ini.where(FILE_KEYS):
            if not value.startswith("/run/secrets/"):
                problems.append(f"{ini.label}:{line}: {key} {value} is not a compose secret")
            elif value.removeprefix("/run/secrets/") not in have:
                problems.append(f"{name}: lacks secret {value.removeprefix('/run/secrets/')} ({ini.label}:{line})")
        for _, _, var, line in ini.where(ENV_KEYS):
            if env_var(var) not in env:
                problems.append(f"{name}: variable {env_var(var)} ({ini.label}:{line}) is not set")
    for sname, spec in (doc.get("secrets") or {}).items():
        if not (root / default_of(str((spec or {}).get("file", "")))).is_file():
            problems.append(f"secret {sname}: file {(spec or {}).get('file')} missing")
    R.check("compose: kafka, postgres and secrets of the INI", problems)
    return info

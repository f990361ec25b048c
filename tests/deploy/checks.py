#!/usr/bin/env python3
"""mailhook's own checks of its deployment files: what only mailhook's programs and
files can tell. The structure of each file is left to the ecosystem's validators, run by
tests/deploy/validate (kubernetes-validate here, for deploy/k8s).

tests/deploy/validate runs this with the test venv's Python (PyYAML, kubernetes-validate,
promql-parser and prometheus-client from tests/requirements.txt). Everything runs offline:
no Docker engine, no Kubernetes cluster, no Kafka or PostgreSQL. Against the built
programs (--build-dir, MH_BUILD_DIR, default build/):

  config      the INI files a deployment mounts, through `mailhook config check`
  programs    each server started with the compose config: /healthz, /readyz, /metrics,
              the stop on SIGTERM (endpoints.py)
  metrics     every metric family they serve has HELP text and a TYPE; promtool check metrics
  image       Dockerfile and .dockerignore against the programs and CMake (image.py)
  compose     options, config mount, roles, ports, health checks, start order (compose.py)
  k8s         kubernetes-validate, then options, probes, mounts, ports, roles (k8s.py)
  systemd     ExecStart options, %i, SIGTERM and TimeoutStopSec (systemd.py)
  prometheus  alert queries against the served metrics, scrape targets (prometheus.py)
  grafana     dashboard queries against the served metrics, provisioning (grafana.py)

Each check prints one line: "ok   NAME", "FAIL NAME: why" or "skip NAME: why", then a
summary line. The loader, HELP, kubernetes-validate and dashboard checks test first that
they refuse a broken input; tests/e2e/test_deploy_artifacts.py breaks copies of the
files to prove the cross-checks fail. Exit status 1 when any check failed.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from compose import check_compose  # noqa: E402
from config_loader import LoaderCheck, clean_env, dead_dsn  # noqa: E402
from endpoints import Served, check_expositions, probe_program, served_series  # noqa: E402
from grafana import check_grafana  # noqa: E402
from image import check_image  # noqa: E402
from k8s import check_k8s  # noqa: E402
from programs import PROGRAMS, Programs  # noqa: E402
from prometheus import check_prometheus  # noqa: E402
from report import R, guard  # noqa: E402
from systemd import check_systemd  # noqa: E402

SECTIONS = ("image", "compose", "k8s", "systemd", "prometheus", "grafana")


def probe_all(progs: Programs, compose: dict[str, Any], tmp: Path) -> tuple[Served, set[str], dict[str, str]]:
    """Runs each server with the compose config (or, if it did not load, a minimal one, so
    that the queries are still checked): (served series, programs, their /metrics text)."""
    text, env = compose.get("prepared") or (f"[postgres]\ndsn = {dead_dsn('postgresql://mailhook@x/mailhook')}\n"
                                            "[api]\ntoken = placeholder\n", clean_env())
    served: Served = {}
    expositions: dict[str, str] = {}
    for prog, section in (("mailhook-ingest", "ingest"), ("mailhook-api", "api"), ("mailhook-worker", "worker")):
        worker = section == "worker"
        with guard(f"programs: {prog} endpoints"):
            m = probe_program(progs, prog, section, text, env, tmp,
                              listen_key="metrics_listen" if worker else "listen", serves_traffic=not worker)
            if m:
                served.update(served_series(m))
                expositions[prog] = m
    return served, set(expositions), expositions


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--build-dir", default=os.environ.get("MH_BUILD_DIR") or "build")
    ap.add_argument("--section", action="append", choices=SECTIONS, help="only these sections")
    ap.add_argument("--root", default=os.environ.get("MH_DEPLOY_ROOT") or str(Path(__file__).resolve().parents[2]),
                    help="check the deployment files of this tree (default: this project)")
    opts = ap.parse_args()
    root = Path(opts.root).resolve()
    sections = set(opts.section or SECTIONS)
    build = Path(opts.build_dir).resolve()
    progs = Programs(build)
    missing = [p for p in PROGRAMS if not progs.has(p)]
    if missing:
        R.fail("programs", f"not built in {build}: {', '.join(missing)} (run tests/run or deploy/local/up)")
        R.summary()
        return 1
    R.ok("programs", f"{', '.join(PROGRAMS)} in {build}")
    cmake = (root / "CMakeLists.txt").read_text()
    version = (re.search(r"project\(\s*mailhook\s+VERSION\s+([\d.]+)", cmake) or [None, "?"])[1]

    with tempfile.TemporaryDirectory(prefix="mh-deploy-") as t:
        tmp = Path(t)
        loader = LoaderCheck(progs, tmp, root)
        with guard("config: loader self-test"):
            loader.self_test()
        compose: dict[str, Any] = {}
        if "image" in sections:
            with guard("image"):
                check_image(root, progs, version)
        if sections & {"compose", "prometheus", "grafana"}:
            with guard("compose"):
                compose = check_compose(root, progs, loader, version)
        if "k8s" in sections:
            with guard("k8s"):
                check_k8s(root, progs, loader, version)
        if "systemd" in sections:
            with guard("systemd"):
                check_systemd(root, progs)
        if sections & {"compose", "prometheus", "grafana"}:
            served, served_from, expositions = probe_all(progs, compose, tmp)
            if "prometheus" in sections:
                with guard("prometheus"):
                    check_prometheus(root, served, served_from, compose)
                with guard("metrics"):
                    check_expositions(expositions)
            if "grafana" in sections:
                with guard("grafana"):
                    check_grafana(root, served, served_from, compose)
    R.summary()
    return 1 if R.counts["FAIL"] else 0


if __name__ == "__main__":
    sys.exit(main())

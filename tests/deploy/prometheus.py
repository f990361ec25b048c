"""deploy/prometheus against the programs and the compose stack (promtool, from
tests/deploy/validate, checks the rules, their unit tests and the configs themselves):
every alert's metrics, labels and label values are served, the alerts mailhook needs
exist, every job an alert names is scraped, and the compose scrape targets are the
compose services on the INI's ports."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from endpoints import Served
from programs import split_listen
from promql import check_queries, promql_parser
from report import R

REQUIRED_ALERTS = {"ingest 503 rate": r'mailhook_ingest_responses_total\{[^}]*code="503"',
                   "Kafka not ready": r"mailhook_ingest_kafka_ready",
                   "worker dead letters": r'topic="mailhook\.dlq"'}
POD_JOBS = {"mailhook-ingest", "mailhook-worker", "mailhook-api"}  # relabelled by mailhook-pods


def check_prometheus(root: Path, served: Served, served_from: set[str], compose: dict[str, Any]) -> None:
    d = root / "deploy/prometheus"
    rules = yaml.safe_load((d / "mailhook.rules.yml").read_text()) or {}
    alerts = {r["alert"]: r for g in rules.get("groups") or [] for r in g.get("rules") or [] if "alert" in r}
    # Alertmanager routes on severity; the summary is what the page says.
    R.check("prometheus: rules", [f"{a}: no {what}" for a, r in alerts.items()
                                  for what, v in (("severity label", (r.get("labels") or {}).get("severity")),
                                                  ("summary", (r.get("annotations") or {}).get("summary"))) if not v],
            f"{len(alerts)} alerts, each with a severity and a summary")

    if promql_parser is None:
        R.skip("prometheus: alert metrics", "promql-parser is not installed (tests/requirements.txt)")
        problems, unverified = [], set()
    else:
        problems, unverified = check_queries([(n, str(r.get("expr", ""))) for n, r in alerts.items()],
                                             served, served_from)
    problems += [f"no alert for {what}" for what, pattern in REQUIRED_ALERTS.items()
                 if not any(re.search(pattern, str(r.get("expr", ""))) for r in alerts.values())]
    R.check("prometheus: alert metrics", problems,
            "metric names, labels and label values as the programs serve them" +
            (f" (not verifiable with this build: {', '.join(sorted(unverified))})" if unverified else ""))

    problems = []
    for f in ("prometheus.yml", "prometheus-kubernetes.yml"):
        jobs = {j["job_name"]: j for j in (yaml.safe_load((d / f).read_text()) or {}).get("scrape_configs") or []}
        known = set(jobs) | (POD_JOBS if "mailhook-pods" in jobs else set())
        problems += [f"{f}: alert {a} uses job {job}, which is not scraped" for a, r in alerts.items()
                     for job in re.findall(r'job="([^"]+)"', str(r.get("expr", ""))) if job not in known]
        if f != "prometheus.yml" or compose.get("ini") is None:
            continue
        ini, services, roles = compose["ini"], compose["services"], compose["roles"]
        for prog, section, default in (("mailhook-ingest", "ingest", 8080), ("mailhook-api", "api", 8081)):
            listen = ini.get(section, "listen")
            port = split_listen(listen)[1] if listen else default
            targets = [t for sc in (jobs.get(prog) or {}).get("static_configs") or [] for t in sc.get("targets") or []]
            if not targets:
                problems.append(f"{f}: no static targets for {prog}")
            problems += [f"{f}: {prog} target {t} is not a compose {prog} service on port {port}" for t in targets
                         if t.rpartition(":")[0] not in roles.get(prog, []) or int(t.rpartition(":")[2]) != port]
        problems += [f"{f}: kafka-exporter target {t} is not a compose service"
                     for sc in (jobs.get("kafka-exporter") or {}).get("static_configs") or []
                     for t in sc.get("targets") or [] if t.rpartition(":")[0] not in services]
    R.check("prometheus: scrape configs", problems, "alert jobs are scraped; targets are the compose services "
            "on the INI ports")

"""deploy/grafana: every query of the dashboard (panels and query variables) held
against the metrics the programs serve; a minimal structure check (no maintained schema
of Grafana's dashboard JSON is packaged for Python: the datasource is the dashboard's
variable, panel ids are unique, ranges are $__rate_interval); and the provisioning files
against the compose stack (the datasource is the compose Prometheus, the provider reads
where compose mounts the dashboard, passwords come from secrets)."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from typing import Any, Iterator
from urllib.parse import urlsplit

import yaml

from compose import bind_mounts
from endpoints import Served
from promql import check_queries, promql_parser
from report import R

DASHBOARD = "deploy/grafana/mailhook.json"
PROVISIONING = "deploy/grafana/provisioning"
# Grafana's range variables (a query needs a duration there) and the others.
RANGE_VARS = re.compile(r"\$\{?__(rate_interval|interval|range)(_ms|_s)?\}?")
VARS = re.compile(r"\$\{(\w+)(?::[^}]*)?\}|\$(\w+)|\[\[(\w+)\]\]")
# label_values(metric{matchers}, label) of a query variable.
LABEL_VALUES = re.compile(r"^\s*label_values\(\s*(?:(.+?)\s*,\s*)?([a-zA-Z_][a-zA-Z0-9_]*)\s*\)\s*$")


def panels(items: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    """Every panel, those inside collapsed rows too."""
    for p in items or []:
        yield p
        yield from panels(p.get("panels") or [])


def queries_of(doc: dict[str, Any]) -> tuple[list[tuple[str, str]], list[str]]:
    """(where, PromQL) of every query variable and panel target, and problems found on
    the way. label_values(metric, label) is queried as metric{label=~".+"}; Grafana's
    variables become sample values."""
    tvars = (doc.get("templating") or {}).get("list") or []
    names = {v.get("name") for v in tvars}
    queries, problems = [], []
    for v in tvars:
        if v.get("type") != "query":
            continue
        q = v.get("query")
        q = q.get("query", "") if isinstance(q, dict) else str(q or "")
        m = LABEL_VALUES.match(q)
        if not m or not m.group(1):
            problems.append(f"variable {v.get('name')}: query {q!r} is not label_values(metric, label)")
            continue
        metric, _, matchers = m.group(1).partition("{")
        matchers = matchers.rstrip("}").strip()
        queries.append((f"variable {v.get('name')}", f'{metric}{{{matchers + "," if matchers else ""}{m.group(2)}=~".+"}}'))
    for p in panels(doc.get("panels") or []):
        for t in p.get("targets") or []:
            if "expr" not in t:
                continue
            where = f"panel {p.get('id')} {p.get('title')!r} {t.get('refId', '')}".rstrip()
            unknown: list[str] = []

            def sub(m: re.Match) -> str:
                name = m.group(1) or m.group(2) or m.group(3)
                if name not in names:
                    unknown.append(name)
                return "placeholder"
            queries.append((where, VARS.sub(sub, RANGE_VARS.sub("5m", str(t["expr"])))))
            problems += [f"{where}: unknown variable ${u}" for u in unknown]
    return queries, problems


def dashboard_problems(doc: dict[str, Any], served: Served, served_from: set[str]) -> tuple[list[str], set[str], int]:
    """(problems, unverifiable metrics, number of queries) of a dashboard."""
    problems: list[str] = []
    tvars = {v.get("name"): v for v in (doc.get("templating") or {}).get("list") or []}
    ds = {f"${{{n}}}" for n, v in tvars.items() if v.get("type") == "datasource" and v.get("query") == "prometheus"}
    if not ds:
        problems.append("no Prometheus datasource variable (templating type datasource, query prometheus)")
    ds |= {s.replace("{", "").replace("}", "") for s in ds}
    ids = [p.get("id") for p in panels(doc.get("panels") or [])]
    problems += [f"panel id {i} repeats" for i in sorted({i for i in ids if ids.count(i) > 1}, key=str)]
    for p in panels(doc.get("panels") or []):
        if p.get("type") == "row":
            continue
        where = f"panel {p.get('id')} {p.get('title')!r}"
        if not p.get("targets"):
            problems.append(f"{where}: no queries")
        for d in [p.get("datasource")] + [t.get("datasource") for t in p.get("targets") or []]:
            if d is not None and (d.get("uid") if isinstance(d, dict) else d) not in ds:
                problems.append(f"{where}: datasource {d} is not the datasource variable")
        problems += [f"{where}: range [{r}], use [$__rate_interval]" for t in p.get("targets") or []
                     for r in re.findall(r"\[([^\]]*)\]", str(t.get("expr", ""))) if r.split(":")[0] != "$__rate_interval"]
    queries, found = queries_of(doc)
    qp, unverified = check_queries(queries, served, served_from)
    return problems + found + qp, unverified, len(queries)


def misspelled(doc: dict[str, Any]) -> tuple[dict[str, Any], str, str]:
    """A copy of the dashboard with one metric misspelled and one grouping label renamed:
    (copy, the misspelled metric, the wrong label)."""
    bad = copy.deepcopy(doc)
    metric = label = ""
    for p in panels(bad.get("panels") or []):
        for t in p.get("targets") or []:
            expr = str(t.get("expr", ""))
            if not metric and (m := re.search(r"\b(mailhook_[a-z_]+?)(_total|_bucket)\b", expr)):
                metric = m.group(1) + "s" + m.group(2)
                t["expr"] = expr.replace(m.group(0), metric, 1)
            elif not label and (m := re.search(r"\bby \(([a-z_]+)", expr)) and m.group(1) != "le":
                label = m.group(1) + "_name"
                t["expr"] = expr.replace(m.group(0), f"by ({label}", 1)
    return bad, metric, label


def check_grafana(root: Path, served: Served, served_from: set[str], compose: dict[str, Any]) -> None:
    doc = json.loads((root / DASHBOARD).read_text())
    if promql_parser is None:
        R.skip("grafana: dashboard queries", "promql-parser is not installed (tests/requirements.txt)")
    else:
        bad, metric, label = misspelled(doc)
        found = " ".join(dashboard_problems(bad, served, served_from)[0])
        if not metric or not label or metric not in found or f"no label {label}" not in found:
            R.fail("grafana: dashboard self-test", f"a dashboard using {metric or '?'} and by ({label or '?'}) "
                   f"passed: {found[:300]}")
        else:
            problems, unverified, n = dashboard_problems(doc, served, served_from)
            R.check("grafana: dashboard queries", problems,
                    f"{n} queries: every metric is served, every label exists (a misspelled metric or label "
                    "fails)" + (f"; not verifiable with this build: {', '.join(sorted(unverified))}" if unverified else ""))

    services = compose.get("services") or {}
    grafana = services.get("grafana")
    if grafana is None:
        R.fail("grafana: provisioning", "docker-compose.yml has no grafana service")
        return
    prov = root / PROVISIONING
    sources = yaml.safe_load((prov / "datasources/prometheus.yml").read_text()) or {}
    providers = yaml.safe_load((prov / "dashboards/mailhook.yml").read_text()) or {}
    proms = [d for d in sources.get("datasources") or [] if d.get("type") == "prometheus"]
    problems = [] if len(proms) == 1 else [f"want one Prometheus datasource, have {len(proms)}"]
    for d in proms:
        u = urlsplit(str(d.get("url", "")))
        if "prometheus" not in str(services.get(u.hostname or "", {}).get("image", "")) or u.port != 9090:
            problems.append(f"datasource url {d.get('url')} is not the compose Prometheus on 9090")
    env = {k: str(v) for k, v in (grafana.get("environment") or {}).items()}
    mounts = bind_mounts(root, grafana)
    prov_in = env.get("GF_PATHS_PROVISIONING", "/etc/grafana/provisioning")
    if mounts.get(Path(prov_in)) != prov.resolve():
        problems.append(f"grafana: {prov_in} is not mounted from {PROVISIONING}")
    for p in providers.get("providers") or []:
        target = Path(str((p.get("options") or {}).get("path", "")))
        host = next((src / target.relative_to(dst) for dst, src in mounts.items() if target.is_relative_to(dst)), None)
        if host is None or not (host / Path(DASHBOARD).name).is_file():
            problems.append(f"dashboards provider {p.get('name')}: {target} is not where compose mounts {DASHBOARD}")
    secrets = {s if isinstance(s, str) else s.get("source") for s in grafana.get("secrets") or []}
    for k, v in env.items():
        if k.endswith("__FILE") and v.removeprefix("/run/secrets/") not in secrets:
            problems.append(f"grafana: {k}={v} is not a secret of the service")
        elif not k.endswith("__FILE") and re.search(r"PASSWORD|SECRET|TOKEN|KEY", k):
            problems.append(f"grafana: {k} is set in docker-compose.yml; use a secret ({k}__FILE)")
    R.check("grafana: provisioning", problems, "datasource is the compose Prometheus; the provider reads the "
            "mounted dashboard; passwords from secrets")

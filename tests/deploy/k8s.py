"""deploy/k8s: rendered with `kubectl kustomize`, every object validated by
kubernetes-validate (strict: unknown fields fail) against the Kubernetes API's schemas,
which is the whole structural check; then what only mailhook can tell: the ConfigMap's
INI through mailhook's loader, the programs' options, probes on the programs' health
endpoints and ports, the config and secret mounts the INI needs, the roles, Services,
PodDisruptionBudgets and autoscalers pointing at real pods, replicas against the raw
partitions, and grace periods that cover the ingest's drain."""

from __future__ import annotations

import copy
import os
import re
import shutil
from pathlib import Path
from typing import Any

import yaml

from config_loader import ENV_KEYS, FILE_KEYS, Ini, LoaderCheck, env_var
from endpoints import INGEST_DRAIN_S
from image import IMAGE_MIGRATIONS_DIR
from programs import Programs, check_argv, option_value, split_listen
from report import R, run

WORKLOAD_KINDS = ("Deployment", "StatefulSet", "DaemonSet", "Job")
DEFAULT_LISTEN = {"ingest": "127.0.0.1:8080", "api": "127.0.0.1:8081"}


def render(kdir: Path) -> list[dict[str, Any]]:
    """The objects as `kubectl kustomize` renders them; without kubectl, the files and
    the generated ConfigMap (unhashed), so that the other checks still run."""
    kust = yaml.safe_load((kdir / "kustomization.yaml").read_text())
    listed = set(kust.get("resources") or []) | {"kustomization.yaml"}
    R.check("k8s: files", [f"{f.name} is not listed in kustomization.yaml resources"
                           for f in sorted(kdir.glob("*.yaml")) if f.name not in listed])
    if shutil.which("kubectl"):
        p = run(["kubectl", "kustomize", str(kdir)])
        if p.returncode == 0:
            objs = [d for d in yaml.safe_load_all(p.stdout) if d]
            R.ok("k8s: kustomize", f"`kubectl kustomize deploy/k8s` renders {len(objs)} objects")
            return objs
        R.fail("k8s: kustomize", p.stderr.strip()[:500])
    else:
        R.skip("k8s: kustomize", "kubectl not found; checking the files and a ConfigMap built here")
    objs = [d for f in kust.get("resources") or [] for d in yaml.safe_load_all((kdir / f).read_text()) if d]
    for gen in kust.get("configMapGenerator") or []:
        data = {Path(f).name: (kdir / f).read_text() for f in gen.get("files") or []}
        objs.append({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": gen["name"]}, "data": data})
    return objs


def check_schemas(objs: list[dict[str, Any]]) -> None:
    try:
        import kubernetes_validate  # type: ignore
    except ImportError:
        R.skip("k8s: schemas", "kubernetes-validate is not installed (tests/requirements.txt)")
        return
    # The oldest Kubernetes the manifests support (or the oldest bundled) and the newest.
    have = sorted(set(kubernetes_validate.utils.all_versions()), key=lambda v: tuple(map(int, v.split("."))))
    want_min = os.environ.get("MH_K8S_MIN_VERSION", "1.29.0")
    versions = list(dict.fromkeys([want_min if want_min in have else have[0], kubernetes_validate.latest_version()]))

    def problems_of(o: dict[str, Any], v: str) -> list[str]:
        name = f"{o.get('kind')}/{(o.get('metadata') or {}).get('name')} @ {v}"
        try:
            kubernetes_validate.validate(o, v, strict=True)
        except kubernetes_validate.ValidationError as e:
            return [f"{name}: {'.'.join(str(p) for p in e.path)}: {e.message}"]
        except Exception as e:  # noqa: BLE001 - unknown kind or version
            return [f"{name}: {e}"]
        return []

    # Self-test: a workload with an unknown container field must fail.
    workload = next((o for o in objs if o.get("kind") in WORKLOAD_KINDS), None)
    if workload is None:
        R.fail("k8s: schemas", "no workload to self-test with")
        return
    broken = copy.deepcopy(workload)
    broken["spec"]["template"]["spec"]["containers"][0]["imagePullPolice"] = "Always"
    if not any("imagePullPolice" in p for p in problems_of(broken, versions[-1])):
        R.fail("k8s: schemas", "self-test: a container with an unknown field passed kubernetes-validate")
        return
    R.check("k8s: schemas", [p for v in versions for o in objs for p in problems_of(o, v)],
            f"{len(objs)} objects valid (strict) against Kubernetes {', '.join(versions)} "
            "(an unknown field fails)")


def labels_match(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


def template_labels(o: dict[str, Any]) -> dict[str, str]:
    return ((o["spec"].get("template") or {}).get("metadata") or {}).get("labels") or {}


def pod_spec(o: dict[str, Any]) -> dict[str, Any]:
    return (o["spec"].get("template") or {}).get("spec") or {}


def check_k8s(root: Path, progs: Programs, loader: LoaderCheck, version: str) -> None:
    objs = render(root / "deploy/k8s")
    check_schemas(objs)
    by_kind: dict[str, dict[str, dict[str, Any]]] = {}
    for o in objs:
        by_kind.setdefault(o["kind"], {})[o["metadata"]["name"]] = o
    secrets = by_kind.get("Secret", {})
    workloads = {f"{o['kind']}/{o['metadata']['name']}": o for o in objs if o["kind"] in WORKLOAD_KINDS}

    ini_cms = [cm for cm in by_kind.get("ConfigMap", {}).values() if "mailhook.ini" in (cm.get("data") or {})]
    if len(ini_cms) != 1:
        R.fail("k8s: ConfigMap", f"want one ConfigMap with key mailhook.ini, have {len(ini_cms)}")
        return
    cm_name = ini_cms[0]["metadata"]["name"]
    ini = Ini(ini_cms[0]["data"]["mailhook.ini"], f"ConfigMap {cm_name}: mailhook.ini")
    loader.check(ini, "config: deploy/k8s ConfigMap mailhook.ini")

    def secret_has(name: str | None, key: str | None) -> bool:
        s = secrets.get(name or "")
        return s is None or key in {**(s.get("data") or {}), **(s.get("stringData") or {})}

    # Workloads: selectors, the programs' options, probes, config and secret mounts.
    problems = []
    role_of: dict[str, str] = {}
    for key, o in workloads.items():
        if o["kind"] != "Job" and not labels_match((o["spec"].get("selector") or {}).get("matchLabels") or {},
                                                   template_labels(o)):
            problems.append(f"{key}: selector does not match template labels")
        volumes = {v["name"]: v for v in pod_spec(o).get("volumes") or []}
        for c in pod_spec(o).get("containers") or []:
            cw = f"{key}/{c.get('name')}"
            argv = [str(x) for x in (c.get("command") or []) + (c.get("args") or [])]
            problems += check_argv(progs, argv, cw)
            prog = os.path.basename(argv[0]) if argv else ""
            role_of[key] = "init" if prog in ("sh", "bash") else prog
            ports = {p.get("name"): p.get("containerPort") for p in c.get("ports") or []}
            # A worker takes no traffic: liveness only.
            probes = ([("livenessProbe", "/healthz")] if prog == "mailhook-worker" else
                      [("readinessProbe", "/readyz"), ("livenessProbe", "/healthz")]) if ports else []
            if not ports and prog in ("mailhook-ingest", "mailhook-api"):
                problems.append(f"{cw}: {prog} declares no container port")
            for probe, path in probes:
                hg = (c.get(probe) or {}).get("httpGet") or {}
                if hg.get("path") != path:
                    problems.append(f"{cw}: {probe} is not an HTTP GET of {path}")
                elif hg.get("port") not in ports and hg.get("port") not in ports.values():
                    problems.append(f"{cw}: {probe} port {hg.get('port')} is not a container port")
            cfg = option_value(argv, "--config", "-c") or ""
            mounts = {m["mountPath"].rstrip("/"): volumes.get(m["name"]) or {} for m in c.get("volumeMounts") or []}
            cfg_vol = mounts.get(os.path.dirname(cfg)) if cfg.endswith("/mailhook.ini") else mounts.get(cfg)
            if ((cfg_vol or {}).get("configMap") or {}).get("name") != cm_name:
                problems.append(f"{cw}: --config {cfg} is not the mounted ConfigMap {cm_name}")
            for _, k, value, line in ini.where(FILE_KEYS):
                sec = (mounts.get(os.path.dirname(value)) or {}).get("secret")
                items = [i["path"] for i in (sec or {}).get("items") or []]
                if not sec or (items and os.path.basename(value) not in items):
                    problems.append(f"{cw}: {value} ({k}, {ini.label}:{line}) is not mounted from a Secret")
                elif not items and not secret_has(sec.get("secretName"), os.path.basename(value)):
                    problems.append(f"{cw}: Secret {sec.get('secretName')} has no key {os.path.basename(value)}")
            env = {e["name"]: e for e in c.get("env") or []}
            problems += [f"{cw}: variable {env_var(v)} ({ini.label}:{line}) is not set"
                         for _, _, v, line in ini.where(ENV_KEYS) if env_var(v) not in env]
            for e in env.values():
                ref = (e.get("valueFrom") or {}).get("secretKeyRef")
                if ref and not secret_has(ref.get("name"), ref.get("key")):
                    problems.append(f"{cw}: env {e['name']} refers to missing key {ref.get('key')}")
            if str(c.get("image", "")).split(":")[0].split("/")[-1] == "mailhook" and \
                    c["image"].partition(":")[2] != version:
                problems.append(f"{cw}: image {c['image']}, want tag {version} (kustomization images)")
    R.check("k8s: workloads", problems, "selectors, programs' options, probes, config and secret mounts")

    # Roles: ingest Deployment, worker StatefulSet (pod name as --instance), api, init Job.
    roles: dict[str, list[str]] = {}
    for key, role in role_of.items():
        roles.setdefault(role, []).append(key)
    want = {"mailhook-ingest": "Deployment", "mailhook-worker": "StatefulSet", "mailhook-api": "Deployment", "init": "Job"}
    problems = [f"no {kind} runs {role}" for role, kind in want.items()
                if not any(k.startswith(kind + "/") for k in roles.get(role, []))]
    for key in roles.get("init", []):
        c = pod_spec(workloads[key])["containers"][0]
        text = " ".join(str(x) for x in (c.get("command") or []) + (c.get("args") or []))
        if not (re.search(r"\btopics\b", text) and re.search(r"\bmigrate\b", text)):
            problems.append(f"{key} does not run both `mailhook topics` and `mailhook migrate`")
    parts = int(ini.get("worker", "raw_partitions", "6") or 6)
    for key in roles.get("mailhook-worker", []):
        o = workloads[key]
        c = pod_spec(o)["containers"][0]
        argv = [str(x) for x in (c.get("command") or []) + (c.get("args") or [])]
        m = re.fullmatch(r"\$\((\w+)\)", option_value(argv, "--instance", "-i") or "")
        env = {e["name"]: e for e in c.get("env") or []}
        field = (((env.get(m.group(1)) if m else None) or {}).get("valueFrom") or {}).get("fieldRef") or {}
        if field.get("fieldPath") != "metadata.name":
            problems.append(f"{key}: --instance is not the pod name from the downward API")
        if int(o["spec"].get("replicas", 1)) > parts:
            problems.append(f"{key}: {o['spec'].get('replicas')} replicas > raw_partitions {parts}")
    R.check("k8s: roles", problems, "ingest, worker (pod name as --instance), api, init Job")

    # Services, PDBs, HPAs point at real pods and ports; ports match the INI.
    problems = []
    for name, svc in by_kind.get("Service", {}).items():
        sel = (svc.get("spec") or {}).get("selector") or {}
        targets = [o for o in workloads.values() if labels_match(sel, template_labels(o))]
        cports = {p.get("name"): p.get("containerPort") for o in targets
                  for c in pod_spec(o).get("containers") or [] for p in c.get("ports") or []}
        if not targets:
            problems.append(f"Service/{name}: selector {sel} matches no pods")
        for p in (svc.get("spec") or {}).get("ports") or []:
            tp = p.get("targetPort", p.get("port"))
            if targets and tp not in cports and tp not in cports.values():
                problems.append(f"Service/{name}: targetPort {tp} is not a port of its pods")
    pdbs = [((p.get("spec") or {}).get("selector") or {}).get("matchLabels") or {}
            for p in by_kind.get("PodDisruptionBudget", {}).values()]
    hpa_targets = {f"{r.get('kind')}/{r.get('name')}": n for n, h in by_kind.get("HorizontalPodAutoscaler", {}).items()
                   for r in [(h.get("spec") or {}).get("scaleTargetRef") or {}]}
    for key, hpa in hpa_targets.items():
        if key not in workloads:
            problems.append(f"HorizontalPodAutoscaler/{hpa}: target {key} does not exist")
        elif "replicas" in workloads[key]["spec"]:
            problems.append(f"{key}: sets replicas although HorizontalPodAutoscaler/{hpa} owns them")
    for key in roles.get("mailhook-ingest", []):
        if key not in hpa_targets:
            problems.append(f"{key}: no HorizontalPodAutoscaler")
        if not any(labels_match(sel, template_labels(workloads[key])) for sel in pdbs):
            problems.append(f"{key}: no PodDisruptionBudget")
    for role, section in (("mailhook-ingest", "ingest"), ("mailhook-api", "api")):
        listen = ini.get(section, "listen", DEFAULT_LISTEN[section]) or ""
        host, port = split_listen(listen)
        if host not in ("0.0.0.0", "::", ""):
            problems.append(f"[{section}] listen {listen} is not reachable from outside the pod")
        for key in roles.get(role, []):
            cports = [p.get("containerPort") for c in pod_spec(workloads[key]).get("containers") or []
                      for p in c.get("ports") or []]
            if port not in cports:
                problems.append(f"{key}: containerPort {cports} is not [{section}] listen port {port}")
            ann = ((workloads[key]["spec"].get("template") or {}).get("metadata") or {}).get("annotations") or {}
            if ann.get("prometheus.io/scrape") == "true" and ann.get("prometheus.io/port") != str(port):
                problems.append(f"{key}: prometheus.io/port {ann.get('prometheus.io/port')} is not {port}")
    if ini.get("postgres", "migrations_dir") not in (None, IMAGE_MIGRATIONS_DIR):
        problems.append(f"[postgres] migrations_dir is not where the image keeps them ({IMAGE_MIGRATIONS_DIR})")
    R.check("k8s: services, disruption budgets, autoscaler, ports", problems)

    # Graceful stop: the grace period covers preStop and the ingest's drain.
    problems = []
    for key in [k for r in ("mailhook-ingest", "mailhook-worker", "mailhook-api") for k in roles.get(r, [])]:
        ps = pod_spec(workloads[key])
        pre = max([int(cmd[1]) for c in ps.get("containers") or []
                   for cmd in [(((c.get("lifecycle") or {}).get("preStop") or {}).get("exec") or {}).get("command") or []]
                   if cmd[:1] == ["sleep"]] or [0])
        grace = int(ps.get("terminationGracePeriodSeconds", 30))
        if grace < pre + INGEST_DRAIN_S + 5:
            problems.append(f"{key}: terminationGracePeriodSeconds {grace} < preStop {pre}s + drain {INGEST_DRAIN_S}s + 5s")
    R.check("k8s: graceful stop", problems, f"grace periods cover preStop and the {INGEST_DRAIN_S}s drain")

"""The deployment files (Dockerfile, docker-compose.yml, deploy/k8s, deploy/systemd,
deploy/prometheus, deploy/grafana) pass tests/deploy/validate, and the validation does
catch broken ones: each validator of the ecosystem refuses a broken copy first (its
self-test), and mailhook's own cross-checks (tests/deploy/checks.py) fail on copies of
the files broken in ways only the programs can tell.

Needs no Kafka or PostgreSQL: the checks run offline against the built programs
(helpers.build_dir()). deploy/README.md lists what the validation checks.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import helpers

VALIDATE = helpers.ROOT / "tests" / "deploy" / "validate"
CHECKS = helpers.ROOT / "tests" / "deploy" / "checks.py"
# The ok lines of the ecosystem's validators; each says its self-test refused a broken copy.
VALIDATOR_LINE = re.compile(r"^ok   .*(hadolint|check-jsonschema|compose-go|compose config|systemd: verify|"
                            r"systemd: security|promtool|shellcheck|k8s: schemas)")


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["MH_BUILD_DIR"] = str(helpers.build_dir())
    env.setdefault("MH_PYTHON", sys.executable)
    # The checks run the programs against unreachable services of their own choosing.
    env.pop("MAILHOOK_KAFKA_BROKERS", None)
    env.pop("MAILHOOK_PG_DSN", None)
    return env


# The first run on a machine also builds the compose-go loader (about a minute).
@pytest.mark.timeout(330)
def test_deploy_artifacts_validate():
    p = subprocess.run([str(VALIDATE)], cwd=helpers.ROOT, env=_env(), stdin=subprocess.DEVNULL,
                       capture_output=True, text=True, timeout=320)
    report = p.stdout + (f"\n--- stderr ---\n{p.stderr}" if p.stderr.strip() else "")
    print(report)
    summary = re.search(r"^validate: (\d+) passed, (\d+) failed, (\d+) skipped$", p.stdout, re.M)
    assert summary, f"no summary line from tests/deploy/validate:\n{report}"
    failures = [line for line in p.stdout.splitlines() if line.startswith("FAIL")]
    assert p.returncode == 0 and summary.group(2) == "0", \
        "tests/deploy/validate failed:\n" + "\n".join(failures) + f"\n\n{report}"
    assert int(summary.group(1)) >= 30, f"too few checks ran:\n{report}"
    validators = [line for line in p.stdout.splitlines() if VALIDATOR_LINE.match(line)]
    assert any("hadolint" in v for v in validators) and any("k8s: schemas" in v for v in validators), report
    assert all(v.endswith("fails)") for v in validators), \
        "a validator passed without its self-test:\n" + "\n".join(validators)


def _copy_deploy_tree(dst: Path) -> Path:
    root = helpers.ROOT
    for f in ("Dockerfile", ".dockerignore", "docker-compose.yml", "CMakeLists.txt"):
        shutil.copy2(root / f, dst / f)
    for d in ("deploy", "migrations", "shared", "ingest", "pipeline", "store", "worker", "api", "cli"):
        shutil.copytree(root / d, dst / d, ignore=shutil.ignore_patterns("__pycache__"))
    return dst


def _replace(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, f"{path}: {old!r} not found (the test's mutation is out of date)"
    path.write_text(text.replace(old, new, 1))


@pytest.mark.timeout(120)
def test_deploy_validation_catches_broken_files(tmp_path):
    """Breaks a copy of the files in ways only the real programs can tell, and expects
    the checks to say so: a key the config loader refuses, a worker option that does
    not exist, more worker replicas than raw partitions, an alert on a metric the
    ingest does not serve, a readiness probe on a path the ingest does not serve, a
    worker unit whose --instance is not its instance name, a runtime stage without a
    library the programs link."""
    tree = _copy_deploy_tree(tmp_path)
    _replace(tree / "deploy/compose/mailhook.ini", "[worker]\n", "[worker]\nbatch_sise = 10\n")
    _replace(tree / "docker-compose.yml", '"--instance", "worker-2"', '"--instanse", "worker-2"')
    _replace(tree / "deploy/k8s/worker.yaml", "replicas: 3", "replicas: 40")
    _replace(tree / "deploy/prometheus/mailhook.rules.yml",
             "expr: mailhook_ingest_kafka_ready == 0", "expr: mailhook_ingest_kafka_up == 0")
    _replace(tree / "deploy/k8s/ingest.yaml", "path: /readyz", "path: /ready")
    _replace(tree / "deploy/systemd/mailhook-worker@.service", "--instance %i", "--instance worker")
    _replace(tree / "Dockerfile", "libinih1 ", "")
    p = subprocess.run([sys.executable, str(CHECKS), "--root", str(tree)], env=_env(),
                       stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=110)
    fails = "\n".join(line for line in p.stdout.splitlines() if line.startswith("FAIL"))
    assert p.returncode == 1, f"broken files passed:\n{p.stdout}\n{p.stderr}"
    assert re.search(r'mailhook\.ini:\d+: \[worker\]: unknown key "batch_sise"', fails), fails
    assert "mailhook-worker has no option --instanse" in fails, fails
    assert "40 replicas > raw_partitions" in fails, fails
    assert "mailhook_ingest_kafka_up" in fails, fails
    assert "readinessProbe is not an HTTP GET of /readyz" in fails, fails
    assert "mailhook-worker@.service: --instance is not %i" in fails, fails
    assert re.search(r"links libinih\S* from libinih1, which the runtime stage does not install", fails), fails


@pytest.mark.timeout(120)
def test_dashboard_check_catches_misspelled_metric_and_label(tmp_path):
    """A copy of the Grafana dashboard with a misspelled metric, a label the metric does
    not have and a source variable on a metric that does not exist fails the query check
    against the programs' live /metrics; the dashboard as it is passes it."""
    tree = _copy_deploy_tree(tmp_path)
    dash = tree / "deploy/grafana/mailhook.json"
    _replace(dash, "rate(mailhook_worker_records_total[", "rate(mailhook_worker_record_total[")
    _replace(dash, "sum by (class) (rate(mailhook_api_responses_total",
             "sum by (status) (rate(mailhook_api_responses_total")
    _replace(dash, "label_values(mailhook_ingest_source_responses_total, source)",
             "label_values(mailhook_ingest_sources_total, source)")
    p = subprocess.run([sys.executable, str(CHECKS), "--root", str(tree), "--section", "grafana"],
                       env=_env(), stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=110)
    fails = "\n".join(line for line in p.stdout.splitlines() if line.startswith("FAIL"))
    assert p.returncode == 1, f"a broken dashboard passed:\n{p.stdout}\n{p.stderr}"
    assert "mailhook_worker_record_total is not served by mailhook-worker" in fails, fails
    assert "by (status): no label status on mailhook_api_responses_total" in fails, fails
    assert "variable source: mailhook_ingest_sources_total is not served" in fails, fails

    p = subprocess.run([sys.executable, str(CHECKS), "--section", "grafana"], env=_env(),
                       stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=110)
    assert p.returncode == 0, p.stdout + p.stderr
    assert re.search(r"^ok   grafana: dashboard queries: \d+ queries", p.stdout, re.M), p.stdout

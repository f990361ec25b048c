"""deploy/systemd against the programs (systemd-analyze verify and security, from
tests/deploy/validate, check the units themselves): each ExecStart runs its program with
options it has, the worker template passes %i as --instance, and the stop fits the
ingest's drain on SIGTERM."""

from __future__ import annotations

import configparser
import os
import shlex
from pathlib import Path

from compose import seconds
from endpoints import INGEST_DRAIN_S
from programs import Programs, check_argv, option_value
from report import R

UNITS = {"mailhook-ingest.service": "mailhook-ingest",
         "mailhook-worker@.service": "mailhook-worker",
         "mailhook-api.service": "mailhook-api"}


def check_systemd(root: Path, progs: Programs) -> None:
    problems = []
    for fname, prog in UNITS.items():
        unit = configparser.ConfigParser(strict=False, interpolation=None)
        unit.optionxform = str  # type: ignore[assignment]  # systemd keys are case-sensitive
        unit.read_string((root / "deploy/systemd" / fname).read_text())
        service = unit["Service"] if unit.has_section("Service") else {}
        argv = shlex.split(service.get("ExecStart", ""))
        if not argv or os.path.basename(argv[0]) != prog:
            problems.append(f"{fname}: ExecStart does not run {prog}")
            continue
        problems += check_argv(progs, argv, fname)
        if prog == "mailhook-worker" and option_value(argv, "--instance", "-i") != "%i":
            problems.append(f"{fname}: --instance is not %i")
        if service.get("KillSignal", "SIGTERM") not in ("SIGTERM", "TERM", "15"):
            problems.append(f"{fname}: KillSignal={service.get('KillSignal')}: the programs stop gracefully on SIGTERM")
        stop = seconds(service.get("TimeoutStopSec", "90s"))
        if not INGEST_DRAIN_S + 5 <= stop <= 60:
            problems.append(f"{fname}: TimeoutStopSec={service.get('TimeoutStopSec')} does not fit a "
                            f"{INGEST_DRAIN_S} s graceful stop (want {INGEST_DRAIN_S + 5}..60 s)")
    R.check("systemd: units", problems, "ExecStart programs and options, %i instance, SIGTERM and TimeoutStopSec")

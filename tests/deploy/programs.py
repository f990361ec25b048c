"""The built programs: the options and commands their --help lists, and command lines of
the deployment files held against them."""

from __future__ import annotations

import os
import re
import shlex
from pathlib import Path

from report import run

PROGRAMS = ("mailhook-ingest", "mailhook-worker", "mailhook-api", "mailhook")
# Options that take a value as the next word.
VALUE_FLAGS = ("--config", "-c", "--instance", "-i", "--metrics-listen", "-m")


def flags_of(help_text: str) -> set[str]:
    return set(re.findall(r"(?<![\w-])(--[a-z][a-z0-9-]*|-[a-zA-Z])\b", help_text))


class Programs:
    def __init__(self, build: Path) -> None:
        self.build = build
        self.help: dict[str, str] = {}
        self.flags: dict[str, set[str]] = {}
        self.commands: set[str] = set()
        self._command_flags: dict[str, set[str]] = {}
        for p in PROGRAMS:
            if os.access(build / p, os.X_OK):
                self.help[p] = run([str(build / p), "--help"]).stdout
                self.flags[p] = flags_of(self.help[p])
        for line in self.help.get("mailhook", "").split("commands:", 1)[-1].splitlines():
            m = re.match(r"^  ([a-z][a-z-]*)\s{2,}\S", line)
            if m:
                self.commands.add(m.group(1))

    def has(self, program: str) -> bool:
        return program in self.help

    def path(self, program: str) -> Path:
        return self.build / program

    def command_flags(self, command: str) -> set[str]:
        if command not in self._command_flags:
            out = run([str(self.path("mailhook")), command, "--help"]).stdout
            self._command_flags[command] = flags_of(out) | {"--help", "-h"}
        return self._command_flags[command]


def check_argv(progs: Programs, argv: list[str], where: str) -> list[str]:
    """Problems with one command line of a mailhook program (or a shell running several)."""
    if not argv:
        return [f"{where}: empty command"]
    prog = os.path.basename(argv[0])
    if prog in ("sh", "bash") and len(argv) >= 3 and argv[1] == "-c":
        problems = []
        for part in re.split(r"&&|\|\||;", argv[2]):
            words = shlex.split(part)
            if words[:1] == ["exec"]:
                words = words[1:]
            if words:
                problems += check_argv(progs, words, where)
        return problems
    if prog not in PROGRAMS:
        return [f"{where}: {prog} is not a mailhook program"]
    if not progs.has(prog):
        return []  # reported once as "not built"
    problems = []
    args = argv[1:]
    command = None
    i = 0
    while i < len(args):
        a = args[i]
        if a.startswith("-"):
            flag = a.split("=", 1)[0]
            if command is None and flag not in progs.flags[prog]:
                problems.append(f"{where}: {prog} has no option {flag}")
            if command is not None and flag not in progs.command_flags(command):
                problems.append(f"{where}: mailhook {command} has no option {flag}")
            if "=" not in a and flag in VALUE_FLAGS:
                i += 1
        elif prog == "mailhook" and command is None:
            command = a
            if a not in progs.commands:
                problems.append(f"{where}: mailhook has no command {a!r}")
        elif prog != "mailhook":
            problems.append(f"{where}: {prog} takes no argument {a!r}")
        i += 1
    if prog != "mailhook" and "--config" not in args and "-c" not in args:
        problems.append(f"{where}: {prog} without --config")
    return problems


def option_value(argv: list[str], *names: str) -> str | None:
    """The value of an option (--name VALUE or --name=VALUE), also inside `sh -c`."""
    if argv and os.path.basename(argv[0]) in ("sh", "bash") and len(argv) >= 3:
        argv = shlex.split(re.sub(r"&&|\|\||;", " ", argv[2]))
    for i, a in enumerate(argv):
        if a in names and i + 1 < len(argv):
            return argv[i + 1]
        for n in names:
            if a.startswith(n + "="):
                return a.split("=", 1)[1]
    return None


def split_listen(listen: str) -> tuple[str, int]:
    host, _, port = listen.rpartition(":")
    return host.strip("[]"), int(port)

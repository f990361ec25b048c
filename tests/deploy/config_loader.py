"""mailhook's INI files through mailhook's own config loader: `mailhook config check`,
which validates a file as the programs load it and prints every problem as FILE:LINE.
Paths that exist only inside a deployment (secret and key files, the image's migrations
directory) are replaced, line for line, by local stand-ins, so line numbers in errors are
the original file's. The same stand-ins let the programs start on this machine.
"""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path
from typing import Iterable
from urllib.parse import urlsplit, urlunsplit

from programs import Programs
from report import R, run

# An address where nothing listens: the programs under test get "connection refused".
DEAD_ADDR = ("127.0.0.1", 1)
# Keys whose value is a file read at load time, and keys naming a variable.
FILE_KEYS = ("secret_file", "token_file", "public_key_file")
ENV_KEYS = ("secret_env", "token_env")


def env_var(value: str) -> str:
    """The variable an ENV_KEYS value names ([api] token_env may add tenants after it)."""
    return (value.split() or [""])[0]


class Ini:
    """Where the keys of an INI file are (section, key, value, line), in order. Only to
    find them: whether the file is valid is the loader's to say."""

    def __init__(self, text: str, label: str) -> None:
        self.text = text
        self.label = label
        self.entries: list[tuple[str, str, str, int]] = []
        section = ""
        for n, raw in enumerate(text.splitlines(), 1):
            line = raw.strip()
            if line.startswith("[") and "]" in line:
                section = line[1:line.index("]")].strip()
            elif line and line[0] not in ";#" and "=" in line:
                key, value = line.split("=", 1)
                value = re.sub(r"\s;.*$", "", value).strip()  # inih: inline ';' after space
                self.entries.append((section, key.strip(), value, n))

    def get(self, section: str, key: str, default: str | None = None) -> str | None:
        return next((v for s, k, v, _ in self.entries if s == section and k == key), default)

    def where(self, key_names: Iterable[str]) -> list[tuple[str, str, str, int]]:
        names = set(key_names)
        return [e for e in self.entries if e[1] in names]


def replace_line_value(text: str, line: int, new_value: str) -> str:
    lines = text.splitlines(keepends=True)
    lines[line - 1] = f"{lines[line - 1].split('=', 1)[0]}= {new_value}\n"
    return "".join(lines)


def set_key(text: str, section: str, key: str, value: str) -> str:
    """Sets key in section (replacing its line, or adding the line, or the section)."""
    for s, k, _, n in Ini(text, "").entries:
        if s == section and k == key:
            return replace_line_value(text, n, value)
    lines = text.splitlines(keepends=True)
    for i, raw in enumerate(lines):
        if raw.strip() == f"[{section}]":
            lines.insert(i + 1, f"{key} = {value}\n")
            return "".join(lines)
    return text + f"\n[{section}]\n{key} = {value}\n"


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


def clean_env() -> dict[str, str]:
    """The environment without the overrides that would point a program at real services
    (MAILHOOK_PG_DSN would make `mailhook migrate` migrate that database)."""
    return {k: v for k, v in os.environ.items()
            if k not in ("MAILHOOK_KAFKA_BROKERS", "MAILHOOK_PG_DSN", "MAILHOOK_CONFIG")
            and not k.startswith("PG")}


class LoaderCheck:
    def __init__(self, progs: Programs, tmp: Path, root: Path) -> None:
        self.progs = progs
        self.tmp = tmp
        self.migrations = root / "migrations"

    def prepare(self, ini: Ini) -> tuple[str, dict[str, str]]:
        """(text, environment) with which the programs can read ini on this machine, its
        PostgreSQL pointed at an address where nothing listens."""
        text, env = ini.text, clean_env()
        d = Path(tempfile.mkdtemp(dir=self.tmp, prefix="secrets-"))
        for section, key, _, line in ini.where(FILE_KEYS):
            stand_in = d / f"line{line}"
            stand_in.write_text(self.public_key() if key == "public_key_file"
                                else f"placeholder-{section}-{key}\n")
            text = replace_line_value(text, line, str(stand_in))
        for _, _, value, _ in ini.where(ENV_KEYS):
            env[env_var(value)] = f"placeholder-{env_var(value)}"
        for *_, line in ini.where(["migrations_dir"]):
            text = replace_line_value(text, line, str(self.migrations))
        text = set_key(text, "postgres", "dsn",
                       dead_dsn(ini.get("postgres", "dsn") or "postgresql://mailhook@x/mailhook"))
        return text, env

    @staticmethod
    def public_key() -> str:
        key = run(["openssl", "genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"])
        return run(["openssl", "pkey", "-pubout"], input=key.stdout).stdout

    def load(self, text: str, env: dict[str, str], label: str) -> tuple[bool, str]:
        """(valid, the loader's problems with label for the file)."""
        path = Path(tempfile.mkstemp(dir=self.tmp, suffix=".ini")[1])
        path.write_text(text)
        p = run([str(self.progs.path("mailhook")), "--config", str(path), "config", "check"], env=env)
        out = (p.stderr + p.stdout).replace(str(path), label).strip()
        problems = [ln for ln in out.splitlines() if re.match(rf"{re.escape(label)}:\d+: ", ln)]
        if p.returncode == 0:
            return True, ""
        return False, "; ".join(problems) or out or f"exit status {p.returncode}"

    def self_test(self) -> None:
        """The check must be able to fail: a file with an unknown key is refused, the same
        file without it is not."""
        bad = Ini("[ingest]\nlisten = 0.0.0.0:8080\nno_such_key = 1\n", "self-test.ini")
        good = Ini("[ingest]\nlisten = 0.0.0.0:8080\n", "self-test.ini")
        bad_ok, bad_msg = self.load(*self.prepare(bad), bad.label)
        good_ok, good_msg = self.load(*self.prepare(good), good.label)
        R.check("config: loader self-test",
                ([] if not bad_ok and "self-test.ini:3" in bad_msg else [f"bad file not refused ({bad_msg})"])
                + ([] if good_ok else [f"good file refused: {good_msg}"]),
                "`mailhook config check` refuses a file with an unknown key (FILE:LINE) and "
                "accepts it without")

    def check(self, ini: Ini, name: str) -> tuple[str, dict[str, str]] | None:
        """One ok/FAIL line for ini; the prepared (text, env) for later use, or None."""
        text, env = self.prepare(ini)
        ok, msg = self.load(text, env, ini.label)
        if not ok:
            R.fail(name, msg)
            return None
        R.ok(name, "valid for `mailhook config check`")
        return text, env

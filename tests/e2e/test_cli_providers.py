"""`mailhook providers` lists every provider's source options from the tables the config
loader enforces, and the loader refuses a bad option value naming file and line.

Needs no Kafka or PostgreSQL: it runs the built programs (helpers.build_dir()).
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest

import helpers


def _mailhook(*args: str, config: Path | None = None) -> subprocess.CompletedProcess:
    argv = [str(helpers.build_dir() / "mailhook")]
    if config:
        argv += ["--config", str(config)]
    return subprocess.run(argv + list(args), capture_output=True, text=True, timeout=20)


def _providers() -> dict[str, dict]:
    out = _mailhook("providers", "--json")
    assert out.returncode == 0, out.stderr
    return {p["name"]: p for p in json.loads(out.stdout)["providers"]}


def _option(provider: dict, name: str) -> dict:
    return next(o for o in provider["options"] if o["name"] == name)


def test_json_lists_typed_options():
    providers = _providers()
    assert {"postal", "ark", "sendgrid", "mailgun", "ses", "resend", "standard", "hmac",
            "brevo", "postmark", "mandrill", "mailersend", "ivymail"} <= set(providers)

    tol = _option(providers["postal"], "timestamp_tolerance_s")
    assert (tol["type"], tol["default"], tol["min"], tol["max"]) == ("int", 86400, 0, 31 * 86400)
    assert "0 turns the check off" in tol["help"]
    assert _option(providers["ark"], "timestamp_tolerance_s")["default"] == 345600
    assert _option(providers["mailgun"], "timestamp_tolerance_s")["default"] == 9 * 3600
    assert _option(providers["sendgrid"], "timestamp_tolerance_s")["default"] == 96 * 3600

    sha1 = _option(providers["postal"], "allow_sha1")
    assert (sha1["type"], sha1["default"]) == ("bool", True)
    assert _option(providers["postal"], "public_key_file")["repeatable"] is True
    alg = _option(providers["hmac"], "algorithm")
    assert (alg["type"], alg["default"], alg["choices"]) == ("choice", "sha256",
                                                            ["sha1", "sha256", "sha512"])
    bearer = _option(providers["brevo"], "bearer")
    assert (bearer["type"], bearer["default"], bearer["strict"]) == ("bool", False, True)
    assert [o["name"] for o in providers["postmark"]["options"]] == ["basic_user", "header"]
    assert [o["name"] for o in providers["ivymail"]["options"]] == ["encoding", "prefix"]
    enc = _option(providers["ivymail"], "encoding")
    assert (enc["type"], enc["default"], enc["choices"]) == ("choice", "hex", ["hex", "base64"])
    assert _option(providers["ivymail"], "prefix")["default"] == "sha256="
    assert providers["postal"]["needs_secret"] is False and providers["hmac"]["needs_secret"]


def test_text_rows_and_selection(tmp_path):
    out = _mailhook("providers", "postal", "ark")
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("postal (secret not required)\n")
    assert "\nark (secret not required)\n" in out.stdout
    assert "sendgrid" not in out.stdout
    rows = [r.split() for r in out.stdout.splitlines() if r.startswith("timestamp_tolerance_s")]
    assert [r[1:4] for r in rows] == [["int", "86400", "0..2678400"], ["int", "345600", "0..2678400"]]

    # No config file needed, even a missing one named explicitly.
    out = _mailhook("providers", "mandrill", config=tmp_path / "missing.ini")
    assert out.returncode == 0 and re.search(r"^url\s+string\s+-", out.stdout, re.M), out.stdout

    out = _mailhook("providers", "nosuch")
    assert out.returncode == 2 and 'no provider "nosuch"' in out.stderr
    out = _mailhook("--help")
    assert re.search(r"^\s+providers\s", out.stdout, re.M)


@pytest.mark.parametrize("value,problem", [
    ("-5", "timestamp_tolerance_s: -5 is outside 0..2678400"),
    ("abc", 'timestamp_tolerance_s: "abc" is not a whole number'),
])
def test_bad_option_value_is_refused_with_file_and_line(tmp_path, value, problem):
    bad = tmp_path / "bad.ini"
    bad.write_text("[ingest]\nlisten = 127.0.0.1:1\n\n[source.p]\nprovider = postal\n"
                   f"public_key_file = {tmp_path / 'key.pem'}\n"
                   f"timestamp_tolerance_s = {value}\n")
    for program in ("mailhook-ingest", "mailhook-worker"):
        out = subprocess.run([str(helpers.build_dir() / program), "--config", str(bad)],
                             capture_output=True, text=True, timeout=20)
        assert out.returncode != 0
        assert f"{bad}:7: [source.p]: {problem}" in out.stderr, out.stderr


def test_repeated_option_is_refused(tmp_path):
    bad = tmp_path / "twice.ini"
    bad.write_text("[source.mg]\nprovider = mailgun\nsecret = k\n"
                   "timestamp_tolerance_s = 60\ntimestamp_tolerance_s = 120\n")
    out = subprocess.run([str(helpers.build_dir() / "mailhook-ingest"), "--config", str(bad)],
                         capture_output=True, text=True, timeout=20)
    assert out.returncode != 0
    assert f"{bad}:5: [source.mg]: timestamp_tolerance_s: set twice (first on line 4)" in out.stderr

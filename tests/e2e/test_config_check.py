"""`mailhook config check`: every problem of a config file, one "FILE:LINE: problem" line
each, exit status 1; a valid file gives exit status 0 and a one-line summary."""

from __future__ import annotations

import subprocess
from pathlib import Path

import helpers


def _check(config: Path, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([str(helpers.build_dir() / "mailhook"), "config", "check",
                           "--config", str(config)], capture_output=True, text=True,
                          timeout=60, env=env, stdin=subprocess.DEVNULL)


def test_three_problems_in_three_sections(tmp_path):
    missing_key = tmp_path / "keys" / "sendgrid.pem"  # does not exist
    config = tmp_path / "bad.ini"
    config.write_text("[ingest]\n"                              # 1
                      "listen = 127.0.0.1:8080\n"               # 2
                      "max_body_bytes = lots\n"                 # 3
                      "\n"                                      # 4
                      "[worker]\n"                              # 5
                      "group_id = mailhook-worker\n"            # 6
                      "batch_sise = 100\n"                      # 7
                      "\n"                                      # 8
                      "[source.grid]\n"                         # 9
                      "provider = sendgrid\n"                   # 10
                      f"public_key_file = {missing_key}\n")     # 11
    r = _check(config)
    assert r.returncode == 1, (r.stdout, r.stderr)
    lines = [ln for ln in r.stderr.splitlines() if ln.startswith(f"{config}:")
             and ln[len(str(config)) + 1:].split(":", 1)[0].isdigit()]
    assert len(lines) == 3, r.stderr
    assert lines[0].startswith(f"{config}:3: [ingest] max_body_bytes: \"lots\" is not a whole number")
    assert lines[1].startswith(f"{config}:7: [worker]: unknown key \"batch_sise\"")
    assert lines[2].startswith(f"{config}:11: [source.grid]")
    assert str(missing_key) in lines[2]
    assert r.stdout == ""


def test_valid_file_passes_with_a_summary(mailhook):
    r = _check(mailhook.config_path, env=mailhook.env)
    assert r.returncode == 0, r.stderr
    summary = r.stdout.strip()
    assert summary.startswith(f"{mailhook.config_path}: ok, {len(mailhook.sources)} sources (")
    for name in mailhook.sources:
        assert name in summary
    assert r.stderr == ""


def test_missing_file_is_a_problem_not_a_crash(tmp_path):
    r = _check(tmp_path / "nowhere.ini")
    assert r.returncode == 1
    assert f"{tmp_path / 'nowhere.ini'}: cannot open: No such file or directory" in r.stderr

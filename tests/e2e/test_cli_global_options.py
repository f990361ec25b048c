"""The `mailhook` command as a user types it: global options (--config, --json) before
or after the command, and --tenant left out when the config has one tenant."""

from __future__ import annotations

import json
import subprocess

import helpers
from test_suppression import uid


def _run(mailhook, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(helpers.build_dir() / "mailhook"), *args], env=mailhook.env,
                          capture_output=True, timeout=60, stdin=subprocess.DEVNULL)


def test_global_options_after_the_command_and_the_only_tenant(mailhook):
    cfg = str(mailhook.config_path)
    tenants = {s["tenant"] for s in mailhook.sources.values()}
    assert len(tenants) == 1
    tenant = tenants.pop()
    addr = f"cli-{uid()}@example.com"

    out = _run(mailhook, "suppressions", "add", addr, "--config", cfg)
    assert out.returncode == 0, out.stderr.decode()
    out = _run(mailhook, "suppressions", "check", addr, "--config", cfg)
    assert out.returncode == 3, out.stderr.decode()
    # --json before the command, --config=FILE after it.
    out = _run(mailhook, "--json", "suppressions", "check", addr.upper(), f"--config={cfg}")
    assert out.returncode == 3, out.stderr.decode()
    body = json.loads(out.stdout)
    assert body["address"] == addr and body["tenant"] == tenant
    # The tenant defaulted to is the one given explicitly too.
    out = _run(mailhook, "--config", cfg, "suppressions", "check", "--tenant", tenant, addr)
    assert out.returncode == 3
    out = _run(mailhook, "suppressions", "remove", addr, "--config", cfg)
    assert out.returncode == 0, out.stderr.decode()
    out = _run(mailhook, "suppressions", "check", addr, "--config", cfg)
    assert out.returncode == 0

    # After `--` nothing is a global option: the default config is looked for (and is
    # not there), instead of checking no address with this one.
    out = subprocess.run([str(helpers.build_dir() / "mailhook"), "suppressions", "check", "--",
                          "--config", cfg], env={k: v for k, v in mailhook.env.items()
                                                 if k != "MAILHOOK_CONFIG"},
                         capture_output=True, timeout=60, cwd=mailhook.workdir / "..")
    assert out.returncode == 1 and b"mailhook.ini" in out.stderr, out.stderr.decode()


def test_tenant_is_required_when_the_config_has_several(mailhook, tmp_path):
    sections = {k: dict(v) for k, v in mailhook.sections.items()}
    sections["source.other-tenant"] = {"provider": "ivymail", "tenant": "another",
                                       "secret": helpers.new_secret()}
    path = tmp_path / "two-tenants.ini"
    helpers.write_ini(path, sections)
    out = _run(mailhook, "suppressions", "check", "a@example.com", "--config", str(path))
    assert out.returncode != 0
    assert b"--tenant is required" in out.stderr

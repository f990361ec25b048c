"""tests/fixtures/*/source.ini, the one description of each provider's test source, and
its two readers: fixture_sources.py (the golden test's) and deploy/local/lib.sh's
mh_write_config (the local stack's). Needs no Kafka and no PostgreSQL."""

from __future__ import annotations

import configparser
import os
import subprocess
from pathlib import Path

import pytest

import fixture_sources
import helpers


def _folders() -> list[str]:
    return sorted(p.name for p in fixture_sources.FIXTURES.iterdir() if p.is_dir())


def test_every_listed_provider_has_a_fixtures_folder_with_source_ini():
    listed = fixture_sources.providers()
    assert listed and sorted(listed) == _folders()
    for provider in listed:
        assert (fixture_sources.FIXTURES / provider / "source.ini").is_file(), provider
        assert (helpers.ROOT / "docs" / "providers" / f"{provider}.md").is_file(), provider


@pytest.mark.parametrize("target", sorted(fixture_sources.TENANTS))
def test_sources_read_for_each_target(target):
    sources = fixture_sources.read_all(target)
    assert [s.provider for s in sources] == fixture_sources.providers()
    for s in sources:
        assert list(s.keys)[:2] == ["provider", "tenant"]
        assert s.keys["provider"] == s.provider
        assert s.keys["tenant"] == fixture_sources.TENANTS[target]
        assert fixture_sources.placeholders_of(s) <= set(fixture_sources.PLACEHOLDERS)
    names = {s.provider: s.name for s in sources}
    if target == "local":
        assert names["hmac"] == "maildog"
    else:
        assert all(p == n for p, n in names.items())


def _write(tmp_path: Path, provider: str, text: str) -> Path:
    (tmp_path / provider).mkdir(exist_ok=True)
    (tmp_path / provider / "source.ini").write_text(text)
    return tmp_path


@pytest.mark.parametrize("text, complaint", [
    ("[source]\nprovider = x\nsecret = @nonsense\n", "unknown placeholder"),
    ("[source]\nprovider = y\n", "must be 'x'"),
    ("[source]\nprovider = x\ntenant = acme\n", "tenant"),
    ("[source]\nprovider = x\nname = other\n", "only [local]"),
    ("[source]\nprovider = x\n[golden]\nprovider = y\n", "only [source]"),
    ("[source]\nprovider = x\n[DEFAULT]\nsecret = s\n", "unknown section"),
    ("[source]\nprovider = x\nsecret =\n", "empty"),
    ("[golden]\nsecret = s\n", "no [source]"),
    ("[source]\nprovider = x\n[staging]\nsecret = s\n", "unknown section"),
    ("[source]\nprovider = x\n[local]\nname = a b\n", "not a valid source name"),
    ("[source]\nprovider = x\nsecret = a\nsecret = b\n", "secret"),
])
def test_a_wrong_source_ini_is_refused(tmp_path, text, complaint):
    with pytest.raises(fixture_sources.SourceFileError) as e:
        fixture_sources.read("x", "golden", _write(tmp_path, "x", text))
    assert complaint in str(e.value)


def test_a_missing_source_ini_or_folder_is_refused(tmp_path):
    listing = tmp_path / "providers.def"
    listing.write_text("/*\n * MH_PROVIDER(name) lines\n */\nMH_PROVIDER(x)\nMH_PROVIDER(y)\n")
    _write(tmp_path, "x", "[source]\nprovider = x\n")
    (tmp_path / "y").mkdir()
    with pytest.raises(fixture_sources.SourceFileError, match="y/source.ini: missing"):
        fixture_sources.read_all("local", tmp_path, listing)
    listing.write_text("MH_PROVIDER(x)\n")
    with pytest.raises(fixture_sources.SourceFileError, match="no listed provider: y"):
        fixture_sources.read_all("local", tmp_path, listing)
    listing.write_text("MH_PROVIDER(x)\nMH_PROVIDER(z)\n")
    (tmp_path / "y").rmdir()
    with pytest.raises(fixture_sources.SourceFileError, match="folder: z"):
        fixture_sources.read_all("local", tmp_path, listing)


def test_overrides_keep_their_place_and_local_renames():
    s = fixture_sources.read("mandrill", "golden")
    assert list(s.keys) == ["provider", "tenant", "url", "secret"]
    assert s.keys["url"] == "https://hooks.example.com/esp/mandrill"
    s = fixture_sources.read("ses", "local")
    assert s.keys["topic_arn"].endswith(":mailhook-local")
    s = fixture_sources.read("hmac", "local")
    assert s.name == "maildog" and "name" not in s.keys
    s = fixture_sources.resolve(fixture_sources.read("postal", "golden"),
                                {"rsa_public_key": "/k.pem"})
    assert s == {"provider": "postal", "tenant": "test", "public_key_file": "/k.pem",
                 "timestamp_tolerance_s": "0"}


def _local_config(local: Path, config: Path | None = None) -> configparser.ConfigParser:
    """Runs lib.sh's mh_write_config with $MH_LOCAL = local (no service is started)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MH_")}
    env.update(MH_LOCAL=str(local), MH_INGEST_PORT="18080")
    script = 'set -euo pipefail; source "$1"; mh_write_config "$MH_LOCAL/mailhook.ini"'
    r = subprocess.run(["bash", "-c", script, "bash", str(helpers.LIB_SH)], env=env,
                       stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    cp = configparser.ConfigParser(interpolation=None)
    cp.optionxform = str
    cp.read(local / "mailhook.ini")
    return cp


def test_local_stack_writes_the_sources_the_files_describe(tmp_path):
    local = tmp_path / "local"
    cp = _local_config(local)
    want = fixture_sources.read_all("local")
    assert [s for s in cp.sections() if s.startswith("source.")] == \
        [f"source.{s.name}" for s in want]
    keys = local / "keys"
    resolved = {
        "rsa_public_key": str(keys / "signing.pub.pem"),
        "ec_public_key": str(keys / "sendgrid.pub.pem"),
        "ses_certificate": str(keys / "ses" / "SimpleNotificationService-mailhook-local.pem"),
    }
    for s in want:
        got = dict(cp[f"source.{s.name}"])
        assert list(got) == list(s.keys), s.name
        for k, v in s.keys.items():
            ph = fixture_sources.placeholder(v)
            if ph == "secret":
                assert len(got[k]) == 64 and int(got[k], 16) >= 0, (s.name, k)
            elif ph == "whsec_secret":
                assert got[k].startswith("whsec_") and len(got[k]) == 50, (s.name, k)
            elif ph == "webhook_url":
                assert got[k] == f"http://127.0.0.1:18080/v1/webhooks/{s.name}"
            elif ph is not None:
                assert got[k] == resolved[ph] and Path(got[k]).is_file(), (s.name, k)
            else:
                assert got[k] == v, (s.name, k)
    assert cp["source.maildog"]["provider"] == "hmac"
    assert cp["source.maildog"]["tenant"] == "local"

    # A second run keeps every secret; a source missing from the file is appended anew.
    text = (local / "mailhook.ini").read_text()
    cut = text.index("\n[source.mandrill]")
    rest = text.index("\n[", cut + 1)
    (local / "mailhook.ini").write_text(text[:cut] + text[rest:])
    again = _local_config(local)
    assert [s for s in again.sections() if s.startswith("source.")][-1] == "source.mandrill"
    for s in want:
        if s.name != "mandrill":
            assert dict(again[f"source.{s.name}"]) == dict(cp[f"source.{s.name}"]), s.name
    assert again["source.mandrill"]["secret"] != cp["source.mandrill"]["secret"]

"""One source per provider, configured as tests/fixtures/<provider>/source.ini says, with
this run's secrets and keys: what the golden test (test_providers_golden.py) and the
unsigned-request test (test_unsigned_requests.py) post their fixtures to.

make_keys(work) makes the key pairs and the SNS stand-in certificate; sources(keys, listen)
resolves every provider's source.ini (fixture_sources.py) against them, with new random
secrets. Calling both again gives a second, unrelated set of credentials for the same
sources: `mailhook sign` under that set forges requests the first set must refuse.
"""

from __future__ import annotations

import base64
import dataclasses
import os
import subprocess
from pathlib import Path

import fixture_sources
import helpers

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "fixtures"


@dataclasses.dataclass
class Keys:
    """Files of one set of asymmetric credentials (every source of a set shares them)."""
    rsa_private: Path
    rsa_public: Path
    ec_private: Path
    ec_public: Path
    ses_key: Path
    ses_certificate: Path


def _openssl(*args: str) -> None:
    subprocess.run(["openssl", *args], check=True, capture_output=True)


def make_keys(work: Path) -> Keys:
    """New key pairs and an SNS stand-in certificate under work (a new folder)."""
    work.mkdir(parents=True, exist_ok=True)
    priv, pub = work / "signing.pem", work / "signing.pub.pem"
    _openssl("genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out", str(priv))
    _openssl("pkey", "-in", str(priv), "-pubout", "-out", str(pub))
    # SendGrid signs with ECDSA P-256: a key pair of its own.
    ec_priv, ec_pub = work / "sendgrid.pem", work / "sendgrid.pub.pem"
    _openssl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256",
             "-out", str(ec_priv))
    _openssl("pkey", "-in", str(ec_priv), "-pubout", "-out", str(ec_pub))
    # SNS (SES) signs with the RSA key of a certificate named in SigningCertURL: a
    # self-signed one, named as the fixtures' SigningCertURL names it.
    ses_dir = work / "ses-certs"
    ses_dir.mkdir()
    ses_key = work / "ses.pem"
    ses_cert = ses_dir / "SimpleNotificationService-0000000000000000000000000000test.pem"
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(ses_key),
             "-out", str(ses_cert), "-days", "2", "-subj", "/CN=mailhook golden SNS stand-in")
    return Keys(priv, pub, ec_priv, ec_pub, ses_key, ses_cert)


def providers() -> list[str]:
    """Every provider with a fixtures folder (fixture_sources checks that this is every
    provider of shared/providers/providers.def)."""
    return sorted(p.name for p in FIXTURES.iterdir() if p.is_dir())


def cases(provider: str) -> list[Path]:
    """The provider's fixture cases: folders holding a body.json."""
    return sorted(d for d in (FIXTURES / provider).iterdir() if (d / "body.json").exists())


def resolve_source(keys: Keys, src, name: str, listen: str) -> tuple[dict[str, str], Path | None]:
    """([source.<name>] keys of fixture source src served as name, the private key
    `mailhook sign --key` signs with for it or None). The "@" placeholders become this
    run's keys and URL, and new secrets on every call."""
    made = {
        "secret": helpers.new_secret,
        "whsec_secret": lambda: "whsec_" + base64.b64encode(os.urandom(32)).decode(),
        "rsa_public_key": lambda: str(keys.rsa_public),
        "ec_public_key": lambda: str(keys.ec_public),
        "ses_certificate": lambda: str(keys.ses_certificate),
    }
    # Every placeholder with a private half maps to the key that signs for it.
    private = {"rsa_public_key": keys.rsa_private, "ec_public_key": keys.ec_private,
               "ses_certificate": keys.ses_key}
    assert set(made) | {"webhook_url"} == set(fixture_sources.PLACEHOLDERS)
    used = fixture_sources.placeholders_of(src)
    values = {ph: make() for ph, make in made.items() if ph in used}
    values["webhook_url"] = f"http://{listen}/v1/webhooks/{name}"
    signing = next((private[ph] for ph in sorted(used & set(private))), None)
    return fixture_sources.resolve(src, values), signing


def sources(keys: Keys, listen: str) -> tuple[dict[str, dict[str, str]], dict[str, Path]]:
    """([source.<name>] keys of every provider's golden source, private key `mailhook sign
    --key` signs with for the sources that have one)."""
    out, signing_keys = {}, {}
    for src in fixture_sources.read_all("golden"):
        out[src.name], signing = resolve_source(keys, src, src.name, listen)
        if signing:
            signing_keys[src.name] = signing
    missing = set(providers()) - set(out)
    assert not missing, f"fixtures of {missing} have no golden source configured here"
    return out, signing_keys

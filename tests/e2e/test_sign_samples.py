"""`mailhook sign` on every sample body, as a new user would try it.

Every fixture case with a golden result (tests/fixtures/<provider>/<case>/body.json next
to expected.json) and every sample of the shared provider fact sheets
(shared/providers/samples/<provider>/*, outside the repository; skipped when absent) is
signed with `mailhook sign` and posted to a running mailhook-ingest, which must answer
200. The sources are the golden ones (tests/fixtures/<provider>/source.ini through
fixture_sources.py), but with each provider's default freshness window: sign must stamp
years-old bodies as the provider would send them now. No --key is given: the private
keys lie where the local stack keeps them ($MH_LOCAL/keys: signing.pem next to
signing.pub.pem, sendgrid.pem next to sendgrid.pub.pem, ses/ses.pem next to the SNS
certificate), and sign must find them."""

from __future__ import annotations

import base64
import json
import os
import subprocess
from pathlib import Path

import pytest

import fixture_sources
import helpers
from helpers import Mailhook

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "fixtures"

# The shared folder: $MAILHOOK_SHARED_DIR, else next to the repository (CI: ../shared),
# else next to the folder of worktrees.
_SHARED_CANDIDATES = [Path(p) for p in [os.environ.get("MAILHOOK_SHARED_DIR")] if p] + [
    ROOT.parent / "shared", ROOT.parents[1] / "shared"]
SAMPLES = next((p / "providers" / "samples" for p in _SHARED_CANDIDATES
                if (p / "providers" / "samples").is_dir()), None)
# Sample folders named otherwise than their provider's source.
SAMPLE_SOURCE = {"maildog": "hmac", "standard-webhooks": "standard"}


def _fixture_cases() -> list:
    return [pytest.param(case.parent.name, case / "body.json", id=f"fixture-{case.parent.name}-{case.name}")
            for case in sorted(FIXTURES.glob("*/*"))
            if (case / "body.json").is_file() and (case / "expected.json").is_file()]


def _sample_files() -> list:
    if SAMPLES is None:
        return [pytest.param(None, None, id="samples",
                             marks=pytest.mark.skip(reason="no shared/providers/samples here"))]
    return [pytest.param(SAMPLE_SOURCE.get(f.parent.name, f.parent.name), f,
                         id=f"sample-{f.parent.name}-{f.name}")
            for f in sorted(SAMPLES.glob("*/*")) if f.is_file()]


def _sample_body(path: Path, work: Path) -> Path | None:
    """The body a sample file stands for: the file itself, or a test vector's raw body
    (a vector is a JSON object with a "note"). None for a file that holds no body."""
    if path.suffix == ".pem":
        return None  # a certificate of a vector, not a request
    data = json.loads(path.read_bytes())
    if not (isinstance(data, dict) and "note" in data):
        return path
    raw = data.get("raw_body") or data.get("raw_body_form_urlencoded")
    if raw is None:
        return None  # a signature-only vector (Mailgun's: timestamp and token, no body)
    out = work / f"{path.parent.name}-{path.name}"
    out.write_text(raw)
    return out


def _openssl(*args: str) -> None:
    subprocess.run(["openssl", *args], check=True, capture_output=True)


@pytest.fixture(scope="module")
def ingest(stack, session_id, tmp_path_factory):
    work = tmp_path_factory.mktemp("sign")
    keys = work / "keys"
    (keys / "ses").mkdir(parents=True)
    # The local stack's layout (deploy/local/lib.sh): private halves next to public ones.
    _openssl("genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048",
             "-out", str(keys / "signing.pem"))
    _openssl("pkey", "-in", str(keys / "signing.pem"), "-pubout", "-out",
             str(keys / "signing.pub.pem"))
    _openssl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256",
             "-out", str(keys / "sendgrid.pem"))
    _openssl("pkey", "-in", str(keys / "sendgrid.pem"), "-pubout", "-out",
             str(keys / "sendgrid.pub.pem"))
    cert = keys / "ses" / "SimpleNotificationService-0000000000000000000000000000test.pem"
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout",
             str(keys / "ses" / "ses.pem"), "-out", str(cert), "-days", "2", "-subj",
             "/CN=mailhook sign SNS stand-in")
    raw_topic = f"mailhook.raw.sign-{session_id}"
    listen = f"127.0.0.1:{helpers.free_port()}"
    made = {
        "secret": helpers.new_secret,
        "whsec_secret": lambda: "whsec_" + base64.b64encode(os.urandom(32)).decode(),
        "rsa_public_key": lambda: str(keys / "signing.pub.pem"),
        "ec_public_key": lambda: str(keys / "sendgrid.pub.pem"),
        "ses_certificate": lambda: str(cert),
    }
    sources = {}
    for src in fixture_sources.read_all("golden"):
        values = {ph: make() for ph, make in made.items()
                  if ph in fixture_sources.placeholders_of(src)}
        values["webhook_url"] = f"http://{listen}/v1/webhooks/{src.name}"
        keys_ = fixture_sources.resolve(src, values)
        # The provider's own freshness window, not the golden run's "off".
        keys_.pop("timestamp_tolerance_s", None)
        sources[src.name] = keys_
    sections = {
        "ingest": {"listen": listen, "raw_topic": raw_topic},
        "worker": {"raw_topic": raw_topic},
        "kafka": {"bootstrap.servers": stack.brokers},
    }
    for name, keys_ in sources.items():
        sections[f"source.{name}"] = keys_
    path = work / "mailhook.ini"
    helpers.write_ini(path, sections)
    # No $MH_LOCAL key folder to fall back on: the keys must be found next to the
    # configured public halves.
    env = dict(os.environ, MAILHOOK_KAFKA_BROKERS=stack.brokers, MH_LOCAL=str(work / "none"))
    helpers.create_topics({raw_topic: 1}, stack.brokers)
    mh = Mailhook(path, sections, env, work, {"raw": raw_topic}, sources, stack.brokers, "")
    try:
        mh.start_ingest()
        yield mh, work
    finally:
        crashed = mh.crashed()
        mh.stop_all()
        helpers.delete_topics([raw_topic], stack.brokers)
        assert not crashed, "ingest exited: " + ", ".join(p.tail(40) for p in crashed)


def _sign_and_post(mh: Mailhook, source: str, body: Path) -> tuple[int, str]:
    signed = mh.cli("sign", "--source", source, str(body), check=False)
    assert signed.returncode == 0, f"sign refused {body}: {signed.stderr.decode()}"
    cmd = signed.stdout.decode().strip()
    assert "--key" not in cmd
    out = subprocess.run(["bash", "-c", cmd + " -w '\\n%{http_code}'"], capture_output=True,
                         text=True, timeout=30)
    lines = out.stdout.strip().splitlines()
    return int(lines[-1]), "\n".join(lines[:-1])


@pytest.mark.parametrize("source,body", _fixture_cases())
def test_sign_fixture(ingest, source, body):
    mh, _ = ingest
    status, answer = _sign_and_post(mh, source, body)
    assert status == 200, f"{source} {body}: ingest answered {status}: {answer}"


@pytest.mark.parametrize("source,path", _sample_files())
def test_sign_sample(ingest, source, path):
    mh, work = ingest
    body = _sample_body(path, work)
    if body is None:
        pytest.skip(f"{path.name} holds no request body")
    status, answer = _sign_and_post(mh, source, body)
    assert status == 200, f"{source} {path}: ingest answered {status}: {answer}"


def test_sign_options_after_the_command(ingest):
    """Global options may follow the command: --config after sign's own arguments."""
    mh, _ = ingest
    body = FIXTURES / "ivymail" / "delivered" / "body.json"
    if not body.is_file():
        body = next(FIXTURES.glob("ivymail/*/body.json"))
    out = subprocess.run([str(helpers.build_dir() / "mailhook"), "sign", "--source", "ivymail",
                          str(body), "--config", str(mh.config_path)],
                         capture_output=True, env=mh.env, timeout=30)
    assert out.returncode == 0, out.stderr.decode()
    assert out.stdout.decode().startswith("curl ")

"""mailhook-ingest over HTTPS ([ingest] tls_cert_file, tls_key_file): a signed webhook
posted with curl over TLS is accepted and published; clients that do not trust the
certificate, or speak plain HTTP to the port, get nothing; SIGHUP puts a new
certificate in place for new connections (and a broken one leaves the old in place);
the whole-request deadline and the connection cap hold for TLS connections too."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import time
from pathlib import Path

import pytest

import helpers
from test_pipeline import events_for, unique_bounce, uid

pytestmark = pytest.mark.skipif(not shutil.which("openssl") or not shutil.which("curl"),
                                reason="needs the openssl and curl commands")


def _self_signed(directory: Path, name: str) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 and localhost, and its key."""
    directory.mkdir(parents=True, exist_ok=True)
    cert, key = directory / f"{name}.crt", directory / f"{name}.key"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:prime256v1", "-nodes", "-days", "2",
                    "-subj", f"/CN=mailhook e2e {name}",
                    "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost",
                    "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True, timeout=30)
    return cert, key


def _curl(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["curl", "-sS", "--max-time", "10", *args], capture_output=True,
                          text=True, timeout=30)


def _status(cp: subprocess.CompletedProcess) -> str:
    return cp.stdout[-3:]


class TlsIngest:
    def __init__(self, mailhook, workdir: Path, name: str, **keys):
        self.dir = workdir
        self.cert, self.key = self.dir / "ingest.crt", self.dir / "ingest.key"
        first_cert, first_key = _self_signed(self.dir / "first", "first")
        shutil.copy(first_cert, self.cert)
        shutil.copy(first_key, self.key)
        self.ca = first_cert
        self.port = helpers.free_port()
        sections = json.loads(json.dumps(mailhook.sections))
        sections["ingest"].update({"listen": f"127.0.0.1:{self.port}",
                                   "tls_cert_file": str(self.cert),
                                   "tls_key_file": str(self.key)},
                                  **{k: str(v) for k, v in keys.items()})
        self.config = self.dir / f"{name}.ini"
        helpers.write_ini(self.config, sections)
        self.base = f"https://127.0.0.1:{self.port}"
        argv = [str(helpers.build_dir() / "mailhook-ingest"), "--config", str(self.config)]
        self.proc = helpers.Proc(name, argv, mailhook.env, mailhook.workdir / f"{name}.log")
        self.proc.start()

        def ready():
            assert self.proc.alive(), f"{name} exited:\n{self.proc.tail()}"
            return _status(_curl("--cacert", str(self.ca), "-o", "/dev/null",
                                 "-w", "%{http_code}", self.base + "/readyz")) == "200"
        helpers.wait_for(ready, 30, what=f"{name} {self.base}/readyz")

    def post(self, mailhook, body: dict, ca: Path) -> subprocess.CompletedProcess:
        data = self.dir / f"body-{uid()}.json"
        data.write_bytes(helpers._bytes(body))
        headers = helpers.signature_headers(mailhook.sources["ivymail"], body)
        args = ["--cacert", str(ca), "-o", "/dev/null", "-w", "%{http_code}", "-X", "POST",
                "-H", "Content-Type: application/json", "--data-binary", f"@{data}"]
        for k, v in headers.items():
            args += ["-H", f"{k}: {v}"]
        return _curl(*args, f"{self.base}/v1/webhooks/ivymail")

    def metric(self, name: str) -> float:
        text = _curl("--cacert", str(self.ca), self.base + "/metrics").stdout
        m = re.search(rf"^{name} ([0-9.]+)$", text, re.M)
        assert m, f"{name} missing from /metrics"
        return float(m.group(1))

    def stop(self):
        self.proc.stop()
        assert self.proc.returncode() == 0, self.proc.tail()


@pytest.fixture
def tls_ingest(mailhook, tmp_path):
    ing = TlsIngest(mailhook, tmp_path, "ingest-tls", threads=2)
    yield ing
    ing.stop()


def test_signed_webhook_over_https_is_published(mailhook, tls_ingest):
    rid = uid()
    body = unique_bounce(f"tls.{rid}@example.com", f"tls-{rid}")
    raw_before = mailhook.end_offsets("raw")
    events_before = mailhook.end_offsets("events")
    r = tls_ingest.post(mailhook, body, tls_ingest.ca)
    assert r.returncode == 0 and _status(r) == "200", (r.stdout, r.stderr)
    raw = mailhook.consume("raw", from_offsets=raw_before, expect_n=1, timeout=20)
    assert [rec.raw_value for rec in raw] == [helpers._bytes(body)]
    got = events_for(mailhook, events_before, 1)
    assert len(got) == 1, got
    _, _, event = got[0]
    assert event["message_id"] == f"tls-{rid}"


def test_untrusted_certificate_and_plain_http_fail(mailhook, tls_ingest):
    other_ca, _ = _self_signed(tls_ingest.dir / "other", "other")
    wrong = _curl("--cacert", str(other_ca), tls_ingest.base + "/healthz")
    assert wrong.returncode == 60, (wrong.returncode, wrong.stderr)  # peer not verified
    plain = _curl("-o", "/dev/null", "-w", "%{http_code}",
                  f"http://127.0.0.1:{tls_ingest.port}/healthz")
    assert plain.returncode != 0 and _status(plain) != "200", (plain.stdout, plain.stderr)
    # Neither disturbed the server.
    ok = _curl("--cacert", str(tls_ingest.ca), tls_ingest.base + "/healthz")
    assert ok.returncode == 0 and '"ok"' in ok.stdout


def _wait_log(proc, text: str, after: int) -> None:
    helpers.wait_for(lambda: text in proc.log.read_text()[after:], 10, what=repr(text))


def test_sighup_puts_a_new_certificate_in_place(mailhook, tls_ingest):
    old_ca = tls_ingest.ca
    new_cert, new_key = _self_signed(tls_ingest.dir / "second", "second")
    # Replace both files whole, as a certificate manager would.
    for src, dst in ((new_cert, tls_ingest.cert), (new_key, tls_ingest.key)):
        shutil.copy(src, f"{dst}.tmp")
        os.replace(f"{dst}.tmp", dst)
    mark = len(tls_ingest.proc.log.read_text())
    tls_ingest.proc.send_signal(signal.SIGHUP)
    _wait_log(tls_ingest.proc, "reload: new connections use the certificate", mark)
    rid = uid()
    r = tls_ingest.post(mailhook, unique_bounce(f"tls2.{rid}@example.com", f"tls2-{rid}"),
                        new_cert)
    assert r.returncode == 0 and _status(r) == "200", (r.stdout, r.stderr)
    old = _curl("--cacert", str(old_ca), tls_ingest.base + "/healthz")
    assert old.returncode == 60, (old.returncode, old.stderr)

    # A broken pair (a key of another certificate) is refused; the last good one stays.
    third_cert, _ = _self_signed(tls_ingest.dir / "third", "third")
    shutil.copy(third_cert, tls_ingest.cert)
    mark = len(tls_ingest.proc.log.read_text())
    tls_ingest.proc.send_signal(signal.SIGHUP)
    _wait_log(tls_ingest.proc, "reload: keeping the previous TLS certificate", mark)
    assert "does not match" in tls_ingest.proc.log.read_text()[mark:]
    still = _curl("--cacert", str(new_cert), tls_ingest.base + "/healthz")
    assert still.returncode == 0 and '"ok"' in still.stdout, still.stderr
    assert tls_ingest.proc.alive()


def _tls_connect(port: int, ca: Path, timeout: float) -> ssl.SSLSocket:
    ctx = ssl.create_default_context(cafile=str(ca))
    raw = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    try:
        return ctx.wrap_socket(raw, server_hostname="127.0.0.1")
    except BaseException:
        raw.close()
        raise


def _closed_within(s: socket.socket, seconds: float) -> float | None:
    """Seconds until the peer closed s (reading nothing), or None if it stayed open."""
    start = time.monotonic()
    s.settimeout(0.2)
    while time.monotonic() - start < seconds:
        try:
            if s.recv(100) == b"":
                return time.monotonic() - start
        except (socket.timeout, ssl.SSLWantReadError):
            continue
        except (ssl.SSLError, ConnectionError):
            return time.monotonic() - start
    return None


def test_deadline_and_connection_cap_hold_over_tls(mailhook, tmp_path):
    ing = TlsIngest(mailhook, tmp_path, "ingest-tls-limits", threads=1, max_connections=2,
                    request_deadline_ms=1500, read_timeout_ms=60000)
    held = []
    try:
        helpers.wait_for(lambda: ing.metric("mailhook_ingest_connections") == 1, 10,
                         what="the probes' connections to close")
        closes_before = ing.metric("mailhook_ingest_request_deadline_closes_total")
        # A handshake done and half a request: the deadline closes it, data or not.
        slow = _tls_connect(ing.port, ing.ca, 5)
        held.append(slow)
        slow.sendall(b"POST /v1/webhooks/ivymail HTTP/1.1\r\nHost: x\r\n")
        # A connection that never starts its handshake counts too.
        silent = socket.create_connection(("127.0.0.1", ing.port), timeout=5)
        held.append(silent)
        # At the cap: a third connection's handshake is not served.
        t0 = time.monotonic()
        with pytest.raises((socket.timeout, ssl.SSLError, TimeoutError)):
            held.append(_tls_connect(ing.port, ing.ca, 0.7))
        # The deadline closes both within request_deadline_ms (plus the loop's slack).
        for s in (slow, silent):
            waited = _closed_within(s, 5)
            assert waited is not None, "a TLS connection outlived request_deadline_ms"
        assert time.monotonic() - t0 < 4
        # Below the cap again: new TLS connections are served.
        ok = _curl("--cacert", str(ing.ca), ing.base + "/healthz")
        assert ok.returncode == 0 and '"ok"' in ok.stdout, ok.stderr
        assert ing.metric("mailhook_ingest_request_deadline_closes_total") >= closes_before + 2
    finally:
        for s in held:
            s.close()
        ing.stop()

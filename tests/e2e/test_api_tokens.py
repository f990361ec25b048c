"""mailhook-api's tenant-scoped bearer tokens, end to end: a token acts only for its
tenants (403 otherwise), asking across tenants needs an operator token, tokens from
before tokens had tenants are operator tokens, a bad token file names file, line and
problem, and no token shows up in the log."""

from __future__ import annotations

import base64
import json
import secrets
import subprocess

import pytest
import requests

import helpers
from test_suppression import start_api, uid


class Tokens:
    def __init__(self):
        u = uid()
        self.acme, self.beta, self.other = f"acme-{u}", f"beta-{u}", f"other-{u}"
        self.operator_bare = secrets.token_hex(32)   # a line as deploy/local writes it
        self.operator_star = secrets.token_hex(16)
        self.acme_only = secrets.token_hex(16)
        self.acme_beta = secrets.token_hex(16)

    def file_text(self) -> str:
        return (f"# mailhook-api tokens\n"
                f"{self.operator_bare}\n"
                f"\n"
                f"{self.operator_star} *\n"
                f"{self.acme_only}  {self.acme}\n"
                f"{self.acme_beta}\t{self.acme},{self.beta}\n")

    def all(self) -> list[str]:
        return [self.operator_bare, self.operator_star, self.acme_only, self.acme_beta]


@pytest.fixture(scope="module")
def tokens() -> Tokens:
    return Tokens()


@pytest.fixture(scope="module")
def api(mailhook, tokens):
    path = mailhook.workdir / f"api-tokens-{uid()}.txt"
    path.write_text(tokens.file_text())
    path.chmod(0o600)
    a = start_api(mailhook, "api-tokens", {"token_file": str(path)})
    yield a
    a.proc.stop()


def call(api, token: str, method: str, path: str, params=None, body=None) -> requests.Response:
    return requests.request(method, api.base + path, params=params, json=body, timeout=30,
                            headers={"Authorization": f"Bearer {token}"})


def test_a_tenant_token_acts_for_its_tenants_only(api, tokens):
    t = tokens
    addr = f"scoped.{uid()}@example.com"
    # Its own tenant: every operation.
    r = call(api, t.acme_only, "POST", "/v1/suppressions", body={"tenant": t.acme, "address": addr})
    assert r.status_code == 201, r.text
    assert call(api, t.acme_only, "GET", f"/v1/suppressions/{addr}",
                {"tenant": t.acme}).status_code == 200
    r = call(api, t.acme_only, "GET", "/v1/suppressions", {"tenant": t.acme})
    assert r.status_code == 200 and [i["address"] for i in r.json()["items"]] == [addr]
    assert call(api, t.acme_only, "GET", "/v1/events", {"tenant": t.acme}).status_code == 200
    assert call(api, t.acme_only, "GET", "/v1/messages/m-1/events",
                {"tenant": t.acme}).status_code == 200

    # Another tenant: 403 for every operation, and nothing changes.
    forbidden = [
        ("GET", f"/v1/suppressions/{addr}", {"tenant": t.beta}, None),
        ("DELETE", f"/v1/suppressions/{addr}", {"tenant": t.beta}, None),
        ("POST", "/v1/suppressions", None, {"tenant": t.beta, "address": addr}),
        ("GET", "/v1/suppressions", {"tenant": t.other}, None),
        ("GET", "/v1/events", {"tenant": t.beta}, None),
        ("GET", "/v1/messages/m-1/events", {"tenant": t.beta}, None),
        # Across tenants: only for an operator token.
        ("GET", "/v1/suppressions", {}, None),
        ("GET", "/v1/events", {}, None),
        ("GET", "/v1/events", {"recipient": addr}, None),
        ("GET", "/v1/messages/m-1/events", {}, None),
    ]
    for method, path, params, body in forbidden:
        r = call(api, t.acme_only, method, path, params, body)
        assert r.status_code == 403, (method, path, params, r.text)
        assert r.headers["Content-Type"] == "application/json"
        assert "tenant" in r.json()["error"]
    assert call(api, tokens.operator_bare, "GET", f"/v1/suppressions/{addr}",
                {"tenant": t.beta}).status_code == 404
    # A lookup that is forbidden says nothing about the address.
    r = call(api, t.acme_only, "GET", f"/v1/suppressions/{addr}", {"tenant": t.beta})
    assert addr not in r.text

    # A cursor of another tenant's list does not open it either.
    other_cursor = base64.urlsafe_b64encode(json.dumps([t.beta, ""]).encode()).decode()
    r = call(api, t.acme_only, "GET", "/v1/suppressions", {"tenant": t.acme,
                                                          "cursor": other_cursor.rstrip("=")})
    assert r.status_code == 400 and "cursor" in r.json()["error"]

    # A token of two tenants acts for both, and for no third.
    for tenant, status in ((t.acme, 404), (t.beta, 404), (t.other, 403)):
        r = call(api, t.acme_beta, "GET", f"/v1/suppressions/nobody{uid()}@example.com",
                 {"tenant": tenant})
        assert r.status_code == status, (tenant, r.text)

    r = call(api, t.acme_only, "DELETE", f"/v1/suppressions/{addr}", {"tenant": t.acme})
    assert r.status_code == 200 and r.json()["suppressed"] is False
    metrics = requests.get(api.base + "/metrics", timeout=5).text
    forbidden_total = [line for line in metrics.splitlines()
                       if line.startswith("mailhook_api_forbidden_total ")]
    assert forbidden_total and float(forbidden_total[0].split()[1]) >= len(forbidden), metrics


def test_operator_tokens_ask_across_tenants(api, tokens):
    """A token without tenants (as every token was before tokens had them), "*", and the
    [api] token line all list every tenant's suppressions, a page at a time across the
    tenants' boundary, and read the whole event log."""
    u = uid()
    t1, t2 = f"ops{u}-1", f"ops{u}-2"
    for tenant in (t1, t2):
        assert api.add(tenant, f"x@{tenant}.example.com").status_code == 201
    start = base64.urlsafe_b64encode(json.dumps([f"ops{u}", ""]).encode()).decode().rstrip("=")
    for token in (tokens.operator_bare, tokens.operator_star, api.token):
        seen, cursor = [], start
        for _ in range(5):
            r = call(api, token, "GET", "/v1/suppressions", {"limit": 1, "cursor": cursor})
            assert r.status_code == 200, r.text
            seen += [(i["tenant"], i["address"]) for i in r.json()["items"]]
            cursor = r.json()["next_cursor"]
            if len(seen) >= 2 or not cursor:
                break
        assert seen[:2] == [(t1, f"x@{t1}.example.com"), (t2, f"x@{t2}.example.com")]
        assert call(api, token, "GET", "/v1/events", {"limit": 1}).status_code == 200


def test_a_wrong_token_is_401_whatever_it_resembles(api, tokens):
    t = tokens.acme_only
    for wrong in (t[:-1], t + "0", t.upper(), t[1:], f"{t} {tokens.acme}", tokens.acme, "*"):
        r = call(api, wrong, "GET", "/v1/suppressions", {"tenant": tokens.acme})
        assert r.status_code == 401, wrong


def test_tokens_never_reach_the_log(api, tokens):
    # Some requests of each kind first, so the log has had its chance.
    for token in tokens.all() + ["not-a-token"]:
        call(api, token, "GET", "/v1/suppressions", {"tenant": tokens.other})
    log = api.proc.log.read_text()
    for token in tokens.all() + [api.token]:
        assert token not in log


@pytest.mark.parametrize("text,fline,needle", [
    ("good-one acme\nbad-one acme,,beta\n", 2, "empty name"),
    ("# c\nbad-one acme beta\n", 2, "expected TOKEN [TENANTS]"),
    ("bad-one acme,*\n", 1, "stands alone"),
    ("bad-one acme\nbad-one beta\n", 2, "configured twice"),
    ("\n# nothing\n", 0, "no token in it"),
])
def test_a_bad_token_file_names_file_line_and_problem(mailhook, tmp_path, text, fline, needle):
    tok = tmp_path / "tokens"
    tok.write_text(text)
    ini = tmp_path / "api.ini"
    ini.write_text(f"[api]\nlisten = 127.0.0.1:1\ntoken_file = {tok}\n")
    out = subprocess.run([str(helpers.build_dir() / "mailhook-api"), "--config", str(ini)],
                         capture_output=True, text=True, timeout=10)
    assert out.returncode != 0
    assert f"{ini}:3: [api] token_file: " in out.stderr, out.stderr
    if fline:
        assert f"{tok}:{fline}: " in out.stderr, out.stderr
    assert needle in out.stderr, out.stderr
    assert "good-one" not in out.stderr and "bad-one" not in out.stderr

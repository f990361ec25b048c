"""The operator console (/console/ on mailhook-api) in a real browser: Debian's headless
Chromium driven by Selenium through /usr/bin/chromedriver (nothing is downloaded). It
signs in with a token, finds a posted event, its raw body and its timeline, filters events
by source, suppresses and lifts an address through the confirmation dialog, shows dead
letters (with their raw bodies) and a source's refused requests (those two skip while
mailhook-api answers 404 for their endpoints), and a wrong token brings back the sign-in
view with no data on the page.

Screenshots of every view go to $MH_LOCAL/test-results/console/ (default
.local/test-results/console/)."""

from __future__ import annotations

import os
import secrets
import shutil
import tempfile
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
import requests

import helpers
from test_suppression import ivymail, maildog, start_api, uid

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
SHOTS = helpers.LOCAL / "test-results" / "console"

webdriver = pytest.importorskip("selenium.webdriver")
from selenium.common.exceptions import TimeoutException  # noqa: E402
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.common.keys import Keys  # noqa: E402
from selenium.webdriver.support import expected_conditions as EC  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

pytestmark = pytest.mark.skipif(
    not (os.access(CHROMIUM, os.X_OK) and os.access(CHROMEDRIVER, os.X_OK)),
    reason=f"needs Debian's chromium and chromium-driver ({CHROMIUM}, {CHROMEDRIVER})")


@pytest.fixture(scope="module")
def api(mailhook):
    """mailhook-api with an operator token (api.token) and one for the session's tenant
    only (api.tenant_token)."""
    tenant_token = secrets.token_hex(16)
    tokens = mailhook.workdir / "api-console-tokens"
    tokens.write_text(f"{tenant_token} {mailhook.sources['ivymail']['tenant']}\n")
    tokens.chmod(0o600)
    a = start_api(mailhook, "api-console", {"token_file": str(tokens)})
    a.tenant_token = tenant_token
    yield a
    a.proc.stop()


@pytest.fixture(scope="module")
def browser():
    profile = tempfile.mkdtemp(prefix="mailhook-console-chromium-")
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--no-first-run", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--window-size=1280,900",
                f"--user-data-dir={profile}"):
        opts.add_argument(arg)
    drv = webdriver.Chrome(service=Service(CHROMEDRIVER), options=opts)
    drv.set_window_size(1280, 900)
    SHOTS.mkdir(parents=True, exist_ok=True)
    yield drv
    drv.quit()
    shutil.rmtree(profile, ignore_errors=True)


def wait(drv, cond, timeout: float = 20.0):
    return WebDriverWait(drv, timeout, poll_frequency=0.1).until(cond)


def shot(drv, name: str) -> Path:
    """A screenshot of the whole page (the window grown to the page's height)."""
    height = drv.execute_script("return Math.max(document.body.scrollHeight, 900)")
    width = drv.get_window_size()["width"]
    drv.set_window_size(width, min(height + 120, 4000))
    path = SHOTS / f"{name}.png"
    drv.save_screenshot(str(path))
    drv.set_window_size(width, 900)
    return path


def sign_in(drv, api, token: str | None = None, tenant: str = ""):
    drv.get(api.base + "/console/")
    drv.execute_script("sessionStorage.clear()")
    drv.refresh()
    field = wait(drv, EC.visibility_of_element_located((By.ID, "login-token")))
    field.clear()
    field.send_keys(token or api.token)
    t = drv.find_element(By.ID, "login-tenant")
    t.clear()
    t.send_keys(tenant)
    t.send_keys(Keys.ENTER)  # the form submits with Enter


def signed_in(drv, api, view: str):
    if not drv.current_url.startswith(api.base + "/console/") or \
            drv.find_element(By.ID, "nav").get_attribute("hidden") is not None:
        sign_in(drv, api)
        wait(drv, EC.visibility_of_element_located((By.ID, "nav")))
    drv.find_element(By.CSS_SELECTOR, f'#nav a[data-view="{view}"]').click()
    wait(drv, EC.visibility_of_element_located((By.ID, f"view-{view}")))


def login_shown_without_data(drv) -> None:
    wait(drv, EC.visibility_of_element_located((By.ID, "login-form")))
    assert drv.find_element(By.ID, "nav").get_attribute("hidden") is not None
    for sel in ("#events-table tbody tr", "#supp-table tbody tr", "#dlq-table tbody tr",
                "#sources-list article", "#event-detail *", "#lookup-result *"):
        assert drv.find_elements(By.CSS_SELECTOR, sel) == [], sel
    assert drv.execute_script("return sessionStorage.getItem('mailhook.token')") is None


# ---------------------------------------------------------------------------------------

def test_console_files_need_no_token_and_nothing_else_is_served(api):
    r = requests.get(api.base + "/console", allow_redirects=False, timeout=5)
    assert r.status_code == 301 and r.headers["Location"] == "/console/"
    for path, ctype in (("/console/", "text/html"), ("/console/app.js", "text/javascript"),
                        ("/console/app.css", "text/css"), ("/console/favicon.svg", "image/svg+xml")):
        r = requests.get(api.base + path, timeout=5)
        assert r.status_code == 200, path
        assert r.headers["Content-Type"].startswith(ctype), path
        assert r.headers["Content-Security-Policy"] == "default-src 'self'"
        assert r.headers["Cache-Control"] == "no-cache"
        again = requests.get(api.base + path, headers={"If-None-Match": r.headers["ETag"]},
                             timeout=5)
        assert again.status_code == 304, path
    page = requests.get(api.base + "/console/", timeout=5).text
    assert "<script src=\"app.js\"" in page and "<style" not in page and "http" not in \
        page.replace("http-equiv", "")
    for path in ("/console/../CMakeLists.txt", "/console/%2e%2e/CMakeLists.txt",
                 "/console/app.js/", "/console/sub/index.html", "/console/README.md"):
        r = requests.get(api.base + path, timeout=5)
        assert r.status_code == 404, path
    r = requests.post(api.base + "/console/", timeout=5)
    assert r.status_code == 405 and r.headers["Allow"] == "GET, HEAD"


def test_wrong_token_shows_the_sign_in_view_and_no_data(api, browser):
    sign_in(browser, api, token="not-the-token")
    err = wait(browser, EC.visibility_of_element_located((By.ID, "login-error")))
    assert "not accepted" in err.text
    login_shown_without_data(browser)
    shot(browser, "sign-in-refused")

    # Signed in, then the token stops working (rotated away): the next call's 401 brings
    # the sign-in view back and empties every view.
    signed_in(browser, api, "suppressions")
    wait(browser, lambda d: d.find_element(By.ID, "supp-status").text not in ("", "Loading…"))
    browser.execute_script("sessionStorage.setItem('mailhook.token', 'rotated-away')")
    browser.find_element(By.CSS_SELECTOR, "#supp-form button[type=submit]").click()
    login_shown_without_data(browser)
    assert "refused" in browser.find_element(By.ID, "login-error").text


def test_a_tenant_token_signs_in_for_its_tenant_only(mailhook, api, browser):
    tenant = mailhook.sources["ivymail"]["tenant"]
    sign_in(browser, api, token=api.tenant_token)
    err = wait(browser, EC.visibility_of_element_located((By.ID, "login-error")))
    assert "some tenants only" in err.text
    sign_in(browser, api, token=api.tenant_token, tenant=f"other-{uid()}")
    err = wait(browser, EC.visibility_of_element_located((By.ID, "login-error")))
    assert "may not act for tenant" in err.text
    login_shown_without_data(browser)

    sign_in(browser, api, token=api.tenant_token, tenant=tenant)
    wait(browser, EC.visibility_of_element_located((By.ID, "view-events")))
    assert browser.find_element(By.ID, "session-scope").text == f"tenant {tenant}"
    assert browser.find_element(By.ID, "ev-tenant").get_attribute("value") == tenant
    status = browser.find_element(By.ID, "events-status")
    wait(browser, lambda d: status.text not in ("", "Loading…"))
    assert "error" not in status.get_attribute("class"), status.text
    browser.find_element(By.ID, "sign-out").click()
    login_shown_without_data(browser)


def test_find_a_posted_event_and_its_timeline(mailhook, api, browser):
    rcpt = f"jane.{uid()}@example.com"
    at = datetime.now(timezone.utc) - timedelta(minutes=5)
    msg = f"iv-console-{uid()}"
    ivymail(mailhook, "delivered", rcpt, at, message_id=msg)
    ivymail(mailhook, "bounced", rcpt, at + timedelta(minutes=1), message_id=msg,
            bounce_type="Permanent", bounce_subtype="General",
            diagnostic_code="smtp; 550 5.1.1 user unknown <b id='injected'>x</b>")
    helpers.wait_for(lambda: len(api.get("/v1/events", params={"recipient": rcpt}).json()
                                 ["items"]) == 2, 30, what="both events in the event log")

    signed_in(browser, api, "events")
    field = browser.find_element(By.ID, "ev-recipient")
    field.clear()
    field.send_keys(rcpt, Keys.ENTER)
    rows = wait(browser, lambda d: (r := d.find_elements(By.CSS_SELECTOR, "#events-table tbody tr"))
                and len(r) == 2 and r)
    assert "email.bounced" in rows[0].text and "ivymail" in rows[0].text
    assert "email.delivered" in rows[1].text

    rows[0].find_element(By.CSS_SELECTOR, "button.link").click()
    detail = wait(browser, EC.visibility_of_element_located((By.ID, "event-detail")))
    text = detail.text
    assert "hard" in text and "550 5.1.1 user unknown" in text
    assert mailhook.topics["raw"] in text  # the raw record's coordinates
    canonical = detail.find_element(By.CSS_SELECTOR, "pre.json").text
    assert '"schema": "mailhook.event.v1"' in canonical and f'"recipient": "{rcpt}"' in canonical
    shot(browser, "events")
    if os.environ.get("MH_CONSOLE_DOC_SHOT"):
        shutil.copy(SHOTS / "events.png", os.environ["MH_CONSOLE_DOC_SHOT"])

    # The raw record's body, as ingest took it: text, never HTML.
    detail.find_element(By.ID, "raw-body-open").click()
    pre = wait(browser, EC.visibility_of_element_located((By.CSS_SELECTOR, "#event-detail pre.raw")))
    wait(browser, lambda d: rcpt in pre.text)
    assert '"bounce_type": "Permanent"' in pre.text or '"bounce_type":"Permanent"' in pre.text
    assert "<b id='injected'>x</b>" in pre.text
    assert browser.find_elements(By.ID, "injected") == []
    assert "application/json" in detail.text and "Request id" in detail.text
    shot(browser, "events-raw-body")

    detail.find_element(By.XPATH, ".//button[text()='Message timeline']").click()
    steps = wait(browser, lambda d: (s := d.find_elements(By.CSS_SELECTOR, "ol.timeline li"))
                 and len(s) == 2 and s)
    assert "email.delivered" in steps[0].text and "email.bounced" in steps[1].text  # oldest first
    shot(browser, "events-timeline")

    # Source filters go to the API (GET /v1/events?source=), not over the loaded page.
    maildog(mailhook, "delivered", rcpt, at + timedelta(minutes=2), message_id=f"md-{uid()}")
    helpers.wait_for(lambda: len(api.get("/v1/events", params={"recipient": rcpt}).json()
                                 ["items"]) == 3, 30, what="the maildog event in the event log")
    browser.execute_script("window.mhUrls = []; const f = window.fetch;"
                           "window.fetch = (u, o) => { window.mhUrls.push(String(u)); return f(u, o); };")
    src = browser.find_element(By.ID, "ev-source")
    src.send_keys("maildog", Keys.ENTER)
    rows = wait(browser, lambda d: (r := d.find_elements(By.CSS_SELECTOR, "#events-table tbody tr"))
                and len(r) == 1 and r)
    assert "email.delivered" in rows[0].text and "maildog" in rows[0].text
    urls = [u for u in browser.execute_script("return window.mhUrls") if "/v1/events" in u]
    assert urls and "source=maildog" in urls[-1] and f"recipient={rcpt.replace('@', '%40')}" in urls[-1]
    shot(browser, "events-source-filter")
    src.clear()
    src.send_keys("ivymail", Keys.ENTER)
    wait(browser, lambda d: len(d.find_elements(By.CSS_SELECTOR, "#events-table tbody tr")) == 2
         and all("ivymail" in r.text for r in d.find_elements(By.CSS_SELECTOR, "#events-table tbody tr")))

    # A filter on another provider hides them; the phone layout stacks the same page.
    prov = browser.find_element(By.ID, "ev-provider")
    prov.send_keys("maildog", Keys.ENTER)
    wait(browser, lambda d: "No events match" in d.find_element(By.ID, "events-status").text)
    prov.clear()
    browser.set_window_size(390, 844)
    prov.send_keys(Keys.ENTER)
    wait(browser, lambda d: len(d.find_elements(By.CSS_SELECTOR, "#events-table tbody tr")) == 2)
    browser.save_screenshot(str(SHOTS / "events-phone.png"))
    browser.set_window_size(1280, 900)

    # The hard bounce suppressed the address: its suppression links to that event.
    tenant = mailhook.sources["ivymail"]["tenant"]
    helpers.wait_for(lambda: api.state(tenant, rcpt).status_code == 200, 30,
                     what=f"{rcpt} suppressed")
    bounce_id = api.get("/v1/events", params={"recipient": rcpt, "type": "email.bounced"}
                        ).json()["items"][0]["event_id"]
    browser.find_element(By.CSS_SELECTOR, '#nav a[data-view="suppressions"]').click()
    for fid, value in (("lk-tenant", tenant), ("lk-address", rcpt)):
        f = wait(browser, EC.visibility_of_element_located((By.ID, fid)))
        f.clear()
        f.send_keys(value)
    browser.find_element(By.ID, "lk-address").send_keys(Keys.ENTER)
    verdict = wait(browser, EC.visibility_of_element_located((By.CSS_SELECTOR, ".verdict.stop")))
    assert "bounce" in verdict.text
    verdict.find_element(By.CSS_SELECTOR, "a").click()
    detail = wait(browser, EC.visibility_of_element_located((By.ID, "event-detail")))
    wait(browser, lambda d: bounce_id in detail.text)
    assert "email.bounced" in detail.text


def test_suppress_check_and_lift_an_address(mailhook, api, browser):
    tenant = mailhook.sources["ivymail"]["tenant"]
    addr = f"lift.{uid()}@example.com"
    signed_in(browser, api, "suppressions")

    for fid, value in (("add-tenant", tenant), ("add-address", addr)):
        f = browser.find_element(By.ID, fid)
        f.clear()
        f.send_keys(value)
    browser.find_element(By.ID, "add-reason").send_keys("complaint")
    browser.find_element(By.ID, "add-address").send_keys(Keys.ENTER)
    wait(browser, lambda d: addr in d.find_element(By.ID, "add-result").text)
    assert api.state(tenant, addr).json()["reason"] == "complaint"

    for fid, value in (("lk-tenant", tenant), ("lk-address", addr)):
        f = browser.find_element(By.ID, fid)
        f.clear()
        f.send_keys(value)
    browser.find_element(By.ID, "lk-address").send_keys(Keys.ENTER)
    verdict = wait(browser, EC.visibility_of_element_located((By.CSS_SELECTOR, ".verdict.stop")))
    assert "complaint" in verdict.text and "api" in verdict.text

    sl = browser.find_element(By.ID, "sl-tenant")
    sl.clear()
    sl.send_keys(tenant, Keys.ENTER)
    row = wait(browser, EC.visibility_of_element_located(
        (By.CSS_SELECTOR, f'#supp-table tr[data-address="{addr}"]')))
    assert "complaint" in row.text
    shot(browser, "suppressions")

    # Cancel keeps it; confirming lifts it.
    row.find_element(By.CSS_SELECTOR, "button").click()
    dialog = wait(browser, EC.visibility_of_element_located((By.ID, "confirm")))
    assert addr in dialog.text
    shot(browser, "suppressions-confirm")
    browser.find_element(By.ID, "confirm-cancel").click()
    wait(browser, EC.invisibility_of_element_located((By.ID, "confirm")))
    assert api.state(tenant, addr).status_code == 200

    row = browser.find_element(By.CSS_SELECTOR, f'#supp-table tr[data-address="{addr}"]')
    row.find_element(By.CSS_SELECTOR, "button").click()
    wait(browser, EC.visibility_of_element_located((By.ID, "confirm")))
    browser.find_element(By.ID, "confirm-ok").click()
    wait(browser, lambda d: not d.find_elements(By.CSS_SELECTOR,
                                                f'#supp-table tr[data-address="{addr}"]'))
    wait(browser, EC.visibility_of_element_located((By.CSS_SELECTOR, ".verdict.go")))
    assert api.state(tenant, addr).status_code == 404


def _endpoint_or_skip(api, path: str, params: dict | None = None) -> requests.Response:
    r = api.get(path, params=params or {})
    if r.status_code == 404:
        pytest.skip(f"mailhook-api answers 404 for {path}")
    assert r.status_code == 200, r.text
    return r


def test_dead_letter_shown_and_rerun(mailhook, api, browser):
    signed_in(browser, api, "dead-letters")
    wait(browser, lambda d: d.find_element(By.ID, "dlq-status").text not in ("", "Loading…"))
    shot(browser, "dead-letters")
    _endpoint_or_skip(api, "/v1/dlq", {"limit": 1})

    body = b'{"event": "bounced", "message_id": "console-%s", oops' % uid().encode()
    r = mailhook.post("ivymail", body)
    assert r.status_code == 200, r.text
    request_id = r.headers["X-Request-Id"]
    helpers.wait_for(lambda: any(i.get("request_id") == request_id for i in
                                 api.get("/v1/dlq", params={"limit": 50}).json()["items"]),
                     60, what="the dead letter in GET /v1/dlq")

    browser.find_element(By.CSS_SELECTOR, "#dlq-form button[type=submit]").click()
    row = wait(browser, lambda d: next((tr for tr in d.find_elements(
        By.CSS_SELECTOR, "#dlq-table tbody tr") if request_id in tr.text), None))
    assert "ivymail" in row.text
    # Its raw record's body: what the parser refused, as text.
    row.find_element(By.CSS_SELECTOR, "button.raw-open").click()
    pre = wait(browser, EC.visibility_of_element_located((By.CSS_SELECTOR, "#dlq-table tr.raw-row pre.raw")))
    assert pre.text == body.decode()
    shot(browser, "dead-letters-raw-body")
    row.find_element(By.CSS_SELECTOR, "button.raw-open").click()
    assert browser.find_elements(By.CSS_SELECTOR, "#dlq-table tr.raw-row") == []
    row.find_element(By.CSS_SELECTOR, "input.dlq-pick").click()
    assert "1 record selected" in browser.find_element(By.ID, "replay-count").text
    topic = f"mailhook.console-rerun.{uid()}"
    browser.find_element(By.ID, "replay-topic").send_keys(topic, Keys.ENTER)
    wait(browser, EC.visibility_of_element_located((By.ID, "confirm")))
    browser.find_element(By.ID, "confirm-ok").click()
    wait(browser, EC.visibility_of_element_located((By.CSS_SELECTOR, ".replay")))
    # The progress view polls the replay until it ends (it is drawn anew on every poll).
    status = wait(browser, lambda d: d.execute_script(
        "const b = document.querySelector('.replay .badge');"
        "return b && b.textContent !== 'running' ? b.textContent : null"), 90)
    replay = browser.find_element(By.CSS_SELECTOR, ".replay")
    assert status == "done", replay.text
    assert "1 of 1 records" in replay.text
    assert replay.find_element(By.CSS_SELECTOR, "code.cli").text.startswith("mailhook ")
    shot(browser, "dead-letters-rerun")
    helpers.delete_topics([topic], mailhook.brokers)


def test_forged_requests_appear_on_the_source_chart(mailhook, api, browser):
    signed_in(browser, api, "sources")
    wait(browser, lambda d: d.find_element(By.ID, "sources-status").text not in ("", "Loading…"))
    _endpoint_or_skip(api, "/v1/sources/stats", {"range": "3600", "step": "60"})
    shot(browser, "sources-before")

    # An API that scrapes the ingest's /metrics ([api] ingest_metrics) for the answers.
    stats_api = start_api(mailhook, "api-console-stats",
                          {"ingest_metrics": mailhook.base_url + "/metrics"})
    try:
        sign_in(browser, stats_api)
        wait(browser, EC.visibility_of_element_located((By.ID, "nav")))
        browser.find_element(By.CSS_SELECTOR, '#nav a[data-view="sources"]').click()
        browser.find_element(By.ID, "src-range").send_keys("last hour")
        body = {"event": "delivered", "to": f"forged.{uid()}@example.com", "message_id": uid(),
                "timestamp": "2026-01-01T00:00:00Z"}

        def refused_on_chart(d):
            # Forged until a scrape after the first (the baseline) counts them.
            r = mailhook.post("ivymail", body, secret="not-the-secret")
            assert r.status_code == 401, r.text
            d.find_element(By.CSS_SELECTOR, "#sources-form button[type=submit]").click()
            try:
                WebDriverWait(d, 5).until(lambda x: x.find_element(By.ID, "sources-status").text
                                          not in ("", "Loading…"))
            except TimeoutException:
                return False
            card = d.find_elements(By.CSS_SELECTOR, '#sources-list article[data-source="ivymail"]')
            if not card:
                return False
            paths = card[0].find_elements(
                By.CSS_SELECTOR, 'figure[data-chart="Requests by answer"] path[data-series="401"]')
            badge = card[0].find_elements(By.CSS_SELECTOR, ".badge.alert")
            return bool(paths) and bool(badge) and int(badge[0].get_attribute("data-refused")) > 0
        WebDriverWait(browser, 90, poll_frequency=2).until(refused_on_chart)
        shot(browser, "sources")
    finally:
        stats_api.proc.stop()

"""The partner portal driven in a real browser (Debian's Chromium through
chromedriver, with Selenium): the provider invites a partner from the CLI,
the partner follows the link, signs up, creates a client, reads the secret
shown once, gets a token with it from /oauth/token (within 60 s of the
invitation), rotates the secret with a grace, and the old secret works
during the grace and is refused after it. Then the provider disables the
partner: the client is refused and the session is gone.

Runs over SQLite, or PostgreSQL with TG_TEST_STORE=postgres. Screenshots of
the main pages go to TG_SCREENSHOTS (default: docs/portal/, the ones the
docs show; scripts/test.sh points it at a temporary directory, so refresh
them with `TG_BIN=target/debug/tollgate python3 -m pytest -q tests/portal`).

Selenium rather than a Rust DevTools client: the repository's browser-less
client tests are already Python (pytest, requests), and Selenium speaks the
W3C WebDriver protocol chromedriver implements, so no browser download or
CDP version pinning is involved."""

import base64
import hashlib
import hmac
import os
import struct
import tempfile
import time
from collections import Counter
from pathlib import Path

import pytest
import requests
from selenium.webdriver.common.by import By

from conftest import ROOT, serve

PASSWORD = "a long enough passphrase"
GRACE = 20


def shots_dir() -> Path:
    d = Path(os.environ.get("TG_SCREENSHOTS", str(ROOT / "docs" / "portal")))
    d.mkdir(parents=True, exist_ok=True)
    return d


def shot(browser, name: str) -> None:
    path = shots_dir() / f"{name}.png"
    assert browser.save_screenshot(str(path)), name
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


# Every token request's status, by client: what the usage page must show.
CALLS: Counter = Counter()


def token(tg, client_id: str, secret: str) -> requests.Response:
    r = requests.post(
        tg.base + "/oauth/token",
        data={"grant_type": "client_credentials"},
        auth=(client_id, secret),
        verify=str(tg.ca),
        timeout=30,
    )
    CALLS[(client_id, r.status_code)] += 1
    return r


def until(what: str, check, timeout: float = 30.0):
    """Polls `check` until it returns a true value (generous bound: CI
    machines are loaded)."""
    deadline = time.monotonic() + timeout
    while True:
        v = check()
        if v:
            return v
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.2)


def test_invite_sign_up_create_rotate_disable(tollgate, browser):
    tg = tollgate
    tg.cli("api", "create", "odds-feed", "--permission", "odds:read",
           "--package", "odds-basic=odds:read", "--token-lifetime", "600s")
    tg.cli("partner", "create", "acme", "--name", "Acme Betting Ltd",
           "--offer", "odds-feed=odds-basic")

    started = time.monotonic()
    link = tg.cli("partner", "invite", "acme", "--expires", "1h",
                  "--portal-url", tg.base + "/portal/")["link"]
    assert "/portal/accept?token=" in link

    # Sign up from the link.
    browser.get(link)
    assert "Acme Betting Ltd" in browser.page_source
    shot(browser, "1-sign-up")
    browser.find_element(By.ID, "login").send_keys("jane.doe")
    browser.find_element(By.ID, "password").send_keys(PASSWORD)
    browser.find_element(By.ID, "password2").send_keys(PASSWORD)
    browser.find_element(By.CSS_SELECTOR, "form button[type=submit]").click()
    until("the dashboard", lambda: "Your API clients" in browser.page_source)
    cookies = {c["name"]: c for c in browser.get_cookies()}
    session = cookies["__Host-tg_portal"]
    assert session["httpOnly"] and session["secure"]
    assert session["sameSite"] == "Strict"
    shot(browser, "2-dashboard-empty")

    # Create a client from the offered package.
    browser.find_element(By.ID, "name-default").send_keys("odds-consumer")
    box = browser.find_element(By.ID, "offer-default-0")
    assert box.is_selected(), "the only offer is preselected"
    browser.find_element(By.XPATH, "//button[text()='Create client']").click()
    until("the secret page", lambda: "Client created" in browser.page_source)
    client_id = browser.find_element(By.ID, "client-id").text.strip()
    secret = browser.find_element(By.ID, "client-secret").text.strip()
    copy = browser.find_element(By.CSS_SELECTOR, "button[data-copy=client-secret]")
    assert copy.is_displayed(), "the script shows the copy button"
    assert len(secret) == 43
    shot(browser, "3-secret-shown-once")

    # The secret works at once.
    r = until("a first token", lambda: (lambda r: r if r.status_code == 200 else None)(
        token(tg, client_id, secret)))
    elapsed = time.monotonic() - started
    # Refusals before the server knew the client count nowhere (usage
    # counts only existing clients).
    CALLS[(client_id, 401)] = 0
    assert r.json()["token_type"].lower() == "bearer"
    assert elapsed < 60, f"first token {elapsed:.1f} s after the invitation"
    print(f"first token {elapsed:.2f} s after the invitation")

    # The dashboard lists it; the secret is not on it.
    browser.get(tg.base + "/portal/")
    assert client_id in browser.page_source
    assert secret not in browser.page_source
    assert "odds-basic" in browser.page_source

    # Rotate with a grace.
    grace = browser.find_element(By.ID, f"grace-default-{client_id}")
    grace.clear()
    grace.send_keys(str(GRACE))
    rotated_at = time.monotonic()
    browser.find_element(By.XPATH, "//button[text()='Rotate secret']").click()
    until("the rotated secret", lambda: "Secret rotated" in browser.page_source)
    new_secret = browser.find_element(By.ID, "client-secret").text.strip()
    assert new_secret != secret
    assert "keeps working until" in browser.page_source
    shot(browser, "4-rotated-with-grace")
    until("the new secret", lambda: token(tg, client_id, new_secret).status_code == 200)
    old = token(tg, client_id, secret)
    assert time.monotonic() - rotated_at < GRACE, "checked within the grace"
    assert old.status_code == 200, old.text

    browser.get(tg.base + "/portal/")
    assert "in grace until" in browser.page_source
    shot(browser, "5-dashboard-in-grace")

    # After the grace the old secret is refused; the new one works.
    time.sleep(max(0.0, GRACE - (time.monotonic() - rotated_at)))
    until("the old secret refused",
          lambda: token(tg, client_id, secret).status_code == 401)
    assert token(tg, client_id, new_secret).status_code == 200

    check_usage(tg, browser, client_id, new_secret)

    # The provider disables the partner: its client and session are gone.
    tg.cli("partner", "disable", "acme")
    until("the client refused",
          lambda: token(tg, client_id, new_secret).status_code == 401)
    browser.get(tg.base + "/portal/")
    until("the sign-in page", lambda: "Sign in" in browser.title)
    shot(browser, "6-sign-in")


def check_usage(tg, browser, client_id: str, secret: str) -> None:
    """The usage page shows the client's calls: a wrong secret (an error),
    then a limit of 2 an hour reached (429s), once the server flushed them
    (every second here); and the limit's state."""
    assert token(tg, client_id, "not the secret").status_code == 401
    tg.cli("client", "set-obligation", client_id, "limit:2/1h")
    until("a 429 from the limit",
          lambda: token(tg, client_id, secret).status_code == 429)
    issued, errors, throttled = (CALLS[(client_id, s)] for s in (200, 401, 429))
    assert issued >= 3 and errors >= 1 and throttled >= 1, CALLS
    assert sum(n for (c, _), n in CALLS.items() if c == client_id) == issued + errors + throttled

    browser.get(tg.base + "/portal/")
    browser.find_element(By.LINK_TEXT, "Usage and quota").click()
    until("the usage page", lambda: "Usage of odds-consumer" in browser.title)

    def totals():
        row = browser.find_element(By.ID, "usage-total")
        shown = tuple(int(row.find_element(By.CLASS_NAME, c).text)
                      for c in ("issued", "errors", "throttled"))
        if shown == (issued, errors, throttled):
            return shown
        browser.refresh()
        return None

    until("the usage flushed", totals, timeout=15)
    today = browser.find_element(By.CSS_SELECTOR, "#usage-table tbody tr")
    assert [td.text for td in today.find_elements(By.TAG_NAME, "td")] == [
        str(issued), str(errors), str(throttled)]
    chart = browser.find_element(By.CSS_SELECTOR, "svg[role=img]")
    desc = chart.find_element(By.TAG_NAME, "desc").get_attribute("textContent")
    assert f"{issued} tokens issued, {errors} errors, {throttled} 429s" in desc, desc
    assert len(chart.find_elements(By.CSS_SELECTOR, "g.chart-day")) == 30
    assert len(chart.find_elements(By.CSS_SELECTOR, "g.chart-day rect")) == 3, "one day, three kinds"
    state = browser.find_element(By.ID, "quota-state").text
    assert "At most 2 tokens per 1 hour" in state, state
    assert browser.find_element(By.ID, "quota-used").text == "2"
    shot(browser, "12-usage")


def test_forms_need_csrf_and_failures_lock(tollgate):
    tg = tollgate
    s = requests.Session()
    s.verify = str(tg.ca)
    # No pre-session cookie, no token: refused.
    r = s.post(tg.base + "/portal/login", data={"login": "x", "password": "y"})
    assert r.status_code == 403
    page = s.get(tg.base + "/portal/login")
    assert page.status_code == 200
    assert "__Host-tg_pre" in s.cookies.keys()
    import re
    csrf = re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)
    r = s.post(tg.base + "/portal/login", data={"login": "x", "password": "y", "csrf": "forged"})
    assert r.status_code == 403

    tg.cli("partner", "create", "lockme")
    link = tg.cli("partner", "invite", "lockme", "--portal-url", tg.base + "/portal")["link"]
    tok = link.split("token=")[1]
    r = s.post(tg.base + "/portal/accept", data={
        "csrf": csrf, "token": tok, "login": "locky", "password": PASSWORD, "password2": PASSWORD})
    assert r.status_code == 200 and "Your API clients" in r.text
    r = s.post(tg.base + "/portal/accept", data={
        "csrf": csrf, "token": tok, "login": "locky2", "password": PASSWORD, "password2": PASSWORD})
    assert r.status_code == 410, "an invitation works once"
    # A taken login is refused on the form and leaves the invitation unused.
    again = tg.cli("partner", "invite", "lockme", "--portal-url", tg.base + "/portal")["link"]
    tok2 = again.split("token=")[1]
    fields = {"csrf": csrf, "token": tok2, "password": PASSWORD, "password2": PASSWORD}
    r = s.post(tg.base + "/portal/accept", data={**fields, "login": "locky"})
    assert r.status_code == 409 and "already exists" in r.text
    r = s.post(tg.base + "/portal/accept", data={**fields, "login": "locky.two"})
    assert r.status_code == 200 and "Your API clients" in r.text
    fresh = requests.Session()
    fresh.verify = str(tg.ca)
    page = fresh.get(tg.base + "/portal/login")
    csrf = re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)
    for _ in range(5):
        r = fresh.post(tg.base + "/portal/login",
                       data={"csrf": csrf, "login": "locky", "password": "wrong password"})
        assert r.status_code == 401
    r = fresh.post(tg.base + "/portal/login",
                   data={"csrf": csrf, "login": "locky", "password": PASSWORD})
    assert r.status_code == 429, "locked, even with the right password"


# ---- Second factor, credentials pages and one-time links -------------------

GATE_POLICY = """
[gate]

[[gate.route]]
methods = ["GET"]
path = "/v2/odds/**"
audience = "odds-live"
permissions_any = ["odds:read"]
api_keys = true
"""


@pytest.fixture
def gated():
    """A server with every contract (the bearer exchange of refresh JWTs)
    and a gate route that takes API keys. Per test, not per module: while
    it runs, requests trust its certificate instead of the module server's,
    so it must stop before the next test talks to that one."""
    with tempfile.TemporaryDirectory() as d:
        cfg = Path(d) / "tollgate.toml"
        cfg.write_text(GATE_POLICY)
        with serve(("--config", str(cfg), "--contracts", "all")) as tg:
            yield tg


def totp_code(base32: str, at: float) -> str:
    """RFC 6238 as an authenticator app computes it: HMAC-SHA1, 30 s, 6 digits."""
    key = base64.b32decode(base32 + "=" * (-len(base32) % 8))
    mac = hmac.new(key, struct.pack(">Q", int(at // 30)), hashlib.sha1).digest()
    off = mac[-1] & 0x0F
    value = struct.unpack(">I", mac[off:off + 4])[0] & 0x7FFFFFFF
    return f"{value % 1_000_000:06d}"


def gate_check(tg, key: str) -> int:
    return requests.get(tg.base + "/gate/check", headers={
        "x-original-method": "GET", "x-original-uri": "/v2/odds/1", "x-api-key": key,
    }, verify=str(tg.ca), timeout=30).status_code


def test_totp_credentials_download_and_one_time_link(gated, browser):
    tg = gated
    tg.cli("api", "create", "odds-live", "--permission", "odds:read",
           "--package", "live=odds:read")
    tg.cli("partner", "create", "bolt", "--name", "Bolt Odds", "--offer", "odds-live=live")
    link = tg.cli("partner", "invite", "bolt", "--portal-url", tg.base + "/portal/")["link"]
    browser.delete_all_cookies()
    browser.get(link)
    browser.find_element(By.ID, "login").send_keys("sam.lee")
    browser.find_element(By.ID, "password").send_keys(PASSWORD)
    browser.find_element(By.ID, "password2").send_keys(PASSWORD)
    browser.find_element(By.CSS_SELECTOR, "form button[type=submit]").click()
    until("the dashboard", lambda: "Your API clients" in browser.page_source)

    # Enrol TOTP: the secret in base32, the URI and its QR code; a code confirms.
    browser.find_element(By.LINK_TEXT, "Account security").click()
    browser.find_element(By.XPATH, "//button[text()='Set up two-step sign-in']").click()
    until("the enrolment", lambda: "totp-secret" in browser.page_source)
    secret = browser.find_element(By.ID, "totp-secret").text.strip()
    uri = browser.find_element(By.ID, "totp-uri").text.strip()
    assert uri.startswith("otpauth://totp/") and f"secret={secret}" in uri
    assert browser.find_element(By.CSS_SELECTOR, "svg.qr").is_displayed()
    shot(browser, "7-totp-enrolment")
    browser.find_element(By.ID, "code").send_keys(totp_code(secret, time.time()))
    browser.find_element(By.XPATH, "//button[text()='Confirm and turn on']").click()
    until("TOTP on", lambda: "Two-step sign-in is on." in browser.page_source)

    # Sign out and in again: the password, then a code computed here.
    browser.find_element(By.XPATH, "//button[text()='Sign out']").click()
    until("the sign-in page", lambda: "Sign in" in browser.title)
    browser.find_element(By.ID, "login").send_keys("sam.lee")
    browser.find_element(By.ID, "password").send_keys(PASSWORD)
    browser.find_element(By.CSS_SELECTOR, "form button[type=submit]").click()
    until("the code form", lambda: "Enter your code" in browser.page_source)
    shot(browser, "8-sign-in-code")
    # The confirming code's step is used up: the next step's (within the window).
    browser.find_element(By.ID, "code").send_keys(totp_code(secret, time.time() + 30))
    browser.find_element(By.CSS_SELECTOR, "form button[type=submit]").click()
    until("the dashboard", lambda: "Your API clients" in browser.page_source)

    # A client; its secret downloads as a file without script (CSP).
    browser.find_element(By.ID, "name-default").send_keys("live-feed")
    browser.find_element(By.XPATH, "//button[text()='Create client']").click()
    until("the secret page", lambda: "Client created" in browser.page_source)
    client_id = browser.find_element(By.ID, "client-id").text.strip()
    client_secret = browser.find_element(By.ID, "client-secret").text.strip()
    downloads = Path(tempfile.mkdtemp(prefix="tg-downloads-"))
    browser.execute_cdp_cmd("Browser.setDownloadBehavior",
                            {"behavior": "allow", "downloadPath": str(downloads)})
    browser.find_element(By.PARTIAL_LINK_TEXT, "Download as").click()
    got = until("the download", lambda: [p for p in downloads.glob("*.txt")])
    assert got[0].name == f"client-secret-{client_id}.txt"
    assert got[0].read_text().strip() == client_secret

    # A refresh JWT from the client's credentials page, exchanged at once.
    browser.get(tg.base + "/portal/")
    browser.find_element(By.LINK_TEXT, "Refresh JWTs and API keys").click()
    until("the credentials page", lambda: "Issue a refresh JWT" in browser.page_source)
    browser.find_element(By.XPATH, "//button[text()='Issue refresh JWT']").click()
    until("the refresh JWT", lambda: "Refresh JWT issued" in browser.page_source)
    jwt = browser.find_element(By.ID, "new-secret").text.strip()
    shot(browser, "9-refresh-jwt-shown-once")
    r = requests.post(tg.base + "/pub/v2/players/access-token",
                      headers={"authorization": f"Bearer {jwt}"}, verify=str(tg.ca), timeout=30)
    assert r.status_code == 200, r.text
    assert r.json()["token"]

    # An API key handed over through a one-time link instead of shown.
    browser.back()
    until("the credentials page", lambda: "Create an API key" in browser.page_source)
    browser.find_element(By.ID, "ak-name").send_keys("ci")
    browser.find_element(By.ID, "ak-link").click()
    browser.find_element(By.XPATH, "//button[text()='Create API key']").click()
    until("the link page", lambda: "One-time link made" in browser.page_source)
    assert "tgk_" not in browser.find_element(By.ID, "handover-link").text
    handover = browser.find_element(By.ID, "handover-link").text.strip()
    assert "Expires" in browser.page_source
    shot(browser, "10-one-time-link")
    local = tg.base + "/portal/handover?token=" + handover.split("token=")[1]

    # The colleague: a fresh browser profile would do the same; cookies of
    # the partner's session play no part (the link is the credential).
    browser.delete_all_cookies()
    browser.get(local)
    until("the look page", lambda: "A secret for you" in browser.page_source)
    browser.find_element(By.XPATH, "//button[text()='Show the secret now']").click()
    until("the secret", lambda: "handover-secret" in browser.page_source)
    key = browser.find_element(By.ID, "handover-secret").text.strip()
    assert key.startswith("tgk_")
    shot(browser, "11-one-time-link-opened")
    until("the key accepted at the gate", lambda: gate_check(tg, key) == 200)
    browser.get(local)
    until("the link used up", lambda: "Link not valid" in browser.page_source)


def test_usage_page_shows_only_the_partners_own_clients(tollgate):
    import re
    tg = tollgate
    tg.cli("api", "create", "usage-api", "--permission", "u:read")
    tg.cli("partner", "create", "nosy", "--offer", "usage-api=u:read")
    foreign = tg.cli("client", "create", "--name", "not-theirs",
                     "--api", "usage-api=u:read")["client_id"]
    s = requests.Session()
    s.verify = str(tg.ca)
    usage = tg.base + "/portal/clients/usage"
    r = s.get(usage, params={"env": "default", "client": foreign}, allow_redirects=False)
    assert r.status_code == 303 and r.headers["location"].endswith("/portal/login")
    page = s.get(tg.base + "/portal/login")
    csrf = re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)
    link = tg.cli("partner", "invite", "nosy", "--portal-url", tg.base + "/portal")["link"]
    r = s.post(tg.base + "/portal/accept", data={
        "csrf": csrf, "token": link.split("token=")[1], "login": "nosy.one",
        "password": PASSWORD, "password2": PASSWORD})
    assert r.status_code == 200 and "Your API clients" in r.text
    for client in (foreign, "no-such-client"):
        r = s.get(usage, params={"env": "default", "client": client})
        assert r.status_code == 404, client
        assert "not-theirs" not in r.text
    # Its own client (made in the portal) has a page: no calls, no limit.
    dashboard = s.get(tg.base + "/portal/").text
    csrf = re.search(r'name="csrf" value="([^"]+)"', dashboard).group(1)
    r = s.post(tg.base + "/portal/clients", data={
        "csrf": csrf, "env": "default", "name": "mine",
        "offer": '["usage-api","u:read"]'})
    assert r.status_code == 201, r.text
    own = re.search(r'id="client-id">([^<]+)<', r.text).group(1)
    r = s.get(usage, params={"env": "default", "client": own})
    assert r.status_code == 200
    assert "No token requests in the 30 days shown." in r.text
    assert "This client has no issuance limit." in r.text
    assert "style=" not in r.text and "<script>" not in r.text


def test_package_request_approved_by_the_provider_then_one_click_disable(tollgate, browser):
    """A partner asks for a package in the portal; the provider, signed in
    to the provider pages with an admin API token, approves it; the
    partner creates a client with it; the provider disables the partner in
    one click and the client's token request is refused within a second."""
    from selenium.webdriver.support.ui import Select

    tg = tollgate
    tg.cli("api", "create", "scores", "--permission", "scores:read",
           "--permission", "scores:live", "--package", "basic=scores:read",
           "--package", "live=scores:read,scores:live")
    tg.cli("partner", "create", "zeta", "--name", "Zeta Sports", "--offer", "scores=basic")
    link = tg.cli("partner", "invite", "zeta", "--portal-url", tg.base + "/portal/")["link"]

    # A fresh browser session: sign up as a Zeta account.
    browser.get(tg.base + "/portal/login")
    browser.delete_all_cookies()
    browser.get(link)
    browser.find_element(By.ID, "login").send_keys("zoe")
    browser.find_element(By.ID, "password").send_keys(PASSWORD)
    browser.find_element(By.ID, "password2").send_keys(PASSWORD)
    browser.find_element(By.CSS_SELECTOR, "form button[type=submit]").click()
    until("the dashboard", lambda: "Your API clients" in browser.page_source)

    # Ask for the live package, from the page the dashboard links to.
    browser.find_element(By.ID, "ask-package").click()
    until("the request page", lambda: "Ask for a package" in browser.page_source)
    Select(browser.find_element(By.ID, "package")).select_by_value('["default","scores","live"]')
    browser.find_element(By.ID, "note").send_keys("for the live scoreboard")
    browser.find_element(By.XPATH, "//button[text()='Send the request']").click()
    until("the request sent", lambda: "Request sent" in browser.page_source)
    assert "pending" in browser.find_element(By.ID, "my-requests").text
    shot(browser, "13-package-request")

    # The provider signs in with an admin token (no password of its own).
    admin = tg.cli("admin", "bootstrap")

    def admin_token():
        r = requests.post(tg.base + "/oauth/token",
                          data={"grant_type": "client_credentials", "audience": "tollgate-admin"},
                          auth=(admin["client_id"], admin["client_secret"]),
                          verify=str(tg.ca), timeout=30)
        return r.json()["access_token"] if r.status_code == 200 else None

    admin_tok = until("an admin token", admin_token)
    browser.get(tg.base + "/portal/provider/login")
    browser.find_element(By.ID, "token").send_keys(admin_tok)
    browser.find_element(By.XPATH, "//button[text()='Sign in']").click()
    until("the provider pages", lambda: "Package requests waiting (1)" in browser.page_source)
    provider = {c["name"]: c for c in browser.get_cookies()}["__Host-tg_provider"]
    assert provider["httpOnly"] and provider["secure"] and provider["sameSite"] == "Strict"
    row = browser.find_element(By.ID, "partner-zeta")
    assert "enabled" in row.text
    assert "for the live scoreboard" in browser.page_source
    shot(browser, "14-provider-partners")
    browser.find_element(By.CSS_SELECTOR, "#pending button[aria-label='Approve live for zeta']").click()
    until("the request approved", lambda: "Package requests waiting (0)" in browser.page_source)

    # The partner (same browser, its own cookie) now creates a client with it.
    browser.get(tg.base + "/portal/")
    assert "live" in browser.page_source
    browser.find_element(By.ID, "name-default").send_keys("scoreboard")
    labels = browser.find_elements(By.CSS_SELECTOR, "label.inline")
    live = next(l for l in labels if l.text.endswith("live"))
    browser.find_element(By.ID, live.get_attribute("for")).click()
    browser.find_element(By.XPATH, "//button[text()='Create client']").click()
    until("the secret page", lambda: "Client created" in browser.page_source)
    client_id = browser.find_element(By.ID, "client-id").text.strip()
    secret = browser.find_element(By.ID, "client-secret").text.strip()
    r = until("a token with the live package", lambda: (lambda r: r if r.status_code == 200 else None)(
        requests.post(tg.base + "/oauth/token",
                      data={"grant_type": "client_credentials", "audience": "scores"},
                      auth=(client_id, secret), verify=str(tg.ca), timeout=30)))
    assert "scores:live" in r.json()["scope"]

    # One click disables the partner: refused within a second.
    browser.get(tg.base + "/portal/provider/")
    button = browser.find_element(
        By.CSS_SELECTOR, "#partner-zeta form[action$='partners/disable'] button")
    clicked = time.monotonic()
    button.click()
    until("the client refused", lambda: token(tg, client_id, secret).status_code == 401,
          timeout=1.5)
    refused_after = time.monotonic() - clicked
    print(f"disabled partner's client refused {refused_after:.3f} s after the click")
    assert refused_after < 1.0
    until("the page after the click", lambda: "disabled" in
          browser.find_element(By.ID, "partner-zeta").text)

    # The audit log, in the provider pages.
    browser.get(tg.base + "/portal/provider/audit")
    page = browser.page_source
    for action in ("portal.package-request.create", "package-request.approve",
                   "partner.disable"):
        assert action in page, action
    assert secret not in page
    shot(browser, "15-provider-audit")

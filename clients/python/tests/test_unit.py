"""The behaviour every source promises, against a fake token server: single
flight, the margin, the background refresh, Retry-After and backoff,
persistence before use, the store re-read and re-login, the cache key, and
the requests/httpx auth objects."""

import os
import stat
import threading
import time
from hashlib import md5

import pytest
import requests

from fake import Counter, jwt_like
from tollgate_client import (BearerExchange, ClientCredentials, DeviceCredentials, FileStore,
                             HeaderLogin, MemoryStore, Options, RateLimited, Refused,
                             RetryPolicy, SessionEnded, StoreError, TokenCache, TooShort,
                             Unavailable)
from tollgate_client.store import RefreshStore
from tollgate_client.transport import parse_retry_after

FAST = RetryPolicy(max_attempts=4, base_delay=0.05, max_delay=0.2, max_retry_after=5)


def oauth_server(fake_factory, expires_in=600, delay=0.0, gate=None):
    """A client_credentials endpoint handing out tok-1, tok-2, ..."""
    n = Counter()

    def answer(seen):
        i = n.next()
        if gate is not None:
            gate(i)
        time.sleep(delay)
        return 200, {}, {"access_token": f"tok-{i}", "token_type": "Bearer", "expires_in": expires_in}

    return fake_factory(answer)


def cc(fake, **opts):
    opts.setdefault("margin", 1)
    opts.setdefault("retry", FAST)
    return ClientCredentials(fake.url, "cid", "secret").source(**opts)


def run_threads(n, fn):
    out, errors = [None] * n, []
    start = threading.Barrier(n)

    def work(i):
        start.wait()
        try:
            out[i] = fn()
        except Exception as e:  # collected and asserted on below
            errors.append(e)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return out, errors


# -- single flight and cache ---------------------------------------------


def test_concurrent_callers_cause_one_request(fake_factory):
    fake = oauth_server(fake_factory, delay=0.3)
    src = cc(fake)
    tokens, errors = run_threads(100, src.token)
    assert errors == []
    assert set(tokens) == {"tok-1"}
    assert fake.count("/oauth/token") == 1
    assert src.token() == "tok-1", "cached afterwards"
    assert fake.count() == 1


def test_callers_behind_a_failed_request_share_its_error(fake_factory):
    fake = fake_factory(lambda s: (time.sleep(0.2) or 401, {},
                                   {"error": "invalid_client", "error_description": "Unauthorized"}))
    src = cc(fake)
    _, errors = run_threads(30, src.token)
    assert len(errors) == 30
    assert all(isinstance(e, Refused) and e.code == "invalid_client" and e.status == 401
               and e.contract == "rfc6749" for e in errors)
    assert fake.count() == 1


def test_every_field_of_the_key_separates_tokens(fake_factory):
    fake = oauth_server(fake_factory)
    cache = TokenCache()
    base = dict(audience="a", scope="read")

    def src(client="cid", **kw):
        merged = {**base, **kw}
        return ClientCredentials(fake.url, client, "s", **merged).source(cache=cache, margin=1)

    assert src().token() == src().token() == "tok-1", "equal keys share the token"
    seen = {src().token()}
    for variant in (dict(scope="write"), dict(audience="b"), dict(resource="https://r"),
                    dict(client="other"), dict(shape="json")):
        seen.add(src(**variant).token())
    assert len(seen) == 6
    assert fake.count() == 6


# -- margin and background refresh -----------------------------------------


def test_no_token_with_less_than_the_margin_is_handed_out(fake_factory):
    issued = {}
    n = Counter()

    def answer(seen):
        i = n.next()
        sent = time.time()
        if i > 1:
            # A slow refresh: the old token passes the margin meanwhile, and
            # callers must wait rather than get it.
            time.sleep(1.6)
        issued[f"tok-{i}"] = sent + 3.0
        return 200, {}, {"access_token": f"tok-{i}", "expires_in": 3}

    fake = fake_factory(answer)
    src = cc(fake, margin=1.0, refresh_at=0.2, jitter=0.0)
    handed = []
    stop = time.time() + 4.0

    def caller():
        while time.time() < stop:
            t = src.token()
            handed.append(issued[t] - time.time())
            time.sleep(0.01)

    _, errors = run_threads(8, caller)
    src.close()
    assert errors == []
    assert handed and min(handed) >= 1.0 - 0.05  # the fake's clock starts after ours
    assert fake.count() >= 2


def test_a_token_shorter_than_the_margin_is_refused(fake_factory):
    fake = oauth_server(fake_factory, expires_in=1)
    with pytest.raises(TooShort):
        cc(fake, margin=5).token()


def test_background_refresh_keeps_callers_on_the_valid_token(fake_factory):
    hold = threading.Event()
    arrived = threading.Event()

    def gate(i):
        if i == 2:
            arrived.set()
            hold.wait(10)

    fake = oauth_server(fake_factory, expires_in=4, gate=gate)
    src = cc(fake, margin=1, refresh_at=0.25, jitter=0.0)
    assert src.token() == "tok-1"
    assert arrived.wait(5), "the refresh started by itself at 25 % of the lifetime"
    # The refresh is out and held by the server: callers are not blocked.
    t0 = time.monotonic()
    assert src.token() == "tok-1"
    assert time.monotonic() - t0 < 0.5
    hold.set()
    deadline = time.time() + 5
    while src.token() != "tok-2" and time.time() < deadline:
        time.sleep(0.02)
    assert src.token() == "tok-2"
    src.close()


def test_options_are_checked():
    with pytest.raises(ValueError):
        Options(refresh_at=1.5).check()
    with pytest.raises(ValueError):
        ClientCredentials("http://x", "a", "b", shape="auth0").source(margin=1)


# -- Retry-After and backoff -------------------------------------------------


def test_429_retry_after_is_waited_out(fake_factory):
    n = Counter()

    def answer(seen):
        if n.next() == 1:
            return 429, {"Retry-After": "1"}, {"error": "too_many_requests"}
        return 200, {}, {"access_token": "tok", "expires_in": 600}

    fake = fake_factory(answer)
    assert cc(fake).token() == "tok"
    assert fake.count() == 2
    assert fake.seen[1].at - fake.seen[0].at >= 0.95


def test_503_retry_after_as_an_http_date(fake_factory):
    n = Counter()
    when = time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime(time.time() + 2))

    def answer(seen):
        if n.next() == 1:
            return 503, {"Retry-After": when}, "down"
        return 200, {}, {"access_token": "tok", "expires_in": 600}

    fake = fake_factory(answer)
    assert cc(fake).token() == "tok"
    assert fake.seen[1].at - fake.seen[0].at >= 0.9


def test_a_retry_after_beyond_the_limit_is_reported_at_once(fake_factory):
    fake = fake_factory(lambda s: (429, {"Retry-After": "3600"}, {"error": "too_many_requests"}))
    with pytest.raises(RateLimited) as e:
        cc(fake).token()
    assert e.value.retry_after == 3600
    assert fake.count() == 1


def test_transient_failures_back_off_exponentially_then_give_up(fake_factory):
    fake = fake_factory(lambda s: (502, {}, "bad gateway"))
    policy = RetryPolicy(max_attempts=4, base_delay=0.1, max_delay=0.25)
    with pytest.raises(Unavailable) as e:
        cc(fake, retry=policy).token()
    assert e.value.attempts == 4 and "502" in e.value.last
    gaps = [b.at - a.at for a, b in zip(fake.seen, fake.seen[1:])]
    # Full jitter over [half, all] of 0.1, 0.2, then the 0.25 cap.
    assert gaps[0] >= 0.05 and gaps[1] >= 0.1 and gaps[2] >= 0.125
    assert all(g < 1.0 for g in gaps)


def test_connection_failures_are_retried(fake_factory):
    fake = oauth_server(fake_factory)
    port = int(fake.url.rsplit(":", 1)[1])
    fake.close()
    src = ClientCredentials(f"http://127.0.0.1:{port}", "cid", "s").source(margin=1, retry=FAST)
    with pytest.raises(Unavailable) as e:
        src.token()
    assert e.value.attempts == 4 and "ConnectionError" in e.value.last


def test_retry_after_parsing():
    assert parse_retry_after("7") == 7
    assert parse_retry_after(None) is None
    assert parse_retry_after("soon") is None
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 0


def test_a_refusal_is_not_retried(fake_factory):
    fake = fake_factory(lambda s: (400, {}, {"error": "invalid_scope", "error_description": "no"}))
    with pytest.raises(Refused) as e:
        cc(fake).token()
    assert (e.value.code, e.value.description) == ("invalid_scope", "no")
    assert fake.count() == 1


# -- the wire of each contract -------------------------------------------------


def test_client_credentials_shapes(fake_factory):
    fake = oauth_server(fake_factory)
    ClientCredentials(fake.url, "cid", "sec", audience="mts").source(margin=1).token()
    ClientCredentials(fake.url + "/", "cid", "sec", shape="json").source(margin=1).token()
    ClientCredentials(fake.url, "cid", "sec", shape="auth0", audience="mts",
                      scope="odds:read").source(margin=1).token()
    form, js, auth0 = fake.seen
    assert form.path == "/oauth/token" and form.headers["content-type"] == "application/x-www-form-urlencoded"
    assert form.form() == {"grant_type": "client_credentials", "client_id": "cid",
                           "client_secret": "sec", "audience": "mts"}
    assert js.headers["content-type"] == "application/json"
    assert js.json() == {"grant_type": "client_credentials", "client_id": "cid", "client_secret": "sec"}
    assert auth0.form()["audience"] == "mts" and auth0.form()["scope"] == "odds:read"


def test_bearer_exchange_wire_and_refusal(fake_factory):
    exp = time.time() + 3600

    def answer(seen):
        if seen.headers["authorization"] == "Bearer good-jwt":
            return 200, {}, {"token": jwt_like(exp), "expireAt": time.strftime(
                "%Y-%m-%dT%H:%M:%SZ", time.gmtime(exp))}
        return 401, {"WWW-Authenticate": 'Bearer error="invalid_token"'}, {
            "error": "invalid_token", "error_description": "the refresh token is not valid"}

    fake = fake_factory(answer)
    src = BearerExchange(fake.url, "good-jwt").source(margin=1)
    tok = src.access_token()
    assert fake.seen[0].method == "POST" and fake.seen[0].path == "/pub/v2/players/access-token"
    assert abs(tok.expires_at - int(exp)) < 1
    assert "good-jwt" not in src.key.store_key(), "the credential is not in the key"
    with pytest.raises(Refused) as e:
        BearerExchange(fake.url, "bad-jwt").source(margin=1).token()
    assert (e.value.status, e.value.code) == (401, "invalid_token")


def device_server(fake_factory, password="pin", refresh_alive=lambda rt: True, rotate=False):
    n = Counter()

    def answer(seen):
        i = n.next()
        grant = seen.query["grant_type"][0]
        f = seen.form()
        if grant == "device_credentials":
            ok = (seen.headers["authorization"] == "Basic " + __import__("base64").b64encode(b"key").decode()
                  and f["username"] == "123456"
                  and f["password"] == md5(password.encode()).hexdigest())
            if not ok:
                return 400, {}, {"error": "invalid_grant", "error_description": "Bad credentials"}
        elif grant == "refresh_token":
            if not refresh_alive(f["refresh_token"]):
                return 400, {}, {"error": "invalid_grant", "error_description": "Invalid refresh token"}
        rt = f"rt-{i}" if rotate or grant == "device_credentials" else f["refresh_token"]
        return 200, {}, {"access_token": f"tok-{i}", "token_type": "bearer", "refresh_token": rt,
                         "expires_in": 9000, "scope": "device"}

    return fake_factory(answer)


def test_device_credentials_wire_refresh_and_relogin(fake_factory, tmp_path):
    alive = {"value": True}
    fake = device_server(fake_factory, refresh_alive=lambda rt: alive["value"])
    store = FileStore(tmp_path / "store")
    src = DeviceCredentials(fake.url, "key", "123456", "pin").source(margin=1, store=store)
    assert src.token() == "tok-1"
    assert fake.seen[0].path == "/v1/token"
    assert store.load(src.key.store_key()) == "rt-1"
    # A second process (a restart): refreshes with the stored token, no login.
    again = DeviceCredentials(fake.url, "key", "123456", "pin").source(margin=1, store=store)
    assert again.token() == "tok-2"
    assert fake.seen[1].query["grant_type"] == ["refresh_token"]
    assert fake.seen[1].form() == {"refresh_token": "rt-1"}
    # The refresh token dies: one more look at the store, then a new login.
    alive["value"] = False
    third = DeviceCredentials(fake.url, "key", "123456", "pin").source(margin=1, store=store)
    assert third.token() == "tok-4"
    assert [s.query["grant_type"][0] for s in fake.seen[2:]] == ["refresh_token", "device_credentials"]
    assert store.load(src.key.store_key()) == "rt-4"
    # Without re-login: a typed error naming the contract's code.
    fourth = DeviceCredentials(fake.url, "key", "123456", "pin").source(
        margin=1, store=store, relogin=False)
    with pytest.raises(SessionEnded) as e:
        fourth.token()
    assert (e.value.contract, e.value.code) == ("device-credentials", "invalid_grant")


def header_server(fake_factory, lifetime=600, hold=None):
    """Tradecloud's login and rotating refresh; rt-N is live until used."""
    n = Counter()
    live = set()
    lock = threading.Lock()

    def answer(seen):
        i = n.next()
        if seen.path.endswith("/login"):
            if seen.headers.get("authorization") != "Basic " + __import__("base64").b64encode(
                    b"a@b.example:pw").decode():
                return 401, {}, "Not authenticated"
        else:
            with lock:
                rt = seen.headers.get("refresh-token")
                if rt not in live:
                    return 401, {}, "Not authenticated"
                live.discard(rt)
        with lock:
            live.add(f"rt-{i}")
        if hold is not None:
            hold(i)
        return 200, {"Set-Authorization": jwt_like(time.time() + lifetime, n=i),
                     "Set-Refresh-Token": f"rt-{i}"}, ""

    fake = fake_factory(answer)
    fake.live = live
    return fake


class RecordingStore(RefreshStore):
    def __init__(self, fail=False):
        self.inner = MemoryStore()
        self.events = []
        self.fail = fail

    def load(self, key):
        return self.inner.load(key)

    def save(self, key, token):
        self.events.append(("save", token))
        if self.fail:
            raise OSError("disk full")
        self.inner.save(key, token)

    def remove(self, key):
        self.inner.remove(key)


def test_rotated_refresh_token_is_persisted_before_the_token_is_handed_out(fake_factory):
    store = RecordingStore()
    fake = header_server(fake_factory, hold=lambda i: store.events.append(("answered", i)))
    src = HeaderLogin(fake.url, "a@b.example", "pw").source(margin=1, store=store)
    src.token()
    store.events.append(("handed", 1))
    src.invalidate()
    src.token()
    store.events.append(("handed", 2))
    assert store.events == [("answered", 1), ("save", "rt-1"), ("handed", 1),
                            ("answered", 2), ("save", "rt-2"), ("handed", 2)]
    assert fake.seen[1].path == "/v2/authentication/refresh"
    assert fake.seen[1].headers["refresh-token"] == "rt-1"
    assert "authorization" not in fake.seen[1].headers


def test_a_failed_save_hands_out_nothing(fake_factory):
    fake = header_server(fake_factory)
    src = HeaderLogin(fake.url, "a@b.example", "pw").source(margin=1, store=RecordingStore(fail=True))
    with pytest.raises(StoreError):
        src.token()
    with pytest.raises(StoreError):
        src.token()


def test_a_lost_race_rereads_the_store_once(fake_factory, tmp_path):
    fake = header_server(fake_factory)
    store = FileStore(tmp_path)
    a = HeaderLogin(fake.url, "a@b.example", "pw").source(margin=1, store=store)
    b = HeaderLogin(fake.url, "a@b.example", "pw").source(margin=1, store=store)
    a.token()
    b.token()  # b refreshes with rt-1 → rt-2 (saved)
    a.invalidate()
    a.token()  # a holds rt-1 (dead): refused, re-reads rt-2 from the store, refreshes
    paths = [s.path.rsplit("/", 1)[1] for s in fake.seen]
    assert paths == ["login", "refresh", "refresh", "refresh"]
    assert [s.headers.get("refresh-token") for s in fake.seen[2:]] == ["rt-1", "rt-2"]


def test_file_store_is_private_atomic_and_shares_the_rust_layout(tmp_path):
    store = FileStore(tmp_path / "d")
    store.save("k", "rt")
    path = tmp_path / "d" / (md5(b"k").hexdigest() + ".json")
    assert path.exists()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "d").stat().st_mode) == 0o700
    assert __import__("json").loads(path.read_text()) == {"key": "k", "refresh_token": "rt"}
    store.save("k", "rt2")
    assert store.load("k") == "rt2"
    assert os.listdir(tmp_path / "d") == [path.name], "no temporary file left behind"
    assert store.load("other") is None
    store.remove("k")
    assert store.load("k") is None


# -- auth objects ----------------------------------------------------------------


def api_server(fake_factory, good):
    """An API accepting only the tokens in ``good``."""
    return fake_factory(lambda s: (200, {}, "ok") if s.headers.get("authorization", "")[7:] in good
                        else (401, {"WWW-Authenticate": "Bearer"}, "no"))


def test_requests_auth_attaches_the_token_and_retries_once_on_401(fake_factory):
    tokens = oauth_server(fake_factory)
    good = {"tok-2"}
    api = api_server(fake_factory, good)
    src = cc(tokens)
    r = requests.get(api.url + "/x", auth=src.auth())
    assert r.status_code == 200 and r.text == "ok"
    assert [s.headers["authorization"] for s in api.seen] == ["Bearer tok-1", "Bearer tok-2"]
    assert len(r.history) == 1 and r.history[0].status_code == 401
    # A second 401 is the caller's: one retry only.
    good.clear()
    r = requests.post(api.url + "/y", data=b"body", auth=src.auth())
    assert r.status_code == 401
    assert api.seen[-1].body == b"body"
    assert api.count("/y") == 2 and tokens.count() == 3


def test_concurrent_401s_of_one_token_cause_one_refresh(fake_factory):
    tokens = oauth_server(fake_factory)
    api = api_server(fake_factory, {"tok-2"})
    src = cc(tokens)
    src.token()
    auth = src.auth()
    statuses, errors = run_threads(20, lambda: requests.get(api.url, auth=auth).status_code)
    assert errors == [] and set(statuses) == {200}
    assert tokens.count() == 2


def test_httpx_auth(fake_factory):
    import httpx
    tokens = oauth_server(fake_factory)
    api = api_server(fake_factory, {"tok-2"})
    src = cc(tokens)
    r = httpx.get(api.url, auth=src.httpx_auth())
    assert r.status_code == 200

    import asyncio

    async def main():
        async with httpx.AsyncClient(auth=src.httpx_auth()) as client:
            return (await client.get(api.url)).status_code

    assert asyncio.run(main()) == 200
    assert tokens.count() == 2

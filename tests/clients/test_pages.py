"""Python `requests` clients written from the Dive and Tradecloud pages
(tests/clients/pages/), run against tollgate unchanged but for the base URL
and the credentials tollgate issued."""

import base64

import jwt
import pytest
import requests

from pages.dive import DiveClient
from pages.tradecloud import TradecloudClient

DIVE_FIELDS = ["access_token", "token_type", "refresh_token", "expires_in", "scope",
               "device_id", "client_id", "jti"]


def verify(tollgate, token: str, audience: str) -> dict:
    meta = requests.get(tollgate.base + "/.well-known/oauth-authorization-server").json()
    key = jwt.PyJWKClient(meta["jwks_uri"]).get_signing_key_from_jwt(token)
    return jwt.decode(token, key.key, algorithms=["ES256"], audience=audience,
                      issuer=meta["issuer"])


@pytest.fixture(scope="module")
def dive(tollgate):
    tollgate.cli("api", "create", "dive-rest", "--permission", "device",
                 "--permission", "ROLE_CATALOG")
    public = tollgate.cli("client", "create", "--name", "dive-app", "--public",
                          "--api", "dive-rest=device,ROLE_CATALOG", "--grant", "device_credentials")
    confidential = tollgate.cli("client", "create", "--name", "dive-partner",
                                "--api", "dive-rest=device", "--grant", "device_credentials")
    tollgate.cli("user", "create", "--client", public["client_id"], "--username", "123456",
                 "--password", "tv-pin-1")
    tollgate.cli("user", "create", "--client", confidential["client_id"], "--username", "654321",
                 "--password", "tv-pin-2")
    tollgate.sync()
    return public, confidential


def test_dive_client_obtains_and_refreshes_tokens(tollgate, dive):
    public, _ = dive
    client = DiveClient(tollgate.base, public["client_key"])
    token = client.obtain_token("123456", "tv-pin-1")
    assert list(token) == DIVE_FIELDS
    assert token["token_type"] == "bearer"
    assert 8990 <= token["expires_in"] <= 9000
    assert token["scope"] == "ROLE_CATALOG device"
    assert token["device_id"] == "123456"
    assert token["client_id"] == public["client_id"]
    claims = verify(tollgate, token["access_token"], "dive-rest")
    assert claims["aud"] == ["dive-rest"]
    assert claims["scope"] == ["ROLE_CATALOG", "device"]
    assert claims["authorities"] == ["ROLE_CATALOG", "device"]
    assert claims["grant_type"] == "device_credentials"
    assert claims["jti"] == token["jti"]
    refresh_claims = jwt.decode(token["refresh_token"], options={"verify_signature": False})
    assert refresh_claims["ati"] == token["jti"]

    again = client.refresh_token()
    assert list(again) == DIVE_FIELDS
    assert again["refresh_token"] == token["refresh_token"]  # Spring's default: reuse
    assert again["jti"] != token["jti"]
    verify(tollgate, again["access_token"], "dive-rest")
    assert client.auth_header()["Authorization"] == "Bearer " + again["access_token"]


def test_dive_client_with_a_confidential_client_key(tollgate, dive):
    _, confidential = dive
    key = confidential["client_key"]
    assert base64.b64decode(key).decode() == (
        confidential["client_id"] + ":" + confidential["client_secret"])
    token = DiveClient(tollgate.base, key).obtain_token("654321", "tv-pin-2")
    assert token["scope"] == "device"


def test_dive_client_sees_springs_errors(tollgate, dive):
    public, _ = dive
    with pytest.raises(requests.HTTPError) as bad_password:
        DiveClient(tollgate.base, public["client_key"]).obtain_token("123456", "wrong")
    assert bad_password.value.response.status_code == 400
    assert bad_password.value.response.json() == {
        "error": "invalid_grant", "error_description": "Bad credentials"}
    with pytest.raises(requests.HTTPError) as bad_key:
        DiveClient(tollgate.base, base64.b64encode(b"nobody").decode()).obtain_token(
            "123456", "tv-pin-1")
    assert bad_key.value.response.status_code == 401
    assert bad_key.value.response.json()["error"] == "invalid_client"


@pytest.fixture(scope="module")
def tradecloud(tollgate):
    tollgate.cli("api", "create", "tradecloud-api", "--permission", "orders:read")
    web = tollgate.cli("client", "create", "--name", "tradecloud-web", "--public",
                       "--api", "tradecloud-api=orders:read", "--grant", "password")
    tollgate.cli("user", "create", "--client", web["client_id"], "--username",
                 "buyer@example.com", "--password", "p4ssw0rd!")
    tollgate.sync()
    return web


def test_tradecloud_client_logs_in_and_refreshes(tollgate, tradecloud):
    client = TradecloudClient(tollgate.base)
    r = client.login("buyer@example.com", "p4ssw0rd!")
    assert r.status_code == 200
    exposed = r.headers["Access-Control-Expose-Headers"].lower()
    assert "set-authorization" in exposed and "set-refresh-token" in exposed
    claims = verify(tollgate, client.access_token, "tradecloud-api")
    assert claims["sub"] == "buyer@example.com"
    assert claims["exp"] - claims["iat"] == 600
    first_access, first_refresh = client.access_token, client.refresh_token

    r = client.refresh()
    assert r.status_code == 200
    assert client.refresh_token != first_refresh
    assert client.access_token != first_access
    verify(tollgate, client.access_token, "tradecloud-api")
    # The new refresh token works in turn.
    assert client.refresh().status_code == 200


def test_tradecloud_client_sees_not_authenticated(tollgate, tradecloud):
    client = TradecloudClient(tollgate.base)
    r = client.login("buyer@example.com", "wrong")
    assert r.status_code == 401
    assert r.text == "Not authenticated"
    client.refresh_token = "not-a-token"
    r = client.refresh()
    assert (r.status_code, r.text) == (401, "Not authenticated")

"""The seed pages' own sample clients, run unchanged but for the base URL and
credentials (see tests/seeds/README.md)."""

import json
import os
import re
import subprocess
import time
from pathlib import Path

import jwt
import pytest
import requests

ROOT = Path(__file__).resolve().parents[2]
SAMPLES = ROOT / "tests" / "seeds"
SEED_PAGES = ROOT.parent / "shared" / "seeds"


def run_sample(tollgate, name: str, cmd: list[str], subst: dict[str, str]) -> str:
    text = (SAMPLES / name).read_text()
    for k, v in subst.items():
        assert k in text, f"{name} has no {k}"
        text = text.replace(k, v)
    path = tollgate.tmp / name
    path.write_text(text)
    env = dict(os.environ, SSL_CERT_FILE=str(tollgate.ca), CURL_CA_BUNDLE=str(tollgate.ca),
               NODE_EXTRA_CA_CERTS=str(tollgate.ca), NODE_PATH=str(ROOT / "tests" / "clients" / "node_modules"),
               GO111MODULE="off", GOPATH="/usr/share/gocode", GOFLAGS="", GOCACHE=str(tollgate.tmp / "gocache"))
    out = subprocess.run([*cmd, str(path)], capture_output=True, text=True, env=env, timeout=60)
    assert out.returncode == 0, f"{name} failed:\n{out.stdout}\n{out.stderr}"
    return out.stdout


def verify(tollgate, token: str, client_id: str, audience: str = "mts-insight-tech") -> dict:
    meta = requests.get(tollgate.base + "/.well-known/oauth-authorization-server").json()
    key = jwt.PyJWKClient(meta["jwks_uri"]).get_signing_key_from_jwt(token)
    claims = jwt.decode(token, key.key, algorithms=["ES256"], audience=audience,
                        issuer=meta["issuer"])
    assert claims["client_id"] == client_id
    return claims


def issued_for(tollgate, client_id: str) -> int:
    pattern = re.compile(rf'path=/oauth/token status=200 .*client_id="{re.escape(client_id)}" outcome="issued"')
    return sum(1 for line in tollgate.logs().splitlines() if pattern.search(line))


PAGES = {
    "sportradar-curl.sh": "sportradar-client-credentials.md",
    "oauth2-json.rb": "oauth2-json-client-credentials.md",
    "oauth2-json.php": "oauth2-json-client-credentials.md",
    "oauth2-json-curl.sh": "oauth2-json-client-credentials.md",
    "cloudbet-curl.sh": "cloudbet-refresh-jwt.md",
    "cloudbet.py": "cloudbet-refresh-jwt.md",
    "cloudbet.js": "cloudbet-refresh-jwt.md",
    "cloudbet.go": "cloudbet-refresh-jwt.md",
}


@pytest.mark.parametrize("name", sorted(PAGES))
def test_samples_are_verbatim_copies_of_the_seed_pages(name):
    page = SEED_PAGES / PAGES[name]
    if not page.exists():
        pytest.skip(f"{page} is not beside this checkout")
    seed = page.read_text()
    for line in (SAMPLES / name).read_text().splitlines():
        assert line in seed, f"{name}: line not in {page.name}: {line!r}"


def test_sportradar_curl_with_the_pages_own_credentials(tollgate):
    # The page's own client pair, imported: only the base URL changes.
    tollgate.client("--name", "sportradar-sample", "--api", "mts-insight-tech=odds-basic",
                    "--claims", '{"https://sportradar/common-iam/accounts":["i|2"]}',
                    "--client-id", "ew27623ybFwq82nsjkdpsdwsh",
                    "--client-secret", "bccws2523wqlj10yGhW83Je")
    tollgate.sync()
    out = run_sample(tollgate, "sportradar-curl.sh", ["bash"],
                     {"https://stg-auth.sportradar.com": tollgate.base})
    body = json.loads(out)
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == 600
    claims = verify(tollgate, body["access_token"], "ew27623ybFwq82nsjkdpsdwsh")
    assert claims["aud"] == "mts-insight-tech"
    assert claims["https://sportradar/common-iam/accounts"] == ["i|2"]


def test_sportradar_curl_against_an_auth0_dialect_environment(tollgate):
    # The same page sample against an environment answering as Auth0 does.
    tollgate.cli("env", "create", "stg", "--dialect", "auth0")
    tollgate.cli("api", "create", "mts-insight-tech", "--env", "stg", "--permission", "odds:read",
                 "--token-lifetime", "600s")
    tollgate.cli("client", "create", "--env", "stg", "--name", "sportradar-sample",
                 "--api", "mts-insight-tech=odds:read",
                 "--client-id", "ew27623ybFwq82nsjkdpsdwsh",
                 "--client-secret", "bccws2523wqlj10yGhW83Je")
    tollgate.sync()
    out = run_sample(tollgate, "sportradar-curl.sh", ["bash"],
                     {"https://stg-auth.sportradar.com": tollgate.base + "/e/stg"})
    body = json.loads(out)
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == 600
    meta = requests.get(tollgate.base + "/e/stg/.well-known/oauth-authorization-server").json()
    key = jwt.PyJWKClient(meta["jwks_uri"]).get_signing_key_from_jwt(body["access_token"])
    # An auth0-dialect environment signs with RS256, as Auth0 does.
    assert jwt.get_unverified_header(body["access_token"])["alg"] == "RS256"
    claims = jwt.decode(body["access_token"], key.key, algorithms=["RS256"],
                        audience="mts-insight-tech", issuer=meta["issuer"])
    assert claims["sub"] == "ew27623ybFwq82nsjkdpsdwsh@clients"
    assert claims["azp"] == "ew27623ybFwq82nsjkdpsdwsh"
    assert claims["gty"] == "client-credentials"


def json_sample_credentials(tollgate, label: str) -> tuple[str, str, dict]:
    cid, secret = tollgate.client("--name", label, "--api", "mts-insight-tech=odds-basic")
    tollgate.sync()
    return cid, secret, {"<<api_base_path>>": tollgate.host, "<<client_id>>": cid,
                         "<<client_secret>>": secret}


def test_json_ruby_sample(tollgate):
    cid, _, subst = json_sample_credentials(tollgate, "ruby-sample")
    out = run_sample(tollgate, "oauth2-json.rb", ["ruby"], subst)
    token = re.search(r"^access_token (\S+)$", out, re.M).group(1)
    assert "expired in 600 seconds" in out
    verify(tollgate, token, cid)


def test_json_php_sample(tollgate):
    cid, _, subst = json_sample_credentials(tollgate, "php-sample")
    before = issued_for(tollgate, cid)
    ca = str(tollgate.ca)
    run_sample(tollgate, "oauth2-json.php", ["php", "-d", f"curl.cainfo={ca}", "-d", f"openssl.cafile={ca}"], subst)
    # The sample prints the wrong variable (see tests/seeds/README.md); the
    # server's log shows what it was sent and answered.
    assert issued_for(tollgate, cid) == before + 1


def test_json_curl_sample(tollgate):
    cid, _, subst = json_sample_credentials(tollgate, "curl-json-sample")
    body = json.loads(run_sample(tollgate, "oauth2-json-curl.sh", ["bash"], subst))
    assert body["expires_in"] == 600
    verify(tollgate, body["access_token"], cid)


CLOUDBET_BASE = "https://sports-api.cloudbet.com"


def cloudbet_refresh_jwt(tollgate, label: str) -> tuple[str, str]:
    cid, _ = tollgate.client("--name", label, "--api", "mts-insight-tech=odds-basic")
    refresh = tollgate.cli("refresh-jwt", "issue", "--client", cid)["refresh_jwt"]
    tollgate.sync()
    return cid, refresh


def test_cloudbet_curl_sample(tollgate):
    cid, refresh = cloudbet_refresh_jwt(tollgate, "cloudbet-curl")
    out = run_sample(tollgate, "cloudbet-curl.sh", ["bash"],
                     {CLOUDBET_BASE: tollgate.base, "REFRESH_JWT": refresh})
    body = json.loads(out)
    assert list(body) == ["token", "expireAt"], "fields in the page's order"
    claims = verify(tollgate, body["token"], cid)
    assert body["expireAt"] == time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(claims["exp"]))


@pytest.mark.parametrize("name,cmd", [
    ("cloudbet.py", ["python3"]),
    ("cloudbet.js", ["node"]),
])
def test_cloudbet_python_and_javascript_samples(tollgate, name, cmd):
    cid, refresh = cloudbet_refresh_jwt(tollgate, name)
    out = run_sample(tollgate, name, cmd, {CLOUDBET_BASE: tollgate.base, "<REFRESH_JWT>": refresh})
    verify(tollgate, out.strip(), cid)


def test_cloudbet_go_sample(tollgate):
    cid, refresh = cloudbet_refresh_jwt(tollgate, "cloudbet-go")
    out = run_sample(tollgate, "cloudbet.go", ["go", "run"],
                     {CLOUDBET_BASE: tollgate.base, "<REFRESH_JWT>": refresh})
    # The sample prints the response, the body and the error; the body is ours.
    m = re.search(r'(\{"token":"[^"]+","expireAt":"[^"]+"\})', out)
    assert m, f"no token in the Go sample's output:\n{out}"
    body = json.loads(m.group(1))
    verify(tollgate, body["token"], cid)
    assert out.rstrip().endswith("[]"), "gorequest reported no error"

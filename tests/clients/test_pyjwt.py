"""A token tollgate issued, verified by an independent library (PyJWT)
with the key fetched from the running server's JWKS."""

import jwt
import requests


def test_pyjwt_verifies_a_token_through_the_jwks(tollgate):
    cid, secret = tollgate.client("--name", "pyjwt", "--api", "mts-insight-tech=odds-basic")
    tollgate.sync()
    meta = requests.get(tollgate.base + "/.well-known/oauth-authorization-server").json()
    r = requests.post(meta["token_endpoint"], auth=(cid, secret),
                      data={"grant_type": "client_credentials", "audience": "mts-insight-tech"})
    assert r.status_code == 200, r.text
    token = r.json()["access_token"]

    signing_key = jwt.PyJWKClient(meta["jwks_uri"]).get_signing_key_from_jwt(token)
    claims = jwt.decode(token, signing_key.key, algorithms=["ES256"],
                        audience="mts-insight-tech", issuer=meta["issuer"],
                        options={"require": ["exp", "iat", "iss", "sub", "aud", "jti"]})
    assert claims["sub"] == cid
    assert claims["client_id"] == cid
    assert claims["scope"] == "odds:read"
    assert jwt.get_unverified_header(token)["typ"] == "at+jwt"

    # A tampered token does not verify.
    head, body, sig = token.split(".")
    forged = ".".join([head, body, sig[:-4] + ("AAAA" if sig[-4:] != "AAAA" else "BBBB")])
    try:
        jwt.decode(forged, signing_key.key, algorithms=["ES256"], audience="mts-insight-tech")
        raise AssertionError("forged token verified")
    except jwt.InvalidSignatureError:
        pass


def test_openid_discovery_is_accepted_by_authlib_and_pyjwt(tollgate):
    """Libraries made for Auth0-protected APIs discover only at
    /.well-known/openid-configuration: authlib validates the document as an
    OpenID provider's, and PyJWT verifies a token with what it names."""
    from authlib.oidc.discovery import OpenIDProviderMetadata

    cid, secret = tollgate.client("--name", "oidc", "--api", "mts-insight-tech=odds-basic")
    tollgate.sync()
    doc = requests.get(tollgate.base + "/.well-known/openid-configuration").json()
    OpenIDProviderMetadata(doc).validate()
    r = requests.post(doc["token_endpoint"], auth=(cid, secret),
                      data={"grant_type": "client_credentials", "audience": "mts-insight-tech"})
    assert r.status_code == 200, r.text
    token = r.json()["access_token"]
    key = jwt.PyJWKClient(doc["jwks_uri"]).get_signing_key_from_jwt(token)
    claims = jwt.decode(token, key.key, algorithms=doc["id_token_signing_alg_values_supported"],
                        audience="mts-insight-tech", issuer=doc["issuer"])
    assert claims["client_id"] == cid

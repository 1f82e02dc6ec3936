"""The wire side of each contract the seeds document, one class each. A
class holds what the partner was given (base URL, credentials) and knows
its requests and answers; ``.source()`` wraps it in a ``TokenSource``,
which owns caching, single flight, refresh timing and persistence.

- ``ClientCredentials``: RFC 6749 §4.4 at ``/oauth/token`` in the three
  shapes the seeds send: form (``form``), JSON (``json``, the JSON sample)
  and Auth0's form with ``audience`` (``auth0``, Sportradar). The client
  authenticates in the body, as all three samples do.
- ``BearerExchange``: Cloudbet's long-lived refresh JWT, sent as
  ``Authorization: Bearer`` to ``POST /pub/v2/players/access-token``,
  answered ``{"token", "expireAt"}``.
- ``DeviceCredentials``: Dive's ``POST /v1/token?grant_type=device_credentials``
  with the client key in Basic and ``username`` + MD5 of the password as
  form fields; ``grant_type=refresh_token`` with the stored refresh token.
- ``HeaderLogin``: Tradecloud's ``GET /v2/authentication/login`` with Basic
  ``email:password``, answered in ``Set-Authorization`` /
  ``Set-Refresh-Token``; ``GET .../refresh`` with ``Refresh-Token`` rotates.
"""

import base64
import time
from datetime import datetime
from typing import TYPE_CHECKING, Any, Dict, Optional

import requests

from .errors import ConfigError, ProtocolError, Refused
from .keys import (AUTH0, BEARER_EXCHANGE, DEVICE_CREDENTIALS, HEADER_LOGIN, RFC6749,
                   RFC6749_JSON, CacheKey, join, md5_hex)
from .options import Options
from .token import AccessToken, Grant, expiry, jwt_exp
from .transport import Transport

if TYPE_CHECKING:
    from .source import TokenSource


def _basic(user: str, password: str) -> str:
    raw = f"{user}:{password}".encode("utf-8")
    return "Basic " + base64.b64encode(raw).decode("ascii")


def refused(contract: str, resp: requests.Response) -> Refused:
    """The contract's error from a refusal's ``{"error", ...}`` body, else
    ``http_<status>``."""
    try:
        body = resp.json()
    except ValueError:
        body = None
    if isinstance(body, dict) and isinstance(body.get("error"), str):
        desc = body.get("error_description")
        return Refused(contract, resp.status_code, body["error"], desc if isinstance(desc, str) else None)
    return Refused(contract, resp.status_code, f"http_{resp.status_code}", None)


def read_oauth(contract: str, resp: requests.Response, sent_at: float) -> Grant:
    """An RFC 6749 §5.1 answer (also Spring's), or the refusal."""
    if resp.status_code != 200:
        raise refused(contract, resp)
    try:
        body = resp.json()
    except ValueError as e:
        raise ProtocolError(contract, f"not a token answer: {e}") from None
    if not isinstance(body, dict) or not isinstance(body.get("access_token"), str):
        raise ProtocolError(contract, "no access_token in the answer")
    value = body["access_token"]
    expires_in = body.get("expires_in")
    if isinstance(expires_in, str) and expires_in.isdigit():
        expires_in = int(expires_in)
    if not isinstance(expires_in, (int, float)) or isinstance(expires_in, bool):
        expires_in = None
    expires_at = expiry(value, sent_at, expires_in)
    if expires_at is None:
        raise ProtocolError(contract, "neither expires_in nor a JWT exp")
    rt = body.get("refresh_token")
    return Grant(AccessToken(value, sent_at, expires_at), rt if isinstance(rt, str) and rt else None)


class Contract:
    """What every contract class offers a ``TokenSource``."""

    #: The contract's name (``CONTRACTS``).
    name: str = ""
    #: Whether it hands out refresh tokens the client must keep.
    has_refresh = False

    def key(self) -> CacheKey:
        raise NotImplementedError

    def check(self) -> None:
        """Raises ``ConfigError`` when the configuration cannot work."""

    def login(self, t: Transport) -> Grant:
        """A new grant from the partner's credentials."""
        raise NotImplementedError

    def refresh(self, t: Transport, refresh_token: str) -> Grant:
        """A new grant from a refresh token (contracts with ``has_refresh``)."""
        raise NotImplementedError

    def source(self, options: Optional[Options] = None, **overrides: Any) -> "TokenSource":
        """A ``TokenSource`` for this contract: ``options``, or ``Options``
        built from keyword arguments (``margin=10``, ``store=...``)."""
        from .source import TokenSource  # the source module imports this one

        if options is None:
            options = Options(**overrides)
        elif overrides:
            raise ConfigError("pass either options or keyword overrides, not both")
        return TokenSource(self, options)


_SHAPES = {"form": RFC6749, RFC6749: RFC6749, "json": RFC6749_JSON, RFC6749_JSON: RFC6749_JSON,
           AUTH0: AUTH0}


class ClientCredentials(Contract):
    """client_credentials: ``shape`` is ``form`` (default), ``json`` or ``auth0``."""

    def __init__(self, base_url: str, client_id: str, client_secret: str, *, shape: str = "form",
                 audience: Optional[str] = None, resource: Optional[str] = None,
                 scope: Optional[str] = None, path: str = "/oauth/token"):
        if shape not in _SHAPES:
            raise ConfigError(f"unknown shape {shape!r} (form, json or auth0)")
        self.name = _SHAPES[shape]
        self.base_url = base_url
        self.client_id = client_id
        self._secret = client_secret
        self.audience = audience
        self.resource = resource
        self.scope = scope
        self.path = path

    def key(self) -> CacheKey:
        return CacheKey(self.name, join(self.base_url, self.path), self.client_id,
                        audience=self.audience, resource=self.resource, scope=self.scope)

    def check(self) -> None:
        if self.name == AUTH0 and not self.audience:
            raise ConfigError("the auth0 shape needs an audience")

    def login(self, t: Transport) -> Grant:
        fields: Dict[str, str] = {"grant_type": "client_credentials", "client_id": self.client_id,
                                  "client_secret": self._secret}
        for name, value in (("audience", self.audience), ("resource", self.resource),
                            ("scope", self.scope)):
            if value:
                fields[name] = value
        url = self.key().endpoint
        sent_at = time.time()
        headers = {"Accept": "application/json"}
        if self.name == RFC6749_JSON:
            resp = t.send("POST", url, json=fields, headers=headers)
        else:
            resp = t.send("POST", url, data=fields, headers=headers)
        with resp:
            return read_oauth(self.name, resp, sent_at)

    def __repr__(self) -> str:
        return f"ClientCredentials({self.base_url!r}, {self.client_id!r}, shape={self.name!r})"


class BearerExchange(Contract):
    """A refresh JWT exchanged for access tokens (Cloudbet)."""

    name = BEARER_EXCHANGE

    def __init__(self, base_url: str, refresh_jwt: str, *, path: str = "/pub/v2/players/access-token"):
        self.base_url = base_url
        self._refresh_jwt = refresh_jwt
        self.path = path

    def key(self) -> CacheKey:
        # The MD5 of the credential, never the credential itself.
        return CacheKey(self.name, join(self.base_url, self.path), md5_hex(self._refresh_jwt))

    def login(self, t: Transport) -> Grant:
        sent_at = time.time()
        resp = t.send("POST", self.key().endpoint,
                      headers={"Authorization": f"Bearer {self._refresh_jwt}",
                               "Accept": "application/json"})
        with resp:
            if resp.status_code != 200:
                raise refused(self.name, resp)
            try:
                body = resp.json()
            except ValueError as e:
                raise ProtocolError(self.name, f"not a token answer: {e}") from None
        if not isinstance(body, dict) or not isinstance(body.get("token"), str):
            raise ProtocolError(self.name, "no token in the answer")
        value = body["token"]
        candidates = [t for t in (jwt_exp(value), _rfc3339(body.get("expireAt"))) if t is not None]
        if not candidates:
            raise ProtocolError(self.name, "neither expireAt nor a JWT exp")
        return Grant(AccessToken(value, sent_at, min(candidates)))

    def __repr__(self) -> str:
        return f"BearerExchange({self.base_url!r})"


def _rfc3339(value: Any) -> Optional[float]:
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


class DeviceCredentials(Contract):
    """Device login and refresh, Spring style (Dive). ``password`` is the
    device's password; it is sent as its MD5, as the contract asks."""

    name = DEVICE_CREDENTIALS
    has_refresh = True

    def __init__(self, base_url: str, client_key: str, username: str, password: str, *,
                 client_secret: Optional[str] = None, path: str = "/v1/token"):
        self.base_url = base_url
        self.client_key = client_key
        self.username = username
        self._password_md5 = md5_hex(password)
        self._client_secret = client_secret
        self.path = path

    def key(self) -> CacheKey:
        return CacheKey(self.name, join(self.base_url, self.path), self.client_key,
                        subject=self.username)

    def _basic(self) -> str:
        if self._client_secret is None:
            # A public client: the bare key, as Dive's page shows.
            return "Basic " + base64.b64encode(self.client_key.encode("utf-8")).decode("ascii")
        return _basic(self.client_key, self._client_secret)

    def _post(self, t: Transport, grant_type: str, fields: Dict[str, str]) -> Grant:
        url = f"{self.key().endpoint}?grant_type={grant_type}"
        sent_at = time.time()
        resp = t.send("POST", url, data=fields,
                      headers={"Authorization": self._basic(), "Accept": "application/json"})
        with resp:
            return read_oauth(self.name, resp, sent_at)

    def login(self, t: Transport) -> Grant:
        return self._post(t, "device_credentials",
                          {"username": self.username, "password": self._password_md5})

    def refresh(self, t: Transport, refresh_token: str) -> Grant:
        return self._post(t, "refresh_token", {"refresh_token": refresh_token})

    def __repr__(self) -> str:
        return f"DeviceCredentials({self.base_url!r}, {self.client_key!r}, {self.username!r})"


#: The lifetime Tradecloud documents, used when the token is not a JWT.
_HEADER_LOGIN_LIFETIME = 600.0


class HeaderLogin(Contract):
    """Basic login answered in headers, rotating refresh (Tradecloud). Every
    refusal is a plain 401 ``Not authenticated``: code ``not_authenticated``."""

    name = HEADER_LOGIN
    has_refresh = True

    def __init__(self, base_url: str, email: str, password: str, *,
                 prefix: str = "/v2/authentication"):
        self.base_url = base_url
        self.email = email
        self._password = password
        self.prefix = prefix

    def key(self) -> CacheKey:
        return CacheKey(self.name, join(self.base_url, self.prefix), "", subject=self.email)

    def _get(self, t: Transport, what: str, headers: Dict[str, str]) -> Grant:
        url = f"{self.key().endpoint}/{what}"
        sent_at = time.time()
        resp = t.send("GET", url, headers=headers)
        with resp:
            if resp.status_code != 200:
                code = "not_authenticated" if resp.status_code == 401 else f"http_{resp.status_code}"
                raise Refused(self.name, resp.status_code, code, resp.text.strip() or None)
            access = (resp.headers.get("Set-Authorization") or "").strip()
            refresh = (resp.headers.get("Set-Refresh-Token") or "").strip()
        if not access or not refresh:
            raise ProtocolError(self.name, "200 without Set-Authorization and Set-Refresh-Token")
        if access[:7].lower() == "bearer ":
            access = access[7:].strip()
        expires_at = jwt_exp(access) or sent_at + _HEADER_LOGIN_LIFETIME
        return Grant(AccessToken(access, sent_at, expires_at), refresh)

    def login(self, t: Transport) -> Grant:
        return self._get(t, "login", {"Authorization": _basic(self.email, self._password)})

    def refresh(self, t: Transport, refresh_token: str) -> Grant:
        return self._get(t, "refresh", {"Refresh-Token": refresh_token})

    def __repr__(self) -> str:
        return f"HeaderLogin({self.base_url!r}, {self.email!r})"

"""What a token depends on: the contract and the cache key. Two sources
share a cached token (and a single flight) only when every field that
changes the token is equal, so a token for one scope or audience is never
handed to a caller asking for another (the mistake behind CVE-2025-26620).

The store key's text form is the Rust crate's, so both can share a store."""

import hashlib
from dataclasses import dataclass
from typing import Optional

RFC6749 = "rfc6749"
RFC6749_JSON = "rfc6749-json"
AUTH0 = "auth0"
BEARER_EXCHANGE = "bearer-exchange"
DEVICE_CREDENTIALS = "device-credentials"
HEADER_LOGIN = "header-login"

#: Every contract, in the order the docs list them (``tollgate token get --contract``).
CONTRACTS = (RFC6749, RFC6749_JSON, AUTH0, BEARER_EXCHANGE, DEVICE_CREDENTIALS, HEADER_LOGIN)


def md5_hex(s: str) -> str:
    """Lower-case hex MD5 (Dive's password form, store file names); not a
    security measure."""
    return hashlib.md5(s.encode("utf-8"), usedforsecurity=False).hexdigest()


@dataclass(frozen=True)
class CacheKey:
    """Everything that changes the token a source obtains. ``client`` is the
    client id or key; for a refresh JWT the MD5 of it, never the credential."""

    contract: str
    endpoint: str
    client: str
    subject: Optional[str] = None
    audience: Optional[str] = None
    resource: Optional[str] = None
    scope: Optional[str] = None

    def store_key(self) -> str:
        """A stable text form, for stores (no secrets in it)."""
        parts = (self.contract, self.endpoint, self.client, self.subject, self.audience,
                 self.resource, self.scope)
        return "|".join(p or "" for p in parts)

    def file_stem(self) -> str:
        return md5_hex(self.store_key())


def join(base_url: str, path: str) -> str:
    """``base_url`` and ``path`` with exactly one slash between them."""
    return base_url.rstrip("/") + "/" + path.lstrip("/")

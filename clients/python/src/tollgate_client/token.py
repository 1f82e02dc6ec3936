"""An access token and when it stops being usable. Its ``repr`` never shows
the token itself, so a logged object leaks nothing."""

import base64
import json
import time
from dataclasses import dataclass, field
from typing import Optional


@dataclass(frozen=True)
class AccessToken:
    """``value`` is the bearer token; times are Unix seconds (wall clock,
    since a JWT's ``exp`` is)."""

    value: str = field(repr=False)
    obtained_at: float
    expires_at: float

    @property
    def lifetime(self) -> float:
        return self.expires_at - self.obtained_at

    def remaining(self, now: Optional[float] = None) -> float:
        return self.expires_at - (time.time() if now is None else now)

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True)
class Grant:
    """What one token request obtained."""

    access: AccessToken
    refresh: Optional[str] = field(default=None, repr=False)


def jwt_exp(token: str) -> Optional[float]:
    """The ``exp`` claim of a JWT, read without verifying it: only to know
    when to refresh, never to trust the token."""
    parts = token.split(".")
    if len(parts) != 3:
        return None
    payload = parts[1] + "=" * (-len(parts[1]) % 4)
    try:
        claims = json.loads(base64.urlsafe_b64decode(payload))
    except (ValueError, TypeError):
        return None
    exp = claims.get("exp") if isinstance(claims, dict) else None
    if isinstance(exp, (int, float)) and not isinstance(exp, bool):
        return float(exp)
    return None


def expiry(value: str, sent_at: float, expires_in: Optional[float]) -> Optional[float]:
    """When a token stops being usable: the earlier of ``sent_at +
    expires_in`` (counted from when the request left, so never late) and the
    JWT's ``exp`` (the server's whole seconds may end before that)."""
    candidates = [t for t in (jwt_exp(value),) if t is not None]
    if expires_in is not None:
        candidates.append(sent_at + expires_in)
    return min(candidates) if candidates else None

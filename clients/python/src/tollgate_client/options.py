"""How a source behaves, the same names as the Rust crate's ``Options`` and
``tollgate token get``: when to refresh, the margin, retries, the HTTP
session, the refresh-token store and the shared cache."""

import random
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Optional

from .errors import ConfigError

if TYPE_CHECKING:  # only for the annotations; no import at run time
    from .source import TokenCache
    from .store import RefreshStore


@dataclass
class RetryPolicy:
    """Retries of the token request itself (never of the API call)."""

    #: Attempts in all, the first included.
    max_attempts: int = 5
    #: First backoff in seconds (doubled each time, capped, with jitter).
    base_delay: float = 0.2
    #: Longest backoff in seconds.
    max_delay: float = 10.0
    #: Longest ``Retry-After`` (429/503) waited out; a longer one is
    #: ``RateLimited`` at once.
    max_retry_after: float = 60.0

    def backoff(self, n: int) -> float:
        """The wait before retry ``n`` (1 = the first retry): jitter over
        ``base * 2**(n-1)`` capped at ``max_delay``, never below half of it,
        so a burst of failures does not retry in lockstep."""
        capped = min(self.base_delay * (2 ** max(n - 1, 0)), self.max_delay)
        return capped * (0.5 + random.random() * 0.5)


@dataclass
class Options:
    """A source's behaviour. ``Options()`` suits most partners."""

    #: Refresh once this fraction of the lifetime passed, in the background
    #: while callers keep the valid token.
    refresh_at: float = 0.75
    #: Up to this fraction of the lifetime earlier, at random.
    jitter: float = 0.05
    #: Never hand out a token with fewer seconds left; a refresh happens no
    #: later than this.
    margin: float = 30.0
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    #: Seconds for one token request (connect and read).
    request_timeout: float = 30.0
    #: A ``requests.Session`` for token requests (TLS, proxies); default: a new one.
    http: Any = None
    #: Where refresh tokens are kept; default ``FileStore()``.
    store: Optional["RefreshStore"] = None
    #: When the refresh token is dead (and the store holds no newer one),
    #: log in again (device credentials, header login); False: ``SessionEnded``.
    relogin: bool = True
    #: A ``TokenCache`` shared between sources; default: the source's own.
    cache: Optional["TokenCache"] = None

    def check(self) -> None:
        if not 0.0 < self.refresh_at <= 1.0:
            raise ConfigError(f"refresh_at must be in (0, 1], not {self.refresh_at}")
        if not 0.0 <= self.jitter < self.refresh_at:
            raise ConfigError(f"jitter must be in [0, refresh_at), not {self.jitter}")
        if self.margin < 0:
            raise ConfigError(f"margin must not be negative, not {self.margin}")
        if self.retry.max_attempts < 1:
            raise ConfigError("retry.max_attempts must be at least 1")
        if self.retry.base_delay < 0 or self.retry.max_delay < 0 or self.retry.max_retry_after < 0:
            raise ConfigError("retry delays must not be negative")

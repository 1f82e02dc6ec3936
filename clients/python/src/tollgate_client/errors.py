"""What can go wrong, typed. Every error names the contract and, when the
server refused, the contract's own error code (``invalid_client``,
``invalid_grant``, ``invalid_token``, ``not_authenticated`` for the header
login's plain 401, ...), the same variants as the Rust crate's ``Error``."""

from typing import Optional

# Codes that mean "the presented grant (refresh token, refresh JWT) is no
# good": the cue to re-read the store or log in again, never to resend.
DEAD_GRANT_CODES = frozenset({"invalid_grant", "invalid_token", "not_authenticated"})


class TollgateClientError(Exception):
    """Base of every error this package raises."""

    contract: Optional[str] = None


class Refused(TollgateClientError):
    """The server answered with the contract's error."""

    def __init__(self, contract: str, status: int, code: str, description: Optional[str] = None):
        self.contract = contract
        self.status = status
        self.code = code
        self.description = description
        text = f"{contract}: the server refused ({status}): {code}"
        if description:
            text += f" ({description})"
        super().__init__(text)

    @property
    def is_dead_grant(self) -> bool:
        return self.code in DEAD_GRANT_CODES


class SessionEnded(TollgateClientError):
    """The refresh token is dead and this source may not log in again (the
    contract has no login, or ``relogin`` is off)."""

    def __init__(self, contract: str, code: str):
        self.contract = contract
        self.code = code
        super().__init__(
            f"{contract}: the session ended (refresh token refused: {code}); a new login is needed")


class RateLimited(TollgateClientError):
    """Still 429 after the retries, or a ``Retry-After`` longer than
    ``RetryPolicy.max_retry_after``."""

    def __init__(self, contract: str, retry_after: Optional[float]):
        self.contract = contract
        self.retry_after = retry_after
        super().__init__(f"{contract}: rate limited (retry after {retry_after} s)")


class Unavailable(TollgateClientError):
    """5xx or no answer after every retry."""

    def __init__(self, contract: str, attempts: int, last: str):
        self.contract = contract
        self.attempts = attempts
        self.last = last
        super().__init__(f"{contract}: unavailable after {attempts} attempts: {last}")


class ProtocolError(TollgateClientError):
    """The answer did not have the contract's shape."""

    def __init__(self, contract: str, detail: str):
        self.contract = contract
        self.detail = detail
        super().__init__(f"{contract}: unexpected answer: {detail}")


class TooShort(TollgateClientError):
    """The token's whole lifetime is not longer than the margin, so it could
    never be handed out."""

    def __init__(self, lifetime: float, margin: float):
        self.lifetime = lifetime
        self.margin = margin
        super().__init__(f"a token lives {lifetime:.1f} s, not longer than the margin {margin:.1f} s")


class StoreError(TollgateClientError):
    """The refresh-token store failed; the token is not handed out, since it
    could not be persisted first."""


class ConfigError(TollgateClientError, ValueError):
    """The source's configuration is unusable."""

"""One token request, retried as the contracts allow: 429 and 503 wait out
``Retry-After`` (seconds or an HTTP date) up to ``max_retry_after``; 500,
502, 504, 503 without ``Retry-After`` and connection failures back off
exponentially with jitter; anything else is the contract's answer and goes
back to it. Only token requests pass here, never the API's."""

import email.utils
import logging
import time
from typing import Any, Optional

import requests

from .errors import RateLimited, Unavailable
from .options import Options

log = logging.getLogger("tollgate_client")

_BACKOFF_STATUSES = frozenset({500, 502, 504})


def parse_retry_after(value: Optional[str], now: Optional[float] = None) -> Optional[float]:
    """Seconds to wait from a ``Retry-After`` header (RFC 9110 §10.2.3)."""
    if value is None:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when is None:
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


class Transport:
    """Sends a contract's token requests with the source's retry policy."""

    def __init__(self, contract: str, options: Options):
        self.contract = contract
        self.options = options
        self.http = options.http if options.http is not None else requests.Session()

    def send(self, method: str, url: str, **kwargs: Any) -> requests.Response:
        policy = self.options.retry
        last = "no attempt"
        rate_limited: Optional[float] = None
        was_429 = False
        for attempt in range(1, policy.max_attempts + 1):
            try:
                resp = self.http.request(method, url, timeout=self.options.request_timeout,
                                         allow_redirects=False, **kwargs)
            except requests.RequestException as e:
                # Connection refused, reset, timed out: the server may be
                # restarting. Never the answer of a refusal.
                last = f"{type(e).__name__}: {e}"
                was_429 = False
                wait = policy.backoff(attempt)
            else:
                status = resp.status_code
                if status in (429, 503):
                    after = parse_retry_after(resp.headers.get("Retry-After"))
                    resp.close()
                    was_429 = status == 429
                    last = f"HTTP {status}"
                    rate_limited = after
                    if after is not None and after > policy.max_retry_after:
                        if was_429:
                            raise RateLimited(self.contract, after)
                        raise Unavailable(self.contract, attempt, f"{last}, Retry-After {after:.0f} s")
                    wait = after if after is not None else policy.backoff(attempt)
                elif status in _BACKOFF_STATUSES:
                    resp.close()
                    last = f"HTTP {status}"
                    was_429 = False
                    wait = policy.backoff(attempt)
                else:
                    return resp
            if attempt == policy.max_attempts:
                break
            log.info("%s: token request to %s: %s; retrying in %.2f s (attempt %d of %d)",
                     self.contract, url, last, wait, attempt + 1, policy.max_attempts)
            time.sleep(wait)
        if was_429:
            raise RateLimited(self.contract, rate_limited)
        raise Unavailable(self.contract, policy.max_attempts, last)

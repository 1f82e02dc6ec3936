"""``TokenSource``: one contract's tokens, kept as the contracts oblige.

- Cached by ``CacheKey`` (contract, endpoint, client, user, audience,
  resource, scope) in a ``TokenCache``, the source's own unless shared.
- Single flight: while one token request is out, every other caller that
  needs a token waits for it; callers queued behind a failed request get
  its error instead of repeating it.
- A caller gets the cached token while it has at least ``margin`` seconds
  left; at ``refresh_at`` of its lifetime (minus up to ``jitter``, and no
  later than the margin) a background thread fetches the next one, so no
  caller waits while a valid token exists.
- A refresh token that came back (rotated or not) is saved to the store
  before the access token is handed out; a refused refresh token is tried
  once more with what the store holds now (another process sharing the
  store may have rotated it), then the source logs in again (``relogin``)
  or raises ``SessionEnded``.
"""

import logging
import random
import threading
import time
from typing import TYPE_CHECKING, Any, Dict, Optional

from .errors import Refused, SessionEnded, StoreError, TollgateClientError, TooShort, Unavailable
from .keys import CacheKey
from .options import Options
from .store import FileStore, RefreshStore
from .token import AccessToken, Grant
from .transport import Transport

if TYPE_CHECKING:
    from .contracts import Contract

log = logging.getLogger("tollgate_client")


class _Entry:
    """One key's state; every field is guarded by ``cond``."""

    def __init__(self) -> None:
        self.cond = threading.Condition()
        self.token: Optional[AccessToken] = None
        #: The refresh token in hand (also in the store).
        self.refresh: Optional[str] = None
        #: Whether a token request is out.
        self.flight = False
        #: Bumped when a flight ends, so waiters know theirs ended.
        self.gen = 0
        #: The error of the last flight, if it failed.
        self.error: Optional[BaseException] = None
        self.timer: Optional[threading.Timer] = None
        #: Token requests sent (successful or not), for the curious.
        self.requests = 0


class TokenCache:
    """Tokens by ``CacheKey``. Share one between sources (``Options.cache``)
    so that sources with equal keys share tokens and flights."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._entries: Dict[CacheKey, _Entry] = {}

    def _entry(self, key: CacheKey) -> _Entry:
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                entry = self._entries[key] = _Entry()
            return entry

    def clear(self) -> None:
        """Forgets every access token (refresh tokens stay in their stores)."""
        with self._lock:
            entries = list(self._entries.values())
        for e in entries:
            with e.cond:
                e.token = None
                if e.timer is not None:
                    e.timer.cancel()
                    e.timer = None


class TokenSource:
    """Tokens for one contract configuration; thread-safe. Build it with
    the contract's ``.source()``."""

    def __init__(self, contract: "Contract", options: Optional[Options] = None):
        options = options if options is not None else Options()
        options.check()
        contract.check()
        self.contract = contract
        self.options = options
        self.key = contract.key()
        self._store_key = self.key.store_key()
        self._transport = Transport(contract.name, options)
        store = options.store
        if store is None and contract.has_refresh:
            store = FileStore()
        self.store: Optional[RefreshStore] = store
        cache = options.cache if options.cache is not None else TokenCache()
        self._entry = cache._entry(self.key)
        self._closed = False

    # -- what callers use -------------------------------------------------

    def token(self) -> str:
        """A bearer token with at least ``margin`` seconds left."""
        return self.access_token().value

    def access_token(self) -> AccessToken:
        """Like ``token()``, with the token's times."""
        e = self._entry
        margin = self.options.margin
        with e.cond:
            while True:
                t = e.token
                if t is not None and t.remaining() >= margin:
                    return t
                if not e.flight:
                    e.flight = True
                    break
                gen = e.gen
                while e.gen == gen:
                    e.cond.wait()
                if e.error is not None:
                    t = e.token
                    if t is not None and t.remaining() >= margin:
                        return t
                    raise e.error
        token = self._fly(background=False)
        assert token is not None  # a foreground flight raises instead
        return token

    def invalidate(self, value: Optional[str] = None) -> None:
        """Drops the cached access token (only if it is ``value``, when
        given): the API refused it. The next caller fetches a new one;
        concurrent refusals of the same token cause one request."""
        e = self._entry
        with e.cond:
            if e.token is not None and (value is None or e.token.value == value):
                e.token = None
                if e.timer is not None:
                    e.timer.cancel()
                    e.timer = None

    def auth(self) -> Any:
        """An ``auth=`` object for ``requests``."""
        from .auth import BearerAuth

        return BearerAuth(self)

    def httpx_auth(self) -> Any:
        """An ``auth=`` object for ``httpx`` (needs the ``httpx`` extra)."""
        from .httpx_auth import HttpxBearerAuth

        return HttpxBearerAuth(self)

    @property
    def requests_sent(self) -> int:
        """Token requests this source's cache entry sent (a request's retries count once)."""
        return self._entry.requests

    def close(self) -> None:
        """Stops the background refresh."""
        e = self._entry
        with e.cond:
            self._closed = True
            if e.timer is not None:
                e.timer.cancel()
                e.timer = None

    def __enter__(self) -> "TokenSource":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"TokenSource({self.contract!r}, store={self.store!r})"

    # -- one flight ---------------------------------------------------------

    def _fly(self, background: bool) -> Optional[AccessToken]:
        """Runs the token request this thread owns (``flight`` is set) and
        publishes its outcome to every waiter."""
        e = self._entry
        try:
            grant = self._obtain()
            if grant.access.remaining() < self.options.margin or grant.access.lifetime <= self.options.margin:
                raise TooShort(grant.access.lifetime, self.options.margin)
        except BaseException as err:
            with e.cond:
                e.flight = False
                e.gen += 1
                # Waiters get a typed error, not another thread's interrupt.
                e.error = err if isinstance(err, Exception) else Unavailable(
                    self.contract.name, 0, f"the token request was interrupted ({type(err).__name__})")
                e.cond.notify_all()
            if not background:
                raise
            log.warning("%s: background refresh failed: %s", self.contract.name, err)
            return None
        with e.cond:
            e.token = grant.access
            e.flight = False
            e.gen += 1
            e.error = None
            e.cond.notify_all()
            self._schedule(grant.access)
        return grant.access

    def _obtain(self) -> Grant:
        c = self.contract
        t = _Counting(self._transport, self._entry)
        if not c.has_refresh:
            return c.login(t)
        held = self._entry.refresh or self._load()
        grant: Optional[Grant] = None
        if held:
            try:
                grant = c.refresh(t, held)
            except Refused as err:
                if not err.is_dead_grant:
                    raise
                dead = err
                # Another process sharing the store may have rotated it.
                stored = self._load()
                if stored and stored != held:
                    try:
                        grant = c.refresh(t, stored)
                        held = stored
                    except Refused as again:
                        if not again.is_dead_grant:
                            raise
                        dead = again
                if grant is None:
                    if not self.options.relogin:
                        raise SessionEnded(c.name, dead.code) from dead
                    log.info("%s: refresh token refused (%s); logging in again", c.name, dead.code)
        if grant is None:
            grant = c.login(t)
        if grant.refresh and grant.refresh != held:
            # Persisted before the access token is handed out: a crash after
            # this line leaves a store that holds the live refresh token.
            self._save(grant.refresh)
        self._entry.refresh = grant.refresh or held
        return grant

    def _load(self) -> Optional[str]:
        if self.store is None:
            return None
        try:
            return self.store.load(self._store_key)
        except StoreError:
            raise
        except Exception as e:
            raise StoreError(f"loading the refresh token: {e}") from e

    def _save(self, refresh: str) -> None:
        if self.store is None:
            return
        try:
            self.store.save(self._store_key, refresh)
        except StoreError:
            raise
        except Exception as e:
            raise StoreError(f"saving the refresh token: {e}") from e

    # -- the background refresh ---------------------------------------------

    def _schedule(self, token: AccessToken) -> None:
        """Arms the background refresh for ``token`` (``cond`` held)."""
        o = self.options
        e = self._entry
        if e.timer is not None:
            e.timer.cancel()
            e.timer = None
        if self._closed:
            return
        fraction = o.refresh_at - o.jitter * random.random()
        due = min(token.obtained_at + token.lifetime * fraction, token.expires_at - o.margin)
        self._arm(token, due - time.time())

    def _arm(self, token: AccessToken, delay: float) -> None:
        if delay <= 0:
            # No room before the margin: the next caller refreshes.
            return
        timer = threading.Timer(delay, self._background, args=(token,))
        timer.daemon = True
        self._entry.timer = timer
        timer.start()

    def _background(self, token: AccessToken) -> None:
        e = self._entry
        with e.cond:
            if self._closed or e.token is not token or e.flight:
                return
            e.flight = True
            e.timer = None
        if self._fly(background=True) is None:
            # Try again while the old token still has room before the margin.
            with e.cond:
                left = token.remaining() - self.options.margin
                if e.token is token and not self._closed and left > 1.0:
                    self._arm(token, max(1.0, left / 2))


class _Counting:
    """The transport, counting requests for ``TokenSource.requests_sent``."""

    def __init__(self, inner: Transport, entry: _Entry):
        self._inner = inner
        self._entry = entry

    def send(self, method: str, url: str, **kwargs: Any) -> Any:
        with self._entry.cond:
            self._entry.requests += 1
        return self._inner.send(method, url, **kwargs)


__all__ = ["TokenSource", "TokenCache", "TollgateClientError"]

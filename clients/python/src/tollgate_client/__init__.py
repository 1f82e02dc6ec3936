"""tollgate-client: the partner's side of tollgate's token contracts.

Two lines per contract::

    tokens = ClientCredentials(base_url, client_id, client_secret).source()
    requests.get(api_url, auth=tokens.auth())

See README.md for every contract and option.
"""

from .auth import BearerAuth
from .contracts import BearerExchange, ClientCredentials, Contract, DeviceCredentials, HeaderLogin
from .errors import (ConfigError, ProtocolError, RateLimited, Refused, SessionEnded, StoreError,
                     TollgateClientError, TooShort, Unavailable)
from .keys import CONTRACTS, CacheKey
from .options import Options, RetryPolicy
from .source import TokenCache, TokenSource
from .store import FileStore, MemoryStore, RefreshStore
from .token import AccessToken

__version__ = "0.1.0"

__all__ = [
    "AccessToken", "BearerAuth", "BearerExchange", "CONTRACTS", "CacheKey", "ClientCredentials",
    "ConfigError", "Contract", "DeviceCredentials", "FileStore", "HeaderLogin", "MemoryStore",
    "Options", "ProtocolError", "RateLimited", "RefreshStore", "Refused", "RetryPolicy",
    "SessionEnded", "StoreError", "TokenCache", "TokenSource", "TollgateClientError", "TooShort",
    "Unavailable",
]

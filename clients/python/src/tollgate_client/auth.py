"""``auth=`` for ``requests``: attaches ``Authorization: Bearer`` from a
``TokenSource`` and, when the API answers 401, drops that token, gets a new
one and sends the request once more (a second 401 is the caller's)."""

from typing import Any

import requests
from requests.auth import AuthBase

_RETRIED = "_tollgate_retried"


class BearerAuth(AuthBase):
    """``requests.get(url, auth=BearerAuth(source))`` or ``auth=source.auth()``."""

    def __init__(self, source: Any):
        self.source = source

    def __call__(self, r: requests.PreparedRequest) -> requests.PreparedRequest:
        r.headers["Authorization"] = f"Bearer {self.source.token()}"
        r.register_hook("response", self._on_response)
        return r

    def _on_response(self, resp: requests.Response, **kwargs: Any) -> requests.Response:
        if resp.status_code != 401 or getattr(resp.request, _RETRIED, False):
            return resp
        sent = resp.request.headers.get("Authorization", "")
        body = resp.request.body
        if body is not None and hasattr(body, "read"):
            # A streamed body is gone; the caller sees the 401.
            return resp
        self.source.invalidate(sent[7:] if sent.startswith("Bearer ") else None)
        token = self.source.token()
        # Release the connection before sending again.
        resp.content
        resp.close()
        again = resp.request.copy()
        again.headers["Authorization"] = f"Bearer {token}"
        setattr(again, _RETRIED, True)
        retried = resp.connection.send(again, **kwargs)
        retried.history.append(resp)
        retried.request = again
        return retried

    def __eq__(self, other: object) -> bool:
        return isinstance(other, BearerAuth) and other.source is self.source

    def __repr__(self) -> str:
        return f"BearerAuth({self.source!r})"

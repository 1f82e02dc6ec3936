"""``auth=`` for ``httpx`` (the ``httpx`` extra): the same behaviour as
``BearerAuth``. In an async client the token is fetched on a worker thread,
so a token request never blocks the event loop."""

import asyncio
from typing import Any, AsyncGenerator, Generator

import httpx


class HttpxBearerAuth(httpx.Auth):
    """``httpx.get(url, auth=source.httpx_auth())``."""

    def __init__(self, source: Any):
        self.source = source

    def sync_auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        token = self.source.token()
        request.headers["Authorization"] = f"Bearer {token}"
        response = yield request
        if response.status_code == 401:
            self.source.invalidate(token)
            request.headers["Authorization"] = f"Bearer {self.source.token()}"
            yield request

    async def async_auth_flow(self, request: httpx.Request) -> AsyncGenerator[httpx.Request, httpx.Response]:
        loop = asyncio.get_running_loop()
        token = await loop.run_in_executor(None, self.source.token)
        request.headers["Authorization"] = f"Bearer {token}"
        response = yield request
        if response.status_code == 401:
            self.source.invalidate(token)
            token = await loop.run_in_executor(None, self.source.token)
            request.headers["Authorization"] = f"Bearer {token}"
            yield request

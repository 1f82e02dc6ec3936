"""A Tradecloud API client written from tradecloud-basic-login.md alone,
with Python `requests`, as a partner would write it.

Literally as the page says: `GET /v2/authentication/login` with a Basic
Authorization header of `email:password`; the tokens come back in the
`Set-Authorization` and `Set-Refresh-Token` response headers;
`GET /v2/authentication/refresh` with the `Refresh-Token` header gives a new
pair; requests carry `Authorization: Bearer <Access-Token>`.
"""

import requests


class TradecloudClient:
    def __init__(self, base_url: str):
        self.base_url = base_url.rstrip("/")
        self.access_token = None
        self.refresh_token = None

    def login(self, email: str, password: str) -> requests.Response:
        response = requests.get(
            f"{self.base_url}/v2/authentication/login", auth=(email, password)
        )
        if response.status_code == 200:
            self.access_token = response.headers["Set-Authorization"]
            self.refresh_token = response.headers["Set-Refresh-Token"]
        return response

    def refresh(self) -> requests.Response:
        response = requests.get(
            f"{self.base_url}/v2/authentication/refresh",
            headers={"Refresh-Token": self.refresh_token},
        )
        if response.status_code == 200 and "Set-Authorization" in response.headers:
            self.access_token = response.headers["Set-Authorization"]
            self.refresh_token = response.headers["Set-Refresh-Token"]
        return response

    def auth_header(self) -> dict:
        return {"Authorization": f"Bearer {self.access_token}"}

"""A Dive API client written from dive-device-credentials.md alone, with
Python `requests`, as a partner would write it against rest.dive.tv.

Literally as the page says: `POST /v1/token?grant_type=device_credentials`
with form data `username` and `password` (the MD5 of the password), headers
`Content-Type: application/json` and `Authorization: Basic {client_key}`;
`POST /v1/token?grant_type=refresh_token` with form data `refresh_token`;
then `Authorization: Bearer <token>` on every request.
"""

import hashlib

import requests


class DiveClient:
    def __init__(self, base_url: str, client_key: str):
        self.base_url = base_url.rstrip("/")
        self.client_key = client_key
        self.token = None

    def _headers(self) -> dict:
        return {
            "Content-Type": "application/json",
            "Authorization": f"Basic {self.client_key}",
        }

    def obtain_token(self, username: str, password: str) -> dict:
        response = requests.post(
            f"{self.base_url}/v1/token?grant_type=device_credentials",
            data={
                "username": username,
                "password": hashlib.md5(password.encode("utf-8")).hexdigest(),
            },
            headers=self._headers(),
        )
        response.raise_for_status()
        self.token = response.json()
        return self.token

    def refresh_token(self) -> dict:
        response = requests.post(
            f"{self.base_url}/v1/token?grant_type=refresh_token",
            data={"refresh_token": self.token["refresh_token"]},
            headers=self._headers(),
        )
        response.raise_for_status()
        self.token = response.json()
        return self.token

    def auth_header(self) -> dict:
        return {"Authorization": f"Bearer {self.token['access_token']}"}

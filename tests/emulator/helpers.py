"""Small helpers shared by the emulator tests: raw HTTP with the emulator's CA trusted."""

from __future__ import annotations

from typing import Any

import requests

from optsync.emulator import Emulator

V = "59.0"


class Raw:
    """Raw HTTP against the emulator with a bearer token (requests, CA pinned)."""

    def __init__(self, emu: Emulator, token: str | None = None):
        self.emu = emu
        self.session = emu.http()
        self.token = token if token is not None else emu.token()["access_token"]

    def url(self, path: str) -> str:
        if path.startswith("/"):
            return self.emu.instance_url + path
        return f"{self.emu.instance_url}/services/data/v{V}/{path}"

    def request(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        headers = kwargs.pop("headers", {})
        if self.token:
            headers.setdefault("Authorization", f"Bearer {self.token}")
        return self.session.request(method, self.url(path), headers=headers, timeout=60, **kwargs)

    def get(self, path: str, **kwargs: Any) -> requests.Response:
        return self.request("GET", path, **kwargs)

    def post(self, path: str, **kwargs: Any) -> requests.Response:
        return self.request("POST", path, **kwargs)

    def patch(self, path: str, **kwargs: Any) -> requests.Response:
        return self.request("PATCH", path, **kwargs)

    def put(self, path: str, **kwargs: Any) -> requests.Response:
        return self.request("PUT", path, **kwargs)

    def delete(self, path: str, **kwargs: Any) -> requests.Response:
        return self.request("DELETE", path, **kwargs)


def error_code(resp: requests.Response) -> str:
    body = resp.json()
    assert isinstance(body, list), body
    return str(body[0]["errorCode"])

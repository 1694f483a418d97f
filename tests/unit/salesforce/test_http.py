"""The Salesforce HTTP session: default timeout, pinned CA, proxies from the environment."""

from __future__ import annotations

from typing import Any

import pytest
import requests
from requests.adapters import HTTPAdapter

from optsync.salesforce.http import DEFAULT_TIMEOUT, build_session, env_proxies


def test_a_configured_ca_bundle_survives_requests_ca_bundle(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", "/somewhere/else.pem")
    monkeypatch.setenv("CURL_CA_BUNDLE", "/somewhere/else.pem")
    session = build_session(ca_bundle="/etc/optsync/ca.pem")
    merged = session.merge_environment_settings("https://x.example", {}, None, None, None)
    assert merged["verify"] == "/etc/optsync/ca.pem"
    # plain requests would have let the environment win — the bug this guards against
    plain = requests.Session()
    plain.verify = "/etc/optsync/ca.pem"
    assert (
        plain.merge_environment_settings("https://x.example", {}, None, None, None)["verify"]
        == "/somewhere/else.pem"
    )


def test_without_a_ca_bundle_the_environment_still_decides(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", "/corp/ca.pem")
    merged = build_session().merge_environment_settings("https://x.example", {}, None, None, None)
    assert merged["verify"] == "/corp/ca.pem"


def test_an_explicit_per_request_verify_still_wins(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", "/corp/ca.pem")
    session = build_session(ca_bundle="/etc/optsync/ca.pem")
    merged = session.merge_environment_settings("https://x.example", {}, None, "/other.pem", None)
    assert merged["verify"] == "/other.pem"


def test_proxies_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.corp:3128")
    monkeypatch.setenv("NO_PROXY", "internal.example")
    session = build_session(ca_bundle="/etc/optsync/ca.pem")
    assert (
        env_proxies(session, "https://acme.my.salesforce.com")["https"] == "http://proxy.corp:3128"
    )
    assert "https" not in env_proxies(session, "https://internal.example/x")


class _Recorder(HTTPAdapter):
    def __init__(self) -> None:
        super().__init__()
        self.kwargs: list[dict[str, Any]] = []

    def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:
        self.kwargs.append(kwargs)
        response = requests.Response()
        response.status_code = 204
        response.request = request
        return response


def test_every_request_gets_a_timeout_unless_given() -> None:
    session = build_session(ca_bundle=None)
    adapter = _Recorder()
    session.mount("https://", adapter)
    session.get("https://x.example/a")
    session.get("https://x.example/b", timeout=3)
    assert adapter.kwargs[0]["timeout"] == DEFAULT_TIMEOUT == (10.0, 60.0)
    assert adapter.kwargs[1]["timeout"] == 3


def test_timeout_is_overridable_per_session() -> None:
    session = build_session(timeout=(1.0, 2.0))
    adapter = _Recorder()
    session.mount("https://", adapter)
    session.get("https://x.example/a")
    assert adapter.kwargs[0]["timeout"] == (1.0, 2.0)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, None),
        ("", None),
        ("7", 7.0),
        (" 120 ", 120.0),
        ("Wed, 21 Oct 2015 07:28:30 GMT", 30.0),  # 30 s after `now`
        ("Wed, 21 Oct 2015 07:27:00 GMT", 0.0),  # already past
        ("soon", None),
    ],
)
def test_retry_after_parsing(value: str | None, expected: float | None) -> None:
    from datetime import UTC, datetime

    from optsync.salesforce.http import parse_retry_after

    now = datetime(2015, 10, 21, 7, 28, 0, tzinfo=UTC).timestamp()
    assert parse_retry_after(value, now=now) == expected

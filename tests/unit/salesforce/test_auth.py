"""Token requests and token-endpoint answers, without a network."""

from __future__ import annotations

import base64
from typing import Any

import jwt
import pytest
import requests

from optsync.salesforce import auth
from optsync.salesforce.auth import (
    JWT_GRANT,
    build_token_request,
    fetch_token,
    jwt_audience,
    parse_token_response,
)
from optsync.salesforce.connection import ConnectionConfig
from optsync.salesforce.errors import SalesforceAuthError, SalesforceAuthUnavailable

from .keys import rsa_pair

SECRET = "S3CRET-consumer-secret-value"
PASSWORD = "hunter2-and-token"


def _config(auth_kind: str = "client_credentials", **changes: Any) -> ConnectionConfig:
    values: dict[str, Any] = dict(
        auth=auth_kind,
        login_url="https://acme.my.salesforce.com",
        client_id="3MVG9abc",
        client_secret=SECRET,
        username="int@acme.example",
        password=PASSWORD,
        private_key=rsa_pair()[0],
    )
    values.update(changes)
    return ConnectionConfig(**values)


@pytest.mark.parametrize(
    ("login_url", "aud"),
    [
        ("https://login.salesforce.com", "https://login.salesforce.com"),
        ("https://LOGIN.salesforce.com/", "https://login.salesforce.com"),
        ("https://test.salesforce.com", "https://test.salesforce.com"),
        ("https://acme.my.salesforce.com", "https://acme.my.salesforce.com"),
        ("https://127.0.0.1:8443", "https://127.0.0.1:8443"),
    ],
)
def test_jwt_audience(login_url: str, aud: str) -> None:
    assert jwt_audience(login_url) == aud


def test_jwt_request_is_signed_rs256_with_the_documented_claims() -> None:
    req = build_token_request(
        _config("jwt", login_url="https://login.salesforce.com"), now=1_700_000_000
    )
    assert req.url == "https://login.salesforce.com/services/oauth2/token"
    assert req.form["grant_type"] == JWT_GRANT
    assert req.basic_auth is None
    token = req.form["assertion"]
    assert jwt.get_unverified_header(token)["alg"] == "RS256"
    claims = jwt.decode(
        token,
        rsa_pair()[1],
        algorithms=["RS256"],
        audience="https://login.salesforce.com",
        options={"verify_exp": False},
    )
    assert claims == {
        "iss": "3MVG9abc",
        "sub": "int@acme.example",
        "aud": "https://login.salesforce.com",
        "exp": 1_700_000_180,
    }
    assert SECRET not in str(req.form)  # no client secret in the JWT flow


def test_client_credentials_use_http_basic() -> None:
    req = build_token_request(_config())
    assert req.form == {"grant_type": "client_credentials"}
    assert req.basic_auth == ("3MVG9abc", SECRET)
    assert SECRET not in repr(req)


def test_password_flow_form() -> None:
    req = build_token_request(_config("password"))
    assert req.form == {
        "grant_type": "password",
        "client_id": "3MVG9abc",
        "client_secret": SECRET,
        "username": "int@acme.example",
        "password": PASSWORD,
    }
    assert SECRET not in repr(req) and PASSWORD not in repr(req)


def test_success_is_parsed() -> None:
    token = parse_token_response(
        200,
        {
            "access_token": "00D5g000004XYZa!AQ8AQtoken",
            "instance_url": "https://acme.my.salesforce.com/",
            "id": "https://login.salesforce.com/id/00D5g000004XYZaEAO/0055g00000ABCdeAAH",
            "token_type": "Bearer",
            "issued_at": "1718800000000",
            "signature": "x",
            "scope": "api",
        },
        auth="jwt",
        login_url="https://login.salesforce.com",
    )
    assert token.instance_url == "https://acme.my.salesforce.com"
    assert token.org_id == "00D5g000004XYZaEAO"
    assert token.issued_at is not None and token.issued_at.year == 2024
    assert "AQ8AQtoken" not in repr(token)


def test_non_https_instance_url_is_refused() -> None:
    with pytest.raises(SalesforceAuthError):
        parse_token_response(
            200,
            {"access_token": "t", "instance_url": "http://evil"},
            auth="jwt",
            login_url="https://login.salesforce.com",
        )


@pytest.mark.parametrize(
    ("flow", "body", "setting"),
    [
        (
            "client_credentials",
            {"error": "invalid_client_id", "error_description": "client identifier invalid"},
            "OPTSYNC_SF_CLIENT_ID",
        ),
        (
            "client_credentials",
            {"error": "invalid_client", "error_description": "invalid client credentials"},
            "OPTSYNC_SF_CLIENT_SECRET",
        ),
        (
            "jwt",
            {"error": "invalid_grant", "error_description": "audience is invalid"},
            "OPTSYNC_SF_LOGIN_URL",
        ),
        (
            "jwt",
            {"error": "invalid_grant", "error_description": "invalid assertion"},
            "OPTSYNC_SF_PRIVATE_KEY_FILE",
        ),
        (
            "password",
            {"error": "invalid_grant", "error_description": "authentication failure"},
            "OPTSYNC_SF_PASSWORD",
        ),
        (
            "jwt",
            {"error": "unsupported_grant_type", "error_description": "grant type not supported"},
            "OPTSYNC_SF_AUTH",
        ),
        (
            "jwt",
            {"error": "inactive_user", "error_description": "user is inactive"},
            "OPTSYNC_SF_USERNAME",
        ),
    ],
)
def test_refusals_name_the_setting(flow: str, body: dict[str, str], setting: str) -> None:
    with pytest.raises(SalesforceAuthError) as info:
        parse_token_response(400, body, auth=flow, login_url="https://login.salesforce.com")
    err = info.value
    assert err.setting is not None and err.setting.startswith(setting)
    assert setting in str(err)
    assert body["error"] in str(err)
    assert err.code == body["error"]


def test_unapproved_user_gets_the_pre_authorisation_fix() -> None:
    with pytest.raises(SalesforceAuthError) as info:
        parse_token_response(
            400,
            {"error": "invalid_grant", "error_description": "user hasn't approved this consumer"},
            auth="jwt",
            login_url="https://login.salesforce.com",
        )
    assert "pre-authorized" in str(info.value)


def test_a_non_salesforce_answer_points_at_the_login_url() -> None:
    with pytest.raises(SalesforceAuthError) as info:
        parse_token_response(404, None, auth="jwt", login_url="https://example.com")
    assert info.value.setting is not None and "OPTSYNC_SF_LOGIN_URL" in info.value.setting


def test_rate_limit_is_retryable() -> None:
    with pytest.raises(SalesforceAuthUnavailable):
        parse_token_response(
            400,
            {"error": "rate_limit_exceeded", "error_description": "x"},
            auth="jwt",
            login_url="https://login.salesforce.com",
        )


class _FakeResponse:
    def __init__(self, status: int, body: Any):
        self.status_code = status
        self._body = body

    def json(self) -> Any:
        if self._body is None:
            raise ValueError("not json")
        return self._body


class _FakeSession:
    """Answers token posts from a script of responses or exceptions."""

    def __init__(self, script: list[Any]):
        self.script = list(script)
        self.calls: list[dict[str, Any]] = []

    def post(self, url: str, **kwargs: Any) -> Any:
        self.calls.append({"url": url, **kwargs})
        item = self.script.pop(0)
        if isinstance(item, Exception):
            raise item
        return item


OK = _FakeResponse(200, {"access_token": "tok", "instance_url": "https://acme.my.salesforce.com"})


def test_transient_failures_are_retried_with_backoff() -> None:
    session = _FakeSession(
        [requests.exceptions.ConnectionError("reset"), _FakeResponse(503, None), OK]
    )
    sleeps: list[float] = []
    token = fetch_token(_config(), session, sleep=sleeps.append)  # type: ignore[arg-type]
    assert token.access_token == "tok"
    assert len(session.calls) == 3 and len(sleeps) == 2
    assert 0 < sleeps[0] <= sleeps[1] * 2
    auth_header = session.calls[0]["auth"]
    assert auth_header == ("3MVG9abc", SECRET)


def test_giving_up_is_retryable_and_secret_free() -> None:
    session = _FakeSession([requests.exceptions.Timeout("slow")] * 3)
    with pytest.raises(SalesforceAuthUnavailable) as info:
        fetch_token(_config(), session, sleep=lambda _s: None)  # type: ignore[arg-type]
    assert "3 attempts" in str(info.value) and SECRET not in str(info.value)


def test_refusals_are_not_retried() -> None:
    refusal = {"error": "invalid_client", "error_description": "invalid client credentials"}
    session = _FakeSession([_FakeResponse(400, refusal)])
    with pytest.raises(SalesforceAuthError):
        fetch_token(_config(), session, sleep=lambda _s: None)  # type: ignore[arg-type]
    assert len(session.calls) == 1


def test_tls_failure_names_the_ca_bundle_and_is_not_retried() -> None:
    session = _FakeSession([requests.exceptions.SSLError("bad cert")])
    with pytest.raises(SalesforceAuthError) as info:
        fetch_token(_config(), session, sleep=lambda _s: None)  # type: ignore[arg-type]
    assert "OPTSYNC_SF_CA_BUNDLE" in str(info.value)


def test_backoff_grows_and_is_capped() -> None:
    assert auth.backoff_delay(1) <= 0.5
    assert auth.backoff_delay(10) <= auth.BACKOFF_CAP_S


def test_basic_auth_header_encoding_matches_salesforce() -> None:
    # requests builds the header from the tuple; check the tuple round-trips as Basic.
    req = build_token_request(_config())
    assert req.basic_auth is not None
    prepared = requests.Request("POST", req.url, data=req.form, auth=req.basic_auth).prepare()
    expected = base64.b64encode(f"3MVG9abc:{SECRET}".encode()).decode()
    assert prepared.headers["Authorization"] == f"Basic {expected}"

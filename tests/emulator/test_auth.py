"""OAuth flows, token errors and session expiry, over real HTTPS."""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import time
from pathlib import Path

import jwt
import pytest
import requests
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from simple_salesforce import Salesforce
from simple_salesforce.exceptions import SalesforceExpiredSession

from optsync.emulator import Emulator
from optsync.emulator.auth import JWT_GRANT

from .helpers import Raw, error_code

pytestmark = pytest.mark.emulator


def _token(
    emu: Emulator,
    data: dict[str, str],
    auth: tuple[str, str] | None = None,
) -> requests.Response:
    with emu.http() as s:
        return s.post(f"{emu.login_url}/services/oauth2/token", data=data, auth=auth, timeout=30)


def _assertion(emu: Emulator, key_pem: str | None = None, **claims: object) -> str:
    body: dict[str, object] = {
        "iss": emu.client_id,
        "sub": emu.username,
        "aud": "https://login.salesforce.com",
        "exp": str(int(time.time()) + 180),
    }
    body.update(claims)
    key = key_pem if key_pem is not None else Path(emu.private_key_file).read_text()
    return jwt.encode(body, key, algorithm="RS256")


def _client(emu: Emulator, token: dict[str, str]) -> Salesforce:
    return Salesforce(
        instance_url=token["instance_url"], session_id=token["access_token"], session=emu.http()
    )


@pytest.mark.parametrize("grant", ["password", "client_credentials", "refresh_token", "jwt"])
def test_each_flow_gives_a_working_simple_salesforce_client(emu: Emulator, grant: str) -> None:
    emu.seed(contacts=2)
    token = emu.token(grant)
    assert token["instance_url"] == emu.instance_url
    sf = _client(emu, token)
    assert sf.query("SELECT COUNT() FROM Contact")["totalSize"] == 2


def test_success_body_matches_salesforce(emu: Emulator) -> None:
    resp = _token(
        emu,
        {
            "grant_type": "client_credentials",
            "client_id": emu.client_id,
            "client_secret": emu.client_secret,
        },
    )
    assert resp.status_code == 200
    body = resp.json()
    assert set(body) == {
        "access_token",
        "instance_url",
        "id",
        "token_type",
        "issued_at",
        "signature",
        "scope",
    }
    assert body["token_type"] == "Bearer"
    assert re.fullmatch(r"00D[0-9A-Za-z]{12}!.+", body["access_token"])
    assert re.fullmatch(r"\d{13}", body["issued_at"])
    assert re.fullmatch(rf"{re.escape(emu.login_url)}/id/00D\w{{15}}/005\w{{15}}", body["id"])
    expected = base64.b64encode(
        hmac.new(
            emu.client_secret.encode(), (body["id"] + body["issued_at"]).encode(), hashlib.sha256
        ).digest()
    ).decode()
    assert body["signature"] == expected
    assert "refresh_token" not in body


def test_jwt_accepts_int_exp_and_every_audience(emu: Emulator) -> None:
    for aud in ("https://login.salesforce.com", "https://test.salesforce.com", emu.login_url):
        resp = _token(
            emu,
            {
                "grant_type": JWT_GRANT,
                "assertion": _assertion(emu, aud=aud, exp=int(time.time()) + 60),
            },
        )
        assert resp.status_code == 200, resp.text


@pytest.mark.parametrize(
    ("claims", "error", "description"),
    [
        ({"aud": "https://evil.example.com"}, "invalid_grant", "audience is invalid"),
        ({"iss": "someone-else"}, "invalid_client_id", "client identifier invalid"),
        ({"sub": "nobody@example.com"}, "invalid_grant", "user hasn't approved this consumer"),
        ({"exp": int(time.time()) - 3600}, "invalid_grant", "expired authorization code"),
    ],
)
def test_jwt_claim_errors(
    emu: Emulator, claims: dict[str, object], error: str, description: str
) -> None:
    resp = _token(emu, {"grant_type": JWT_GRANT, "assertion": _assertion(emu, **claims)})
    assert resp.status_code == 400
    assert resp.json() == {"error": error, "error_description": description}


def test_jwt_signed_with_another_key_is_rejected(emu: Emulator) -> None:
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = other.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    resp = _token(emu, {"grant_type": JWT_GRANT, "assertion": _assertion(emu, key_pem=pem)})
    assert resp.status_code == 400
    assert resp.json()["error"] == "invalid_grant"


def test_private_key_is_owner_only(emu: Emulator) -> None:
    assert Path(emu.private_key_file).stat().st_mode & 0o077 == 0


@pytest.mark.parametrize(
    ("data", "auth", "error"),
    [
        (
            {
                "grant_type": "password",
                "client_id": "x",
                "client_secret": "y",
                "username": "u",
                "password": "p",
            },
            None,
            "invalid_client_id",
        ),
        ({"grant_type": "client_credentials"}, ("nope", "nope"), "invalid_client_id"),
        ({"grant_type": "refresh_token", "refresh_token": "bad"}, None, "invalid_client_id"),
        ({"grant_type": "magic"}, None, "unsupported_grant_type"),
        ({}, None, "invalid_request"),
    ],
)
def test_token_errors(
    emu: Emulator, data: dict[str, str], auth: tuple[str, str] | None, error: str
) -> None:
    resp = _token(emu, data, auth)
    assert resp.status_code == 400
    assert resp.json()["error"] == error
    assert "error_description" in resp.json()


def test_wrong_password_and_refresh_token(emu: Emulator) -> None:
    resp = _token(
        emu,
        {
            "grant_type": "password",
            "client_id": emu.client_id,
            "client_secret": emu.client_secret,
            "username": emu.username,
            "password": "wrong",
        },
    )
    assert resp.json() == {"error": "invalid_grant", "error_description": "authentication failure"}
    resp = _token(
        emu,
        {"grant_type": "refresh_token", "client_id": emu.client_id, "refresh_token": "5Aep861nope"},
    )
    assert resp.json() == {
        "error": "invalid_grant",
        "error_description": "expired access/refresh token",
    }
    resp = _token(emu, {"grant_type": "client_credentials"}, (emu.client_id, "wrong"))
    assert resp.json()["error"] == "invalid_client"


def test_expired_sessions_answer_401_array(emu: Emulator) -> None:
    raw = Raw(emu)
    assert raw.get("limits").status_code == 200
    assert emu.control("POST", "sessions/expire")["expired"] >= 1
    resp = raw.get("limits")
    assert resp.status_code == 401
    assert resp.json() == [
        {"message": "Session expired or invalid", "errorCode": "INVALID_SESSION_ID"}
    ]
    assert Raw(emu, token="").get("limits").status_code == 401


def test_simple_salesforce_raises_expired_session(emu: Emulator, sf: Salesforce) -> None:
    emu.control("POST", "sessions/expire")
    with pytest.raises(SalesforceExpiredSession):
        sf.query("SELECT Id FROM Contact")


def test_tokens_expire_after_their_lifetime(emu: Emulator) -> None:
    raw = Raw(emu)
    authority = emu.org.authority
    old = authority.token_lifetime_s
    try:
        authority.token_lifetime_s = 0.000001
        short = Raw(emu)
        assert short.get("limits").status_code == 401
    finally:
        authority.token_lifetime_s = old
    assert raw.get("limits").status_code == 200


def test_ca_bundle_verifies_and_default_trust_does_not(emu: Emulator) -> None:
    with requests.Session() as s:
        s.trust_env = False
        with pytest.raises(requests.exceptions.SSLError):
            s.get(emu.instance_url + "/services/data/", timeout=10)
    with emu.http() as s:
        assert s.get(emu.instance_url + "/services/data/", timeout=10).status_code == 200


def test_error_code_helper_reads_arrays(emu: Emulator) -> None:
    resp = Raw(emu, token="bogus").get("sobjects")
    assert error_code(resp) == "INVALID_SESSION_ID"

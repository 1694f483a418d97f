"""Each OAuth flow against the emulator, and clear errors when a setting is wrong."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from optsync.emulator import Emulator
from optsync.salesforce.auth import fetch_token
from optsync.salesforce.errors import SalesforceAuthError, SalesforceAuthUnavailable
from optsync.salesforce.gateway import SalesforceGateway
from optsync.salesforce.http import build_session

from .conftest import config_for

pytestmark = pytest.mark.emulator


@pytest.mark.parametrize("auth", ["jwt", "client_credentials", "password"])
def test_each_flow_gets_a_token_and_makes_a_call(emu: Emulator, auth: str) -> None:
    with SalesforceGateway(config_for(emu, auth)) as gw:
        limits = gw.limits()
        assert gw.instance_url == emu.instance_url
        assert gw.token is not None and gw.token.org_id is not None
    assert "DailyApiRequests" in limits


def test_wrong_client_secret_is_a_clear_error(emu: Emulator) -> None:
    wrong = "not-the-secret-0123456789"
    with pytest.raises(SalesforceAuthError) as info:
        fetch_token(config_for(emu, client_secret=wrong), build_session(ca_bundle=emu.ca_bundle))
    text = str(info.value)
    assert "OPTSYNC_SF_CLIENT_SECRET" in text and "invalid_client" in text
    assert wrong not in text and emu.client_secret not in text


def test_wrong_password_names_the_password(emu: Emulator) -> None:
    with pytest.raises(SalesforceAuthError) as info:
        fetch_token(
            config_for(emu, "password", password="wrong-password"),
            build_session(ca_bundle=emu.ca_bundle),
        )
    assert "OPTSYNC_SF_PASSWORD" in str(info.value) and "wrong-password" not in str(info.value)


def test_wrong_jwt_key_names_the_private_key(emu: Emulator) -> None:
    other = (
        rsa.generate_private_key(public_exponent=65537, key_size=2048)
        .private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        .decode()
    )
    with pytest.raises(SalesforceAuthError) as info:
        fetch_token(
            config_for(emu, "jwt", private_key=other), build_session(ca_bundle=emu.ca_bundle)
        )
    assert "OPTSYNC_SF_PRIVATE_KEY_FILE" in str(info.value)


def test_wrong_client_id_names_the_client_id(emu: Emulator) -> None:
    with pytest.raises(SalesforceAuthError) as info:
        fetch_token(config_for(emu, client_id="3MVG9wrong"), build_session(ca_bundle=emu.ca_bundle))
    assert info.value.setting is not None and "OPTSYNC_SF_CLIENT_ID" in info.value.setting


def test_untrusted_certificate_names_the_ca_bundle(
    emu: Emulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("REQUESTS_CA_BUNDLE", raising=False)
    monkeypatch.delenv("CURL_CA_BUNDLE", raising=False)
    config = config_for(emu, ca_bundle=None)
    with pytest.raises(SalesforceAuthError) as info:
        fetch_token(config, build_session())
    assert "OPTSYNC_SF_CA_BUNDLE" in str(info.value)


def test_unreachable_login_host_is_retryable(emu: Emulator) -> None:
    config = config_for(emu, login_url="https://127.0.0.1:9")  # discard port: refused
    with pytest.raises(SalesforceAuthUnavailable):
        fetch_token(
            config,
            build_session(ca_bundle=emu.ca_bundle, timeout=(1.0, 1.0)),
            sleep=lambda _s: None,
        )

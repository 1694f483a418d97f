"""Connection validation and masking, without a database or network."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from optsync.errors import UsageError
from optsync.salesforce.connection import (
    ConnectionConfig,
    normalise_api_version,
    normalise_login_url,
    read_private_key,
)

from .keys import ec_key, encrypted_rsa, rsa_pair

SECRET = "consumer-secret-XYZ"
PASSWORD = "pa55word+token"


def _config(auth: str = "jwt", **changes: Any) -> ConnectionConfig:
    values: dict[str, Any] = dict(
        auth=auth,
        login_url="https://acme.my.salesforce.com",
        client_id="3MVG9abc",
        client_secret=SECRET,
        username="int@acme.example",
        password=PASSWORD,
        private_key=rsa_pair()[0],
    )
    values.update(changes)
    return ConnectionConfig(**values)


def test_repr_and_str_mask_every_secret() -> None:
    config = _config()
    for text in (repr(config), str(config), str(config.masked())):
        assert SECRET not in text and PASSWORD not in text
        assert "PRIVATE KEY" not in text
        assert "3MVG9abc" in text and "********" in text


def test_valid_configs_are_normalised() -> None:
    config = _config(login_url="https://ACME.my.salesforce.com/", api_version="v60").validated()
    assert config.login_url == "https://acme.my.salesforce.com"
    assert config.api_version == "60.0"


@pytest.mark.parametrize(
    "url",
    [
        "http://login.salesforce.com",
        "login.salesforce.com",
        "",
        "https://",
        "https://u:p@acme.my.salesforce.com",
        "https://acme.my.salesforce.com?x=1",
    ],
)
def test_login_url_must_be_plain_https(url: str) -> None:
    with pytest.raises(UsageError) as info:
        normalise_login_url(url)
    assert info.value.field == "login_url"
    assert "OPTSYNC_SF_LOGIN_URL" in str(info.value)


def test_emulator_style_login_url_keeps_its_port() -> None:
    assert normalise_login_url("https://127.0.0.1:8443/") == "https://127.0.0.1:8443"


def test_unknown_auth_kind() -> None:
    with pytest.raises(UsageError) as info:
        _config("oauth").validated()
    assert info.value.field == "auth" and "client_credentials" in str(info.value)


@pytest.mark.parametrize(
    ("auth", "missing"),
    [
        ("jwt", "client_id"),
        ("jwt", "username"),
        ("jwt", "private_key"),
        ("client_credentials", "client_id"),
        ("client_credentials", "client_secret"),
        ("password", "username"),
        ("password", "password"),
        ("password", "client_secret"),
    ],
)
def test_required_fields_per_auth_kind(auth: str, missing: str) -> None:
    with pytest.raises(UsageError) as info:
        _config(auth, **{missing: None}).validated()
    assert info.value.field == missing
    assert "OPTSYNC_SF_" in str(info.value)
    assert SECRET not in str(info.value) and PASSWORD not in str(info.value)


def test_jwt_does_not_need_a_secret_or_password() -> None:
    _config("jwt", client_secret=None, password=None).validated()


def test_client_credentials_refuse_the_public_login_host() -> None:
    with pytest.raises(UsageError) as info:
        _config("client_credentials", login_url="https://login.salesforce.com").validated()
    assert "My Domain" in str(info.value)


@pytest.mark.parametrize(
    "key", ["not a key", "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"]
)
def test_private_key_must_be_pem(key: str) -> None:
    with pytest.raises(UsageError) as info:
        _config(private_key=key).validated()
    assert info.value.field == "private_key"
    assert "AAAA" not in str(info.value)


def test_private_key_must_be_rsa_and_unencrypted() -> None:
    with pytest.raises(UsageError, match="not an RSA key"):
        _config(private_key=ec_key()).validated()
    with pytest.raises(UsageError, match="passphrase"):
        _config(private_key=encrypted_rsa()).validated()


def test_private_key_file_must_be_readable(tmp_path: Path) -> None:
    with pytest.raises(UsageError) as info:
        read_private_key(tmp_path / "missing.pem")
    assert "OPTSYNC_SF_PRIVATE_KEY_FILE" in str(info.value)
    good = tmp_path / "key.pem"
    good.write_text(rsa_pair()[0])
    assert read_private_key(good).startswith("-----BEGIN PRIVATE KEY-----")


@pytest.mark.parametrize(
    ("raw", "out"), [("62.0", "62.0"), ("v59.0", "59.0"), ("31", "31.0"), (None, "62.0")]
)
def test_api_version(raw: str | None, out: str) -> None:
    assert normalise_api_version(raw) == out


@pytest.mark.parametrize("raw", ["30.0", "7.0", "abc", "62.5"])
def test_api_version_rejects_retired_and_malformed(raw: str) -> None:
    with pytest.raises(UsageError) as info:
        normalise_api_version(raw)
    assert info.value.field == "api_version"


def test_ca_bundle_must_be_a_pem_file(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="cannot be used as a CA bundle"):
        _config(ca_bundle=str(tmp_path / "nope.pem")).validated()
    junk = tmp_path / "junk.pem"
    junk.write_text("hello")
    with pytest.raises(UsageError, match="cannot be used as a CA bundle"):
        _config(ca_bundle=str(junk)).validated()

"""The stored connection on SQLite and PostgreSQL: round trip, encryption, env precedence."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import text

from optsync.errors import ConfigError, UsageError
from optsync.salesforce.connection import (
    ConnectionConfig,
    delete_connection,
    load_connection,
    resolve_connection,
    save_connection,
)
from optsync.settings import Settings
from optsync.store.db import Database
from tests.unit.salesforce.keys import rsa_pair

NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
KEY = "k" * 48
SECRET = "consumer-SECRET-4c1e9a"
PASSWORD = "pw-and-token-77e0"


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    for name in list(os.environ):
        if name.startswith("OPTSYNC_SF_"):
            monkeypatch.delenv(name)


def _settings(tmp_path: Path, **sf: object) -> Settings:
    return Settings(data_dir=tmp_path, secret_key=KEY, **sf)  # type: ignore[arg-type]


def _config(**changes: object) -> ConnectionConfig:
    values: dict[str, object] = dict(
        auth="password",
        login_url="https://acme.my.salesforce.com/",
        client_id="3MVG9abc",
        client_secret=SECRET,
        username="int@acme.example",
        password=PASSWORD,
        private_key=rsa_pair()[0],
        api_version="61",
    )
    values.update(changes)
    return ConnectionConfig(**values)  # type: ignore[arg-type]


def test_round_trip_with_secrets_encrypted_at_rest(db: Database) -> None:
    with db.transaction() as s:
        stored = save_connection(s, _config(), KEY, now=NOW)
    assert stored.login_url == "https://acme.my.salesforce.com" and stored.api_version == "61.0"
    with db.transaction() as s:
        loaded = load_connection(s, KEY)
    assert loaded == stored
    with db.engine.connect() as conn:
        row = conn.execute(text("SELECT * FROM salesforce_connection")).mappings().one()
    raw = b"".join(
        bytes(v) if isinstance(v, bytes | memoryview) else str(v).encode() for v in row.values()
    )
    for secret in (SECRET, PASSWORD, "PRIVATE KEY", rsa_pair()[0].splitlines()[1]):
        assert secret.encode() not in raw
    assert b"int@acme.example" in raw  # non-secrets stay readable for admins


def test_saving_again_replaces_and_delete_forgets(db: Database) -> None:
    with db.transaction() as s:
        save_connection(s, _config(), KEY, now=NOW)
        save_connection(
            s, _config(auth="client_credentials", username=None, password=None), KEY, now=NOW
        )
    with db.transaction() as s:
        loaded = load_connection(s, KEY)
        assert loaded is not None and loaded.auth == "client_credentials"
        assert loaded.password is None and loaded.client_secret == SECRET
        assert delete_connection(s) is True
        assert delete_connection(s) is False
        assert load_connection(s, KEY) is None


def test_invalid_config_is_not_stored(db: Database) -> None:
    with db.transaction() as s, pytest.raises(UsageError):
        save_connection(s, _config(login_url="http://acme.example"), KEY, now=NOW)
    with db.transaction() as s:
        assert load_connection(s, KEY) is None


def test_wrong_secret_key_is_a_config_error(db: Database) -> None:
    with db.transaction() as s:
        save_connection(s, _config(), KEY, now=NOW)
    with db.transaction() as s, pytest.raises(ConfigError) as info:
        load_connection(s, "another-key" * 4)
    assert SECRET not in str(info.value)


def test_env_variables_win_over_the_stored_row(db: Database, tmp_path: Path) -> None:
    with db.transaction() as s:
        save_connection(s, _config(), KEY, now=NOW)
    key_file = tmp_path / "key.pem"
    key_file.write_text(rsa_pair()[0])
    settings = _settings(
        tmp_path,
        sf_auth="jwt",
        sf_username="other@acme.example",
        sf_private_key_file=key_file,
        sf_api_version="63.0",
    )
    with db.transaction() as s:
        config = resolve_connection(settings, s)
    assert config is not None
    assert (config.auth, config.username, config.api_version) == (
        "jwt",
        "other@acme.example",
        "63.0",
    )
    assert config.client_id == "3MVG9abc"  # not overridden: the stored value
    assert config.login_url == "https://acme.my.salesforce.com"


def test_env_alone_configures_a_connection(db: Database, tmp_path: Path) -> None:
    settings = _settings(
        tmp_path,
        sf_auth="client_credentials",
        sf_login_url="https://acme.my.salesforce.com",
        sf_client_id="3MVG9env",
        sf_client_secret=SECRET,
    )
    with db.transaction() as s:
        config = resolve_connection(settings, s)
        assert config is not None and config.client_secret == SECRET
        assert resolve_connection(_settings(tmp_path), s) is None
        with pytest.raises(UsageError, match="OPTSYNC_SF_AUTH"):
            resolve_connection(_settings(tmp_path, sf_client_id="x"), s)
        with pytest.raises(UsageError, match="OPTSYNC_SF_CLIENT_ID"):
            resolve_connection(
                _settings(
                    tmp_path, sf_auth="password", sf_login_url="https://login.salesforce.com"
                ),
                s,
            )

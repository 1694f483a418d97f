import os
import stat

import pytest

from optsync.errors import ConfigError
from optsync.settings import load_settings


def test_defaults_create_data_dir_and_secret_once(tmp_path):
    s = load_settings(data_dir=tmp_path / "d")
    key = s.resolved_secret_key
    path = tmp_path / "d" / "secret.key"
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert load_settings(data_dir=tmp_path / "d").resolved_secret_key == key
    assert s.resolved_database_url == f"sqlite:///{(tmp_path / 'd').resolve()}/optsync.db"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"database_url": "mysql://root@localhost/x"}, "OPTSYNC_DATABASE_URL: unsupported"),
        ({"base_url": "ftp://x"}, "OPTSYNC_BASE_URL"),
        ({"sf_auth": "saml"}, "OPTSYNC_SF_AUTH"),
        ({"sf_api_version": "20.0"}, "retired"),
    ],
)
def test_bad_values_give_one_clear_error(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        load_settings(**kwargs)


def test_plain_postgresql_scheme_uses_psycopg():
    s = load_settings(database_url="postgresql://u:pw@h/db")
    assert s.database_url.startswith("postgresql+psycopg://")
    assert "pw" not in s.masked()["database_url"]


def test_unwritable_data_dir(tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir(mode=0o500)
    if os.geteuid() == 0:
        # root writes anywhere; use a path under a regular file instead
        f = tmp_path / "file"
        f.write_text("x")
        target = f / "sub"
    else:
        target = ro / "sub"
    with pytest.raises(ConfigError, match="OPTSYNC_DATA_DIR"):
        load_settings(data_dir=target).ensure_data_dir()


def test_secrets_are_masked(tmp_path):
    s = load_settings(data_dir=tmp_path, secret_key="s3cr3t", sf_client_secret="abc")
    shown = s.masked()
    assert shown["secret_key"] == "********"
    assert "abc" not in str(shown) and "s3cr3t" not in repr(s)


def test_public_page_settings_from_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("OPTSYNC_PUBLIC_SENDER_NAME", "  Acme\tSales  ")
    monkeypatch.setenv("OPTSYNC_PUBLIC_LOGO", "branding/logo.svg")
    monkeypatch.setenv("OPTSYNC_PUBLIC_REASONS", " other, TOO_MANY ")
    s = load_settings(data_dir=tmp_path)
    assert s.public_sender_name == "Acme Sales"
    assert s.public_logo == "branding/logo.svg"
    assert s.reason_choices == ("other", "too_many")
    monkeypatch.setenv("OPTSYNC_PUBLIC_REASONS", "")
    monkeypatch.setenv("OPTSYNC_PUBLIC_SENDER_NAME", " ")
    monkeypatch.setenv("OPTSYNC_PUBLIC_LOGO", "")
    s = load_settings(data_dir=tmp_path)
    assert (s.reason_choices, s.public_sender_name, s.public_logo) == ((), None, None)


def test_public_page_defaults(tmp_path):
    s = load_settings(data_dir=tmp_path)
    assert s.public_sender_name is None and s.public_logo is None
    assert s.reason_choices == ("too_many", "not_relevant", "never_signed_up", "other")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"public_sender_name": "Acme\x00"}, "OPTSYNC_PUBLIC_SENDER_NAME: must be printable"),
        ({"public_sender_name": "x" * 101}, "OPTSYNC_PUBLIC_SENDER_NAME"),
        ({"public_reasons": "too_many,too_many"}, "names a reason twice"),
        ({"public_reasons": "spam"}, "OPTSYNC_PUBLIC_REASONS: unknown reason 'spam'"),
        ({"public_logo": "logo.bmp"}, "must end in one of .png"),
        ({"public_logo": "https://cdn.example.com:x/logo.png"}, "port is not a number"),
        ({"public_logo": "https://cdn_example.com/logo.png"}, "https://HOST"),
    ],
)
def test_bad_public_page_values_name_the_setting(kwargs, message, tmp_path):
    with pytest.raises(ConfigError, match=message):
        load_settings(data_dir=tmp_path, **kwargs)

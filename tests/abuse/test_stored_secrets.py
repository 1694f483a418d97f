"""Stored Salesforce secrets stay put: a changed login URL, auth kind, username or CA
bundle never sends the stored secret anywhere, and the path fields do not let an admin
probe the server's files."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from optsync.salesforce.config import ConnectionConfig
from optsync.salesforce.connection import load_connection
from tests.integration.admin.conftest import csrf_of, post_form

pytestmark = pytest.mark.emulator

TAB = "/settings/admin/unsubscribes"


def _form(emu, **extra):
    return {
        "auth": "client_credentials",
        "login_url": emu.login_url,
        "client_id": emu.client_id,
        "client_secret": emu.client_secret,
        "api_version": "62.0",
        "ca_bundle": emu.ca_bundle,
        **extra,
    }


def _post(client, emu, action, **extra):
    return post_form(
        client, f"{TAB}/integrations/connection", {"action": action, **_form(emu, **extra)}
    )


def test_testing_a_changed_login_url_with_an_empty_secret_sends_no_stored_secret(
    admin_client, emu, ctx, listener
):
    assert _post(admin_client, emu, "save").status_code == 303
    for action in ("test", "save"):
        r = _post(admin_client, emu, action, login_url=listener.url, client_secret="")
        assert r.status_code == 422, r.text
        assert "OPTSYNC_SF_CLIENT_SECRET" in r.text and "login URL changed" in r.text
        assert 'aria-invalid="true"' in r.text
    assert emu.client_secret.encode() not in listener.everything()
    # the stored connection is unchanged
    with ctx.db.transaction() as s:
        stored = load_connection(s, ctx.settings.resolved_secret_key)
    assert stored.login_url == emu.login_url and stored.client_secret == emu.client_secret


def test_the_password_flow_keeps_its_secrets_only_for_the_same_user_and_url(
    admin_client, emu, listener
):
    extra = {"auth": "password", "username": emu.username, "password": emu.password}
    assert _post(admin_client, emu, "save", **extra).status_code == 303
    changes = [
        {"login_url": listener.url},
        {"username": "someone.else@example.com"},
        {"auth": "client_credentials", "username": ""},
    ]
    for change in changes:
        r = _post(
            admin_client, emu, "test", **{**extra, "client_secret": "", "password": "", **change}
        )
        assert r.status_code == 422, (change, r.text)
        assert "enter it again" in r.text
    everything = listener.everything()
    assert emu.client_secret.encode() not in everything
    assert emu.password.encode() not in everything
    # unchanged identity: the stored secrets are still used
    # (a test answers on the same page, beside its button: 200, not a redirect)
    same = _post(admin_client, emu, "test", **{**extra, "client_secret": "", "password": ""})
    assert same.status_code == 200
    result = same.text[same.text.index('id="connection-result"') :]
    assert result.startswith('id="connection-result" class="result flash flash-ok"')
    assert "Connected to" in result[: result.index("</p>")]


def test_a_new_secret_for_a_new_url_is_sent_there_not_the_stored_one(admin_client, emu, listener):
    assert _post(admin_client, emu, "save").status_code == 303
    r = _post(admin_client, emu, "test", login_url=listener.url, client_secret="typed-again")
    assert r.status_code == 200 and 'id="connection-result"' in r.text  # answered in place
    assert "typed-again" not in r.text  # the typed secret is not sent back to the browser
    assert b"typed-again" in listener.everything()
    assert emu.client_secret.encode() not in listener.everything()


def test_every_unusable_ca_bundle_path_gets_the_same_error(admin_client, emu, tmp_path):
    not_pem = tmp_path / "not-pem.txt"
    not_pem.write_text("hello")
    unreadable = tmp_path / "unreadable.pem"
    unreadable.write_text(Path(emu.ca_bundle).read_text())
    unreadable.chmod(0)
    paths = [str(tmp_path / "missing.pem"), str(tmp_path), str(not_pem)]
    if os.geteuid() != 0:
        paths.append(str(unreadable))
    texts = set()
    for path in paths:
        r = _post(admin_client, emu, "test", ca_bundle=path)
        assert r.status_code == 422
        [error] = [line for line in r.text.splitlines() if 'class="error"' in line]
        texts.add(error.replace(path, "PATH"))
    assert len(texts) == 1, texts


def test_the_private_key_is_uploaded_not_read_from_a_server_path(admin_client, emu, tmp_path):
    key = Path(emu.private_key_file)
    base = {"auth": "jwt", "username": emu.username, "client_secret": ""}
    answers = set()
    for path in (str(key), str(tmp_path / "missing.pem"), str(tmp_path), "/etc/hostname"):
        r = admin_client.post(
            f"{TAB}/integrations/connection",
            data={
                **_form(emu, **base),
                "action": "test",
                "private_key_path": path,
                "csrf_token": csrf_of(admin_client, "/settings"),
            },
        )
        assert r.status_code == 422
        answers.add(r.text.replace(path, "PATH").split('<p class="error">')[1].split("<")[0])
    assert len(answers) == 1 and "is required for jwt auth" in next(iter(answers))
    assert 'name="private_key_path"' not in admin_client.get(f"{TAB}?tab=integrations").text


def test_a_relative_ca_bundle_is_stored_absolute(tmp_path, monkeypatch, emu):
    monkeypatch.chdir(Path(emu.ca_bundle).parent)
    config = ConnectionConfig(
        auth="client_credentials",
        login_url="https://example.my.salesforce.com",
        client_id="id",
        client_secret="s",
        ca_bundle=Path(emu.ca_bundle).name,
    ).validated()
    assert config.ca_bundle == str(Path(emu.ca_bundle).resolve())


def test_the_cli_stores_a_relative_ca_bundle_as_an_absolute_path(cli_env, emu, monkeypatch):
    from optsync.cli.main import main

    monkeypatch.chdir(Path(emu.ca_bundle).parent)
    monkeypatch.setattr("sys.stdin", __import__("io").StringIO(emu.client_secret + "\n"))
    code = main(
        [
            "salesforce", "connect", "--auth", "client_credentials", "--login-url", emu.login_url,
            "--client-id", emu.client_id, "--client-secret-stdin", "--ca-bundle",
            Path(emu.ca_bundle).name,
        ]
    )  # fmt: skip
    assert code == 0
    monkeypatch.chdir("/")
    from optsync.bootstrap import open_context

    c = open_context()
    try:
        with c.db.transaction() as s:
            stored = load_connection(s, c.settings.resolved_secret_key)
    finally:
        c.close()
    assert stored.ca_bundle == str(Path(emu.ca_bundle).resolve())

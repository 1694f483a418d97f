"""``optsync salesforce connect | show | check | disconnect`` end to end."""

from __future__ import annotations

import io
import json

import pytest

from optsync.cli import main as cli_main
from optsync.cli import salesforce as salesforce_cli
from optsync.emulator import Emulator
from optsync.store.db import Database

pytestmark = pytest.mark.emulator


@pytest.fixture(autouse=True)
def _registered() -> None:
    if not any(g.name == "salesforce" for g in cli_main.app.registered_groups):
        cli_main.app.add_typer(salesforce_cli.app, name="salesforce")


def _run(
    args: list[str],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    stdin: str = "",
) -> tuple[int, str, str]:
    monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
    code = cli_main.main(args)
    out, err = capsys.readouterr()
    return code, out, err


def _connect_args(emu: Emulator, *extra: str) -> list[str]:
    return [
        "salesforce",
        "connect",
        "--auth",
        "client_credentials",
        "--login-url",
        emu.login_url,
        "--client-id",
        emu.client_id,
        "--client-secret-stdin",
        "--ca-bundle",
        emu.ca_bundle,
        *extra,
    ]


def test_connect_check_disconnect(
    cli_env: str, emu: Emulator, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    code, out, err = _run(_connect_args(emu), capsys, monkeypatch, emu.client_secret + "\n")
    assert code == 0, err
    assert "Stored the Salesforce connection" in out and emu.instance_url in out
    assert emu.client_secret not in out + err

    code, out, err = _run(["salesforce", "show", "--json"], capsys, monkeypatch)
    assert code == 0, err
    shown = json.loads(out)
    assert shown["client_secret"] == "********" and shown["stored"] is True
    assert emu.client_secret not in out

    code, out, err = _run(["salesforce", "check", "--json"], capsys, monkeypatch)
    assert code == 0, out + err
    report = json.loads(out)
    assert report["ok"] is True and len(report["checks"]) == 4

    emu.control("PUT", "fields/Contact/HasOptedOutOfEmail", {"visible": True, "updateable": False})
    code, out, err = _run(["salesforce", "check"], capsys, monkeypatch)
    assert code == 1
    assert "FAIL" in out and "Field-Level Security" in out

    code, out, err = _run(["salesforce", "disconnect"], capsys, monkeypatch)
    assert code == 0 and "Removed" in out
    code, out, err = _run(["salesforce", "check", "--json"], capsys, monkeypatch)
    assert code == 1
    assert json.loads(out)["checks"][0]["fix"].startswith("Run `optsync salesforce connect`")


def test_a_failing_connection_is_not_stored(
    cli_env: str, emu: Emulator, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    wrong = "definitely-not-the-secret"
    code, out, err = _run(_connect_args(emu), capsys, monkeypatch, wrong + "\n")
    assert code == 1
    assert "nothing was stored" in err and "OPTSYNC_SF_CLIENT_SECRET" in err
    assert wrong not in out + err
    with Database(cli_env).transaction() as s:
        from optsync.salesforce.connection import load_connection
        from optsync.store.models import SalesforceConnection

        assert s.get(SalesforceConnection, 1) is None
        assert load_connection(s, "unused") is None


def test_no_test_stores_without_calling(
    cli_env: str, emu: Emulator, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    code, out, _err = _run(_connect_args(emu, "--no-test"), capsys, monkeypatch, "whatever\n")
    assert code == 0 and "not tested" in out
    assert emu.control("GET", "counters")["total"] == 0


def test_jwt_connect_with_a_key_file(
    cli_env: str, emu: Emulator, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    code, out, err = _run(
        [
            "salesforce",
            "connect",
            "--auth",
            "jwt",
            "--login-url",
            emu.login_url,
            "--client-id",
            emu.client_id,
            "--username",
            emu.username,
            "--private-key-file",
            emu.private_key_file,
            "--ca-bundle",
            emu.ca_bundle,
        ],
        capsys,
        monkeypatch,
    )
    assert code == 0, err
    assert "PRIVATE KEY" not in out + err


def test_password_connect_reads_both_secrets_from_stdin(
    cli_env: str, emu: Emulator, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    code, out, err = _run(
        [
            "salesforce",
            "connect",
            "--auth",
            "password",
            "--login-url",
            emu.login_url,
            "--client-id",
            emu.client_id,
            "--username",
            emu.username,
            "--client-secret-stdin",
            "--password-stdin",
            "--ca-bundle",
            emu.ca_bundle,
        ],
        capsys,
        monkeypatch,
        f"{emu.client_secret}\n{emu.password}\n",
    )
    assert code == 0, err
    assert emu.password not in out + err


def test_bad_input_is_one_clear_line(
    cli_env: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    code, _out, err = _run(
        [
            "salesforce",
            "connect",
            "--auth",
            "jwt",
            "--login-url",
            "http://login.salesforce.com",
            "--client-id",
            "x",
            "--username",
            "u",
        ],
        capsys,
        monkeypatch,
    )
    assert code == 1 and "OPTSYNC_SF_LOGIN_URL" in err and "https" in err


def test_check_holds_no_transaction_during_salesforce_calls(
    cli_env: str, emu: Emulator, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Defect 7: ``salesforce check`` calls Salesforce with no transaction open."""
    from tests.integration.salesforce.txguard import watch

    code, _out, err = _run(_connect_args(emu), capsys, monkeypatch, emu.client_secret + "\n")
    assert code == 0, err
    with watch(monkeypatch) as w:
        code, out, err = _run(["salesforce", "check", "--json"], capsys, monkeypatch)
    assert code == 0, out + err
    w.assert_none_held()

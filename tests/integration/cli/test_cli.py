"""The CLI end to end on each database: exit codes, one-line errors, output."""

import io
import re

from sqlalchemy import func, select

from optsync.cli.main import main
from optsync.domain.ids import make_id
from optsync.security import hash_api_token
from optsync.store.db import Database
from optsync.store.models import ApiToken, LedgerEntry, Person, User


def optsync(capsys, *args, stdin=None, monkeypatch=None):
    if stdin is not None:
        monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def test_db_upgrade_is_idempotent(cli_env, capsys):
    code, out, _ = optsync(capsys, "db", "upgrade")
    assert code == 0 and "already at revision" in out


def test_unmigrated_database_is_refused(monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("OPTSYNC_DATA_DIR", str(tmp_path))
    monkeypatch.delenv("OPTSYNC_DATABASE_URL", raising=False)
    code, _, err = optsync(capsys, "settings", "show")
    assert code == 1
    assert "optsync db upgrade" in err and len(err.strip().splitlines()) == 1
    code, out, _ = optsync(capsys, "db", "upgrade")
    assert code == 0 and "upgraded from empty" in out
    assert optsync(capsys, "settings", "show")[0] == 0


def test_bad_configuration_is_one_line(monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("OPTSYNC_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("OPTSYNC_DATABASE_URL", "mysql://root@localhost/x")
    code, _, err = optsync(capsys, "settings", "show")
    assert code == 1
    assert err.strip().startswith("error: OPTSYNC_DATABASE_URL: unsupported database scheme")


def test_user_add_and_token_create(cli_env, capsys, monkeypatch):
    code, out, _ = optsync(
        capsys,
        "user",
        "add",
        "Admin@Example.com",
        "--admin",
        "--password-stdin",
        stdin="correct horse battery\n",
        monkeypatch=monkeypatch,
    )
    assert code == 0 and "admin admin@example.com" in out
    code, _, err = optsync(
        capsys,
        "user",
        "add",
        "admin@example.com",
        "--password-stdin",
        stdin="another long password\n",
        monkeypatch=monkeypatch,
    )
    assert code == 1 and "already exists" in err
    code, _, err = optsync(
        capsys,
        "user",
        "add",
        "m@example.com",
        "--password-stdin",
        stdin="short\n",
        monkeypatch=monkeypatch,
    )
    assert code == 1 and "at least 12" in err

    code, out, _ = optsync(capsys, "token", "create", "mailer", "--admin")
    token = out.strip()
    assert code == 0 and re.fullmatch(r"osk_[A-Za-z0-9_-]{40,}", token)
    db = Database(cli_env)
    with db.transaction() as s:
        stored = s.scalars(select(ApiToken)).one()
        user = s.scalars(select(User)).one()
    db.dispose()
    assert stored.token_hash == hash_api_token(token) and stored.is_admin
    assert token not in (stored.token_hash, stored.prefix)
    assert user.password_hash.startswith("$argon2id$")


def test_unsubscribe_and_resubscribe(cli_env, capsys):
    code, out, _ = optsync(
        capsys, "unsubscribe", "a@example.com", "B@example.com", "--reason", "asked"
    )
    assert code == 0 and "2 unsubscribed, 0 already" in out
    code, out, _ = optsync(capsys, "unsubscribe", "a@example.com")
    assert "0 unsubscribed, 1 already" in out
    code, _, err = optsync(capsys, "unsubscribe", "ok@example.com", "bad@")
    assert code == 1 and "EMAIL" in err
    code, _, err = optsync(capsys, "resubscribe", "a@example.com")
    assert code != 0 and "--reason" in err
    code, out, _ = optsync(capsys, "resubscribe", "a@example.com", "--reason", "by phone")
    assert code == 0 and "Re-subscribed a@example.com" in out
    db = Database(cli_env)
    with db.transaction() as s:
        assert s.scalar(select(func.count()).select_from(Person)) == 2  # ok@ was not added
        assert s.scalar(select(func.count()).select_from(LedgerEntry)) == 3
    db.dispose()


def test_unsubscribe_file(cli_env, capsys, tmp_path):
    path = tmp_path / "suppression.csv"
    path.write_text("email,reason\nx@example.com,a\nnope,b\ny@example.com,c\n")
    code, out, err = optsync(capsys, "unsubscribe", "--file", str(path))
    assert code == 1 and "2 unsubscribed" in out and "line 3" in err
    code, out, _ = optsync(capsys, "unsubscribe", "--file", str(path))
    assert "0 unsubscribed, 2 already" in out


def test_settings_show_and_set(cli_env, capsys):
    import json

    code, out, _ = optsync(capsys, "settings", "show", "--json")
    assert json.loads(out) == {
        "sync_enabled": False,
        "field": "email_opt_out",
        "sales_opt_out_field": "Sales_Opt_Out__c",
        "schedule": "0 20 * * *",
        "timezone": "America/Los_Angeles",
        "live_pull": "auto",
        "poll_interval_s": 60,
        "link_rule": "contact_then_lead",
        "suppress_unknown": True,
    }
    code, out, _ = optsync(
        capsys,
        "settings",
        "set",
        "--sync-enabled",
        "true",
        "--field",
        "sales_opt_out",
        "--sales-opt-out-field",
        "Do_Not_Email__c",
        "--schedule",
        "30 21 * * 1-5",
        "--timezone",
        "Europe/Berlin",
        "--json",
    )
    assert code == 0
    assert json.loads(out)["sales_opt_out_field"] == "Do_Not_Email__c"
    for args, field in [
        (("--schedule", "61 * * * *"), "schedule"),
        (("--timezone", "Moon/Base"), "timezone"),
        (("--field", "fax_opt_out"), "field"),
        (("--sales-opt-out-field", "Bad Name"), "sales_opt_out_field"),
    ]:
        code, _, err = optsync(capsys, "settings", "set", *args)
        assert code == 1 and err.startswith(f"error: {field}:"), err
    code, out, _ = optsync(capsys, "settings", "show", "--json")
    assert json.loads(out)["schedule"] == "30 21 * * 1-5"  # bad input changed nothing


def test_persons_import_exit_status(cli_env, capsys, tmp_path):
    good = tmp_path / "good.csv"
    good.write_text(f"email,salesforce_id\nann@example.com,{make_id('003', 1)}\n")
    code, out, _ = optsync(capsys, "persons", "import", str(good))
    assert code == 0 and "created" in out
    bad = tmp_path / "bad.csv"
    bad.write_text("email,salesforce_id\nbob@example.com,\nbroken,\n")
    code, _, err = optsync(capsys, "persons", "import", str(bad))
    assert code == 1 and "line 3" in err and "email:" in err
    code, _, err = optsync(capsys, "persons", "import", str(tmp_path / "missing.csv"))
    assert code == 1 and "cannot open" in err

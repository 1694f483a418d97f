"""``optsync user …``, ``optsync token …`` and ``optsync audit export`` on each database
(#13 item 1): taking accounts away, the last admin, unique token names, the audit log."""

from __future__ import annotations

import csv
import io
import json
import threading

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from optsync.errors import UsageError
from optsync.services import accounts
from optsync.store.db import Database
from optsync.store.models import ApiToken, User
from tests.integration.cli.test_cli import optsync

PASSWORD = "correct horse battery"


def _add(capsys, monkeypatch, email: str, *, admin: bool) -> None:
    args = ["user", "add", email, "--password-stdin"] + (["--admin"] if admin else [])
    code, _, err = optsync(capsys, *args, stdin=PASSWORD + "\n", monkeypatch=monkeypatch)
    assert code == 0, err


def test_user_list_set_role_and_remove(cli_env, capsys, monkeypatch):
    _add(capsys, monkeypatch, "a@example.com", admin=True)
    _add(capsys, monkeypatch, "b@example.com", admin=False)
    code, out, _ = optsync(capsys, "user", "list", "--json")
    assert code == 0
    listed = {u["email"]: u["role"] for u in json.loads(out)}
    assert listed == {"a@example.com": "admin", "b@example.com": "member"}
    assert "password" not in out and "argon2" not in out

    code, out, _ = optsync(capsys, "user", "set-role", "B@Example.com", "admin")
    assert code == 0 and "b@example.com is now an admin" in out
    code, out, _ = optsync(capsys, "user", "remove", "a@example.com", "--yes")
    assert code == 0 and "Removed a@example.com" in out
    code, out, _ = optsync(capsys, "user", "list")
    assert code == 0 and "b@example.com" in out and "a@example.com" not in out


def test_the_last_admin_cannot_be_removed_or_demoted(cli_env, capsys, monkeypatch):
    _add(capsys, monkeypatch, "a@example.com", admin=True)
    _add(capsys, monkeypatch, "m@example.com", admin=False)
    code, _, err = optsync(capsys, "user", "remove", "a@example.com", "--yes")
    assert code == 1 and "last admin" in err and "set-role" in err
    code, _, err = optsync(capsys, "user", "set-role", "a@example.com", "member")
    assert code == 1 and "last admin" in err
    code, _, err = optsync(capsys, "user", "remove", "nobody@example.com", "--yes")
    assert code == 1 and "no user nobody@example.com" in err
    # a member can still be removed
    assert optsync(capsys, "user", "remove", "m@example.com", "--yes")[0] == 0


def test_two_admins_demoting_each_other_at_once_leave_one(db, clock):
    """Race-safe: each transaction sees the other admin until one commits."""
    with db.transaction() as s:
        for email in ("a@example.com", "b@example.com"):
            accounts.add_user(s, email, PASSWORD, is_admin=True, now=clock())
    barrier = threading.Barrier(2)
    outcomes: list[str] = []

    def demote(email: str) -> None:
        other = Database(db.url)
        try:
            barrier.wait()
            with other.transaction() as s:
                accounts.set_role(s, email, "member", actor="t", now=clock())
            outcomes.append("demoted")
        except UsageError as exc:
            outcomes.append(type(exc).__name__)
        finally:
            other.dispose()

    for _ in range(5):
        threads = [
            threading.Thread(target=demote, args=(e,)) for e in ("a@example.com", "b@example.com")
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        with db.transaction() as s:
            admins = s.scalars(select(User.email).where(User.is_admin)).all()
            assert len(admins) == 1, (admins, outcomes)
            for u in s.scalars(select(User)):
                u.is_admin = True
        barrier.reset()
        outcomes.clear()


def test_reset_password_takes_the_new_one(cli_env, capsys, monkeypatch, database_url):
    _add(capsys, monkeypatch, "a@example.com", admin=True)
    db = Database(database_url)
    with db.transaction() as s:
        before = s.scalars(select(User)).one()
    code, out, _ = optsync(
        capsys,
        "user",
        "reset-password",
        "a@example.com",
        "--password-stdin",
        stdin="a brand new password\n",
        monkeypatch=monkeypatch,
    )
    assert code == 0 and "New password set for a@example.com" in out
    with db.transaction() as s:
        after = s.scalars(select(User)).one()
    db.dispose()
    assert after.password_hash != before.password_hash
    assert after.session_epoch != before.session_epoch  # every session of the user ends


def test_token_names_are_unique_list_hides_the_secret_and_revoke(cli_env, capsys, database_url):
    code, out, _ = optsync(capsys, "token", "create", "mailer")
    token = out.strip()
    assert code == 0
    code, _, err = optsync(capsys, "token", "create", "mailer", "--admin")
    assert code == 1
    assert "NAME" in err and "'mailer'" in err and "token revoke" in err
    code, out, _ = optsync(capsys, "token", "list", "--json")
    [listed] = json.loads(out)
    assert listed["name"] == "mailer" and listed["role"] == "member"
    assert listed["last_used_at"] is None and listed["revoked_at"] is None
    assert token not in out and token[8:] not in out
    code, out, _ = optsync(capsys, "token", "list")
    assert code == 0 and "mailer" in out and token[8:20] not in out

    code, out, _ = optsync(capsys, "token", "revoke", "mailer")
    assert code == 0 and "Revoked token mailer" in out
    code, _, err = optsync(capsys, "token", "revoke", "mailer")
    assert code == 1 and "no live token 'mailer'" in err
    # the name is free again; the revoked one stays listed
    code, out, _ = optsync(capsys, "token", "create", "mailer")
    assert code == 0
    code, out, _ = optsync(capsys, "token", "list", "--json")
    rows = json.loads(out)
    assert [r["revoked_at"] is None for r in rows] == [True, False]
    assert optsync(capsys, "token", "revoke", str(rows[0]["id"]))[0] == 0


def test_the_database_refuses_a_second_live_token_of_one_name(db, clock):
    with db.transaction() as s:
        accounts.create_token(s, "mailer", is_admin=False, now=clock())
    from sqlalchemy.exc import IntegrityError

    with pytest.raises(IntegrityError), db.transaction() as s:
        s.add(ApiToken(name="mailer", token_hash="0" * 64, prefix="osk_x", created_at=clock()))


def test_a_revoked_token_answers_401_at_once(ctx, app, capsys, cli_env):
    with ctx.db.transaction() as s:
        token = accounts.create_token(s, "mailer", is_admin=False, now=ctx.clock())
    headers = {"Authorization": f"Bearer {token}"}
    with TestClient(app) as client:
        assert client.get("/api/v1/settings/unsubscribe-sync", headers=headers).status_code == 200
        assert optsync(capsys, "token", "revoke", "mailer")[0] == 0
        r = client.get("/api/v1/settings/unsubscribe-sync", headers=headers)
        assert r.status_code == 401 and "revoked" in r.text


def test_every_change_is_in_the_audit_export(cli_env, capsys, monkeypatch, tmp_path):
    _add(capsys, monkeypatch, "a@example.com", admin=True)
    _add(capsys, monkeypatch, "b@example.com", admin=False)
    optsync(capsys, "user", "set-role", "b@example.com", "admin")
    optsync(capsys, "user", "remove", "b@example.com", "--yes")
    optsync(capsys, "token", "create", "=cmd|calc")
    optsync(capsys, "token", "revoke", "=cmd|calc")
    target = tmp_path / "audit.csv"
    code, out, _ = optsync(capsys, "audit", "export", "--output", str(target))
    assert code == 0 and "6 entries" in out
    rows = list(csv.DictReader(io.StringIO(target.read_text())))
    assert [r["action"] for r in rows] == [
        "user.add",
        "user.add",
        "user.set-role",
        "user.remove",
        "token.create",
        "token.revoke",
    ]
    assert all(r["actor"].startswith("cli") and r["created_at"] for r in rows)
    assert rows[3]["target"] == "b@example.com"
    assert rows[4]["target"] == "'=cmd|calc"  # no spreadsheet formula
    assert "osk_" not in target.read_text()
    code, out, _ = optsync(capsys, "audit", "export")  # to stdout
    assert code == 0 and out.startswith("id,created_at,actor,action,target,detail")


@pytest.fixture
def ctx(database_url, tmp_path, clock):
    from optsync.bootstrap import Context
    from optsync.settings import load_settings

    settings = load_settings(data_dir=tmp_path / "web", database_url=database_url)
    context = Context(settings=settings, db=Database(database_url), clock=clock)
    yield context
    context.close()


@pytest.fixture
def app(ctx):
    from optsync.web.app import create_app

    return create_app(ctx)

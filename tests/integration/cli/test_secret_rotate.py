"""``optsync secret rotate`` (#13 item 7): old unsubscribe links keep working, the stored
Salesforce credentials are re-encrypted with the new key, every session ends."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select, text

from optsync.bootstrap import Context
from optsync.errors import ConfigError
from optsync.salesforce.connection import load_connection, save_connection
from optsync.services import accounts
from optsync.services.links import UnsubscribeLinks
from optsync.services.optouts import get_or_create_person
from optsync.settings import load_settings
from optsync.store.db import Database
from optsync.store.models import AdminAuditEntry, Person
from optsync.web.app import create_app
from tests.integration.admin.conftest import sign_in
from tests.integration.cli.test_cli import optsync
from tests.integration.salesforce.conftest import config_for

ADMIN = ("admin@example.com", "correct horse battery")
BASE = "https://optsync.test"


def _context(database_url, clock) -> Context:
    settings = load_settings(base_url=BASE)  # the environment cli_env set up
    return Context(settings=settings, db=Database(database_url), clock=clock)


def _person(ctx: Context, email: str) -> int:
    with ctx.db.transaction() as s:
        person, _ = get_or_create_person(s, email, ctx.clock())
        return person.id


def _unsubscribed(ctx: Context, person_id: int) -> bool:
    with ctx.db.transaction() as s:
        return bool(s.scalar(select(Person.unsubscribed).where(Person.id == person_id)))


def test_rotate_keeps_links_reseals_credentials_and_ends_sessions(
    cli_env, capsys, emu, clock, tmp_path
):
    old = _context(cli_env, clock)
    old_key = old.settings.resolved_secret_key
    config = config_for(emu)
    with old.db.transaction() as s:
        save_connection(s, config, old_key, now=clock())
        accounts.add_user(s, ADMIN[0], ADMIN[1], is_admin=True, now=clock())
    first, second = _person(old, "first@example.com"), _person(old, "second@example.com")
    old_links = UnsubscribeLinks.from_settings(old.settings)
    link_one, link_two = old_links.token(first), old_links.token(second)
    running = create_app(old)  # a server started before the rotation, still on the old key
    with TestClient(running, base_url=BASE, follow_redirects=False) as browser:
        sign_in(browser, ADMIN)
        assert browser.get("/settings").status_code == 200

        code, out, err = optsync(capsys, "secret", "rotate", "--yes")
        assert code == 0, err
        assert "re-encrypted" in out and "1 user(s) signed out" in out

        # sessions: over at the next request, even on the server still holding the old key
        r = browser.get("/settings")
        assert r.status_code == 303 and r.headers["location"].startswith("/login")

    new = _context(cli_env, clock)
    new_key = new.settings.resolved_secret_key
    assert new_key != old_key
    assert (new.settings.data_dir / "secret.key").stat().st_mode & 0o077 == 0
    # credentials: sealed with the new key, no longer with the old one
    with new.db.transaction() as s:
        stored = load_connection(s, new_key)
        assert stored is not None and stored.client_secret == config.client_secret
        assert stored.private_key == config.private_key
        with pytest.raises(ConfigError):
            load_connection(s, old_key)
        blob = s.execute(text("SELECT sealed_key FROM retired_link_keys")).scalar_one()
        assert old_key.encode() not in blob
    # links: the old one still unsubscribes on a server started with the new key
    app = create_app(new)
    with TestClient(app, base_url=BASE) as client:
        assert client.get(f"/u/{link_one}").status_code == 200
        r = client.post(f"/u/{link_one}", data={"List-Unsubscribe": "One-Click"})
        assert r.status_code == 200, r.text
        assert _unsubscribed(new, first)
        forged = UnsubscribeLinks("someone else's key", BASE).token(first)
        assert client.post(f"/u/{forged}").status_code == 400
        fresh = UnsubscribeLinks.from_settings(new.settings).token(second)
        assert fresh != link_two
        assert client.post(f"/u/{fresh}").status_code == 200
    running.state.ctx.close()

    # a second rotation keeps the first key's links too
    code, out, err = optsync(capsys, "secret", "rotate", "--yes")
    assert code == 0 and "2 retired link key(s)" in out, err
    third = _context(cli_env, clock)
    with TestClient(create_app(third), base_url=BASE) as client:
        assert client.get(f"/u/{link_two}").status_code == 200
        assert client.get(f"/u/{fresh}").status_code == 200
    with third.db.transaction() as s:
        actions = s.scalars(select(AdminAuditEntry.action)).all()
        assert actions.count("secret.rotate") == 2
    for c in (new, third):
        c.close()


def test_a_key_from_the_environment_is_given_on_stdin(cli_env, capsys, monkeypatch, clock):
    monkeypatch.setenv("OPTSYNC_SECRET_KEY", "the old key from the environment, long enough")
    code, _, err = optsync(capsys, "secret", "rotate", "--yes")
    assert code == 1 and "OPTSYNC_SECRET_KEY" in err and "--new-key-stdin" in err
    code, _, err = optsync(
        capsys,
        "secret",
        "rotate",
        "--yes",
        "--new-key-stdin",
        stdin="short\n",
        monkeypatch=monkeypatch,
    )
    assert code == 1 and "at least 32" in err
    old = _context(cli_env, clock)
    link = UnsubscribeLinks.from_settings(old.settings).token(_person(old, "p@example.com"))
    new_key = "the new key for the environment, also long enough"
    code, out, err = optsync(
        capsys,
        "secret",
        "rotate",
        "--yes",
        "--new-key-stdin",
        stdin=new_key + "\n",
        monkeypatch=monkeypatch,
    )
    assert code == 0 and "set OPTSYNC_SECRET_KEY" in out, err
    assert not (old.settings.data_dir / "secret.key").exists()
    monkeypatch.setenv("OPTSYNC_SECRET_KEY", new_key)
    new = _context(cli_env, clock)
    with TestClient(create_app(new), base_url=BASE) as client:
        assert client.get(f"/u/{link}").status_code == 200
    old.close()
    new.close()


def test_a_rotation_that_cannot_open_the_credentials_changes_nothing(cli_env, capsys, emu, clock):
    ctx = _context(cli_env, clock)
    with ctx.db.transaction() as s:
        save_connection(s, config_for(emu), "a key this installation never had", now=clock())
    key_file = ctx.settings.data_dir / "secret.key"
    before = ctx.settings.resolved_secret_key
    code, _, err = optsync(capsys, "secret", "rotate", "--yes")
    assert code == 1 and "cannot be decrypted" in err
    assert key_file.read_text().strip() == before
    assert not key_file.with_name("secret.key.new").exists()
    with ctx.db.transaction() as s:
        assert s.execute(text("SELECT count(*) FROM retired_link_keys")).scalar_one() == 0
    ctx.close()

"""With another OPTSYNC_SECRET_KEY the stored credentials cannot be decrypted: every
check (CLI, admin tab, API, worker) says so and what to do, never "no connection"."""

from __future__ import annotations

import json
import logging

import pytest
from fastapi.testclient import TestClient

from optsync.bootstrap import Context
from optsync.cli.main import main
from optsync.salesforce.connection import save_connection
from optsync.services.salesforce_setup import setup_checks
from optsync.settings import load_settings
from optsync.store.db import Database
from optsync.web.app import create_app
from tests.integration.conftest import BASE_URL
from tests.integration.salesforce.conftest import config_for

pytestmark = pytest.mark.emulator

UNDECRYPTABLE = "cannot be decrypted with this secret key"


@pytest.fixture
def stored_with_another_key(emu, database_url, clock, tmp_path) -> Context:
    """A connection stored under key "first"; the context returned runs with "second"."""
    db = Database(database_url)
    with db.transaction() as s:
        save_connection(s, config_for(emu), "first", now=clock())
    settings = load_settings(
        data_dir=tmp_path / "data", database_url=database_url, secret_key="second"
    )
    ctx = Context(settings=settings, db=db, clock=clock)
    yield ctx
    ctx.close()


def _assert_honest(detail: str, fix: str | None) -> None:
    assert UNDECRYPTABLE in detail, detail
    assert "no salesforce connection" not in detail.lower()
    assert fix and "OPTSYNC_SECRET_KEY" in fix and "optsync salesforce connect" in fix, fix


def test_the_setup_check_says_the_credentials_cannot_be_decrypted(stored_with_another_key):
    first = setup_checks(stored_with_another_key)[0]
    assert first.name == "connection" and not first.ok
    _assert_honest(first.detail, first.fix)


def test_the_cli_check_says_so(stored_with_another_key, monkeypatch, capsys, database_url):
    settings = stored_with_another_key.settings
    monkeypatch.setenv("OPTSYNC_DATA_DIR", str(settings.data_dir))
    monkeypatch.setenv("OPTSYNC_DATABASE_URL", database_url)
    monkeypatch.setenv("OPTSYNC_SECRET_KEY", "second")
    for name in [n for n in __import__("os").environ if n.startswith("OPTSYNC_SF_")]:
        monkeypatch.delenv(name)
    assert main(["salesforce", "check", "--json"]) == 1
    out = json.loads(capsys.readouterr().out)
    connection = out["checks"][0]
    _assert_honest(connection["detail"], connection["fix"])


def test_the_api_and_the_admin_tab_say_so(stored_with_another_key):
    from optsync.security import new_api_token  # noqa: F401
    from optsync.services.accounts import add_user, create_token

    ctx = stored_with_another_key
    with ctx.db.transaction() as s:
        token = create_token(s, "t", is_admin=True, now=ctx.clock())
        add_user(s, "admin@example.com", "correct horse battery", is_admin=True, now=ctx.clock())
    app = create_app(ctx)
    with TestClient(app, base_url=BASE_URL, follow_redirects=False) as client:
        r = client.get("/api/v1/salesforce/check", headers={"Authorization": f"Bearer {token}"})
        connection = r.json()["checks"][0]
        _assert_honest(connection["detail"], connection["fix"])
        from tests.integration.admin.conftest import sign_in

        sign_in(client, ("admin@example.com", "correct horse battery"))
        page = client.get("/settings/admin/unsubscribes?tab=integrations").text
    assert UNDECRYPTABLE in page
    assert "No Salesforce connection" not in page


def test_the_worker_logs_so(stored_with_another_key, caplog):
    from optsync.worker.gateways import GatewayProvider

    caplog.set_level(logging.INFO)
    provider = GatewayProvider(stored_with_another_key)
    try:
        assert provider() is None
    finally:
        provider.close()
    [line] = [r.getMessage() for r in caplog.records if "Salesforce" in r.getMessage()]
    assert UNDECRYPTABLE in line and "OPTSYNC_SECRET_KEY" in line, line

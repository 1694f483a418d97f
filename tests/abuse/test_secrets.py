"""Secrets never appear in logs, command output or stored rows in clear."""

from __future__ import annotations

import logging

from sqlalchemy import text

from optsync.cli.main import main
from optsync.domain.optout import Source
from optsync.salesforce.connection import save_connection
from optsync.salesforce.gateway import SalesforceGateway
from optsync.services import optouts
from optsync.services.persons import PersonInput, upsert_person
from optsync.services.push import Pusher
from optsync.settings import load_settings
from tests.integration.salesforce.conftest import config_for


def test_a_push_logs_no_secret_token_or_email(
    emu, db, clock, caplog, capsys, tmp_path, monkeypatch, database_url
):
    config = config_for(emu)
    settings = load_settings(data_dir=tmp_path, database_url=database_url)
    with db.transaction() as s:
        save_connection(s, config, settings.resolved_secret_key, now=clock())
    [sf_id] = emu.seed(contacts=1)["contact_ids"]
    with db.transaction() as s:
        upsert_person(s, PersonInput(1, "secret.person@example.com", sf_id, "Contact"), clock())
        optouts.unsubscribe_email(
            s, "secret.person@example.com", source=Source.API, actor="t", now=clock()
        )
    caplog.set_level(logging.DEBUG)
    with SalesforceGateway(config) as gw:
        report = Pusher(db, lambda: gw, worker="w", clock=clock).drain()
        token = gw.token.access_token
    assert report.sent == 1
    # the stored secrets are sealed
    with db.engine.connect() as c:
        blob = c.execute(text("SELECT secrets FROM salesforce_connection")).scalar_one()
    assert config.client_secret.encode() not in bytes(blob)
    # and the CLI shows the connection masked
    monkeypatch.setenv("OPTSYNC_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("OPTSYNC_DATABASE_URL", database_url)
    main(["salesforce", "show", "--json"])
    out = capsys.readouterr()
    everything = caplog.text + out.out + out.err + repr(config) + str(config)
    for secret in (config.client_secret, config.password, token):
        assert secret and secret not in everything
    assert "secret.person@example.com" not in caplog.text

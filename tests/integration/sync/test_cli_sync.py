"""``optsync sync run|history`` against the emulator."""

from __future__ import annotations

import json

import pytest

from optsync.cli import main as cli_main
from optsync.cli import sync as sync_cli
from optsync.store.db import Database
from tests.integration.sync.conftest import add_persons, remote, set_field


@pytest.fixture
def cli(cli_env, emu_settings):
    if "sync" not in [g.name for g in cli_main.app.registered_groups]:
        cli_main.app.add_typer(sync_cli.app, name="sync")
    return cli_main.main


def test_sync_run_json_then_history(cli, cli_env, emu, clock, capsys):
    db = Database(cli_env)
    seed = emu.seed(contacts=2)
    c = seed["contact_ids"]
    emu.control("PATCH", f"records/{c[0]}", {"HasOptedOutOfEmail": True})
    add_persons(db, clock, [{"salesforce_id": c[0]}, {"salesforce_id": c[1], "unsubscribed": True}])
    db.dispose()

    assert cli(["sync", "run", "--dry-run", "--json"]) == 0
    dry = json.loads(capsys.readouterr().out)
    assert dry["dry_run"] is True and (dry["pulled"], dry["pushed"]) == (1, 1)
    assert remote(emu, c[1])["HasOptedOutOfEmail"] is False

    assert cli(["sync", "run", "--json"]) == 0
    out = capsys.readouterr()
    report = json.loads(out.out)
    assert report["status"] == "succeeded" and (report["pulled"], report["pushed"]) == (1, 1)
    assert remote(emu, c[1])["HasOptedOutOfEmail"] is True

    assert cli(["sync", "run"]) == 0
    table = capsys.readouterr().out
    assert "pulled" in table and "records read" in table and "not in Salesforce" in table

    assert cli(["sync", "run", "--full", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["mirror"]["read"] == "full"

    assert cli(["sync", "history", "--json", "--limit", "2"]) == 0
    runs = json.loads(capsys.readouterr().out)
    assert [r["id"] for r in runs] == [report["id"] + 2, report["id"] + 1]
    assert cli(["sync", "history"]) == 0
    assert "Sync runs" in capsys.readouterr().out


def test_a_failed_run_exits_1_with_the_fix(cli, cli_env, emu, clock, capsys):
    db = Database(cli_env)
    set_field(db, clock, "sales_opt_out", sync_enabled=True)
    db.dispose()
    emu.control("PUT", "fields/Contact/Sales_Opt_Out__c", {"visible": False})
    assert cli(["sync", "run", "--json"]) == 1
    report = json.loads(capsys.readouterr().out)
    assert report["status"] == "failed" and "field-level security" in report["error"]
    assert cli(["sync", "run"]) == 1
    assert "Setup check failed" in capsys.readouterr().err

"""``optsync --log-format json|logfmt sync run`` logs the run id and outcome as fields."""

from __future__ import annotations

import json
import re

import pytest

from optsync.cli import main as cli_main
from optsync.cli import sync as sync_cli
from optsync.store.db import Database
from tests.integration.sync.conftest import add_persons


@pytest.fixture
def cli(cli_env, emu_settings):
    if "sync" not in [g.name for g in cli_main.app.registered_groups]:
        cli_main.app.add_typer(sync_cli.app, name="sync")
    return cli_main.main  # tests.fixtures_logging restores logging and the environment


@pytest.mark.parametrize("log_format", ["json", "logfmt"])
def test_sync_run_logs_its_run_id(cli, cli_env, emu, clock, capsys, log_format):
    db = Database(cli_env)
    c = emu.seed(contacts=2)["contact_ids"]
    add_persons(db, clock, [{"salesforce_id": c[0]}, {"salesforce_id": c[1], "unsubscribed": True}])
    db.dispose()
    assert cli(["--log-format", log_format, "sync", "run", "--json"]) == 0
    out = capsys.readouterr()
    report = json.loads(out.out)
    lines = [line for line in out.err.splitlines() if "sync run finished" in line]
    assert lines, out.err
    if log_format == "json":
        fields = json.loads(lines[0])
        assert fields["run_id"] == report["id"] and fields["status"] == "succeeded"
        assert fields["pushed"] == 1
    else:
        assert re.search(rf"\brun_id={report['id']}\b", lines[0]), lines[0]
        assert " status=succeeded" in lines[0] and " pushed=1" in lines[0]
    assert "@" not in out.err

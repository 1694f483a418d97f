"""``optsync sync run|history`` against the emulator."""

from __future__ import annotations

import csv
import json
import re

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
    assert "no primary record" in table and "not linked" not in table

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


def test_a_dry_run_prints_the_records_it_would_pull_and_push(
    cli, cli_env, emu, clock, capsys, tmp_path, monkeypatch
):
    monkeypatch.setenv("COLUMNS", "80")
    monkeypatch.setattr(sync_cli, "LISTED", 2, raising=False)
    db = Database(cli_env)
    c = emu.seed(contacts=6)["contact_ids"]
    for record in c[:3]:
        emu.control("PATCH", f"records/{record}", {"HasOptedOutOfEmail": True})
    pulls = [f"pull{i}.somebody@example.com" for i in range(3)]
    pushes = [f"push{i}.a.rather.long.address@mail.sub.example.com" for i in range(3)]
    add_persons(
        db,
        clock,
        [{"email": e, "salesforce_id": c[i]} for i, e in enumerate(pulls)]
        + [
            {"email": e, "salesforce_id": c[3 + i], "unsubscribed": True}
            for i, e in enumerate(pushes)
        ],
    )
    db.dispose()

    target = tmp_path / "preview.csv"
    assert cli(["sync", "run", "--dry-run", "--csv", str(target)]) == 0
    out = capsys.readouterr().out
    assert all(len(line) <= 80 for line in out.splitlines()), out
    pull_part, push_part = out.split("Would push")
    assert "Would pull 3" in pull_part and push_part.lstrip().startswith("3")
    # the first 2 of each, with record id and object, and the field in the heading
    for email, record in ((pulls[0], c[0]), (pulls[1], c[1])):
        assert re.search(rf"{re.escape(email)}\s+{record}\s+Contact", pull_part), out
    for email, record in ((pushes[0], c[3]), (pushes[1], c[4])):
        assert re.search(rf"{re.escape(email)}\s+{record}\s+Contact", push_part), out
    assert pulls[2] not in out and pushes[2] not in out
    assert "HasOptedOutOfEmail" in pull_part and "HasOptedOutOfEmail" in push_part
    assert "1 more" in pull_part and "1 more" in push_part
    assert "Wrote all 6 records" in out and str(target) in out.replace("\n", "")
    with target.open(newline="") as f:
        rows = list(csv.DictReader(f))
    assert [(r["direction"], r["email"], r["salesforce_id"]) for r in rows] == [
        *(("pull", e, c[i]) for i, e in enumerate(pulls)),
        *(("push", e, c[3 + i]) for i, e in enumerate(pushes)),
    ]
    assert {(r["object"], r["field"]) for r in rows} == {("Contact", "HasOptedOutOfEmail")}

    # without --csv it says where the whole list is
    assert cli(["sync", "run", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert all(len(line) <= 80 for line in out.splitlines()), out
    flat = " ".join(out.split())
    assert "--csv FILE" in flat and re.search(r"/runs/\d+/preview\.csv", out.replace("\n", ""))

    # --json: the first rows of each (up to 100) and how many there are
    assert cli(["sync", "run", "--dry-run", "--json"]) == 0
    dry = json.loads(capsys.readouterr().out)
    assert [r["email"] for r in dry["would_pull"]] == pulls
    assert [r["email"] for r in dry["would_push"]] == pushes
    assert (dry["would_pull_total"], dry["would_push_total"]) == (3, 3)
    assert dry["preview_listed"] == 100

    # --csv is for a dry run only, and refused before anything runs
    assert cli(["sync", "run", "--csv", str(tmp_path / "x.csv")]) == 1
    assert "--csv" in capsys.readouterr().err and not (tmp_path / "x.csv").exists()
    assert cli(["sync", "run", "--dry-run", "--csv", str(tmp_path / "no" / "x.csv")]) == 1
    assert "--csv" in capsys.readouterr().err


def test_the_dry_run_lists_say_what_they_leave_out():
    from rich.console import Console

    row = {"person_id": 1, "email": "a@example.com", "salesforce_id": "003A", "object": "Lead"}
    new = {"person_id": None, "email": "n@example.com", "salesforce_id": "003B", "object": "Lead"}
    report = {
        "field": "Sales_Opt_Out__c",
        "pulled": 5,
        "would_pull": [row, new],
        "would_pull_total": 5,
        "suppressed_unknown": 2,
        "pushed": 4,
        "would_push": [row],
        "would_push_total": 4,
    }
    console = Console(width=80, record=True)
    for direction in ("pull", "push"):
        console.print(sync_cli.preview_table(report, direction))
    text = " ".join(console.export_text().split())
    assert "Would pull 5 (Sales_Opt_Out__c set in Salesforce)" in text
    assert "… and 3 more; 2 of them new addresses, to add as suppressed persons" in text
    assert "n@example.com (new)" in text
    assert "Would push 4 (set Sales_Opt_Out__c in Salesforce)" in text
    assert "… and 3 more" in text.split("Would push")[1]
    assert "not in the list" not in text

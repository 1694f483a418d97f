"""What a new user sees in the CLI (issue 17): times in their zone, persons by address,
errors as sentences, tables that fit 80 columns, progress bars that end, one clear line."""

from __future__ import annotations

import json
import re
import socket
from pathlib import Path

import pytest

from optsync.cli.main import main
from optsync.store.db import Database
from tests.integration.sync.conftest import add_persons, set_field

BAR = re.compile(r"━|\d+/\d+")


def optsync(capsys, *args):
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def cols80(monkeypatch):
    monkeypatch.setenv("COLUMNS", "80")


# item 6 and 10: sync history and the run report, at 80 columns, in the configured zone


def test_sync_history_fits_80_columns_in_the_configured_zone(
    cli_env, emu_settings, clock, capsys, cols80
):
    emu = emu_settings
    db = Database(cli_env)
    c = emu.seed(contacts=2)["contact_ids"]
    add_persons(db, clock, [{"salesforce_id": c[0], "unsubscribed": True}])
    set_field(db, clock, timezone="Europe/Berlin")
    db.dispose()
    code, out, _ = optsync(capsys, "sync", "run")
    assert code == 0
    assert "+00:00" not in out and "T" not in re.findall(r"\d{4}-\d\d-\d\d.\d\d", out)[0]
    assert re.search(r"started\s+│\s+\d{4}-\d\d-\d\d \d\d:\d\d CE[S]?T", out), out

    assert optsync(capsys, "sync", "run", "--dry-run")[0] == 0
    code, out, _ = optsync(capsys, "sync", "history")
    assert code == 0
    assert "Europe/Berlin" in out
    lines = out.splitlines()
    assert all(len(line) <= 80 for line in lines), out
    # each run is one row: its id, its trigger, its status and its start on one line
    rows = [line for line in lines if re.match(r"\s*\d+\s+\d\d-\d\d \d\d:\d\d\s", line)]
    assert len(rows) == 2, out
    assert "dry run" in rows[0] and "manual" in rows[1], out
    assert all("succeeded" in row for row in rows), out
    assert "+00:00" not in out

    # JSON keeps UTC ISO stamps, for machines
    code, out, _ = optsync(capsys, "sync", "history", "--json")
    assert json.loads(out)[0]["started_at"].endswith("+00:00")


# item 10: progress bars end where they stop, and never draw before "cannot open"


def test_import_of_a_missing_file_is_one_line_without_a_bar(cli_env, capsys, tmp_path):
    code, _out, err = optsync(capsys, "persons", "import", str(tmp_path / "nope.csv"))
    assert code == 1
    assert not BAR.search(err), err
    assert len(err.strip().splitlines()) == 1 and "nope.csv" in err, err


def test_unsubscribe_file_missing_is_one_line_without_a_bar(cli_env, capsys, tmp_path):
    code, _out, err = optsync(capsys, "unsubscribe", "--file", str(tmp_path / "nope.csv"))
    assert code == 1
    assert not BAR.search(err), err
    assert len(err.strip().splitlines()) == 1 and "nope.csv" in err, err


def test_progress_bar_reaches_its_end(cli_env, capsys, tmp_path, cols80):
    # a quoted field with a line break: six newlines, five records
    csv = tmp_path / "people.csv"
    csv.write_text(
        "email,first_name\n"
        'a@example.com,"Ann\nMarie"\n'
        "b@example.com,Bo\nc@example.com,Cy\nd@example.com,Di\n"
    )
    code, _, err = optsync(capsys, "persons", "import", str(csv))
    assert code == 0, err
    done = re.findall(r"(\d+)/(\d+)", err)
    assert done and done[-1][0] == done[-1][1], err


# item 10: `optsync up` on a busy port


def test_up_on_a_busy_port_is_one_clear_line(cli_env, capsys):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        code, _, err = optsync(capsys, "up", "--port", str(port))
    assert code == 1
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert f"--port {port}" in lines[0] and "in use" in lines[0], err


# item 10: a schedule that fires more often than hourly


def test_schedule_more_often_than_hourly_warns(cli_env, capsys):
    code, _out, err = optsync(capsys, "settings", "set", "--schedule", "* * * * *")
    assert code == 0
    assert "warning" in err.lower() and "every minute" in err, err
    code, _, err = optsync(capsys, "settings", "set", "--schedule", "0 20 * * *")
    assert code == 0 and "warning" not in err.lower(), err


# item 11: persons by address


def test_import_names_the_person_a_record_is_linked_to_by_address(cli_env, capsys, tmp_path):
    sf = "0035g00000ABCDEAAA"
    first = tmp_path / "a.csv"
    first.write_text(f"email,salesforce_id\nann@example.com,{sf[:15]}\n")
    assert optsync(capsys, "persons", "import", str(first))[0] == 0
    second = tmp_path / "b.csv"
    second.write_text(f"email,salesforce_id\nbo@example.com,{sf[:15]}\n")
    code, _, err = optsync(capsys, "persons", "import", str(second))
    assert code == 1
    assert "ann@example.com" in err and not re.search(r"person \d|#\d", err), err


# item 12: email errors as optsync sentences


@pytest.mark.parametrize(
    "args",
    [
        ("unsubscribe", "not-an-address"),
        ("resubscribe", "not-an-address", "--reason", "x"),
        ("link", "not-an-address"),
    ],
)
def test_a_bad_address_is_a_sentence_naming_the_field_and_the_fix(cli_env, capsys, args):
    code, _, err = optsync(capsys, *args)
    assert code == 1
    line = err.strip()
    assert len(line.splitlines()) == 1
    assert "An email address must" not in line, line
    assert "'not-an-address' is not an email address: it has no @-sign." in line, line
    assert "not-an-address" in line and "e.g. ann@example.com" in line, line


def test_csv_rejections_are_sentences(cli_env, capsys, tmp_path):
    f = tmp_path / "s.csv"
    f.write_text("email\nok@example.com\nnope\n")
    code, _out, err = optsync(capsys, "unsubscribe", "--file", str(f))
    assert code == 1
    assert "line 3: email: 'nope' is not an email address: it has no @-sign. Write it" in err
    assert "An email address must" not in err


# item 14: `optsync link` for an unknown address says it added a person


def test_link_says_when_it_adds_a_person(cli_env, capsys):
    code, out, err = optsync(capsys, "link", "new@example.com")
    assert code == 0
    assert "Added new@example.com" in err, err
    assert "/u/" in out
    code, out, err = optsync(capsys, "link", "new@example.com")
    assert code == 0 and "Added" not in err, err
    code, out, _ = optsync(capsys, "link", "new@example.com", "--json")
    assert json.loads(out)["url"]


# item 3: the demo tells how to run optsync in another shell


def test_demo_names_an_optsync_that_runs_in_another_shell(monkeypatch, tmp_path):
    from optsync.cli.common import optsync_command

    bindir = tmp_path / "venv" / "bin"
    bindir.mkdir(parents=True)
    script = bindir / "optsync"
    script.write_text("#!/bin/sh\n")
    script.chmod(0o755)
    monkeypatch.setattr("sys.executable", str(bindir / "python"))
    monkeypatch.setenv("PATH", "/usr/bin:/bin")
    assert optsync_command() == str(script)
    monkeypatch.setenv("PATH", f"{bindir}:/usr/bin")
    assert optsync_command() == "optsync"


def test_readme_says_how_to_reach_optsync_from_another_shell():
    readme = (Path(__file__).parents[3] / "README.md").read_text()
    assert ".venv/bin/optsync" in readme and "source .venv/bin/activate" in readme


# item 15: alembic's INFO lines do not clutter the demo


def test_upgrading_under_the_demos_logging_prints_no_alembic_lines(tmp_path, capsys):
    import logging

    from optsync import logs

    logging.getLogger("alembic").setLevel(logging.NOTSET)
    logs.configure("logfmt")  # as `optsync demo` does before it upgrades its store
    db = Database(f"sqlite:///{tmp_path / 'demo.db'}")
    try:
        db.upgrade()
    finally:
        db.dispose()
    err = capsys.readouterr().err
    assert "alembic" not in err and "Running upgrade" not in err, err


# item 11: a sync's failed records name their person by address


def test_sync_failures_name_the_person_by_address(cli_env, emu_settings, clock, capsys):
    emu = emu_settings
    db = Database(cli_env)
    c = emu.seed(contacts=1)["contact_ids"]
    emu.control("DELETE", f"records/{c[0]}")
    add_persons(db, clock, [{"salesforce_id": c[0], "unsubscribed": True, "email": "x@ex.com"}])
    db.dispose()
    code, _out, err = optsync(capsys, "sync", "run")
    assert code == 0, err
    line = next(line for line in err.splitlines() if c[0] in line)
    assert "x@ex.com" in line, err


# issue 16's word: an address no Salesforce record carries is "not in Salesforce"


def test_push_drain_counts_addresses_not_in_salesforce(cli_env, capsys):
    code, out, _err = optsync(capsys, "push", "drain")
    assert code == 0
    assert "not in Salesforce" in out
    assert "not_linked" not in out and "not linked" not in out.lower()

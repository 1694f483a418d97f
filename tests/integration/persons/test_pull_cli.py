"""``optsync persons pull`` end to end: the report says which path read each object."""

from __future__ import annotations

import json

import pytest

from optsync.cli import main as cli_main
from optsync.salesforce.volume import BULK_THRESHOLD

pytestmark = pytest.mark.emulator


@pytest.fixture
def cli(cli_env, emu_settings):
    return cli_main.main


def test_a_large_object_is_pulled_with_bulk_a_small_one_with_rest(cli, emu, capsys):
    emu.seed(contacts=BULK_THRESHOLD, leads=3)

    assert cli(["persons", "pull", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["Contact"]["via"] == "bulk" and report["Lead"]["via"] == "rest"
    assert (report["Contact"]["created"], report["Lead"]["created"]) == (BULK_THRESHOLD, 3)
    assert emu.control("GET", "counters")["by_endpoint"]["jobs/query"] == 1

    assert cli(["persons", "pull"]) == 0
    out = capsys.readouterr().out
    assert "via" in out and "bulk" in out and "rest" in out
    cells = next(
        [c.strip() for c in line.split("│") if c.strip()]
        for line in out.splitlines()
        if "Contact" in line
    )
    # object, records, created, linked, updated, unchanged, rejected, via
    assert cells == [
        "Contact",
        f"{BULK_THRESHOLD}",
        "0",
        "0",
        "0",
        f"{BULK_THRESHOLD}",
        "0",
        "bulk",
    ]

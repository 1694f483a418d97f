"""The official Salesforce CLI (`sf`, npm @salesforce/cli 2.86.1), unmodified, against the
emulator: access-token login, org display, limits, sobject list/describe, record CRUD,
query with paging, Bulk import and export."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.clients.conftest import BIN, EmulatorProcess, node_env

pytestmark = [pytest.mark.emulator, pytest.mark.slow]


class Sf:
    def __init__(self, emu: EmulatorProcess, home: Path):
        self.emu = emu
        self.home = home
        self.env = node_env(emu, home)

    def run(self, *args: str, env: dict[str, str] | None = None, ok: bool = True) -> Any:
        proc = subprocess.run(
            [str(BIN / "sf"), *args, "--json"],
            capture_output=True,
            text=True,
            env=env or self.env,
            cwd=self.home,
            timeout=180,
        )
        body = json.loads(proc.stdout)
        if ok:
            assert proc.returncode == 0 and body["status"] == 0, proc.stdout[-2000:]
        return body


@pytest.fixture(scope="module")
def sf(emulator_process: EmulatorProcess, tmp_path_factory: pytest.TempPathFactory) -> Sf:
    cli = Sf(emulator_process, tmp_path_factory.mktemp("sf-home"))
    env = dict(cli.env, SF_ACCESS_TOKEN=emulator_process.token())
    login = cli.run(
        "org",
        "login",
        "access-token",
        "--instance-url",
        emulator_process.facts["instance_url"],
        "--alias",
        "emu",
        "--no-prompt",
        env=env,
    )
    assert login["result"]["username"] == emulator_process.facts["username"]
    return cli


def test_org_display(sf: Sf) -> None:
    result = sf.run("org", "display", "-o", "emu")["result"]
    assert result["connectedStatus"] == "Connected"
    assert result["username"] == sf.emu.facts["username"]


def test_limits_api_display(sf: Sf) -> None:
    limits = {r["name"]: r for r in sf.run("limits", "api", "display", "-o", "emu")["result"]}
    assert limits["DailyApiRequests"]["max"] == 1_000_000


def test_sobject_list_and_describe(sf: Sf) -> None:
    names = sf.run("sobject", "list", "-o", "emu")["result"]
    assert {"Account", "Contact", "Lead"} <= set(names)
    describe = sf.run("sobject", "describe", "-s", "Contact", "-o", "emu")["result"]
    assert "Title" in {f["name"] for f in describe["fields"]}


def test_record_crud(sf: Sf) -> None:
    account = sf.run("data", "create", "record", "-s", "Account", "-v", "Name=Acme", "-o", "emu")
    created = sf.run(
        "data",
        "create",
        "record",
        "-s",
        "Contact",
        "-v",
        f"LastName=Lovelace FirstName=Ada AccountId={account['result']['id']}",
        "-o",
        "emu",
    )["result"]["id"]
    sf.run(
        "data",
        "update",
        "record",
        "-s",
        "Contact",
        "-i",
        created,
        "-v",
        "Title=Analyst",
        "-o",
        "emu",
    )
    got = sf.run("data", "get", "record", "-s", "Contact", "-i", created, "-o", "emu")["result"]
    assert (got["Title"], got["Name"]) == ("Analyst", "Ada Lovelace")
    sf.run("data", "delete", "record", "-s", "Contact", "-i", created, "-o", "emu")
    gone = sf.run("data", "get", "record", "-s", "Contact", "-i", created, "-o", "emu", ok=False)
    assert gone["status"] != 0


def test_data_query_pages_through_everything(sf: Sf) -> None:
    sf.emu.control("POST", "reset")
    sf.emu.control("POST", "seed", {"contacts": 4500, "leads": 0})
    result = sf.run(
        "data", "query", "-q", "SELECT Id, Name, Account.Name FROM Contact", "-o", "emu"
    )["result"]
    assert result["totalSize"] == 4500 and len(result["records"]) == 4500  # three pages


def test_bulk_import_and_export(sf: Sf, tmp_path: Path) -> None:
    sf.emu.control("POST", "reset")
    rows = "\n".join(f"Bulk{i},Clerk,bulk{i}@example.com" for i in range(500))
    source = tmp_path / "in.csv"
    source.write_text("LastName,Title,Email\n" + rows + "\n")
    imported = sf.run(
        "data",
        "import",
        "bulk",
        "-s",
        "Contact",
        "--file",
        str(source),
        "--wait",
        "5",
        "-o",
        "emu",
    )["result"]
    assert (imported["successfulRecords"], imported["failedRecords"]) == (500, 0)
    out = tmp_path / "out.csv"
    exported = sf.run(
        "data",
        "export",
        "bulk",
        "-q",
        "SELECT Id, Title FROM Contact",
        "--output-file",
        str(out),
        "--wait",
        "5",
        "-o",
        "emu",
    )["result"]
    assert exported["totalSize"] == 500
    lines = out.read_text().splitlines()
    assert len(lines) == 501 and lines[1].endswith('"Clerk"')

"""Seeding duplicate addresses across Contacts, Leads and person accounts."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import requests
from simple_salesforce import Salesforce

from optsync.emulator import Emulator, EmulatorOptions
from optsync.emulator.server import build_org
from optsync.errors import UsageError

pytestmark = pytest.mark.emulator


def _emails(sf: Salesforce) -> list[str]:
    out = [r["Email"] for r in sf.query_all("SELECT Email FROM Contact")["records"]]
    out += [r["Email"] for r in sf.query_all("SELECT Email FROM Lead")["records"]]
    return out


def _record(emu: Emulator, record_id: str) -> dict[str, Any]:
    return dict(emu.control("GET", f"records/{record_id}"))


def _address(record: dict[str, Any]) -> str:
    return str(record.get("PersonEmail") or record["Email"])


def test_duplicates_across_contacts_and_leads(emu: Emulator, sf: Salesforce) -> None:
    body = emu.seed(contacts=300, leads=300, duplicate_fraction=0.1)
    assert 30 <= body["duplicates"] <= 90
    pairs = body["duplicate_ids"]
    assert len(pairs) == body["duplicates"]
    kinds: Counter[str] = Counter()
    case_differs = 0
    for pair in pairs:
        dup, orig = _record(emu, pair["id"]), _record(emu, pair["duplicate_of"])
        assert _address(dup).lower() == _address(orig).lower()
        assert pair["duplicate_of"].startswith("003")  # a Contact's address
        case_differs += _address(dup) != _address(orig)
        kinds[pair["id"][:3]] += 1
    assert kinds["003"] and kinds["00Q"]  # second Contacts and Leads
    assert case_differs > 0
    emails = _emails(sf)
    assert len(emails) == 600
    assert len({e.lower() for e in emails}) == 600 - body["duplicates"]
    # Salesforce compares emails case-insensitively: one query finds both records
    pair = next(p for p in pairs if p["id"].startswith("00Q"))
    address = _address(_record(emu, pair["duplicate_of"])).upper()
    found = sf.query(f"SELECT Id FROM Lead WHERE Email = '{address}'")["records"]
    assert pair["id"] in {r["Id"] for r in found}


def test_duplicates_on_person_accounts(emu: Emulator, sf: Salesforce) -> None:
    with pytest.raises(requests.HTTPError) as exc:
        emu.seed(contacts=1, person_accounts=1)
    assert exc.value.response.status_code == 400
    emu.control("PUT", "org", {"person_accounts": True})
    body = emu.seed(contacts=100, person_accounts=200, duplicate_fraction=0.25)
    assert len(body["person_account_ids"]) == 200
    assert all(i.startswith("001") for i in body["person_account_ids"])
    on_persons = [p for p in body["duplicate_ids"] if p["id"].startswith("001")]
    assert on_persons
    for pair in on_persons:
        account = _record(emu, pair["id"])
        contact = _record(emu, pair["duplicate_of"])
        assert account["IsPersonAccount"] is True
        assert account["PersonEmail"].lower() == contact["Email"].lower()
        person_contact = _record(emu, account["PersonContactId"])
        assert person_contact["Email"] == account["PersonEmail"]
        assert person_contact["AccountId"] == pair["id"]
    people = sf.query("SELECT COUNT() FROM Contact WHERE IsPersonAccount = true")
    assert people["totalSize"] == 200
    assert sf.query("SELECT COUNT() FROM Account")["totalSize"] == 200


def test_no_duplicates_by_default_and_no_ids_above_the_cap(emu: Emulator) -> None:
    body = emu.seed(contacts=50, leads=50)
    assert body["duplicates"] == 0 and body["duplicate_ids"] == []
    emu.reset()
    big = emu.seed(contacts=6_000, leads=5_000, duplicate_fraction=0.1)
    assert "contact_ids" not in big and "duplicate_ids" not in big
    assert 900 <= big["duplicates"] <= 1_300
    with pytest.raises(requests.HTTPError):
        emu.seed(contacts=1, duplicate_fraction=1.5)


def test_cli_seed_flags_are_checked(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from optsync.cli.emulator import emulator

    monkeypatch.setenv("OPTSYNC_DATA_DIR", str(tmp_path))
    with pytest.raises(UsageError) as exc:
        emulator(fault_rate=0.0, seed_duplicate_fraction=1.5)
    assert exc.value.field == "--seed-duplicate-fraction"
    with pytest.raises(UsageError) as exc:
        emulator(
            fault_rate=0.0,
            seed_duplicate_fraction=0.1,
            seed_person_accounts=5,
            person_accounts=False,
        )
    assert exc.value.field == "--seed-person-accounts"


def test_start_up_seed_with_duplicates(tmp_path: Path) -> None:
    options = EmulatorOptions(
        data_dir=tmp_path,
        memory=True,
        seed=400,
        person_accounts=True,
        seed_person_accounts=100,
        seed_duplicate_fraction=0.2,
    )
    org, _ = build_org(options)
    try:
        assert org.store.total_records() == 400 + 200  # person accounts count twice
        with org.store.lock:
            distinct = org.store.conn.execute(
                "SELECT count(DISTINCT lower(e)) FROM (SELECT Email AS e FROM Contact "
                "UNION ALL SELECT Email FROM Lead)"
            ).fetchone()[0]
        assert distinct < 500
    finally:
        org.jobs.close()
        org.store.close()
    with pytest.raises(ValueError):
        EmulatorOptions(data_dir=tmp_path, seed_person_accounts=1).validate()

"""SOQL breadth for Contact, Lead and Account: parent relationships, LIKE on names, date
literals, simple GROUP BY with COUNT(Id), FIELDS(STANDARD); the rest is MALFORMED_QUERY."""

from __future__ import annotations

from typing import Any

import pytest

from optsync.emulator import Emulator
from tests.emulator.helpers import Raw, error_code

pytestmark = pytest.mark.emulator


def _q(raw: Raw, soql: str, **headers: str) -> Any:
    resp = raw.get("query", params={"q": soql}, headers=headers)
    assert resp.status_code == 200, resp.text
    return resp.json()


@pytest.fixture
def org(emu: Emulator) -> tuple[Raw, dict[str, str]]:
    raw = Raw(emu)
    acme = raw.post("sobjects/Account", json={"Name": "Acme", "Industry": "Banking"}).json()["id"]
    ids = {"acme": acme}
    for first, last, account in (
        ("Ada", "Lovelace", acme),
        ("Alan", "Turing", acme),
        ("Grace", "Hopper", None),
    ):
        body: dict[str, Any] = {"FirstName": first, "LastName": last, "LeadSource": "Web"}
        if account:
            body["AccountId"] = account
        ids[last] = raw.post("sobjects/Contact", json=body).json()["id"]
    return raw, ids


def test_parent_fields_in_select_and_where(org: tuple[Raw, dict[str, str]]) -> None:
    raw, ids = org
    body = _q(
        raw,
        "SELECT Id, Name, Account.Name, Account.Industry FROM Contact "
        "WHERE Account.Name = 'ACME' ORDER BY LastName",
    )
    assert body["totalSize"] == 2
    first = body["records"][0]
    assert first["Name"] == "Ada Lovelace"
    assert first["Account"] == {
        "attributes": {
            "type": "Account",
            "url": f"/services/data/v59.0/sobjects/Account/{ids['acme']}",
        },
        "Name": "Acme",
        "Industry": "Banking",
    }
    orphan = _q(raw, "SELECT Account.Name FROM Contact WHERE AccountId = null")
    assert orphan["records"][0]["Account"] is None


def test_like_on_names_and_date_literals(org: tuple[Raw, dict[str, str]]) -> None:
    raw, _ = org
    assert _q(raw, "SELECT Id FROM Contact WHERE Name LIKE 'a%'")["totalSize"] == 2
    assert _q(raw, "SELECT Id FROM Account WHERE Name LIKE '%cm%'")["totalSize"] == 1
    assert _q(raw, "SELECT Id FROM Contact WHERE CreatedDate = TODAY")["totalSize"] == 3
    assert _q(raw, "SELECT Id FROM Contact WHERE CreatedDate = LAST_N_DAYS:3")["totalSize"] == 3
    assert _q(raw, "SELECT Id FROM Contact WHERE CreatedDate < LAST_N_DAYS:3")["totalSize"] == 0


def test_group_by_with_count(org: tuple[Raw, dict[str, str]]) -> None:
    raw, ids = org
    body = _q(raw, "SELECT AccountId, COUNT(Id) FROM Contact GROUP BY AccountId ORDER BY AccountId")
    assert body["done"] is True
    rows = [(r["AccountId"], r["expr0"]) for r in body["records"]]
    assert rows == [(None, 1), (ids["acme"], 2)]
    assert body["records"][0]["attributes"] == {"type": "AggregateResult"}
    total = _q(raw, "SELECT COUNT(Id) n FROM Contact")
    assert total["records"][0]["n"] == 3 and total["totalSize"] == 1
    not_grouped = raw.get(
        "query", params={"q": "SELECT Name, COUNT(Id) FROM Contact GROUP BY LeadSource"}
    )
    assert error_code(not_grouped) == "MALFORMED_QUERY"


def test_fields_standard(org: tuple[Raw, dict[str, str]]) -> None:
    raw, _ = org
    rec = _q(raw, "SELECT FIELDS(STANDARD) FROM Contact LIMIT 1")["records"][0]
    assert {"Id", "Title", "MailingAddress", "DoNotCall", "IndividualId"} <= set(rec)
    assert "Sales_Opt_Out__c" not in rec
    all_without_limit = raw.get("query", params={"q": "SELECT FIELDS(ALL) FROM Contact"})
    assert error_code(all_without_limit) == "MALFORMED_QUERY"


@pytest.mark.parametrize(
    "soql",
    [
        "SELECT Id, (SELECT Id FROM Contacts) FROM Account",
        "SELECT Id FROM Contact WITH SECURITY_ENFORCED",
        "SELECT LeadSource, COUNT(Id) FROM Contact GROUP BY LeadSource HAVING COUNT(Id) > 1",
        "SELECT TYPEOF Owner WHEN User THEN Name END FROM Contact",
        "SELECT Id FROM Contact FOR UPDATE",
    ],
)
def test_everything_else_is_malformed(emu: Emulator, soql: str) -> None:
    resp = Raw(emu).get("query", params={"q": soql})
    assert resp.status_code == 400
    assert error_code(resp) == "MALFORMED_QUERY"


def test_batch_size_and_call_options_headers(emu: Emulator) -> None:
    emu.seed(contacts=450, leads=0, opted_out_fraction=0.0)
    raw = Raw(emu)
    body = _q(
        raw,
        "SELECT Id FROM Contact",
        **{"Sforce-Query-Options": "batchSize=200", "Sforce-Call-Options": "client=sfdx toolbelt"},
    )
    assert len(body["records"]) == 200 and body["done"] is False
    assert body["nextRecordsUrl"].startswith("/services/data/v59.0/query/")

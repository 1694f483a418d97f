"""SOQL: the parser and compiler (in-process) and /query, /queryAll paging (over HTTPS)."""

from __future__ import annotations

import re
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from simple_salesforce import Salesforce, format_soql
from simple_salesforce.exceptions import SalesforceMalformedRequest

from optsync.emulator import Emulator
from optsync.emulator.errors import SalesforceError
from optsync.emulator.schema import OBJECTS
from optsync.emulator.soql import compile_query
from optsync.emulator.store import OrgStore

from .helpers import Raw, error_code

pytestmark = pytest.mark.emulator


@pytest.fixture(scope="module")
def store() -> OrgStore:
    """A small org in memory: queried directly to test SOQL semantics fast."""
    s = OrgStore(":memory:")
    rows = [
        ("Ann", "Lee", "ann@example.com", True),
        ("bob", "Ng", "BOB@Example.com", False),
        (None, "O'Hara", None, False),
        ("Cy", "100%_sure", "cy@test.org", True),
        ("Di", "back\\slash", "di@example.com", False),
    ]
    for first, last, email, opted in rows:
        values: dict[str, Any] = {"LastName": last, "HasOptedOutOfEmail": opted}
        if first:
            values["FirstName"] = first
        if email:
            values["Email"] = email
        s.create("Contact", values)
    s.create("Lead", {"LastName": "Lead", "Company": "Acme", "Email": "lead@example.com"})
    return s


def _run(store: OrgStore, soql: str, include_deleted: bool = False) -> list[dict[str, Any]]:
    q = compile_query(soql, {o: store.visible_fields(o) for o in OBJECTS})
    names = q.fields
    return [
        dict(zip(names, row, strict=True))
        for row in store.fetch(q.obj, store.matching_rowids(q, include_deleted), names)
    ]


def _last_names(store: OrgStore, where: str, order: str = "LastName") -> list[str]:
    return [
        r["LastName"]
        for r in _run(store, f"SELECT LastName FROM Contact WHERE {where} ORDER BY {order}")
    ]


@pytest.mark.parametrize(
    ("where", "expected"),
    [
        ("Email = 'bob@example.com'", ["Ng"]),  # case-insensitive equality
        ("Email != 'bob@example.com'", ["100%_sure", "back\\slash", "Lee", "O'Hara"]),
        ("Email = null", ["O'Hara"]),
        ("Email != null", ["100%_sure", "back\\slash", "Lee", "Ng"]),
        ("HasOptedOutOfEmail = true", ["100%_sure", "Lee"]),
        ("NOT HasOptedOutOfEmail = true", ["back\\slash", "Ng", "O'Hara"]),
        ("NOT (Email = 'ann@example.com')", ["100%_sure", "back\\slash", "Ng", "O'Hara"]),
        ("Email IN ('ANN@example.com', 'cy@test.org')", ["100%_sure", "Lee"]),
        ("Email NOT IN ('ann@example.com')", ["100%_sure", "back\\slash", "Ng", "O'Hara"]),
        ("Email LIKE '%@example.com'", ["back\\slash", "Lee", "Ng"]),
        ("LastName LIKE '100\\%\\_%'", ["100%_sure"]),
        ("LastName = 'O\\'Hara'", ["O'Hara"]),
        ("LastName = 'back\\\\slash'", ["back\\slash"]),
        ("(FirstName = 'Ann' OR FirstName = 'BOB') AND HasOptedOutOfEmail = false", ["Ng"]),
        ("FirstName = 'Ann' OR FirstName = 'Bob' AND HasOptedOutOfEmail = true", ["Lee"]),
        ("LastName > 'n'", ["Ng", "O'Hara"]),
        ("LastName <= 'lee'", ["100%_sure", "back\\slash", "Lee"]),
        ("CreatedDate > 2000-01-01T00:00:00Z", ["100%_sure", "back\\slash", "Lee", "Ng", "O'Hara"]),
        ("CreatedDate < 2000-01-01T00:00:00+02:00", []),
        ("SystemModstamp = TODAY", ["100%_sure", "back\\slash", "Lee", "Ng", "O'Hara"]),
        ("CreatedDate = LAST_N_DAYS:3", ["100%_sure", "back\\slash", "Lee", "Ng", "O'Hara"]),
        ("CreatedDate < YESTERDAY", []),
        (
            "MasterRecordId = null AND IsDeleted = false",
            ["100%_sure", "back\\slash", "Lee", "Ng", "O'Hara"],
        ),
    ],
)
def test_where(store: OrgStore, where: str, expected: list[str]) -> None:
    assert _last_names(store, where) == sorted(expected, key=str.lower)


def test_order_nulls_limit_offset(store: OrgStore) -> None:
    rows = _run(store, "SELECT FirstName FROM Contact ORDER BY FirstName ASC NULLS LAST")
    assert [r["FirstName"] for r in rows] == ["Ann", "bob", "Cy", "Di", None]
    rows = _run(store, "select firstname from contact order by FirstName desc")
    assert [r["FirstName"] for r in rows] == ["Di", "Cy", "bob", "Ann", None]
    rows = _run(
        store, "SELECT FirstName FROM Contact ORDER BY FirstName NULLS FIRST LIMIT 2 OFFSET 1"
    )
    assert [r["FirstName"] for r in rows] == ["Ann", "bob"]
    rows = _run(
        store,
        "SELECT Id, FirstName FROM Contact ORDER BY HasOptedOutOfEmail DESC, FirstName LIMIT 1",
    )
    assert rows[0]["FirstName"] == "Ann"


@pytest.mark.parametrize(
    ("soql", "code"),
    [
        ("SELECT FROM Contact", "MALFORMED_QUERY"),
        ("SELECT Id FROM Contact WHERE", "MALFORMED_QUERY"),
        ("SELECT Id FROM Contact WHERE Email = 'unterminated", "MALFORMED_QUERY"),
        ("SELECT Id FROM Contact GROUP BY Email", "MALFORMED_QUERY"),
        ("SELECT Id, Id FROM Contact", "MALFORMED_QUERY"),
        ("SELECT Id FROM Contact WHERE (Email = 'a'", "MALFORMED_QUERY"),
        ("SELECT Id FROM Contact LIMIT -1", "MALFORMED_QUERY"),
        ("SELECT Bogus FROM Contact", "INVALID_FIELD"),
        ("SELECT Id FROM Contact WHERE Company = 'x'", "INVALID_FIELD"),
        ("SELECT Individual.Name FROM Contact", "INVALID_FIELD"),
        ("SELECT Account.Bogus FROM Contact", "INVALID_FIELD"),
        ("SELECT Id FROM Contact ORDER BY Nope", "INVALID_FIELD"),
        ("SELECT Id FROM Contact WHERE HasOptedOutOfEmail = 'true'", "INVALID_FIELD"),
        ("SELECT Id FROM Contact WHERE Email = true", "INVALID_FIELD"),
        ("SELECT Id FROM Contact WHERE CreatedDate > 2024-01-01", "INVALID_FIELD"),
        ("SELECT Id FROM Contact WHERE Id = 'nope'", "INVALID_QUERY_FILTER_OPERATOR"),
        ("SELECT Id FROM Opportunity", "INVALID_TYPE"),
        ("SELECT Id FROM Contact OFFSET 2001", "NUMBER_OUTSIDE_VALID_RANGE"),
    ],
)
def test_errors(store: OrgStore, soql: str, code: str) -> None:
    with pytest.raises(SalesforceError) as exc:
        _run(store, soql)
    assert exc.value.code == code
    assert exc.value.status == 400


def test_malformed_message_points_at_the_token(store: OrgStore) -> None:
    with pytest.raises(SalesforceError) as exc:
        _run(store, "SELECT Id FROM Contact WHERE Email = = 'x'")
    assert "ERROR at Row:1:Column:38" in exc.value.message
    assert "unexpected token: '='" in exc.value.message


def test_count(store: OrgStore) -> None:
    q = compile_query(
        "SELECT COUNT() FROM Contact WHERE HasOptedOutOfEmail = false",
        {o: store.visible_fields(o) for o in OBJECTS},
    )
    assert q.count_only and store.count(q, False) == 3


@settings(max_examples=60, deadline=None)
@given(st.text(alphabet=st.characters(blacklist_categories=("Cs", "Cc")), min_size=1, max_size=30))
def test_format_soql_strings_round_trip(text: str) -> None:
    """Whatever simple-salesforce's ``format_soql`` quotes, the parser reads back unchanged."""
    s = OrgStore(":memory:")
    s.create("Contact", {"LastName": text[:80]})
    rows = _run(s, format_soql("SELECT LastName FROM Contact WHERE LastName = {}", text[:80]))
    assert [r["LastName"] for r in rows] == [text[:80]]
    s.close()


# --------------------------------------------------------------------- over HTTPS
def test_query_all_iter_over_5000_records(emu: Emulator, sf: Salesforce) -> None:
    emu.seed(contacts=5000, leads=10, opted_out_fraction=0.2)
    seen = [r["Id"] for r in sf.query_all_iter("SELECT Id, Email FROM Contact ORDER BY Email")]
    assert len(seen) == 5000 == len(set(seen))
    assert emu.control("GET", "counters")["by_endpoint"]["query"] == 3
    first = sf.query("SELECT Id, Email, HasOptedOutOfEmail FROM Contact")
    assert first["totalSize"] == 5000 and first["done"] is False
    assert len(first["records"]) == 2000
    assert re.fullmatch(r"/services/data/v59\.0/query/01g\w{12}-2000", first["nextRecordsUrl"])
    rec = first["records"][0]
    assert list(rec) == ["attributes", "Id", "Email", "HasOptedOutOfEmail"]
    assert rec["attributes"]["url"] == f"/services/data/v59.0/sobjects/Contact/{rec['Id']}"
    assert isinstance(rec["HasOptedOutOfEmail"], bool)


def test_batch_size_header_and_query_more(emu: Emulator) -> None:
    emu.seed(contacts=450)
    raw = Raw(emu)
    page = raw.get(
        "query",
        params={"q": "SELECT Id FROM Contact"},
        headers={"Sforce-Query-Options": "batchSize=200"},
    ).json()
    ids = [r["Id"] for r in page["records"]]
    while not page["done"]:
        page = raw.get(page["nextRecordsUrl"]).json()
        ids += [r["Id"] for r in page["records"]]
        assert page["totalSize"] == 450
    assert len(ids) == 450 == len(set(ids))
    assert "nextRecordsUrl" not in page
    tiny = raw.get(
        "query",
        params={"q": "SELECT Id FROM Contact"},
        headers={"Sforce-Query-Options": "batchSize=5"},
    ).json()
    assert len(tiny["records"]) == 200  # the minimum batch size


def test_invalid_query_locator(emu: Emulator) -> None:
    raw = Raw(emu)
    for locator in ("01gNOPE00000000-2000", "garbage"):
        resp = raw.get(f"query/{locator}")
        assert resp.status_code == 400
        assert resp.json() == [
            {"message": "invalid query locator", "errorCode": "INVALID_QUERY_LOCATOR"}
        ]
    emu.seed(contacts=250)
    page = raw.get(
        "query",
        params={"q": "SELECT Id FROM Contact"},
        headers={"Sforce-Query-Options": "batchSize=200"},
    ).json()
    assert raw.get(page["nextRecordsUrl"]).status_code == 200
    # Fully read cursors are freed.
    assert error_code(raw.get(page["nextRecordsUrl"])) == "INVALID_QUERY_LOCATOR"


def test_query_all_includes_deleted(emu: Emulator, sf: Salesforce) -> None:
    ids = emu.seed(contacts=3)["contact_ids"]
    sf.Contact.delete(ids[0])
    assert sf.query("SELECT COUNT() FROM Contact")["totalSize"] == 2
    everything = sf.query_all("SELECT Id, IsDeleted FROM Contact", include_deleted=True)
    assert everything["totalSize"] == 3
    assert {r["Id"]: r["IsDeleted"] for r in everything["records"]}[ids[0]] is True
    raw = Raw(emu)
    assert raw.get("queryAll", params={"q": "SELECT COUNT() FROM Contact"}).json() == {
        "totalSize": 3,
        "done": True,
        "records": [],
    }
    emu.seed(contacts=2500)
    assert len(list(sf.query_all_iter("SELECT Id FROM Contact", include_deleted=True))) == 2503
    # A queryAll continuation (nextRecordsUrl says /query/...) counts as queryAll.
    assert emu.control("GET", "counters")["by_endpoint"]["queryAll"] == 4


def test_query_errors_over_http(emu: Emulator, sf: Salesforce) -> None:
    with pytest.raises(SalesforceMalformedRequest) as exc:
        sf.query("SELECT Id FROM Contact WHERE")
    assert exc.value.content[0]["errorCode"] == "MALFORMED_QUERY"
    with pytest.raises(SalesforceMalformedRequest) as exc:
        sf.query("SELECT Id FROM Widget__c")
    assert exc.value.content[0]["errorCode"] == "INVALID_TYPE"
    with pytest.raises(SalesforceMalformedRequest) as exc:
        sf.query("SELECT Nope FROM Lead")
    assert exc.value.content[0]["errorCode"] == "INVALID_FIELD"
    assert exc.value.content[0]["message"].startswith("\nSELECT Nope FROM Lead\n       ^\n")
    assert "No such column 'Nope' on entity 'Lead'" in exc.value.content[0]["message"]

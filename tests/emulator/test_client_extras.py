"""What other clients need besides simple-salesforce: double slashes after a stored
instance URL with a trailing slash, ``query?columns=true`` (Salesforce CLI), and
``DELETE composite/sobjects`` (jsforce's multi-record destroy)."""

from __future__ import annotations

import pytest

from optsync.emulator import Emulator
from tests.emulator.helpers import Raw, error_code

pytestmark = pytest.mark.emulator


def test_double_slash_paths_are_served(emu: Emulator) -> None:
    raw = Raw(emu)
    resp = raw.get("//services/data/v59.0/limits")
    assert resp.status_code == 200 and "DailyApiRequests" in resp.json()


def test_query_columns(emu: Emulator) -> None:
    body = (
        Raw(emu)
        .get("query", params={"q": "SELECT Id, Account.Name FROM Contact", "columns": "true"})
        .json()
    )
    assert body["entityName"] == "Contact" and body["idSelected"] is True
    cols = body["columnMetadata"]
    assert [c["columnName"] for c in cols] == ["Id", "Account"]
    assert [c["columnName"] for c in cols[1]["joinColumns"]] == ["Name"]
    agg = (
        Raw(emu)
        .get("query", params={"q": "SELECT COUNT(Id) FROM Contact", "columns": "true"})
        .json()["columnMetadata"]
    )
    assert (agg[0]["columnName"], agg[0]["displayName"], agg[0]["aggregate"]) == (
        "expr0",
        "COUNT(Id)",
        True,
    )


def test_delete_collection(emu: Emulator) -> None:
    raw = Raw(emu)
    a = raw.post("sobjects/Contact", json={"LastName": "A"}).json()["id"]
    b = raw.post("sobjects/Contact", json={"LastName": "B"}).json()["id"]
    raw.delete(f"sobjects/Contact/{b}")
    rolled = raw.delete("composite/sobjects", params={"ids": f"{a},{b}", "allOrNone": "true"})
    assert [r["success"] for r in rolled.json()] == [False, False]
    assert raw.get(f"sobjects/Contact/{a}").status_code == 200  # rolled back
    results = raw.delete("composite/sobjects", params={"ids": f"{a},{b}"}).json()
    assert results[0] == {"id": a, "success": True, "errors": []}
    assert results[1]["errors"][0]["statusCode"] == "ENTITY_IS_DELETED"
    assert error_code(raw.delete("composite/sobjects")) == "MISSING_ARGUMENT"

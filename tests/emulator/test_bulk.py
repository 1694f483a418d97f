"""Bulk API 2.0: simple-salesforce's bulk2 client plus the raw JSON/CSV wire shapes."""

from __future__ import annotations

import csv
import io
import re
import time
from typing import Any

import pytest
from simple_salesforce import Salesforce
from simple_salesforce.exceptions import SalesforceOperationError

from optsync.emulator import Emulator

from .helpers import Raw, error_code

pytestmark = pytest.mark.emulator

TERMINAL = ("JobComplete", "Failed", "Aborted")


def _wait(raw: Raw, kind: str, job_id: str) -> dict[str, Any]:
    """Poll until the worker finishes (bounded by count, not by a clock)."""
    for _ in range(6000):
        info = raw.get(f"jobs/{kind}/{job_id}").json()
        if info["state"] in TERMINAL:
            return dict(info)
        time.sleep(0.01)
    raise AssertionError(f"job {job_id} did not finish")


def _rows(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


def test_bulk2_update_50000_and_query(emu: Emulator, sf: Salesforce) -> None:
    emu.seed(contacts=50_000, leads=100)
    sets = list(sf.bulk2.Contact.query("SELECT Id FROM Contact", max_records=20_000, wait=0))
    assert len(sets) == 3
    ids = [r["Id"] for s in sets for r in _rows(s)]
    assert len(ids) == 50_000 == len(set(ids))
    records = [{"Id": i, "HasOptedOutOfEmail": "true"} for i in ids]
    records[10]["Id"] = "003000000000000"
    result = sf.bulk2.Contact.update(records=records, wait=0)
    assert result == [
        {
            "numberRecordsFailed": 1,
            "numberRecordsProcessed": 50_000,
            "numberRecordsTotal": 50_000,
            "job_id": result[0]["job_id"],
        }
    ]
    failed = _rows(sf.bulk2.Contact.get_failed_records(result[0]["job_id"]))
    assert failed == [
        {
            "sf__Id": "003000000000000",
            "sf__Error": "INVALID_CROSS_REFERENCE_KEY:invalid cross reference id:--",
            "Id": "003000000000000",
            "HasOptedOutOfEmail": "true",
        }
    ]
    ok = _rows(sf.bulk2.Contact.get_successful_records(result[0]["job_id"]))
    assert len(ok) == 49_999
    assert ok[0]["sf__Created"] == "false" and ok[0]["sf__Id"] == ok[0]["Id"]
    count = sf.query("SELECT COUNT() FROM Contact WHERE HasOptedOutOfEmail = true")
    assert count["totalSize"] == 49_999
    opted = "".join(
        sf.bulk2.Contact.query(
            "SELECT Id, HasOptedOutOfEmail FROM Contact WHERE HasOptedOutOfEmail = true "
            "ORDER BY Id LIMIT 3",
            wait=0,
        )
    )
    assert [r["HasOptedOutOfEmail"] for r in _rows(opted)] == ["true"] * 3


def test_bulk2_insert_upsert_delete(emu: Emulator, sf: Salesforce) -> None:
    res = sf.bulk2.Lead.insert(
        records=[
            {"LastName": f"L{i}", "Company": "Acme", "Email": f"l{i}@example.com"} for i in range(5)
        ],
        wait=0,
    )
    assert res[0]["numberRecordsFailed"] == 0
    created = _rows(sf.bulk2.Lead.get_successful_records(res[0]["job_id"]))
    assert all(r["sf__Created"] == "true" and r["sf__Id"].startswith("00Q") for r in created)
    lead_ids = [r["sf__Id"] for r in created]
    res = sf.bulk2.Lead.upsert(
        records=[
            {"Id": lead_ids[0], "FirstName": "Up"},
            {"Id": "", "LastName": "New", "Company": "C"},
        ],
        external_id_field="Id",
        wait=0,
    )
    assert res[0]["numberRecordsFailed"] == 0
    assert sf.Lead.get(lead_ids[0])["FirstName"] == "Up"
    res = sf.bulk2.Lead.delete(records=[{"Id": i} for i in lead_ids[:2]], wait=0)
    assert res[0]["numberRecordsFailed"] == 0
    assert sf.query("SELECT COUNT() FROM Lead")["totalSize"] == 4


def test_ingest_wire_shapes(emu: Emulator) -> None:
    raw = Raw(emu)
    ids = emu.seed(contacts=3, leads=1)
    converted = ids["lead_ids"][0]
    emu.control("POST", f"records/{converted}/convert")
    created = raw.post(
        "jobs/ingest",
        json={
            "object": "Contact",
            "operation": "update",
            "contentType": "CSV",
            "lineEnding": "LF",
            "columnDelimiter": "COMMA",
        },
    )
    assert created.status_code == 200
    info = created.json()
    assert info["state"] == "Open"
    assert re.fullmatch(r"750\w{15}", info["id"])
    assert info["contentUrl"] == f"services/data/v59.0/jobs/ingest/{info['id']}/batches"
    assert {
        "id",
        "operation",
        "object",
        "createdById",
        "createdDate",
        "systemModstamp",
        "state",
        "concurrencyMode",
        "contentType",
        "apiVersion",
        "lineEnding",
        "columnDelimiter",
    } <= set(info)
    job = info["id"]
    body = "Id,HasOptedOutOfEmail\n" + "".join(f"{i},true\n" for i in ids["contact_ids"])
    up = raw.put(f"jobs/ingest/{job}/batches", data=body, headers={"Content-Type": "text/csv"})
    assert up.status_code == 201 and up.content == b""
    closed = raw.patch(f"jobs/ingest/{job}", json={"state": "UploadComplete"})
    assert closed.status_code == 200 and closed.json()["state"] in (
        "UploadComplete",
        "InProgress",
        "JobComplete",
    )
    done = _wait(raw, "ingest", job)
    assert done["state"] == "JobComplete"
    assert done["numberRecordsProcessed"] == 3 and done["numberRecordsFailed"] == 0
    assert done["jobType"] == "V2Ingest"
    ok = raw.get(f"jobs/ingest/{job}/successfulResults/")
    assert ok.headers["content-type"].startswith("text/csv")
    assert ok.text.splitlines()[0] == '"sf__Id","sf__Created",Id,HasOptedOutOfEmail'
    failed = raw.get(f"jobs/ingest/{job}/failedResults/")
    assert failed.text == '"sf__Id","sf__Error",Id,HasOptedOutOfEmail\n'
    for spelling in ("unprocessedrecords", "unprocessedRecords"):
        assert raw.get(f"jobs/ingest/{job}/{spelling}/").status_code == 200
    listing = raw.get("jobs/ingest").json()
    assert listing["done"] is True and listing["nextRecordsUrl"] is None
    assert job in [j["id"] for j in listing["records"]]
    assert raw.delete(f"jobs/ingest/{job}").status_code == 204
    assert raw.get(f"jobs/ingest/{job}").status_code == 404

    # A converted lead fails per row with the documented sf__Error text.
    job = raw.post("jobs/ingest", json={"object": "Lead", "operation": "update"}).json()["id"]
    raw.put(
        f"jobs/ingest/{job}/batches",
        data=f"Id,HasOptedOutOfEmail\n{converted},true\n",
        headers={"Content-Type": "text/csv"},
    )
    raw.patch(f"jobs/ingest/{job}", json={"state": "UploadComplete"})
    assert _wait(raw, "ingest", job)["numberRecordsFailed"] == 1
    row = _rows(raw.get(f"jobs/ingest/{job}/failedResults").text)[0]
    assert row["sf__Error"] == "CANNOT_UPDATE_CONVERTED_LEAD:cannot reference converted lead:--"
    assert row["sf__Id"] == converted


def test_second_upload_fails_the_close(emu: Emulator) -> None:
    raw = Raw(emu)
    job = raw.post("jobs/ingest", json={"object": "Contact", "operation": "insert"}).json()["id"]
    for _ in range(2):
        raw.put(
            f"jobs/ingest/{job}/batches", data="LastName\nA\n", headers={"Content-Type": "text/csv"}
        )
    resp = raw.patch(f"jobs/ingest/{job}", json={"state": "UploadComplete"})
    assert resp.status_code == 400
    assert error_code(resp) == "INVALIDJOB"
    assert "Found multiple contents for job" in resp.json()[0]["message"]


def test_abort_leaves_unprocessed_records(emu: Emulator) -> None:
    raw = Raw(emu)
    job = raw.post("jobs/ingest", json={"object": "Contact", "operation": "insert"}).json()["id"]
    raw.put(
        f"jobs/ingest/{job}/batches", data="LastName\nA\nB\n", headers={"Content-Type": "text/csv"}
    )
    aborted = raw.patch(f"jobs/ingest/{job}", json={"state": "Aborted"}).json()
    assert aborted["state"] == "Aborted"
    assert raw.get(f"jobs/ingest/{job}/unprocessedrecords").text == "LastName\nA\nB\n"
    assert raw.patch(f"jobs/ingest/{job}", json={"state": "Aborted"}).status_code == 400


def test_bad_header_fails_the_job(emu: Emulator, sf: Salesforce) -> None:
    with pytest.raises(SalesforceOperationError) as exc:
        sf.bulk2.Contact.insert(records=[{"LastName": "x", "Bogus__c": "1"}], wait=0)
    assert "InvalidBatch : Field name not found : Bogus__c" in str(exc.value)


def test_job_creation_errors(emu: Emulator) -> None:
    raw = Raw(emu)
    for body in (
        {"object": "Contact", "operation": "merge"},
        {"object": "Widget", "operation": "insert"},
        {"object": "Contact", "operation": "upsert"},
        {"object": "Contact", "operation": "upsert", "externalIdFieldName": "Email"},
        {"object": "Contact", "operation": "insert", "columnDelimiter": "SPACE"},
    ):
        resp = raw.post("jobs/ingest", json=body)
        assert resp.status_code == 400, body
        assert error_code(resp) == "INVALIDJOB"
    resp = raw.post("jobs/query", json={"operation": "query", "query": "SELECT Nope FROM Lead"})
    assert error_code(resp) == "INVALID_FIELD"
    assert raw.get("jobs/ingest/750000000000000AAA").status_code == 404


def test_query_job_wire_shapes(emu: Emulator) -> None:
    emu.seed(contacts=25)
    ids = emu.seed(contacts=1)["contact_ids"]
    raw = Raw(emu)
    raw.delete(f"sobjects/Contact/{ids[0]}")
    created = raw.post(
        "jobs/query",
        json={
            "operation": "query",
            "query": "SELECT Id, Email, HasOptedOutOfEmail FROM Contact ORDER BY Email",
        },
    )
    info = created.json()
    assert info["state"] == "UploadComplete" and info["operation"] == "query"
    assert info["object"] == "Contact"
    done = _wait(raw, "query", info["id"])
    assert done["state"] == "JobComplete" and done["jobType"] == "V2Query"
    assert done["numberRecordsProcessed"] == 25
    first = raw.get(
        f"jobs/query/{info['id']}/results",
        params={"maxRecords": 10},
        headers={"Accept": "text/csv"},
    )
    assert first.status_code == 200
    assert first.headers["Sforce-NumberOfRecords"] == "10"
    locator = first.headers["Sforce-Locator"]
    assert locator not in ("", "null")
    lines = first.text.splitlines()
    assert lines[0] == '"Id","Email","HasOptedOutOfEmail"'
    assert re.fullmatch(r'"003\w{15}","[^"]+@example\.com","(true|false)"', lines[1])
    assert len(lines) == 11
    second = raw.get(
        f"jobs/query/{info['id']}/results", params={"maxRecords": 100, "locator": locator}
    )
    assert second.headers["Sforce-NumberOfRecords"] == "15"
    assert second.headers["Sforce-Locator"] == "null"
    assert second.text.splitlines()[0] == lines[0]
    again = raw.get(
        f"jobs/query/{info['id']}/results", params={"maxRecords": 10, "locator": locator}
    )
    assert (
        again.text
        == raw.get(
            f"jobs/query/{info['id']}/results", params={"maxRecords": 10, "locator": locator}
        ).text
    )
    everything = _rows(first.text) + _rows(second.text)
    emails = [r["Email"] for r in everything]
    assert emails == sorted(emails, key=str.lower)
    stamps = raw.post(
        "jobs/query",
        json={"operation": "query", "query": "SELECT SystemModstamp FROM Contact LIMIT 1"},
    )
    _wait(raw, "query", stamps.json()["id"])
    text = raw.get(f"jobs/query/{stamps.json()['id']}/results").text
    assert re.fullmatch(r'"SystemModstamp"\n"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z"\n', text)
    bad = raw.get(f"jobs/query/{info['id']}/results", params={"locator": "!!!"})
    assert bad.status_code == 400

    all_job = raw.post(
        "jobs/query", json={"operation": "queryAll", "query": "SELECT Id FROM Contact"}
    ).json()
    _wait(raw, "query", all_job["id"])
    res = raw.get(f"jobs/query/{all_job['id']}/results")
    assert res.headers["Sforce-NumberOfRecords"] == "26"
    listing = raw.get("jobs/query").json()
    assert {j["id"] for j in listing["records"]} == {info["id"], all_job["id"], stamps.json()["id"]}
    assert raw.delete(f"jobs/query/{info['id']}").status_code == 204


def test_query_job_with_several_columns_matches_rest(emu: Emulator, sf: Salesforce) -> None:
    """Nulls become empty cells; commas, quotes and newlines are quoted; same rows as REST."""
    ids = emu.seed(contacts=4)["contact_ids"]
    emu.control("PATCH", f"records/{ids[0]}", {"FirstName": None, "Email": None})
    emu.control("PATCH", f"records/{ids[1]}", {"LastName": 'O"Brien, Jr.\nthe second'})
    emu.control("PATCH", f"records/{ids[2]}", {"Email": "x,y@example.com", "FirstName": ""})
    soql = "SELECT Id, Email, FirstName, LastName FROM Contact"
    raw = Raw(emu)
    job = raw.post(
        "jobs/query",
        json={"operation": "query", "query": soql, "columnDelimiter": "COMMA", "lineEnding": "LF"},
    ).json()
    assert _wait(raw, "query", job["id"])["numberRecordsProcessed"] == 4
    body = raw.get(f"jobs/query/{job['id']}/results", headers={"Accept": "text/csv"}).text
    assert body.splitlines()[0] == '"Id","Email","FirstName","LastName"'
    assert f'"{ids[0]}","","","' in body  # null Email and FirstName
    assert '"O""Brien, Jr.\nthe second"' in body
    bulk = [
        {k: v or None for k, v in row.items()}
        for row in csv.DictReader(io.StringIO(body, newline=""))
    ]
    rest = [
        {k: v for k, v in r.items() if k != "attributes"}
        for r in sf.query_all(soql + " ORDER BY Id")["records"]
    ]
    assert sorted(bulk, key=lambda r: r["Id"]) == rest
    assert rest[0]["Email"] is None and rest[2]["FirstName"] is None
    filtered = raw.post(
        "jobs/query", json={"operation": "query", "query": soql + " WHERE Email != null"}
    ).json()
    _wait(raw, "query", filtered["id"])
    res = raw.get(f"jobs/query/{filtered['id']}/results")
    assert res.headers["Sforce-NumberOfRecords"] == "3"


def test_bulk_query_empty_result(emu: Emulator, sf: Salesforce) -> None:
    sets = list(sf.bulk2.Lead.query("SELECT Id, Email FROM Lead", wait=0))
    assert sets == ['"Id","Email"\n']


def test_ingest_rows_fail_with_lock_errors_at_the_fault_rate(tmp_path: Any) -> None:
    """Bulk rows meet UNABLE_TO_LOCK_ROW like triggers' row locks do on Salesforce."""
    from optsync.emulator.bulk import JobManager
    from optsync.emulator.faults import FaultSettings, Governor
    from optsync.emulator.store import OrgStore

    store = OrgStore(":memory:")
    ids = store.seed(40, 0, 0.0, 0.0).contact_ids
    assert ids is not None
    jobs = JobManager(store, Governor(FaultSettings(fault_rate=1.0)), tmp_path)
    try:
        job = jobs.create_ingest({"object": "Contact", "operation": "update"}, "59.0")
        job.path("upload.csv").write_text(
            "Id,HasOptedOutOfEmail\n" + "".join(f"{i},true\n" for i in ids)
        )
        job.uploads = 1
        jobs.set_state(job, {"state": "UploadComplete"})
        for _ in range(6000):
            if job.state in TERMINAL:
                break
            time.sleep(0.01)
        assert job.state == "JobComplete"
        assert 0 < job.failed < 40
        failed = _rows(b"".join(jobs.ingest_results(job, "failedResults")).decode())
        assert {r["sf__Error"] for r in failed} == {
            "UNABLE_TO_LOCK_ROW:unable to obtain exclusive access to this record or 1 records:--"
        }
    finally:
        jobs.close()
        store.close()


def test_collections_keep_order_across_chunks_and_envelope_errors(
    emu: Emulator, sf: Salesforce
) -> None:
    ids = emu.seed(contacts=2, leads=2)
    c1, c2 = ids["contact_ids"]
    l1, _ = ids["lead_ids"]
    records = [
        {"attributes": {"type": "Contact"}, "id": c1, "FirstName": "A"},
        {"attributes": {"type": "Widget"}, "id": c2},
        {"attributes": {"type": "Lead"}, "id": l1, "FirstName": "B"},
        {"attributes": {"type": "Contact"}, "FirstName": "no id"},
        {"attributes": {"type": "Contact"}, "id": c1, "FirstName": "C"},
        {"attributes": {"type": "Contact"}, "id": l1, "FirstName": "wrong type"},
    ]
    result = sf.restful(
        "composite/sobjects", method="PATCH", json={"allOrNone": False, "records": records}
    )
    assert [r["success"] for r in result] == [True, False, True, False, True, False]
    assert [r["errors"][0]["statusCode"] for r in result if not r["success"]] == [
        "INVALID_TYPE",
        "MISSING_ARGUMENT",
        "MALFORMED_ID",
    ]
    assert sf.Contact.get(c1)["FirstName"] == "C"  # the later write wins
    assert sf.Lead.get(l1)["FirstName"] == "B"

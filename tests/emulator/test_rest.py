"""REST resources: discovery, describe, records, collections, limits, faults."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime as http_date
from typing import Any

import pytest
from simple_salesforce import Salesforce
from simple_salesforce.exceptions import (
    SalesforceGeneralError,
    SalesforceMalformedRequest,
    SalesforceRefusedRequest,
    SalesforceResourceNotFound,
)

from optsync.domain.ids import checksum_suffix, make_id
from optsync.emulator import Emulator

from .helpers import Raw, error_code

pytestmark = pytest.mark.emulator

STAMP_RE = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\+0000")


def _seed(emu: Emulator, contacts: int = 0, leads: int = 0, **kw: Any) -> dict[str, Any]:
    return emu.seed(contacts=contacts, leads=leads, **kw)


# --------------------------------------------------------------------- discovery
def test_versions_list_needs_no_session_and_has_no_limit_header(emu: Emulator) -> None:
    resp = Raw(emu, token="").get("/services/data/")
    assert resp.status_code == 200
    body = resp.json()
    assert {"label": "Winter '24", "url": "/services/data/v59.0", "version": "59.0"} in body
    assert {"label": "Spring '24", "url": "/services/data/v60.0", "version": "60.0"} in body
    assert "Sforce-Limit-Info" not in resp.headers


def test_resources_and_version_errors(emu: Emulator) -> None:
    raw = Raw(emu)
    resp = raw.get("/services/data/v59.0/")
    assert resp.status_code == 200
    assert resp.json()["sobjects"] == "/services/data/v59.0/sobjects"
    assert resp.json()["jobs"] == "/services/data/v59.0/jobs"
    assert re.fullmatch(r"api-usage=\d+/1000000", resp.headers["Sforce-Limit-Info"])
    gone = raw.get("/services/data/v29.0/sobjects")
    assert gone.status_code == 410
    missing = raw.get("/services/data/v99.0/sobjects")
    assert missing.status_code == 404
    assert error_code(missing) == "NOT_FOUND"
    assert raw.get("/services/data/v59.0/nonsense").status_code == 404


# --------------------------------------------------------------------- describe
def test_global_describe(sf: Salesforce) -> None:
    body = sf.describe()
    assert body["encoding"] == "UTF-8"
    assert body["maxBatchSize"] == 200
    prefixes = {o["name"]: o["keyPrefix"] for o in body["sobjects"]}
    assert prefixes == {
        "Account": "001",
        "Contact": "003",
        "Lead": "00Q",
        "User": "005",
        "Organization": "00D",
    }


@pytest.mark.parametrize("obj", ["Contact", "Lead"])
def test_object_describe_fields(sf: Salesforce, obj: str) -> None:
    body = getattr(sf, obj).describe()
    assert body["name"] == obj
    assert body["keyPrefix"] == {"Contact": "003", "Lead": "00Q"}[obj]
    assert body["updateable"] is True
    fields = {f["name"]: f for f in body["fields"]}
    opt = fields["HasOptedOutOfEmail"]
    assert opt["type"] == "boolean" and opt["soapType"] == "xsd:boolean"
    assert opt["updateable"] is True and opt["nillable"] is False
    assert opt["defaultValue"] is False and opt["custom"] is False
    custom = fields["Sales_Opt_Out__c"]
    assert custom["custom"] is True and custom["type"] == "boolean"
    assert fields["SystemModstamp"]["updateable"] is False
    expected = {
        "Id",
        "Email",
        "FirstName",
        "LastName",
        "HasOptedOutOfEmail",
        "CreatedDate",
        "LastModifiedDate",
        "SystemModstamp",
        "IsDeleted",
        "MasterRecordId",
    }
    if obj == "Lead":
        expected |= {"Company", "Status", "IsConverted", "ConvertedContactId", "ConvertedDate"}
    assert expected <= set(fields)
    for f in body["fields"]:
        assert list(f) == sorted(f)


def test_describe_if_modified_since(emu: Emulator) -> None:
    raw = Raw(emu)
    first = raw.get("sobjects/Contact/describe")
    assert first.status_code == 200
    later = http_date(datetime.now(UTC) + timedelta(minutes=1), usegmt=True)
    assert (
        raw.get("sobjects/Contact/describe", headers={"If-Modified-Since": later}).status_code
        == 304
    )
    earlier = http_date(datetime.now(UTC) - timedelta(days=1), usegmt=True)
    assert (
        raw.get("sobjects/Contact/describe", headers={"If-Modified-Since": earlier}).status_code
        == 200
    )


def test_unknown_object(emu: Emulator) -> None:
    resp = Raw(emu).get("sobjects/Opportunity/describe")
    assert resp.status_code == 404
    assert resp.json() == [
        {"message": "The requested resource does not exist", "errorCode": "NOT_FOUND"}
    ]


# --------------------------------------------------------------------- field-level security
def test_hidden_field_is_absent_everywhere(emu: Emulator, sf: Salesforce) -> None:
    cid = _seed(emu, contacts=1)["contact_ids"][0]
    emu.control("PUT", "fields/Contact/Sales_Opt_Out__c", {"visible": False, "updateable": False})
    names = {f["name"] for f in sf.Contact.describe()["fields"]}
    assert "Sales_Opt_Out__c" not in names
    assert "Sales_Opt_Out__c" in {f["name"] for f in sf.Lead.describe()["fields"]}
    with pytest.raises(SalesforceMalformedRequest) as exc:
        sf.query("SELECT Id, Sales_Opt_Out__c FROM Contact")
    assert exc.value.content[0]["errorCode"] == "INVALID_FIELD"
    with pytest.raises(SalesforceMalformedRequest) as exc:
        sf.Contact.update(cid, {"Sales_Opt_Out__c": True})
    assert exc.value.content[0]["errorCode"] == "INVALID_FIELD"
    assert "Sales_Opt_Out__c" not in sf.Contact.get(cid)
    # The control API still sees every field.
    assert emu.control("GET", f"records/{cid}")["Sales_Opt_Out__c"] is False


def test_read_only_field(emu: Emulator, sf: Salesforce) -> None:
    cid = _seed(emu, contacts=1)["contact_ids"][0]
    emu.control("PUT", "fields/Contact/HasOptedOutOfEmail", {"visible": True, "updateable": False})
    fields = {f["name"]: f for f in sf.Contact.describe()["fields"]}
    assert fields["HasOptedOutOfEmail"]["updateable"] is False
    assert fields["HasOptedOutOfEmail"]["createable"] is False
    with pytest.raises(SalesforceMalformedRequest) as exc:
        sf.Contact.update(cid, {"HasOptedOutOfEmail": True})
    err = exc.value.content[0]
    assert err["errorCode"] == "INVALID_FIELD_FOR_INSERT_UPDATE"
    assert err["fields"] == ["HasOptedOutOfEmail"]
    assert sf.query("SELECT HasOptedOutOfEmail FROM Contact")["totalSize"] == 1


def test_without_sales_opt_out_option(tmp_path: Any) -> None:
    from optsync.emulator import EmulatorOptions, run_emulator

    with run_emulator(
        EmulatorOptions(data_dir=tmp_path, port=0, memory=True, sales_opt_out=False)
    ) as emu:
        names = {f["name"] for f in emu.salesforce().Lead.describe()["fields"]}
        assert "Sales_Opt_Out__c" not in names
        assert "HasOptedOutOfEmail" in names


# --------------------------------------------------------------------- records
def test_create_get_update_delete(emu: Emulator, sf: Salesforce) -> None:
    raw = Raw(emu)
    resp = raw.post("sobjects/Contact/", json={"LastName": "Ng", "Email": "ann@example.com"})
    assert resp.status_code == 201
    body = resp.json()
    assert set(body) == {"id", "success", "errors"}
    assert body["success"] is True and body["errors"] == []
    cid = body["id"]
    assert cid.startswith("003") and len(cid) == 18
    assert cid[15:] == checksum_suffix(cid[:15])

    rec = sf.Contact.get(cid)
    assert rec["attributes"] == {
        "type": "Contact",
        "url": f"/services/data/v59.0/sobjects/Contact/{cid}",
    }
    assert rec["HasOptedOutOfEmail"] is False and rec["IsDeleted"] is False
    assert STAMP_RE.fullmatch(rec["SystemModstamp"])
    assert STAMP_RE.fullmatch(rec["CreatedDate"])

    partial = raw.get(f"sobjects/Contact/{cid}", params={"fields": "Id,Email"}).json()
    assert list(partial) == ["attributes", "Id", "Email"]
    # 15-character ids are accepted, responses use 18.
    assert raw.get(f"sobjects/Contact/{cid[:15]}").json()["Id"] == cid

    assert sf.Contact.update(cid, {"HasOptedOutOfEmail": True}) == 204
    after = sf.Contact.get(cid)
    assert after["HasOptedOutOfEmail"] is True
    assert after["SystemModstamp"] > rec["SystemModstamp"]
    assert after["LastModifiedDate"] > rec["LastModifiedDate"]
    assert STAMP_RE.fullmatch(after["LastModifiedDate"])

    resp = raw.patch(f"sobjects/Contact/{cid}", json={"Email": "b@example.com"})
    assert resp.status_code == 204 and resp.content == b""
    assert sf.Contact.delete(cid) == 204
    gone = raw.get(f"sobjects/Contact/{cid}")
    assert gone.status_code == 404
    assert gone.json() == [{"message": "entity is deleted", "errorCode": "ENTITY_IS_DELETED"}]
    with pytest.raises(SalesforceResourceNotFound):
        sf.Contact.update(cid, {"HasOptedOutOfEmail": False})


def test_record_errors(emu: Emulator) -> None:
    raw = Raw(emu)
    cid = _seed(emu, contacts=1)["contact_ids"][0]
    unknown = make_id("003", 999_999)
    resp = raw.get(f"sobjects/Contact/{unknown}")
    assert resp.status_code == 404
    assert resp.json() == [
        {"message": "The requested resource does not exist", "errorCode": "NOT_FOUND"}
    ]
    for bad in ("abc", "003xx", make_id("00Q", 1)):
        resp = raw.patch(f"sobjects/Contact/{bad}", json={"HasOptedOutOfEmail": True})
        assert resp.status_code == 400
        assert error_code(resp) == "MALFORMED_ID"
    resp = raw.patch(f"sobjects/Contact/{cid}", json={"Nope__c": True})
    assert resp.status_code == 400
    assert resp.json()[0] == {
        "message": "No such column 'Nope__c' on sobject of type Contact",
        "errorCode": "INVALID_FIELD",
    }
    resp = raw.patch(f"sobjects/Contact/{cid}", json={"SystemModstamp": "2020-01-01"})
    assert error_code(resp) == "INVALID_FIELD_FOR_INSERT_UPDATE"
    resp = raw.patch(f"sobjects/Contact/{cid}", json={"Email": "not-an-email"})
    assert error_code(resp) == "INVALID_EMAIL_ADDRESS"
    resp = raw.post("sobjects/Contact", json={"Email": "x@example.com"})
    assert error_code(resp) == "REQUIRED_FIELD_MISSING"
    resp = raw.patch(
        f"sobjects/Contact/{cid}", data="{not json", headers={"Content-Type": "application/json"}
    )
    assert error_code(resp) == "JSON_PARSER_ERROR"
    resp = raw.get(f"sobjects/Contact/{cid}", params={"fields": "Id,Bogus"})
    assert error_code(resp) == "INVALID_FIELD"


def test_converted_lead_rejects_updates(emu: Emulator, sf: Salesforce) -> None:
    lid = _seed(emu, leads=1)["lead_ids"][0]
    contact_id = emu.control("POST", f"records/{lid}/convert")["contact_id"]
    assert contact_id.startswith("003")
    lead = sf.Lead.get(lid)
    assert lead["IsConverted"] is True
    assert lead["ConvertedContactId"] == contact_id
    assert re.fullmatch(r"\d{4}-\d\d-\d\d", lead["ConvertedDate"])
    with pytest.raises(SalesforceMalformedRequest) as exc:
        sf.Lead.update(lid, {"HasOptedOutOfEmail": True})
    assert exc.value.content == [
        {"message": "cannot reference converted lead", "errorCode": "CANNOT_UPDATE_CONVERTED_LEAD"}
    ]
    assert sf.Contact.get(contact_id)["Email"] == lead["Email"]


def test_convert_into_existing_contact(emu: Emulator) -> None:
    ids = _seed(emu, contacts=1, leads=1)
    cid = emu.control(
        "POST", f"records/{ids['lead_ids'][0]}/convert", {"contact_id": ids["contact_ids"][0]}
    )["contact_id"]
    assert cid == ids["contact_ids"][0]


def test_merge_sets_master_record_id(emu: Emulator, sf: Salesforce) -> None:
    winner, loser = _seed(emu, contacts=2)["contact_ids"]
    emu.control("POST", f"records/{loser}/merge", {"master_id": winner})
    rows = sf.query_all(
        "SELECT Id, MasterRecordId FROM Contact WHERE IsDeleted = true AND MasterRecordId != null",
        include_deleted=True,
    )["records"]
    assert [(r["Id"], r["MasterRecordId"]) for r in rows] == [(loser, winner)]


# --------------------------------------------------------------------- collections
def test_composite_update_200_with_one_bad_id(emu: Emulator, sf: Salesforce) -> None:
    ids = _seed(emu, contacts=150, leads=50)
    contacts, leads = ids["contact_ids"], ids["lead_ids"]
    deleted = contacts[5]
    sf.Contact.delete(deleted)
    records = [
        {"attributes": {"type": "Contact"}, "id": i, "HasOptedOutOfEmail": True} for i in contacts
    ]
    records += [
        {"attributes": {"type": "Lead"}, "id": i, "HasOptedOutOfEmail": True} for i in leads
    ]
    records[7]["id"] = "003NOTANID"
    result = sf.restful(
        "composite/sobjects", method="PATCH", json={"allOrNone": False, "records": records}
    )
    assert len(result) == 200
    assert (
        result[7]
        == {
            "success": False,
            "errors": [
                {
                    "statusCode": "MALFORMED_ID",
                    "message": "Contact ID: id value of incorrect type: 003NOTANID",
                    "fields": ["Id"],
                }
            ],
        }
        or result[7]["errors"][0]["statusCode"] == "MALFORMED_ID"
    )
    assert result[5]["errors"][0] == {
        "statusCode": "ENTITY_IS_DELETED",
        "message": "entity is deleted",
        "fields": [],
    }
    ok = [r for i, r in enumerate(result) if i not in (5, 7)]
    assert all(r["success"] and r["errors"] == [] for r in ok)
    assert [r["id"] for r in result[150:]] == leads
    assert (
        sf.query("SELECT COUNT() FROM Contact WHERE HasOptedOutOfEmail = true")["totalSize"] == 148
    )
    assert emu.control("GET", "counters")["by_endpoint"]["composite/sobjects"] == 1


def test_composite_all_or_none_rolls_back(emu: Emulator, sf: Salesforce) -> None:
    ids = _seed(emu, contacts=3)["contact_ids"]
    records = [
        {"attributes": {"type": "Contact"}, "id": i, "HasOptedOutOfEmail": True} for i in ids
    ]
    records[1]["Nope__c"] = 1
    result = sf.restful(
        "composite/sobjects", method="PATCH", json={"allOrNone": True, "records": records}
    )
    assert result[1]["errors"][0]["statusCode"] == "INVALID_FIELD"
    for i in (0, 2):
        assert result[i] == {
            "id": None,
            "success": False,
            "errors": [
                {
                    "statusCode": "ALL_OR_NONE_OPERATION_ROLLED_BACK",
                    "message": "Record rolled back because not all records were valid and the "
                    "request was using AllOrNone header",
                    "fields": [],
                }
            ],
        }
    assert sf.query("SELECT COUNT() FROM Contact WHERE HasOptedOutOfEmail = true")["totalSize"] == 0


def test_composite_create_and_limits(emu: Emulator, sf: Salesforce) -> None:
    recs = [
        {"attributes": {"type": "Lead"}, "LastName": f"L{i}", "Company": "Acme"} for i in range(3)
    ]
    recs.append({"attributes": {"type": "Lead"}, "LastName": "NoCompany"})
    result = sf.restful(
        "composite/sobjects", method="POST", json={"allOrNone": False, "records": recs}
    )
    assert [r["success"] for r in result] == [True, True, True, False]
    assert all(r["id"].startswith("00Q") for r in result[:3])
    assert result[3]["errors"][0]["statusCode"] == "REQUIRED_FIELD_MISSING"
    raw = Raw(emu)
    too_many = [{"attributes": {"type": "Contact"}, "LastName": "x"}] * 201
    resp = raw.post("composite/sobjects", json={"records": too_many})
    assert resp.status_code == 400
    assert error_code(resp) == "EXCEEDED_ID_LIMIT"
    chunky = [
        {"attributes": {"type": "Contact" if i % 2 else "Lead"}, "LastName": "x", "Company": "c"}
        for i in range(11)
    ]
    resp = raw.post("composite/sobjects", json={"records": chunky})
    assert resp.status_code == 400
    assert error_code(resp) == "INVALID_BATCH_REQUEST"
    resp = raw.post("composite/sobjects", json={"records": chunky[:10]})
    assert resp.status_code == 200


# --------------------------------------------------------------------- limits and faults
def test_limits_and_usage_header(emu: Emulator, sf: Salesforce) -> None:
    body = sf.limits()
    assert body["DailyApiRequests"]["Max"] == 1_000_000
    assert body["DailyApiRequests"]["Remaining"] < 1_000_000
    assert {
        "DailyBulkApiBatches",
        "DailyBulkV2QueryJobs",
        "DailyBulkV2QueryFileStorageMB",
        "DataStorageMB",
    } <= set(body)
    used, total = sf.api_usage["api-usage"]
    assert total == 1_000_000 and used >= 1


def test_daily_limit_exceeded(emu: Emulator, sf: Salesforce) -> None:
    emu.settings(daily_api_limit=3)
    sf.limits()
    sf.limits()
    sf.limits()
    with pytest.raises(SalesforceRefusedRequest) as exc:
        sf.limits()
    assert exc.value.content == [
        {"message": "TotalRequests Limit exceeded.", "errorCode": "REQUEST_LIMIT_EXCEEDED"}
    ]
    resp = Raw(emu).get("limits")
    assert resp.status_code == 403
    assert resp.headers["Sforce-Limit-Info"] == "api-usage=3/3"
    # Control endpoints are not API calls.
    assert emu.control("GET", "counters")["total"] == 3


def test_faults_split_between_unavailable_and_lock(emu: Emulator) -> None:
    emu.settings(fault_rate=1.0)
    raw = Raw(emu)
    codes = set()
    for _ in range(40):
        resp = raw.get("limits")
        if resp.status_code == 503:
            codes.add(error_code(resp))
            assert resp.headers["Retry-After"] == "1"
        else:
            assert resp.status_code == 400
            codes.add(error_code(resp))
    assert codes == {"SERVER_UNAVAILABLE", "UNABLE_TO_LOCK_ROW"}
    assert emu.control("GET", "settings")["fault_rate"] == 1.0
    emu.settings(fault_rate=0.0)
    assert raw.get("limits").status_code == 200


def test_sf_general_error_on_503(emu: Emulator, sf: Salesforce) -> None:
    emu.settings(fault_rate=1.0)
    with pytest.raises((SalesforceGeneralError, SalesforceMalformedRequest)):
        sf.limits()


# --------------------------------------------------------------------- replication
def test_updated_and_deleted(emu: Emulator, sf: Salesforce) -> None:
    ids = _seed(emu, contacts=3)["contact_ids"]
    sf.Contact.delete(ids[0])
    start = datetime.now(UTC) - timedelta(minutes=5)
    end = datetime.now(UTC) + timedelta(days=1)
    upd = sf.Contact.updated(start, end)
    assert sorted(upd["ids"]) == sorted(ids[1:])
    assert STAMP_RE.fullmatch(upd["latestDateCovered"])
    dele = sf.Contact.deleted(start, end)
    assert [d["id"] for d in dele["deletedRecords"]] == [ids[0]]
    assert STAMP_RE.fullmatch(dele["deletedRecords"][0]["deletedDate"])
    assert STAMP_RE.fullmatch(dele["earliestDateAvailable"])
    with pytest.raises(SalesforceMalformedRequest) as exc:
        sf.Contact.updated(end, start)
    assert exc.value.content[0]["errorCode"] == "INVALID_REPLICATION_DATE"


def test_control_settings_validation(emu: Emulator) -> None:
    with emu.http() as s:
        resp = s.put(f"{emu.control_url}/settings", json={"fault_rate": 2}, timeout=10)
    assert resp.status_code == 400
    assert resp.json()["error"]["code"] == "INVALID_INPUT"
    assert emu.settings() == {
        "latency_ms": 0,
        "jitter_ms": 0,
        "fault_rate": 0.0,
        "daily_api_limit": 1_000_000,
    }
    assert emu.settings(latency_ms=5, jitter_ms=2)["latency_ms"] == 5
    emu.reset()
    assert emu.settings()["latency_ms"] == 0


def test_control_record_endpoints(emu: Emulator) -> None:
    cid = _seed(emu, contacts=1)["contact_ids"][0]
    before = emu.control("GET", f"records/{cid}")
    assert before["attributes"] == {"type": "Contact"}
    after = emu.control("PATCH", f"records/{cid}", {"HasOptedOutOfEmail": True})
    assert after["HasOptedOutOfEmail"] is True
    assert after["SystemModstamp"] > before["SystemModstamp"]
    deleted = emu.control("DELETE", f"records/{cid}")
    assert deleted["IsDeleted"] is True
    with emu.http() as s:
        resp = s.get(f"{emu.control_url}/records/{make_id('003', 424242)}", timeout=10)
    assert resp.status_code == 404
    assert resp.json() == {
        "error": {"code": "NOT_FOUND", "message": "The requested resource does not exist"}
    }


def test_seed_omits_ids_above_ten_thousand(emu: Emulator) -> None:
    body = emu.seed(contacts=6000, leads=5000, opted_out_fraction=0.5)
    assert body == {"contacts": 6000, "leads": 5000, "person_accounts": 0, "duplicates": 0}
    small = emu.seed(contacts=2, leads=1)
    assert len(small["contact_ids"]) == 2 and len(small["lead_ids"]) == 1

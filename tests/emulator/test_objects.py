"""Contact, Lead and Account as a real org defines them: full standard fields from the
data files, compound fields, lookups and relationships, writes to any updateable field."""

from __future__ import annotations

from typing import Any

import pytest
from simple_salesforce import Salesforce

from optsync.emulator import Emulator
from optsync.emulator.schema import object_def
from tests.emulator.helpers import Raw, error_code

pytestmark = pytest.mark.emulator

# docs/salesforce-api.md §10.4, name by name (feature-dependent fields left out).
CONTACT_FIELDS = [
    "Id",
    "IsDeleted",
    "MasterRecordId",
    "AccountId",
    "LastName",
    "FirstName",
    "Salutation",
    "Name",
    "OtherStreet",
    "OtherCity",
    "OtherState",
    "OtherPostalCode",
    "OtherCountry",
    "OtherLatitude",
    "OtherLongitude",
    "OtherGeocodeAccuracy",
    "OtherAddress",
    "MailingStreet",
    "MailingCity",
    "MailingState",
    "MailingPostalCode",
    "MailingCountry",
    "MailingLatitude",
    "MailingLongitude",
    "MailingGeocodeAccuracy",
    "MailingAddress",
    "Phone",
    "Fax",
    "MobilePhone",
    "HomePhone",
    "OtherPhone",
    "AssistantPhone",
    "ReportsToId",
    "Email",
    "Title",
    "Department",
    "AssistantName",
    "LeadSource",
    "Birthdate",
    "Description",
    "OwnerId",
    "HasOptedOutOfEmail",
    "HasOptedOutOfFax",
    "DoNotCall",
    "CreatedDate",
    "CreatedById",
    "LastModifiedDate",
    "LastModifiedById",
    "SystemModstamp",
    "LastActivityDate",
    "LastCURequestDate",
    "LastCUUpdateDate",
    "LastViewedDate",
    "LastReferencedDate",
    "EmailBouncedReason",
    "EmailBouncedDate",
    "IsEmailBounced",
    "PhotoUrl",
    "Jigsaw",
    "JigsawContactId",
    "CleanStatus",
    "IndividualId",
]
LEAD_FIELDS = [
    "Id",
    "IsDeleted",
    "MasterRecordId",
    "LastName",
    "FirstName",
    "Salutation",
    "Name",
    "Title",
    "Company",
    "Street",
    "City",
    "State",
    "PostalCode",
    "Country",
    "Latitude",
    "Longitude",
    "GeocodeAccuracy",
    "Address",
    "Phone",
    "MobilePhone",
    "Fax",
    "Email",
    "Website",
    "PhotoUrl",
    "Description",
    "LeadSource",
    "Status",
    "Industry",
    "Rating",
    "AnnualRevenue",
    "NumberOfEmployees",
    "OwnerId",
    "HasOptedOutOfEmail",
    "HasOptedOutOfFax",
    "DoNotCall",
    "IsConverted",
    "ConvertedDate",
    "ConvertedAccountId",
    "ConvertedContactId",
    "ConvertedOpportunityId",
    "IsUnreadByOwner",
    "CreatedDate",
    "CreatedById",
    "LastModifiedDate",
    "LastModifiedById",
    "SystemModstamp",
    "LastActivityDate",
    "LastViewedDate",
    "LastReferencedDate",
    "Jigsaw",
    "JigsawContactId",
    "CleanStatus",
    "CompanyDunsNumber",
    "DandbCompanyId",
    "EmailBouncedReason",
    "EmailBouncedDate",
    "IndividualId",
    "IsEmailBounced",
]
ACCOUNT_FIELDS = [
    "Id",
    "IsDeleted",
    "MasterRecordId",
    "Name",
    "Type",
    "RecordTypeId",
    "ParentId",
    "BillingStreet",
    "BillingCity",
    "BillingState",
    "BillingPostalCode",
    "BillingCountry",
    "BillingLatitude",
    "BillingLongitude",
    "BillingGeocodeAccuracy",
    "BillingAddress",
    "ShippingStreet",
    "ShippingCity",
    "ShippingState",
    "ShippingPostalCode",
    "ShippingCountry",
    "ShippingLatitude",
    "ShippingLongitude",
    "ShippingGeocodeAccuracy",
    "ShippingAddress",
    "Phone",
    "Fax",
    "AccountNumber",
    "Website",
    "PhotoUrl",
    "Sic",
    "Industry",
    "AnnualRevenue",
    "NumberOfEmployees",
    "Ownership",
    "TickerSymbol",
    "Description",
    "Rating",
    "Site",
    "OwnerId",
    "CreatedDate",
    "CreatedById",
    "LastModifiedDate",
    "LastModifiedById",
    "SystemModstamp",
    "LastActivityDate",
    "LastViewedDate",
    "LastReferencedDate",
    "Jigsaw",
    "JigsawCompanyId",
    "CleanStatus",
    "AccountSource",
    "DunsNumber",
    "Tradestyle",
    "NaicsCode",
    "NaicsDesc",
    "YearStarted",
    "SicDesc",
    "DandbCompanyId",
]


def _fields(sf: Salesforce, obj: str) -> dict[str, dict[str, Any]]:
    return {f["name"]: f for f in getattr(sf, obj).describe()["fields"]}


@pytest.mark.parametrize(
    ("obj", "names"),
    [("Contact", CONTACT_FIELDS), ("Lead", LEAD_FIELDS), ("Account", ACCOUNT_FIELDS)],
)
def test_every_standard_field_is_described(sf: Salesforce, obj: str, names: list[str]) -> None:
    described = _fields(sf, obj)
    assert sorted(set(names) - set(described)) == []
    standard = {n for n, f in described.items() if not f["custom"]}
    assert sorted(standard - set(names)) == []


def test_field_facts(sf: Salesforce) -> None:
    contact = _fields(sf, "Contact")
    assert contact["Title"]["length"] == 128 and contact["Title"]["updateable"] is True
    assert contact["Title"]["byteLength"] == 384
    assert contact["LastName"]["nillable"] is False
    assert [v["value"] for v in contact["Salutation"]["picklistValues"]] == [
        "Mr.",
        "Ms.",
        "Mrs.",
        "Dr.",
        "Prof.",
    ]
    addr = contact["MailingAddress"]
    assert (addr["type"], addr["soapType"], addr["createable"], addr["updateable"]) == (
        "address",
        "urn:address",
        False,
        False,
    )
    assert addr["queryByDistance"] is True
    assert contact["MailingCity"]["compoundFieldName"] == "MailingAddress"
    account_id = contact["AccountId"]
    assert account_id["referenceTo"] == ["Account"] and account_id["relationshipName"] == "Account"
    for name in ("HasOptedOutOfFax", "DoNotCall", "HasOptedOutOfEmail"):
        f = contact[name]
        assert (f["type"], f["defaultValue"], f["nillable"], f["defaultedOnCreate"]) == (
            "boolean",
            False,
            False,
            True,
        )
    lead = _fields(sf, "Lead")
    status = lead["Status"]
    assert status["defaultValue"] == "Open - Not Contacted"
    assert [v["value"] for v in status["picklistValues"] if v["defaultValue"]] == [
        "Open - Not Contacted"
    ]
    assert [v["value"] for v in lead["Rating"]["picklistValues"]] == ["Hot", "Warm", "Cold"]
    bounced = lead["EmailBouncedReason"]
    assert (bounced["createable"], bounced["updateable"]) == (False, True)
    assert (
        lead["AnnualRevenue"]["type"] == "currency" and lead["NumberOfEmployees"]["type"] == "int"
    )


def test_account_contacts_child_relationship(sf: Salesforce) -> None:
    rels = sf.Account.describe()["childRelationships"]
    contacts = [r for r in rels if r["relationshipName"] == "Contacts"]
    assert contacts == [
        {
            "cascadeDelete": False,
            "childSObject": "Contact",
            "deprecatedAndHidden": False,
            "field": "AccountId",
            "junctionIdListNames": [],
            "junctionReferenceTo": [],
            "relationshipName": "Contacts",
            "restrictedDelete": False,
        }
    ]


def test_writes_to_any_updateable_standard_field(sf: Salesforce) -> None:
    acct = sf.Account.create({"Name": "Acme", "Industry": "Banking", "NumberOfEmployees": 12})
    cid = sf.Contact.create(
        {
            "LastName": "Lovelace",
            "FirstName": "Ada",
            "AccountId": acct["id"],
            "MailingCity": "London",
            "MailingLatitude": 51.5,
            "Birthdate": "1815-12-10",
        }
    )["id"]
    assert sf.Contact.update(cid, {"Title": "Analyst", "DoNotCall": True}) == 204
    got = sf.Contact.get(cid)
    assert got["Title"] == "Analyst" and got["DoNotCall"] is True
    assert got["Name"] == "Ada Lovelace"
    assert got["Birthdate"] == "1815-12-10"
    assert got["MailingAddress"] == {
        "street": None,
        "city": "London",
        "state": None,
        "postalCode": None,
        "country": None,
        "latitude": 51.5,
        "longitude": None,
        "geocodeAccuracy": None,
    }
    assert got["OtherAddress"] is None
    account = sf.Account.get(acct["id"])
    assert account["NumberOfEmployees"] == 12 and account["BillingAddress"] is None


def test_write_errors(emu: Emulator) -> None:
    raw = Raw(emu)
    cid = raw.post("sobjects/Contact", json={"LastName": "X"}).json()["id"]
    compound = raw.patch(f"sobjects/Contact/{cid}", json={"MailingAddress": {"city": "x"}})
    assert error_code(compound) == "INVALID_FIELD_FOR_INSERT_UPDATE"
    system = raw.patch(f"sobjects/Contact/{cid}", json={"CreatedById": cid})
    assert error_code(system) == "INVALID_FIELD_FOR_INSERT_UPDATE"
    bad_ref = raw.patch(f"sobjects/Contact/{cid}", json={"AccountId": "001000000000000AAA"})
    assert bad_ref.status_code == 400
    assert error_code(bad_ref) == "INVALID_CROSS_REFERENCE_KEY"
    picklist = raw.patch(f"sobjects/Contact/{cid}", json={"CleanStatus": "Bogus"})
    assert error_code(picklist) == "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST"
    bounce = raw.post(
        "sobjects/Lead", json={"LastName": "L", "Company": "C", "EmailBouncedReason": "x"}
    )
    assert error_code(bounce) == "INVALID_FIELD_FOR_INSERT_UPDATE"
    lead = raw.post("sobjects/Lead", json={"LastName": "L", "Company": "C"}).json()["id"]
    assert raw.patch(f"sobjects/Lead/{lead}", json={"EmailBouncedReason": "x"}).status_code == 204
    no_name = raw.post("sobjects/Account", json={"Site": "x"})
    assert error_code(no_name) == "REQUIRED_FIELD_MISSING"


def test_fls_hides_and_protects_new_fields(emu: Emulator, sf: Salesforce) -> None:
    emu.control("PUT", "fields/Contact/Title", {"visible": True, "updateable": False})
    assert _fields(sf, "Contact")["Title"]["updateable"] is False
    cid = sf.Contact.create({"LastName": "F"})["id"]
    resp = Raw(emu).patch(f"sobjects/Contact/{cid}", json={"Title": "x"})
    assert error_code(resp) == "INVALID_FIELD_FOR_INSERT_UPDATE"
    emu.control("PUT", "fields/Contact/Title", {"visible": False, "updateable": False})
    assert "Title" not in _fields(sf, "Contact")


def test_object_files_carry_the_field_lists() -> None:
    assert {f.name for f in object_def("Contact").fields} == set(CONTACT_FIELDS)

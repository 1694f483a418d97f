"""Person Accounts (org option): describe, SOQL, writes, the PersonContact, Bulk and CDC."""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

import pytest
import requests
from simple_salesforce import Salesforce
from simple_salesforce.exceptions import SalesforceMalformedRequest

from optsync.emulator import Emulator, EmulatorOptions
from optsync.emulator.schema import PERSON_RECORD_TYPE_ID
from optsync.emulator.server import build_org

from .helpers import Raw, error_code
from .test_pubsub import ALL, Client, header, ready

pytestmark = pytest.mark.emulator

PERSON_FIELDS = {
    "IsPersonAccount",
    "PersonContactId",
    "FirstName",
    "LastName",
    "Salutation",
    "PersonEmail",
    "PersonHasOptedOutOfEmail",
    "PersonHasOptedOutOfFax",
    "PersonDoNotCall",
    "PersonEmailBouncedDate",
    "PersonEmailBouncedReason",
    "PersonMailingStreet",
    "PersonMailingCity",
    "PersonMailingAddress",
    "PersonOtherAddress",
    "PersonTitle",
    "PersonMobilePhone",
    "PersonBirthdate",
    "Sales_Opt_Out__pc",
}


def _enable(emu: Emulator) -> None:
    assert emu.control("PUT", "org", {"person_accounts": True}) == {"person_accounts": True}


def _person(sf: Salesforce, **values: Any) -> str:
    body = {"RecordTypeId": PERSON_RECORD_TYPE_ID, "LastName": "Lee", **values}
    return str(sf.Account.create(body)["id"])


def test_option_off_is_an_org_without_person_accounts(emu: Emulator, sf: Salesforce) -> None:
    assert emu.control("GET", "org") == {"person_accounts": False}
    names = {f["name"] for f in sf.Account.describe()["fields"]}
    assert not names & PERSON_FIELDS
    assert "IsPersonAccount" not in {f["name"] for f in sf.Contact.describe()["fields"]}
    resp = Raw(emu).get("query", params={"q": "SELECT PersonEmail FROM Account"})
    assert resp.status_code == 400 and error_code(resp) == "INVALID_FIELD"
    acct = sf.Account.create({"Name": "Acme"})["id"]
    assert sf.Account.get(acct)["Name"] == "Acme"


def test_describe_lists_person_fields_and_record_type(emu: Emulator, sf: Salesforce) -> None:
    _enable(emu)
    describe = sf.Account.describe()
    fields = {f["name"]: f for f in describe["fields"]}
    assert set(fields) >= PERSON_FIELDS
    opt = fields["PersonHasOptedOutOfEmail"]
    assert (opt["type"], opt["defaultValue"], opt["nillable"], opt["updateable"]) == (
        "boolean",
        False,
        False,
        True,
    )
    assert fields["PersonEmail"]["type"] == "email"
    assert fields["Sales_Opt_Out__pc"]["custom"] is True
    assert fields["IsPersonAccount"]["updateable"] is False
    assert fields["PersonContactId"]["referenceTo"] == ["Contact"]
    assert fields["PersonMailingAddress"]["type"] == "address"
    assert fields["PersonMailingCity"]["compoundFieldName"] == "PersonMailingAddress"
    types = {r["developerName"]: r["recordTypeId"] for r in describe["recordTypeInfos"]}
    assert types["PersonAccount"] == PERSON_RECORD_TYPE_ID
    contact = {f["name"] for f in sf.Contact.describe()["fields"]}
    assert "IsPersonAccount" in contact


def test_person_account_has_a_person_contact_found_by_contact_soql(
    emu: Emulator, sf: Salesforce
) -> None:
    _enable(emu)
    acct = _person(sf, FirstName="Ann", PersonEmail="Ann@Example.com")
    assert acct.startswith("001")
    row = sf.query(
        "SELECT Id, Name, IsPersonAccount, PersonEmail, PersonContactId, "
        f"PersonContact.Email FROM Account WHERE Id = '{acct}'"
    )["records"][0]
    assert row["IsPersonAccount"] is True
    assert row["Name"] == "Ann Lee"
    assert row["PersonContactId"].startswith("003")
    assert row["PersonContact"]["Email"] == "Ann@Example.com"
    contacts = sf.query(
        "SELECT Id, AccountId, IsPersonAccount, FirstName FROM Contact "
        "WHERE Email = 'ann@example.com'"
    )["records"]
    assert [(c["Id"], c["AccountId"], c["IsPersonAccount"]) for c in contacts] == [
        (row["PersonContactId"], acct, True)
    ]
    by_email = sf.query("SELECT Id FROM Account WHERE PersonEmail = 'ANN@example.com'")
    assert by_email["totalSize"] == 1
    business = sf.Account.create({"Name": "Acme"})["id"]
    assert sf.Account.get(business)["IsPersonAccount"] is False
    assert sf.Account.get(business)["PersonContactId"] is None


def test_writing_the_account_keeps_the_person_contact_in_sync(
    emu: Emulator, sf: Salesforce
) -> None:
    _enable(emu)
    a = _person(sf, PersonEmail="a@example.com")
    b = _person(sf, PersonEmail="b@example.com")
    sf.Account.update(a, {"Sales_Opt_Out__pc": True, "FirstName": "Ada"})
    result = sf.restful(
        "composite/sobjects",
        method="PATCH",
        json={
            "records": [
                {"attributes": {"type": "Account"}, "id": i, "PersonHasOptedOutOfEmail": True}
                for i in (a, b)
            ]
        },
    )
    assert [r["success"] for r in result] == [True, True]
    for acct in (a, b):
        account = emu.control("GET", f"records/{acct}")
        contact = emu.control("GET", f"records/{account['PersonContactId']}")
        assert contact["HasOptedOutOfEmail"] is True
        assert contact["Email"] == account["PersonEmail"]
        assert contact["SystemModstamp"] == account["SystemModstamp"]
    account = emu.control("GET", f"records/{a}")
    contact = emu.control("GET", f"records/{account['PersonContactId']}")
    assert contact["Sales_Opt_Out__c"] is True
    assert (account["Name"], contact["FirstName"]) == ("Ada Lee", "Ada")


def test_person_rules_refuse_the_wrong_record(emu: Emulator, sf: Salesforce) -> None:
    _enable(emu)
    acct = _person(sf)
    contact = sf.Account.get(acct)["PersonContactId"]
    with pytest.raises(SalesforceMalformedRequest) as exc:
        sf.Contact.update(contact, {"HasOptedOutOfEmail": True})
    assert exc.value.content[0]["errorCode"] == "INSUFFICIENT_ACCESS_OR_READONLY"
    result = sf.restful(
        "composite/sobjects",
        method="PATCH",
        json={"records": [{"attributes": {"type": "Contact"}, "id": contact, "Title": "x"}]},
    )
    assert result[0]["errors"][0]["statusCode"] == "INSUFFICIENT_ACCESS_OR_READONLY"
    with pytest.raises(SalesforceMalformedRequest):
        sf.Contact.delete(contact)
    with pytest.raises(SalesforceMalformedRequest) as exc:
        sf.Account.update(acct, {"Name": "Renamed"})
    assert exc.value.content[0]["message"] == (
        "Person Account: bad field names on insert/update call: Name"
    )
    business = sf.Account.create({"Name": "Acme"})["id"]
    with pytest.raises(SalesforceMalformedRequest) as exc:
        sf.Account.update(business, {"PersonEmail": "x@example.com"})
    assert exc.value.content[0]["errorCode"] == "INVALID_FIELD_FOR_INSERT_UPDATE"
    with pytest.raises(SalesforceMalformedRequest):
        sf.Account.create({"Name": "Acme", "LastName": "Lee"})
    with pytest.raises(SalesforceMalformedRequest) as exc:
        sf.Account.create({"RecordTypeId": PERSON_RECORD_TYPE_ID, "FirstName": "No"})
    assert exc.value.content[0]["errorCode"] == "REQUIRED_FIELD_MISSING"
    sf.Account.delete(acct)
    assert emu.control("GET", f"records/{contact}")["IsDeleted"] is True
    assert sf.query("SELECT Id FROM Contact")["totalSize"] == 0


def test_option_cannot_be_turned_off_with_person_accounts(emu: Emulator, sf: Salesforce) -> None:
    _enable(emu)
    _person(sf)
    with pytest.raises(requests.HTTPError) as exc:
        emu.control("PUT", "org", {"person_accounts": False})
    assert exc.value.response.status_code == 400
    with pytest.raises(requests.HTTPError):
        emu.control("PUT", "org", {"person_accounts": "yes"})
    emu.reset()  # reset restores the start-up option (off)
    assert emu.control("GET", "org") == {"person_accounts": False}


def test_bulk_query_and_ingest_see_person_fields(emu: Emulator, sf: Salesforce) -> None:
    _enable(emu)
    ids = [_person(sf, PersonEmail=f"p{i}@example.com") for i in range(3)]
    rows = []
    for chunk in sf.bulk2.Account.query(
        "SELECT Id, PersonEmail, IsPersonAccount FROM Account ORDER BY PersonEmail", wait=0
    ):
        rows.extend(csv.DictReader(io.StringIO(chunk)))
    assert [r["PersonEmail"] for r in rows] == [f"p{i}@example.com" for i in range(3)]
    assert {r["IsPersonAccount"] for r in rows} == {"true"}
    result = sf.bulk2.Account.update(
        records=[{"Id": i, "PersonHasOptedOutOfEmail": "true"} for i in ids], wait=0
    )
    assert result[0]["numberRecordsProcessed"] == 3
    assert result[0]["numberRecordsFailed"] == 0
    opted = sf.query(
        "SELECT Id FROM Contact WHERE HasOptedOutOfEmail = true AND IsPersonAccount = true"
    )
    assert opted["totalSize"] == 3


def test_both_change_events_and_schemas(emu: Emulator, sf: Salesforce) -> None:
    _enable(emu)
    emu.control("PUT", "pubsub/entities", {"selected": ["Contact", "Account"]})
    acct = _person(sf, PersonEmail="cdc@example.com")
    client = Client(emu)
    try:
        sub = client.subscribe(ALL)
        ready(emu)
        sf.Account.update(acct, {"PersonHasOptedOutOfEmail": True})
        events = [client.decode(e) for e in sub.events(2)]
        by_entity = {header(e)["entityName"]: e for e in events}
        assert set(by_entity) == {"Account", "Contact"}
        assert by_entity["Account"]["PersonHasOptedOutOfEmail"] is True
        assert by_entity["Contact"]["HasOptedOutOfEmail"] is True
        assert header(by_entity["Account"])["changeType"] == "UPDATE"
        assert len({header(e)["transactionKey"] for e in events}) == 1
        sub.close()
    finally:
        client.channel.close()


def test_start_up_option_and_cli_flag(tmp_path: Path) -> None:
    org, _ = build_org(EmulatorOptions(data_dir=tmp_path, memory=True, person_accounts=True))
    try:
        assert "PersonEmail" in org.store.visible_fields("Account")
        org.reset()
        assert org.store.person_accounts is True  # reset keeps the start-up option
    finally:
        org.jobs.close()
        org.store.close()
    params = {p.name for p in click_command().params}
    assert "person_accounts" in params


def click_command() -> Any:
    import typer.main

    from optsync.cli.emulator import emulator

    app = typer.Typer()
    app.command()(emulator)
    return typer.main.get_command(app)


def test_composite_lookup_and_fan_out_over_every_record_of_an_address(
    emu: Emulator, sf: Salesforce
) -> None:
    """The push pattern: one composite finds every record of an address by email (case
    differences included) and a second sets the field on all of them."""
    _enable(emu)
    person = _person(sf, PersonEmail="Ann@Example.com")
    contact = sf.Contact.create({"LastName": "Lee", "Email": "ann@example.com"})["id"]
    lead = sf.Lead.create({"LastName": "Lee", "Company": "X", "Email": "ANN@example.com"})["id"]
    b = "/services/data/v59.0"
    where = "IN+('ann@example.com')"
    found = sf.restful(
        "composite",
        method="POST",
        json={
            "compositeRequest": [
                {
                    "method": "GET",
                    "url": f"{b}/query?q=SELECT+Id+FROM+Contact+WHERE+Email+{where}+"
                    "AND+IsPersonAccount+=+false",
                    "referenceId": "contacts",
                },
                {
                    "method": "GET",
                    "url": f"{b}/query?q=SELECT+Id+FROM+Lead+WHERE+Email+{where}+"
                    "AND+IsConverted+=+false",
                    "referenceId": "leads",
                },
                {
                    "method": "GET",
                    "url": f"{b}/query?q=SELECT+Id+FROM+Account+WHERE+PersonEmail+{where}",
                    "referenceId": "persons",
                },
            ]
        },
    )["compositeResponse"]
    ids = {r["referenceId"]: [x["Id"] for x in r["body"]["records"]] for r in found}
    assert ids == {"contacts": [contact], "leads": [lead], "persons": [person]}
    records = [
        {"attributes": {"type": "Contact"}, "id": contact, "HasOptedOutOfEmail": True},
        {"attributes": {"type": "Lead"}, "id": lead, "HasOptedOutOfEmail": True},
        {"attributes": {"type": "Account"}, "id": person, "PersonHasOptedOutOfEmail": True},
    ]
    out = sf.restful(
        "composite",
        method="POST",
        json={
            "compositeRequest": [
                {
                    "method": "PATCH",
                    "url": f"{b}/composite/sobjects",
                    "referenceId": "set",
                    "body": {"allOrNone": False, "records": records},
                }
            ]
        },
    )["compositeResponse"]
    assert [r["success"] for r in out[0]["body"]] == [True, True, True]
    opted = sf.query("SELECT COUNT() FROM Contact WHERE HasOptedOutOfEmail = true")
    assert opted["totalSize"] == 2  # the Contact and the person account's PersonContact
    assert emu.control("GET", "counters")["by_endpoint"]["composite"] == 2

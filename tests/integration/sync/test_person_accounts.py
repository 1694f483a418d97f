"""Person Accounts in the nightly run (issue 16): an org with Person Accounts has its
Accounts mirrored, staged, pulled and pushed like Contacts and Leads (the field's person
form on the Account), the hidden PersonContacts counted nowhere; an org without them
costs no extra call. Emulator, SQLite and PostgreSQL, by REST and by Bulk."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select

from optsync.emulator.schema import PERSON_RECORD_TYPE_ID
from optsync.services.sync_run import run_sync
from optsync.store.models import LedgerEntry, SalesforceRecord, SyncRun
from optsync.store.records import MirroredRecord, save_mirror_state, upsert_records
from tests.integration.sync.conftest import (
    BULK,
    FAST,
    add_persons,
    person,
    remote,
    set_field,
)

PATHS = {"rest": FAST, "bulk": BULK}


def _enable(emu) -> None:
    emu.control("PUT", "org", {"person_accounts": True})


def _person_account(sf, email: str, **values: Any) -> tuple[str, str]:
    """A Salesforce user creates a Person Account; returns it and its PersonContact."""
    body = {"RecordTypeId": PERSON_RECORD_TYPE_ID, "LastName": "Lee", "PersonEmail": email}
    account = sf.Account.create({**body, **values})["id"]
    return account, sf.Account.get(account)["PersonContactId"]


def _contact(sf, email: str, **values: Any) -> str:
    return sf.Contact.create({"LastName": "Kim", "Email": email, **values})["id"]


def _mirrored(db, record_id: str) -> SalesforceRecord | None:
    with db.transaction() as s:
        row = s.get(SalesforceRecord, record_id)
        if row is not None:
            s.expunge(row)
        return row


@pytest.mark.parametrize("path", sorted(PATHS))
def test_an_opted_out_person_account_opts_out_its_address(db, clock, emu, sf, gateway, path):
    _enable(emu)
    account, person_contact = _person_account(sf, "Ann@Example.com", PersonHasOptedOutOfEmail=True)
    _person_account(sf, "bo@example.com")  # not opted out
    _contact(sf, "cy@example.com")
    ann, bo, cy = add_persons(
        db, clock, [{"email": e} for e in ("ann@example.com", "bo@example.com", "cy@example.com")]
    )

    report = run_sync(db, gateway, clock=clock, options=PATHS[path])

    assert report["status"] == "succeeded", report["error"]
    assert report["fetch_via"] == {"Contact": path, "Lead": "rest", "Account": path}  # no Lead
    assert person(db, ann).unsubscribed and person(db, ann).unsubscribe_source == "salesforce"
    assert not person(db, bo).unsubscribed and not person(db, cy).unsubscribed
    with db.transaction() as s:
        [entry] = s.scalars(select(LedgerEntry).where(LedgerEntry.person_id == ann))
        assert entry.evidence["record_id"] == account
    # each person record once: the Account, never its hidden PersonContact
    assert report["remote_opted_out"] == 1 and report["pulled"] == 1
    assert report["mirror"]["records_read"] == 3
    assert report["duplicates"] == 0
    mirrored = _mirrored(db, account)
    assert mirrored is not None and mirrored.object == "Account"
    assert mirrored.email == "ann@example.com" and mirrored.email_opt_out is True
    assert _mirrored(db, person_contact) is None
    # the person is linked to the Person Account (it ranks with the Contacts)
    assert person(db, ann).salesforce_id == account
    again = run_sync(db, gateway, clock=clock, options=PATHS[path])
    assert (again["pulled"], again["pushed"], again["failed"]) == (0, 0, {})


@pytest.mark.parametrize("path", sorted(PATHS))
@pytest.mark.parametrize(
    ("choice", "field", "account_field"),
    [
        ("email_opt_out", "HasOptedOutOfEmail", "PersonHasOptedOutOfEmail"),
        ("sales_opt_out", "Sales_Opt_Out__c", "Sales_Opt_Out__pc"),
    ],
)
def test_an_unsubscribed_address_sets_its_person_account(
    db, clock, emu, sf, gateway, path, choice, field, account_field
):
    _enable(emu)
    set_field(db, clock, choice)
    account, person_contact = _person_account(sf, "dee@example.com")
    contact = _contact(sf, "DEE@example.com")  # a duplicate Contact of the address
    linked, _ = _person_account(sf, "eve@example.com")
    [dee, eve] = add_persons(
        db,
        clock,
        [
            {"email": "dee@example.com", "unsubscribed": True},
            {"email": "eve@example.com", "unsubscribed": True},
        ],
    )
    with db.transaction() as s:  # eve is linked to her Person Account
        from optsync.store.models import Person

        p = s.get(Person, eve)
        p.salesforce_id, p.salesforce_object = linked, "Account"

    report = run_sync(db, gateway, clock=clock, options=PATHS[path])

    assert report["status"] == "succeeded", report["error"]
    assert report["failed"] == {}, report["failures"]
    assert report["records_set"] == {"Account": 2, "Contact": 1}
    for record in (account, linked):
        rec = remote(emu, record)
        assert rec[account_field] is True
        other = {"PersonHasOptedOutOfEmail", "Sales_Opt_Out__pc"} - {account_field}
        assert rec[other.pop()] is False
    assert remote(emu, contact)[field] is True
    assert remote(emu, person_contact)[field] is True  # through its Account
    assert person(db, dee).unsubscribed and person(db, eve).unsubscribed
    again = run_sync(db, gateway, clock=clock, options=PATHS[path])
    assert (again["pulled"], again["pushed"], again["failed"]) == (0, 0, {})
    assert again["remote_opted_out"] == 3


def test_an_org_without_person_accounts_costs_no_extra_calls(db, clock, emu, sf, gateway):
    seed = emu.seed(contacts=3, leads=3)
    emu.control("PATCH", f"records/{seed['contact_ids'][0]}", {"HasOptedOutOfEmail": True})
    add_persons(db, clock, [{"salesforce_id": seed["lead_ids"][0], "unsubscribed": True}])

    report = run_sync(db, gateway, clock=clock, options=FAST)

    assert report["status"] == "succeeded", report["error"]
    assert report["fetch_via"] == {"Contact": "rest", "Lead": "rest"}
    assert not [e for e in gateway.calls_by_endpoint if "Account" in e], gateway.calls_by_endpoint
    # 2 describes, a COUNT() and a page per object, one sObject Collections call
    assert report["api_calls"] == 7, gateway.calls_by_endpoint


def test_a_mirror_read_before_person_accounts_reads_them_in_full(db, clock, emu, sf, gateway):
    """A mirror built by runs that did not read Accounts (before this change, or before
    the org enabled Person Accounts) is trusted for Contacts and Leads, not for Accounts:
    they are read in full once, and the PersonContacts those runs mirrored as Contacts
    are forgotten."""
    _enable(emu)
    account, person_contact = _person_account(sf, "fay@example.com", PersonHasOptedOutOfEmail=True)
    [fay] = add_persons(db, clock, [{"email": "fay@example.com"}])
    now = clock()
    # the watermark is past every record of the org: an incremental read finds nothing
    through = datetime.now(UTC) + timedelta(hours=1)
    with db.transaction() as s:
        # what an earlier run left: a trusted mirror, its Contact read, no Account read
        upsert_records(
            s, [MirroredRecord(person_contact, "Contact", "fay@example.com", False)], now
        )
        save_mirror_state(s, now, through=through, complete=True, trusted=True)
        s.add(
            SyncRun(
                trigger="manual",
                dry_run=False,
                status="succeeded",
                field="HasOptedOutOfEmail",
                started_at=now - timedelta(hours=1),
                finished_at=now - timedelta(hours=1),
                report={"fetch_via": {"Contact": "rest", "Lead": "rest"}},
            )
        )

    report = run_sync(db, gateway, clock=clock, options=FAST)

    assert report["status"] == "succeeded", report["error"]
    assert report["mirror"]["read"] == "incremental"
    assert report["mirror"]["full_objects"] == ["Account"]
    assert person(db, fay).unsubscribed
    mirrored = _mirrored(db, account)
    assert mirrored is not None and mirrored.object == "Account"
    assert _mirrored(db, person_contact) is None
    assert report["failed"] == {} and report["pushed"] == 0
    again = run_sync(db, gateway, clock=clock, options=FAST)
    assert again["mirror"]["full_objects"] == []
    assert (again["pulled"], again["pushed"], again["failed"]) == (0, 0, {})


def test_the_setup_check_covers_the_person_field_on_account(db, clock, emu, sf, gateway):
    _enable(emu)
    set_field(db, clock, "sales_opt_out")
    account, _ = _person_account(sf, "gus@example.com")
    [gus] = add_persons(db, clock, [{"email": "gus@example.com", "unsubscribed": True}])
    emu.control("PUT", "fields/Account/Sales_Opt_Out__pc", {"visible": True, "updateable": False})

    report = run_sync(db, gateway, clock=clock, options=FAST)

    assert report["status"] == "failed"
    assert "Account.Sales_Opt_Out__pc is read-only" in report["error"]
    assert remote(emu, account)["Sales_Opt_Out__pc"] is False
    assert person(db, gus).unsubscribed

"""The nightly's mirror reads: what they select and filter, and how a Person Account row
becomes a mirrored record."""

from __future__ import annotations

from datetime import UTC, datetime

from optsync.salesforce.replication import mirror_query, mirror_where, mirrored, person_contact

SINCE = datetime(2026, 12, 1, 4, 0, 0, 123000, tzinfo=UTC)


def test_reads_of_an_org_without_person_accounts():
    assert mirror_query("Contact", "HasOptedOutOfEmail", None) == (
        "SELECT Id, Email, HasOptedOutOfEmail, SystemModstamp FROM Contact WHERE Id != null"
    )
    assert mirror_query("Lead", "Sales_Opt_Out__c", SINCE) == (
        "SELECT Id, Email, Sales_Opt_Out__c, IsConverted, SystemModstamp FROM Lead "
        "WHERE SystemModstamp > 2026-12-01T04:00:00.123Z"
    )


def test_reads_of_an_org_with_person_accounts():
    assert mirror_query("Account", "Sales_Opt_Out__c", SINCE, person_accounts=True) == (
        "SELECT Id, PersonEmail, Sales_Opt_Out__pc, PersonContactId, SystemModstamp FROM "
        "Account WHERE IsPersonAccount = true AND SystemModstamp > 2026-12-01T04:00:00.123Z"
    )
    # the hidden PersonContacts are no records of their own: the Account is
    assert mirror_where("Contact", None, person_accounts=True) == (
        "IsPersonAccount = false AND Id != null"
    )
    assert mirror_where("Lead", None, person_accounts=True) == "Id != null"


def test_a_person_account_row_is_mirrored_with_its_person_fields():
    row = {
        "Id": "0015g0000000001AAA",
        "PersonEmail": "Ann@Example.com",
        "PersonHasOptedOutOfEmail": "true",
        "PersonContactId": "0035g0000000002AAA",
        "SystemModstamp": "2026-12-01T04:00:00.000+0000",
    }
    record = mirrored("Account", "HasOptedOutOfEmail", row)
    assert (record.record_id, record.object, record.email) == (
        "0015g0000000001AAA",
        "Account",
        "Ann@Example.com",
    )
    assert (record.email_opt_out, record.sales_opt_out) == (True, None)
    assert record.system_modstamp == datetime(2026, 12, 1, 4, 0, tzinfo=UTC)
    assert person_contact(row) == "0035g0000000002AAA"
    assert person_contact({"Id": "0035g0000000003AAA"}) is None

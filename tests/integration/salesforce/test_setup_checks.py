"""Setup checks over the emulator and both databases."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from optsync.emulator import Emulator
from optsync.salesforce.gateway import SalesforceGateway
from optsync.services import sync_settings
from optsync.services.salesforce_setup import cdc_check, run_checks
from optsync.store.db import Database
from optsync.store.models import Person, SyncSettings

from .conftest import config_for

pytestmark = pytest.mark.emulator
NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)


def _person(n: int, salesforce_id: str | None, unsubscribed: bool) -> Person:
    return Person(
        email=f"p{n}@example.com",
        salesforce_id=salesforce_id,
        salesforce_object="Contact" if salesforce_id else None,
        unsubscribed=unsubscribed,
        created_at=NOW,
        updated_at=NOW,
    )


def test_all_checks_pass_on_a_healthy_org(
    db: Database, emu: Emulator, gateway: SalesforceGateway
) -> None:
    contact = emu.seed(contacts=1)["contact_ids"][0]
    with db.transaction() as s:
        s.add_all([_person(1, contact, True), _person(2, None, False)])
    checks = run_checks(gateway, db)
    assert [c.name for c in checks] == [
        "connection",
        "HasOptedOutOfEmail on Contact",
        "HasOptedOutOfEmail on Lead",
        "persons linked",
    ]
    assert all(c.ok for c in checks), checks
    assert "1 of 2 persons are linked" in checks[3].detail


def test_sync_off_checks_email_opt_out_even_if_sales_opt_out_is_selected(
    db: Database, emu: Emulator, gateway: SalesforceGateway
) -> None:
    emu.control("PUT", "fields/Lead/Sales_Opt_Out__c", {"visible": False, "updateable": False})
    with db.transaction() as s:
        sync_settings.update_settings(s, {"field": "sales_opt_out"}, actor="t", now=NOW)
    assert all(c.ok for c in run_checks(gateway, db))
    with db.transaction() as s:
        sync_settings.update_settings(s, {"sync_enabled": True}, actor="t", now=NOW)
    checks = {c.name: c for c in run_checks(gateway, db)}
    assert checks["Sales_Opt_Out__c on Contact"].ok
    lead = checks["Sales_Opt_Out__c on Lead"]
    assert not lead.ok and lead.fix is not None and "field-level security" in lead.fix


def test_an_address_not_in_salesforce_is_no_failure_only_what_an_admin_can_fix_is(
    db: Database, gateway: SalesforceGateway
) -> None:
    from optsync.store.records import MirroredRecord, upsert_records

    with db.transaction() as s:
        s.add_all([_person(n, None, True) for n in (1, 2, 3)] + [_person(4, None, False)])
        upsert_records(
            s,
            [
                MirroredRecord("00Q000000000001AAA", "Lead", "p2@example.com"),
                MirroredRecord("003000000000003AAA", "Contact", "p3@example.com"),
            ],
            NOW,
        )
    linked = run_checks(gateway, db)[-1]
    # p1 has no record: Not in Salesforce; p2's Lead and p3's Contact the rule links next run
    assert linked.ok, linked
    assert "1 unsubscribed addresses are Not in Salesforce" in linked.detail
    assert "2 will be linked by the next sync run" in linked.detail
    with db.transaction() as s:
        sync_settings.update_settings(s, {}, actor="t", now=NOW)
        row = s.get(SyncSettings, 1)
        assert row is not None
        row.link_rule = "contact_only"
    linked = run_checks(gateway, db)[-1]
    # under contact_only, p2 is in Salesforce only as a Lead: that an admin can act on
    assert not linked.ok and "p2@example.com" in linked.detail
    assert "p1@example.com" not in linked.detail and "p3@example.com" not in linked.detail
    assert linked.fix is not None and "--link-rule" in linked.fix


def test_without_a_connection_every_remote_check_fails_with_the_fix(db: Database) -> None:
    checks = run_checks(None, db)
    assert [c.ok for c in checks] == [False, False, False, True]
    assert checks[0].fix is not None and "optsync salesforce connect" in checks[0].fix


def test_a_refused_login_is_a_failed_check_not_a_crash(db: Database, emu: Emulator) -> None:
    gw = SalesforceGateway(config_for(emu, client_secret="wrong-secret-value"))
    checks = run_checks(gw, db)
    assert not checks[0].ok and "invalid_client" in checks[0].detail
    assert checks[0].fix is not None and "OPTSYNC_SF_CLIENT_SECRET" in checks[0].fix
    assert "wrong-secret-value" not in str(checks)


def test_change_data_capture_is_checked_for_the_objects_the_live_pull_follows(
    emu: Emulator, gateway: SalesforceGateway
) -> None:
    """Contact and Lead; Account only in an org with Person Accounts (the live pull
    follows it there), and the detail and fix name what is missing."""
    check = cdc_check(gateway, emu.pubsub_url)
    assert check.ok, check
    assert check.name == "Change Data Capture" and "Contact and Lead" in check.detail
    emu.control("PUT", "org", {"person_accounts": True})
    emu.control("PUT", "pubsub/entities", {"selected": ["Contact", "Lead"]})
    with SalesforceGateway(config_for(emu)) as fresh:  # has_person_accounts is per gateway
        check = cdc_check(fresh, emu.pubsub_url)
        assert not check.ok and check.detail == "CDC not enabled for Account."
        assert check.fix and "add Account" in check.fix
        emu.control("PUT", "pubsub/entities", {"selected": ["Contact", "Lead", "Account"]})
        check = cdc_check(fresh, emu.pubsub_url)
        assert check.ok and "Contact, Lead and Account" in check.detail

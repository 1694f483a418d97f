"""Setup checks over the emulator and both databases."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from optsync.emulator import Emulator
from optsync.salesforce.gateway import SalesforceGateway
from optsync.services import sync_settings
from optsync.services.salesforce_setup import run_checks
from optsync.store.db import Database
from optsync.store.models import Person

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
    assert "1 of 2 persons lack a Salesforce id" in checks[3].detail


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


def test_unsubscribed_unlinked_persons_fail_the_check(
    db: Database, gateway: SalesforceGateway
) -> None:
    with db.transaction() as s:
        s.add_all([_person(1, None, True), _person(2, None, False)])
    linked = run_checks(gateway, db)[-1]
    assert not linked.ok and "1 of them are unsubscribed" in linked.detail
    assert linked.fix is not None and "persons import" in linked.fix


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

"""Person Accounts in the live pull (issue 16): when the org has them, the poller and the
Change Data Capture stream (``/data/AccountChangeEvent``) mirror them, opt out their
address when ``PersonHasOptedOutOfEmail`` (or the custom field's ``__pc`` form) is set in
Salesforce, and re-open the push of an unsubscribed address a Person Account gains; the
hidden PersonContact, which Contact reads and Contact change events also carry, is never
mirrored (optsync writes the Account). Emulator, SQLite and PostgreSQL."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select

from optsync.emulator.schema import PERSON_RECORD_TYPE_ID
from optsync.services.live_pull.poller import poll_object
from optsync.store.models import LedgerEntry, OutboxPush, SalesforceRecord
from tests.integration.live.conftest import later, turn_on
from tests.integration.live.test_addresses import _get, _person
from tests.integration.live.test_cdc import live_ctx, running, status, wait_for

__all__ = ["live_ctx", "running"]  # fixtures used below

pytestmark = pytest.mark.emulator


def _enable(emu) -> None:
    emu.control("PUT", "org", {"person_accounts": True})


def _person_account(emu, email: str, **values: Any) -> tuple[str, str]:
    """A Salesforce user creates a Person Account; returns it and its PersonContact."""
    store = emu.org.store
    account = store.create(
        "Account",
        {"RecordTypeId": PERSON_RECORD_TYPE_ID, "LastName": "Lee", "PersonEmail": email, **values},
        enforce_fls=False,
    )
    return account, str(emu.control("GET", f"records/{account}")["PersonContactId"])


def _mirrored(db, record_id: str) -> tuple[str, str | None, bool | None, bool | None] | None:
    with db.transaction() as s:
        row = s.get(SalesforceRecord, record_id)
        if row is None:
            return None
        return (row.object, row.email, row.email_opt_out, row.sales_opt_out)


def _open_pushes(db, pid: int) -> int:
    with db.transaction() as s:
        return len(
            s.scalars(
                select(OutboxPush.id).where(
                    OutboxPush.person_id == pid, OutboxPush.state.in_(("pending", "not_linked"))
                )
            ).all()
        )


def _evidence(db, pid: int) -> list[dict[str, Any]]:
    with db.transaction() as s:
        return [
            dict(e.evidence)
            for e in s.scalars(select(LedgerEntry).where(LedgerEntry.person_id == pid))
        ]


def _poll(db, gw, *objects: str, field: str = "HasOptedOutOfEmail", at: float = 61) -> None:
    for obj in objects:
        poll_object(db, gw, obj, field, later(at))


@pytest.mark.parametrize(
    ("setting", "ticked", "column"),
    [
        ("email_opt_out", "PersonHasOptedOutOfEmail", 2),
        ("sales_opt_out", "Sales_Opt_Out__pc", 3),
    ],
)
def test_a_poll_opts_out_the_address_of_a_ticked_person_account(
    emu, db, sf_gateway, setting, ticked, column
):
    _enable(emu)
    turn_on(db, field=setting)
    field = "HasOptedOutOfEmail" if setting == "email_opt_out" else "Sales_Opt_Out__c"
    account, person_contact = _person_account(emu, "Pat.Lee@Example.com")
    pid = _person(db, "pat.lee@example.com")
    _poll(db, sf_gateway, "Contact", "Account", field=field)  # the cursors start here

    emu.control("PATCH", f"records/{account}", {ticked: True})
    _poll(db, sf_gateway, "Contact", "Account", field=field, at=122)

    assert _get(db, pid).unsubscribed
    [evidence] = _evidence(db, pid)
    assert (evidence["record_id"], evidence["via"]) == (account, "poll")
    mirrored = _mirrored(db, account)
    assert mirrored is not None and mirrored[:2] == ("Account", "pat.lee@example.com")
    assert mirrored[column] is True
    # the Contact poll saw the PersonContact change too, and left it out
    assert _mirrored(db, person_contact) is None


def test_a_poll_reopens_the_push_of_an_address_a_person_account_gains(emu, db, sf_gateway):
    _enable(emu)
    turn_on(db)
    pid = _person(db, "quinn@example.com", unsubscribed=True)
    _poll(db, sf_gateway, "Account")
    assert _open_pushes(db, pid) == 0

    account, _ = _person_account(emu, "QUINN@example.com")
    _poll(db, sf_gateway, "Account", at=122)

    assert _open_pushes(db, pid) == 1
    assert _mirrored(db, account) == ("Account", "quinn@example.com", False, None)


def test_a_business_account_is_not_mirrored(emu, db, sf_gateway):
    _enable(emu)
    turn_on(db)
    _poll(db, sf_gateway, "Account")
    business = emu.org.store.create("Account", {"Name": "Acme"}, enforce_fls=False)
    _poll(db, sf_gateway, "Account", at=122)
    assert _mirrored(db, business) is None


def test_the_stream_mirrors_person_accounts_and_opts_out_their_address(emu, live_ctx, running):
    db = live_ctx.db
    _enable(emu)
    emu.control("PUT", "pubsub/entities", {"selected": ["Contact", "Lead", "Account"]})
    ticked = _person(db, "rae@example.com")
    unsub = _person(db, "sam@example.com", unsubscribed=True)
    account, person_contact = _person_account(emu, "rae@example.com")
    turn_on(db, live_pull="cdc")
    running()
    wait_for(lambda: all(status(db, o) == "live" for o in ("Contact", "Lead", "Account")))

    emu.control("PATCH", f"records/{account}", {"PersonHasOptedOutOfEmail": True})
    wait_for(lambda: _get(db, ticked).unsubscribed)
    [evidence] = _evidence(db, ticked)
    assert (evidence["record_id"], evidence["via"]) == (account, "cdc")
    assert _mirrored(db, account) == ("Account", "rae@example.com", True, None)

    gained, gained_contact = _person_account(emu, "Sam@Example.com")  # a CREATE event
    wait_for(lambda: _open_pushes(db, unsub) == 1)
    assert _mirrored(db, gained) == ("Account", "sam@example.com", False, None)
    # the Contact stream carried both PersonContacts' events: neither is mirrored
    assert _mirrored(db, person_contact) is None and _mirrored(db, gained_contact) is None


def test_without_cdc_for_account_the_worker_polls_person_accounts(emu, live_ctx, running):
    db = live_ctx.db
    _enable(emu)
    turn_on(db, live_pull="auto")
    running()
    wait_for(lambda: status(db) == "live" and status(db, "Account") == "polling")

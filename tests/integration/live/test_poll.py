"""The poller over the emulator: updated windows, a read of the field, the overlap."""

from __future__ import annotations

from datetime import timedelta

from optsync.emulator.soql import format_datetime
from optsync.services.live_pull.poller import poll_object
from tests.integration.live.conftest import (
    later,
    ledger_count,
    link,
    tick_in_salesforce,
    unsubscribed,
)


def set_modstamp(emu, obj: str, record_id: str, stamp) -> None:
    """A late commit: the record's change is stamped earlier than it became visible
    (a long transaction that started before the last poll)."""
    store = emu.org.store
    with store.lock:
        store.conn.execute(
            f'UPDATE "{obj}" SET "SystemModstamp" = ? WHERE "Id" = ?',
            (format_datetime(stamp), record_id),
        )


def test_a_poll_applies_ticked_records_and_nothing_else(emu, db, sf_gateway, field):
    ids = emu.seed(contacts=4, leads=2)
    contacts, leads = ids["contact_ids"], ids["lead_ids"]
    persons = link(db, contacts + leads)
    first = poll_object(db, sf_gateway, "Contact", field, later())
    assert first.window is not None
    tick_in_salesforce(emu, contacts[0])
    tick_in_salesforce(emu, contacts[1], value=False)  # cleared: nothing
    tick_in_salesforce(emu, leads[0])
    tick_in_salesforce(emu, contacts[2], field="Sales_Opt_Out__c")  # another field
    result = poll_object(db, sf_gateway, "Contact", field, later(122))
    lead = poll_object(db, sf_gateway, "Lead", field, later(122))
    assert (result.applied, lead.applied) == (1, 1)
    linked = {sf for sf in persons}
    assert unsubscribed(db) == {contacts[0], leads[0]} & linked
    before = ledger_count(db)
    again = poll_object(db, sf_gateway, "Contact", field, later(183))
    assert again.applied == 0 and ledger_count(db) == before  # repeated window: no change


def test_poll_catches_a_late_commit_thanks_to_its_overlap(emu, db, sf_gateway, field):
    ids = emu.seed(contacts=2)["contact_ids"]
    link(db, ids)
    first = poll_object(db, sf_gateway, "Contact", field, later())
    assert first.covered is not None
    tick_in_salesforce(emu, ids[0])
    set_modstamp(emu, "Contact", ids[0], first.covered - timedelta(minutes=2))
    without = poll_object(db, sf_gateway, "Contact", field, later(122), overlap=timedelta(0))
    assert without.applied == 0  # a cursor without overlap misses the late commit
    caught = poll_object(db, sf_gateway, "Contact", field, later(122))
    assert caught.applied == 1
    assert unsubscribed(db) == {ids[0]}

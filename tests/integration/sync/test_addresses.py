"""The nightly run at address level (issue 16): an opt-out belongs to the address, every
record carrying it is set, records that gain it later are set by the next run, unknown
addresses become suppressed persons, persons without a record are linked by the rule,
and a second run costs what changed, not the org's size. Emulator, SQLite and
PostgreSQL."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select

from optsync.services.sync_run import run_sync
from optsync.store.models import LedgerEntry, Person, SyncSettings
from optsync.store.records import mirror_state, save_mirror_state
from tests.integration.sync.conftest import FAST, add_persons, person, remote, set_field

FIELD = "HasOptedOutOfEmail"
# the records were seeded a moment ago: an incremental read without overlap shows what
# changed since the last run and nothing else
NO_OVERLAP = replace(FAST, mirror_overlap=timedelta(0))


def _email(emu, record_id: str) -> str:
    return str(remote(emu, record_id)["Email"]).lower()


def _set(emu, record_id: str, **values: Any) -> None:
    emu.control("PATCH", f"records/{record_id}", values)


def _new_lead(emu, email: str) -> str:
    """A Salesforce user creates a Lead."""
    return emu.org.store.create(
        "Lead", {"LastName": "Late", "Company": "Acme", "Email": email}, enforce_fls=False
    )


def _settings(db, **values: Any) -> None:
    with db.transaction() as s:
        row = s.get(SyncSettings, 1)
        if row is None:
            from optsync.services.sync_settings import update_settings

            update_settings(s, {}, actor="test", now=_now())
            row = s.get(SyncSettings, 1)
        assert row is not None
        for key, value in values.items():
            setattr(row, key, value)


def _now():
    from optsync.clock import utcnow

    return utcnow()


def _ledger(db, pid: int) -> list[LedgerEntry]:
    with db.transaction() as s:
        rows = list(
            s.scalars(select(LedgerEntry).where(LedgerEntry.person_id == pid).order_by("id"))
        )
        for r in rows:
            s.expunge(r)
        return rows


def test_an_opt_out_on_a_non_primary_duplicate_opts_out_the_address(db, clock, emu, gateway):
    seed = emu.seed(contacts=2, leads=1)
    c0, c1 = seed["contact_ids"]
    [le] = seed["lead_ids"]
    address = _email(emu, c0)
    _set(emu, c1, Email=address.upper())  # the same address, another case
    _set(emu, le, Email=address, **{FIELD: True})  # opted out on the duplicate Lead
    [pid] = add_persons(db, clock, [{"email": address, "salesforce_id": c0}])

    report = run_sync(db, gateway, clock=clock, options=FAST)

    assert report["status"] == "succeeded", report["error"]
    assert person(db, pid).unsubscribed
    [entry] = _ledger(db, pid)
    assert (entry.source, entry.evidence["record_id"]) == ("salesforce", le)
    # the address's other records are set too
    assert remote(emu, c0)[FIELD] is True and remote(emu, c1)[FIELD] is True
    assert report["records_set"] == {"Contact": 2}
    assert report["pushed"] == 2
    assert report["duplicates"] == 1
    assert report["addresses_fanned_out"] == 1
    again = run_sync(db, gateway, clock=clock, options=FAST)
    assert (again["pulled"], again["pushed"]) == (0, 0)


def test_a_duplicate_created_after_an_unsubscribe_is_set_by_the_next_run(db, clock, emu, gateway):
    [c0] = emu.seed(contacts=1)["contact_ids"]
    address = _email(emu, c0)
    [pid] = add_persons(db, clock, [{"email": address, "salesforce_id": c0, "unsubscribed": True}])
    first = run_sync(db, gateway, clock=clock, options=FAST)
    assert first["mirror"]["read"] == "full" and first["pushed"] == 1

    lead = _new_lead(emu, address)
    second = run_sync(db, gateway, clock=clock, options=FAST)

    assert second["mirror"]["read"] == "incremental"
    assert remote(emu, lead)[FIELD] is True
    assert second["records_set"] == {"Lead": 1}
    assert person(db, pid).salesforce_id == c0  # the primary record stays


def test_an_email_change_onto_an_unsubscribed_address_is_set_the_opposite_clears_nothing(
    db, clock, emu, gateway
):
    c0, c1 = emu.seed(contacts=2)["contact_ids"]
    address, other = _email(emu, c0), _email(emu, c1)
    [pid] = add_persons(db, clock, [{"email": address, "salesforce_id": c0, "unsubscribed": True}])
    run_sync(db, gateway, clock=clock, options=FAST)
    assert remote(emu, c1)[FIELD] is False

    _set(emu, c1, Email=address)
    onto = run_sync(db, gateway, clock=clock, options=FAST)
    assert remote(emu, c1)[FIELD] is True and onto["pushed"] == 1

    _set(emu, c1, Email=other)  # the record leaves the address: it keeps its field
    entries = len(_ledger(db, pid))
    away = run_sync(db, gateway, clock=clock, options=FAST)
    assert remote(emu, c1)[FIELD] is True
    assert person(db, pid).unsubscribed and len(_ledger(db, pid)) == entries
    # the record now opts out its new address: an address optsync did not know
    assert away["suppressed_unknown"] == 1


@pytest.mark.parametrize("suppress", [True, False])
def test_an_unknown_address_is_suppressed_only_when_the_setting_says_so(
    db, clock, emu, gateway, suppress
):
    c0, _c1 = emu.seed(contacts=2)["contact_ids"]
    _set(emu, c0, **{FIELD: True})
    address = _email(emu, c0)
    _settings(db, suppress_unknown=suppress)

    report = run_sync(db, gateway, clock=clock, options=FAST)

    with db.transaction() as s:
        found = s.scalar(select(Person).where(Person.email == address))
        if found is not None:
            s.expunge(found)
    assert report["remote_unknown"] == 1 and report["unknown_addresses"] == 1
    if suppress:
        assert found is not None and found.unsubscribed
        assert (found.unsubscribe_source, found.salesforce_id) == ("salesforce", c0)
        assert report["suppressed_unknown"] == 1 and report["pulled"] == 1
        [entry] = _ledger(db, found.id)
        assert entry.evidence["record_id"] == c0
    else:
        assert found is None
        assert report["suppressed_unknown"] == 0 and report["pulled"] == 0


@pytest.mark.parametrize(
    ("rule", "expected"),
    [
        ("contact_then_lead", "contact"),
        ("lead_then_contact", "lead"),
        ("contact_only", "contact"),
        ("lead_only", "lead"),
        ("off", None),
    ],
)
def test_a_person_without_a_record_is_linked_by_the_rule(db, clock, emu, gateway, rule, expected):
    seed = emu.seed(contacts=1, leads=1)
    [c0], [le] = seed["contact_ids"], seed["lead_ids"]
    address = _email(emu, c0)
    _set(emu, le, Email=address)
    [pid] = add_persons(db, clock, [{"email": address, "unsubscribed": True}])
    _settings(db, link_rule=rule)

    report = run_sync(db, gateway, clock=clock, options=FAST)

    want = {"contact": c0, "lead": le, None: None}[expected]
    assert person(db, pid).salesforce_id == want
    assert report["auto_linked"] == (0 if want is None else 1)
    # whatever the rule, the opt-out reaches every record of the address
    assert remote(emu, c0)[FIELD] is True and remote(emu, le)[FIELD] is True


def test_an_address_with_no_record_is_not_in_salesforce(db, clock, emu, gateway):
    emu.seed(contacts=1)
    add_persons(db, clock, [{"email": "gone@example.com", "unsubscribed": True}])
    report = run_sync(db, gateway, clock=clock, options=FAST)
    assert (report["not_in_salesforce"], report["not_linked"]) == (1, 1)


def test_a_second_run_costs_what_changed(db, clock, emu, gateway):
    ids = emu.seed(contacts=300, leads=300)
    records = ids["contact_ids"] + ids["lead_ids"]
    add_persons(db, clock, [{"email": _email(emu, r), "salesforce_id": r} for r in records[:100]])
    first = run_sync(db, gateway, clock=clock, options=NO_OVERLAP)
    assert first["mirror"]["read"] == "full"
    for r in records[:20]:
        _set(emu, r, **{FIELD: True})

    second = run_sync(db, gateway, clock=clock, options=NO_OVERLAP)

    assert second["mirror"]["read"] == "incremental"
    assert second["mirror"]["records_read"] < 100
    assert second["pulled"] == 20
    # 2 describes, a COUNT() and one REST page per object that changed
    assert second["api_calls"] <= 6, second["api_calls"]


def test_an_untrusted_mirror_or_full_reads_everything(db, clock, emu, gateway):
    emu.seed(contacts=5)
    assert run_sync(db, gateway, clock=clock, options=FAST)["mirror"]["read"] == "full"
    assert run_sync(db, gateway, clock=clock, options=FAST)["mirror"]["read"] == "incremental"
    with db.transaction() as s:
        save_mirror_state(s, clock(), trusted=False, reason="a test gap")
    after_gap = run_sync(db, gateway, clock=clock, options=FAST)
    assert after_gap["mirror"] == after_gap["mirror"] | {"read": "full", "why": "a test gap"}
    full = run_sync(db, gateway, clock=clock, options=FAST, full=True)
    assert full["mirror"]["read"] == "full"
    assert run_sync(db, gateway, clock=clock, options=FAST)["mirror"]["read"] == "incremental"
    set_field(db, clock, field="sales_opt_out")  # the mirror kept the other field's values
    switched = run_sync(db, gateway, clock=clock, options=FAST)["mirror"]
    assert (switched["read"], switched["why"]) == (
        "full",
        "the synced field changed to Sales_Opt_Out__c",
    )
    with db.transaction() as s:
        state = mirror_state(s)
        assert state is not None and state.trusted

"""The incremental diff (docs/sync.md "Incremental diff"): after a complete run, the next
run of the field looks only at the persons changed since and those whose records changed,
and still loses nothing and reverses nothing: a person unsubscribed here whose record did
not change is pushed, one re-subscribed is opted out again, a changed address, a new
person, a field cleared in Salesforce and a failure are each diffed; a settings change or
a full read diffs everyone. Emulator, SQLite and PostgreSQL."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from typing import Any

import pytest

from optsync.domain.optout import Source
from optsync.services.optouts import resubscribe_email, unsubscribe_email
from optsync.services.persons import PersonInput, upsert_person
from optsync.services.sync_run import run_sync
from tests.integration.sync.conftest import BULK, FAST, add_persons, person, remote, set_field

FIELD = "HasOptedOutOfEmail"
# the org was seeded a moment ago: without overlap, "changed since the last run" is
# exactly what a test changes (a 10-minute overlap would take the whole seed)
OPTIONS = replace(FAST, mirror_overlap=timedelta(0))
PATHS = {"rest": OPTIONS, "bulk": replace(BULK, mirror_overlap=timedelta(0))}


def _email(emu, record_id: str) -> str:
    return str(remote(emu, record_id)["Email"]).lower()


def _set(emu, record_id: str, **values: Any) -> None:
    emu.control("PATCH", f"records/{record_id}", values)


def _run(db, gateway, clock, options=OPTIONS, **kwargs: Any) -> dict[str, Any]:
    clock.advance(hours=1)  # a night later: persons changed before are not "changed since"
    report = run_sync(db, gateway, clock=clock, options=options, **kwargs)
    assert report["status"] == "succeeded", report["error"]
    clock.advance(hours=1)
    return report


@pytest.fixture
def org(db, clock, emu, gateway):
    """Ten Contacts and ten Leads, a person per record; the third Contact opted out in
    Salesforce, the fourth person unsubscribed here; a first run and its settle run."""
    seed = emu.seed(contacts=10, leads=10)
    records = seed["contact_ids"] + seed["lead_ids"]
    _set(emu, records[2], **{FIELD: True})
    ids = add_persons(
        db,
        clock,
        [
            {"email": _email(emu, r), "salesforce_id": r, "unsubscribed": i == 3}
            for i, r in enumerate(records)
        ],
    )
    first = _run(db, gateway, clock)
    assert (first["pulled"], first["pushed"]) == (1, 1)
    assert first["diff_scope"]["changes_since_run"] is None
    settle = _run(db, gateway, clock)
    assert settle["diff_scope"]["changes_since_run"] == first["id"]
    return records, ids


def test_a_quiet_night_looks_at_nobody(db, clock, emu, gateway, org):
    report = _run(db, gateway, clock)
    assert report["diff_scope"] == {
        "changes_since_run": report["id"] - 1,
        "persons": 0,
        "why": None,
    }
    assert (report["pulled"], report["pushed"], report["mirror"]["staged"]) == (0, 0, 0)
    # the totals stay totals
    assert (report["remote_opted_out"], report["local_unsubscribed"]) == (2, 2)


def test_a_person_unsubscribed_here_whose_record_did_not_change_is_pushed(
    db, clock, emu, gateway, org
):
    records, _ids = org
    duplicate = emu.org.store.create(
        "Lead",
        {"LastName": "Dup", "Company": "Acme", "Email": _email(emu, records[5])},
        enforce_fls=False,
    )
    _run(db, gateway, clock)  # the duplicate is mirrored; nobody is unsubscribed yet
    with db.transaction() as s:
        # by a process whose clock is hours behind: the ledger says it changed, whatever
        # the times written
        unsubscribe_email(
            s,
            _email(emu, records[5]),
            source=Source.ADMIN,
            actor="admin",
            now=clock() - timedelta(hours=6),
        )

    report = _run(db, gateway, clock)

    assert report["diff_scope"]["persons"] == 1
    assert report["pushed"] == 2 and report["records_set"] == {"Contact": 1, "Lead": 1}
    assert remote(emu, records[5])[FIELD] is True and remote(emu, duplicate)[FIELD] is True


def test_a_person_resubscribed_here_is_opted_out_again(db, clock, emu, gateway, org):
    records, ids = org
    with db.transaction() as s:
        resubscribe_email(
            s, _email(emu, records[2]), source=Source.ADMIN, actor="a", now=clock(), reason="x"
        )

    report = _run(db, gateway, clock)

    assert report["reopted_out"] == [{"person_id": ids[2], "email": _email(emu, records[2])}]
    assert report["pulled"] == 1 and person(db, ids[2]).unsubscribed


def test_a_field_cleared_in_salesforce_is_set_again(db, clock, emu, gateway, org):
    records, ids = org
    _set(emu, records[3], **{FIELD: False})  # the record of the person unsubscribed here

    report = _run(db, gateway, clock)

    assert report["pushed"] == 1 and remote(emu, records[3])[FIELD] is True
    assert person(db, ids[3]).unsubscribed


@pytest.mark.parametrize("path", sorted(PATHS))
def test_an_opt_out_ticked_in_salesforce_is_pulled(db, clock, emu, gateway, org, path):
    records, ids = org
    _set(emu, records[12], **{FIELD: True})
    report = _run(db, gateway, clock, PATHS[path])
    assert report["diff_scope"]["persons"] == 1
    assert report["pulled"] == 1 and person(db, ids[12]).unsubscribed


def test_a_person_linked_here_to_an_opted_out_record_is_pulled(db, clock, emu, gateway, org):
    records, ids = org
    set_field(db, clock, "email_opt_out", suppress_unknown=False)
    opted_out = emu.org.store.create(
        "Lead",
        {"LastName": "Old", "Company": "Acme", "Email": "old@example.com", FIELD: True},
        enforce_fls=False,
    )
    assert _run(db, gateway, clock)["unknown_addresses"] == 1  # nobody's address
    assert _run(db, gateway, clock)["diff_scope"]["persons"] == 0
    # an admin links a person to the record (its own address differs); the record does
    # not change
    with db.transaction() as s:
        linked, outcome = upsert_person(
            s,
            PersonInput(
                1, _email(emu, records[15]), salesforce_id=opted_out, salesforce_object="Lead"
            ),
            clock(),
        )
        assert outcome == "updated" and linked.id == ids[15]

    report = _run(db, gateway, clock)

    assert report["diff_scope"]["persons"] == 1
    assert report["pulled"] == 1 and person(db, ids[15]).unsubscribed
    # every record of the person's address gets the field too
    assert remote(emu, records[15])[FIELD] is True


def test_a_new_person_with_an_opted_out_address_is_pulled(db, clock, emu, gateway, org):
    set_field(db, clock, "email_opt_out", suppress_unknown=False)
    emu.org.store.create(
        "Lead",
        {"LastName": "New", "Company": "Acme", "Email": "new@example.com", FIELD: True},
        enforce_fls=False,
    )
    _run(db, gateway, clock)  # settings changed: everyone; the address is nobody's
    assert _run(db, gateway, clock)["diff_scope"]["persons"] == 0
    with db.transaction() as s:  # imported later; the record does not change
        created, _ = upsert_person(s, PersonInput(1, "new@example.com"), clock())
        pid = created.id

    report = _run(db, gateway, clock)

    assert report["diff_scope"]["persons"] == 1
    assert report["pulled"] == 1 and person(db, pid).unsubscribed


def test_a_record_that_failed_is_tried_again(db, clock, emu, gateway):
    [c0, c1] = emu.seed(contacts=2)["contact_ids"]
    [pid] = add_persons(db, clock, [{"salesforce_id": c0, "unsubscribed": True}])
    add_persons(db, clock, [{"salesforce_id": c1}])
    emu.control("DELETE", f"records/{c0}")
    first = _run(db, gateway, clock)
    assert first["failed"] == {"ENTITY_IS_DELETED": 1}
    # the person and the record stay as they were: only the failure says to look again
    second = _run(db, gateway, clock)
    assert second["diff_scope"]["changes_since_run"] == first["id"]
    assert second["failed"] == {"ENTITY_IS_DELETED": 1}
    third = _run(db, gateway, clock)
    assert third["failed"] == {"ENTITY_IS_DELETED": 1}
    assert person(db, pid).unsubscribed


def test_a_settings_change_or_a_full_read_diffs_everyone(db, clock, emu, gateway, org):
    set_field(db, clock, "email_opt_out", link_rule="lead_then_contact")
    after_settings = _run(db, gateway, clock)
    assert after_settings["diff_scope"]["persons"] is None
    assert "settings changed" in after_settings["diff_scope"]["why"]
    assert _run(db, gateway, clock)["diff_scope"]["persons"] == 0
    full = _run(db, gateway, clock, full=True)
    assert full["diff_scope"]["why"] == "the mirror was read in full"
    assert _run(db, gateway, clock)["diff_scope"]["persons"] == 0  # that run diffed everyone
    # a full read that was no complete run (a dry run) leaves a later diff nothing to trust
    last = _run(db, gateway, clock)
    assert _run(db, gateway, clock, full=True, dry_run=True)["diff_scope"]["persons"] is None
    after = _run(db, gateway, clock)
    assert after["diff_scope"]["why"] == f"the mirror was read in full after run #{last['id']}"
    assert _run(db, gateway, clock)["diff_scope"]["persons"] == 0


def test_a_dry_run_previews_the_incremental_diff(db, clock, emu, gateway, org):
    records, ids = org
    _set(emu, records[12], **{FIELD: True})
    with db.transaction() as s:
        unsubscribe_email(
            s, _email(emu, records[14]), source=Source.ADMIN, actor="admin", now=clock()
        )
    dry = _run(db, gateway, clock, dry_run=True)
    assert dry["diff_scope"]["persons"] == 2
    assert [r["person_id"] for r in dry["would_pull"]] == [ids[12]]
    assert [r["person_id"] for r in dry["would_push"]] == [ids[14]]
    real = _run(db, gateway, clock)
    assert (real["pulled"], real["pushed"]) == (dry["pulled"], dry["pushed"]) == (1, 1)

"""The live pull at address level (issue 16): the poll and the Change Data Capture stream
mirror what they read, opt out the address of a ticked record whatever record the person
is linked to, re-open the push of an unsubscribed address that gained a record (a new
duplicate, an email changed onto it), add unknown addresses as suppressed persons and
link persons that had no record. Emulator, SQLite and PostgreSQL."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import insert, select

from optsync.clock import utcnow
from optsync.services.live_pull.poller import poll_object
from optsync.store.models import LedgerEntry, OutboxPush, Person, SalesforceRecord, SyncSettings
from optsync.store.records import mirror_state
from tests.integration.live.conftest import later, turn_on
from tests.integration.live.test_cdc import live_ctx, running, status, wait_for

__all__ = ["live_ctx", "running"]  # fixtures used below

FIELD = "HasOptedOutOfEmail"


def _email(emu, record_id: str) -> str:
    return str(emu.control("GET", f"records/{record_id}")["Email"]).lower()


def _person(db, email: str, *, record: str | None = None, unsubscribed: bool = False) -> int:
    now = utcnow()
    with db.transaction() as s:
        return int(
            s.scalar(
                insert(Person)
                .values(
                    email=email,
                    salesforce_id=record,
                    salesforce_object=None if record is None else "Contact",
                    unsubscribed=unsubscribed,
                    unsubscribed_at=now if unsubscribed else None,
                    unsubscribe_source="api" if unsubscribed else None,
                    created_at=now,
                    updated_at=now,
                )
                .returning(Person.id)
            )
        )


def _get(db, pid: int) -> Person:
    with db.transaction() as s:
        p = s.get(Person, pid)
        assert p is not None
        s.expunge(p)
        return p


def _open_pushes(db, pid: int) -> int:
    with db.transaction() as s:
        return len(
            list(
                s.scalars(
                    select(OutboxPush.id).where(
                        OutboxPush.person_id == pid, OutboxPush.state == "pending"
                    )
                )
            )
        )


def _ledger(db, pid: int) -> list[dict[str, Any]]:
    with db.transaction() as s:
        return [
            dict(e.evidence)
            for e in s.scalars(select(LedgerEntry).where(LedgerEntry.person_id == pid))
        ]


def _new_lead(emu, email: str, **values: Any) -> str:
    """A Salesforce user creates a Lead."""
    return emu.org.store.create(
        "Lead", {"LastName": "Late", "Company": "Acme", "Email": email, **values}, enforce_fls=False
    )


def _polls(db, gw, *objects: str, at: float = 122) -> None:
    for obj in objects:
        poll_object(db, gw, obj, FIELD, later(at))


def _start_polls(db, gw) -> None:
    _polls(db, gw, "Contact", "Lead", at=61)


def _rule(db, **values: Any) -> None:
    turn_on(db)
    with db.transaction() as s:
        row = s.get(SyncSettings, 1)
        assert row is not None
        for k, v in values.items():
            setattr(row, k, v)


def test_a_poll_opts_out_the_address_of_a_ticked_duplicate(emu, db, sf_gateway):
    seed = emu.seed(contacts=1, leads=1)
    [c0], [le] = seed["contact_ids"], seed["lead_ids"]
    address = _email(emu, c0)
    emu.control("PATCH", f"records/{le}", {"Email": address})
    pid = _person(db, address, record=c0)
    _start_polls(db, sf_gateway)
    emu.control("PATCH", f"records/{le}", {FIELD: True})  # the duplicate Lead, not c0

    _polls(db, sf_gateway, "Contact", "Lead")

    assert _get(db, pid).unsubscribed
    [evidence] = _ledger(db, pid)
    assert (evidence["record_id"], evidence["via"]) == (le, "poll")
    # the linked Contact is not set yet: the person's push is open for it
    assert _open_pushes(db, pid) == 1


def test_a_duplicate_created_after_an_unsubscribe_reopens_the_push(emu, db, sf_gateway):
    [c0] = emu.seed(contacts=1)["contact_ids"]
    address = _email(emu, c0)
    emu.control("PATCH", f"records/{c0}", {FIELD: True})  # the unsubscribe reached it
    pid = _person(db, address, record=c0, unsubscribed=True)
    _start_polls(db, sf_gateway)
    assert _open_pushes(db, pid) == 0

    lead = _new_lead(emu, address.upper())
    _polls(db, sf_gateway, "Lead")

    assert _open_pushes(db, pid) == 1
    with db.transaction() as s:
        row = s.get(SalesforceRecord, lead)
        assert row is not None and (row.email, row.email_opt_out) == (address, False)


def test_an_email_change_onto_an_unsubscribed_address_reopens_the_push_and_back_nothing(
    emu, db, sf_gateway
):
    c0, c1 = emu.seed(contacts=2)["contact_ids"]
    address, other = _email(emu, c0), _email(emu, c1)
    emu.control("PATCH", f"records/{c0}", {FIELD: True})  # the unsubscribe reached it
    pid = _person(db, address, record=c0, unsubscribed=True)
    _start_polls(db, sf_gateway)
    assert _open_pushes(db, pid) == 0

    emu.control("PATCH", f"records/{c1}", {"Email": address})
    _polls(db, sf_gateway, "Contact")
    assert _open_pushes(db, pid) == 1

    with db.transaction() as s:  # the push was sent meanwhile
        s.execute(
            OutboxPush.__table__.update()  # type: ignore[attr-defined]
            .where(OutboxPush.person_id == pid)
            .values(state="sent", settled_at=utcnow())
        )
    emu.control("PATCH", f"records/{c1}", {FIELD: True})  # the push's effect
    emu.control("PATCH", f"records/{c1}", {"Email": other})  # and it leaves the address
    _polls(db, sf_gateway, "Contact", at=183)
    assert _open_pushes(db, pid) == 0
    assert emu.control("GET", f"records/{c1}")[FIELD] is True  # nothing is ever cleared
    assert _get(db, pid).unsubscribed and len(_ledger(db, pid)) == 0


@pytest.mark.parametrize("suppress", [True, False])
def test_a_poll_adds_an_unknown_address_only_when_the_setting_says_so(
    emu, db, sf_gateway, suppress
):
    [c0] = emu.seed(contacts=1)["contact_ids"]
    address = _email(emu, c0)
    _rule(db, suppress_unknown=suppress)
    _start_polls(db, sf_gateway)
    emu.control("PATCH", f"records/{c0}", {FIELD: True})

    _polls(db, sf_gateway, "Contact")

    with db.transaction() as s:
        found = s.scalar(select(Person).where(Person.email == address))
        if found is not None:
            s.expunge(found)
    if suppress:
        assert found is not None and found.unsubscribed
        assert (found.unsubscribe_source, found.salesforce_id) == ("salesforce", c0)
    else:
        assert found is None


@pytest.mark.parametrize(
    ("rule", "linked"),
    [("contact_then_lead", True), ("lead_only", True), ("contact_only", False), ("off", False)],
)
def test_a_new_lead_links_a_person_without_a_record_by_the_rule(emu, db, sf_gateway, rule, linked):
    emu.seed(contacts=1)
    pid = _person(db, "walk.in@example.com")
    _rule(db, link_rule=rule)
    _start_polls(db, sf_gateway)

    lead = _new_lead(emu, "Walk.In@example.com")
    _polls(db, sf_gateway, "Lead")

    got = _get(db, pid)
    assert (got.salesforce_id, got.salesforce_object) == (
        (lead, "Lead") if linked else (None, None)
    )


def test_the_stream_sets_a_new_duplicate_and_a_gap_untrusts_the_mirror(emu, live_ctx, running):
    db = live_ctx.db
    seed = emu.seed(contacts=1, leads=1)
    [c0], [le] = seed["contact_ids"], seed["lead_ids"]
    address = _email(emu, c0)
    emu.control("PATCH", f"records/{c0}", {FIELD: True})  # the unsubscribe reached it
    unsub = _person(db, address, record=c0, unsubscribed=True)
    sub = _person(db, "sub@example.com")
    turn_on(db)
    running()
    wait_for(lambda: status(db) == "live" and status(db, "Lead") == "live")
    emu.control("PATCH", f"records/{le}", {"Email": "sub@example.com"})

    _new_lead(emu, address)  # a duplicate of the unsubscribed address
    wait_for(lambda: _open_pushes(db, unsub) == 1)
    emu.control("PATCH", f"records/{le}", {FIELD: True})  # the subscribed person's Lead
    wait_for(lambda: _get(db, sub).unsubscribed)
    assert _get(db, sub).salesforce_id == le  # linked by the rule when it appeared

    emu.control("POST", "pubsub/overflow", {"object": "Contact"})

    def untrusted() -> bool:
        with db.transaction() as s:
            state = mirror_state(s)
            return state is not None and not state.trusted

    wait_for(untrusted)

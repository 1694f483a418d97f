"""A record that gains an unsubscribed address while that address's push is in flight
(claimed, its view of the address's records taken) is still set (issue 16): the live
pull mirrors it and re-queues the address, but the person already has an open push (one
open push per person), so the settle itself must notice the record and run the push
again rather than settle it ``sent`` (or ``not_linked``) without it. Emulator, SQLite and
PostgreSQL."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import timedelta

import pytest
from sqlalchemy import select

from optsync.clock import utcnow
from optsync.domain.optout import Source
from optsync.services import optouts
from optsync.services.live_pull.poller import poll_object
from optsync.services.persons import PersonInput, upsert_person
from optsync.services.push import Pusher
from optsync.store.models import OutboxPush, PushRecord
from optsync.store.optouts import requeue_for_addresses
from optsync.store.outbox import Settlement, claim_due, rerun_for_new_records, settle
from optsync.store.records import MirroredRecord, upsert_records
from tests.integration.live.conftest import later, turn_on
from tests.integration.push.conftest import record

pytestmark = pytest.mark.emulator

FIELD = "HasOptedOutOfEmail"


class RacingPusher(Pusher):
    """The worker's pusher, with ``race`` run once the push has taken its view of the
    address's records after the lookup: the moment a record that appears is not sent."""

    race: Callable[[], None] | None = None

    def _mirror(self, emails, field_name):  # type: ignore[no-untyped-def]
        views = super()._mirror(emails, field_name)
        self.calls = getattr(self, "calls", 0) + 1
        if self.calls == 2 and self.race is not None:  # the view after the lookup
            self.race()
        return views


def _lead_appears(emu, db, gateway, email: str, created: list[str]) -> Callable[[], None]:
    """A Salesforce user creates a Lead with the address, and the live pull's poll
    mirrors it and re-queues the address (``records_pull.absorb``), before the settle."""

    def race() -> None:
        created.append(
            emu.org.store.create(
                "Lead", {"LastName": "Late", "Company": "Acme", "Email": email}, enforce_fls=False
            )
        )
        poll_object(db, gateway, "Lead", FIELD, later(61))

    return race


def _unsubscribe(db, email: str) -> int:
    with db.transaction() as s:
        return optouts.unsubscribe_email(
            s, email, source=Source.API, actor="t", now=utcnow()
        ).person.id


def _pushes(db, pid: int) -> list[tuple[str, set[str]]]:
    with db.transaction() as s:
        out = []
        for push in s.scalars(
            select(OutboxPush).where(OutboxPush.person_id == pid).order_by(OutboxPush.id)
        ):
            sent = s.scalars(
                select(PushRecord.record_id).where(
                    PushRecord.push_id == push.id, PushRecord.state == "sent"
                )
            ).all()
            out.append((push.state, set(sent)))
        return out


@pytest.mark.parametrize("before", ["a Contact", "no record"])
def test_a_record_that_gains_the_address_during_the_push_is_set(emu, db, sf_gateway, sf, before):
    turn_on(db)
    address = "late.lead@example.com"
    contacts = []
    if before == "a Contact":
        contacts.append(
            sf.restful(
                "sobjects/Contact", method="POST", json={"LastName": "Lee", "Email": address}
            )["id"]
        )
    poll_object(db, sf_gateway, "Lead", FIELD, utcnow())  # the live pull follows Lead
    pid = _unsubscribe(db, address)
    created: list[str] = []
    pusher = RacingPusher(db, lambda: sf_gateway, worker="w", clock=utcnow)
    pusher.race = _lead_appears(emu, db, sf_gateway, address, created)

    pusher.drain()

    [lead] = created
    assert record(emu, lead)[FIELD] is True
    for contact in contacts:
        assert record(emu, contact)[FIELD] is True
    # one push, run again at once: the records it set, the late Lead among them
    assert _pushes(db, pid) == [("sent", {*contacts, lead})]


def test_a_requeue_racing_a_settle_is_seen_by_one_of_them(db, clock):
    """The live pull's transaction (mirror a new record, re-queue its address) and the
    push's settle run at the same moment: the requeue waits for the settle's lock on the
    push, so either the settle sees the record and runs again, or the requeue sees the
    push settled and opens a new one."""
    with db.transaction() as s:
        person, _ = upsert_person(s, PersonInput(1, "race@example.com", None, None), clock())
        pid = person.id
    with db.transaction() as s:
        optouts.unsubscribe_by_id(s, pid, source=Source.API, actor="t", now=clock())
    with db.transaction() as s:
        [claimed] = claim_due(s, worker="w", now=clock(), limit=10, lease=timedelta(minutes=2))
    settled = threading.Event()
    pulled: list[int] = []

    def live_pull() -> None:
        settled.wait(10)
        with db.transaction() as s:
            lead = MirroredRecord("00Q000000000001AAA", "Lead", "race@example.com")
            upsert_records(s, [lead], clock())
            pulled.append(requeue_for_addresses(s, ["race@example.com"], clock()))

    thread = threading.Thread(target=live_pull)
    thread.start()
    with db.transaction() as s:  # the push set what it saw, and settles as the pusher does
        final = rerun_for_new_records(
            s,
            "w",
            [Settlement(claimed.push_id, "sent", field=FIELD)],
            clock(),
            field=FIELD,
            tried={claimed.push_id: {"003000000000001AAA"}},
        )
        settle(s, "w", final, clock())
        settled.set()
        time.sleep(0.5)  # the live pull's transaction runs into this one meanwhile
    thread.join(10)

    with db.transaction() as s:
        states = s.scalars(
            select(OutboxPush.state).where(OutboxPush.person_id == pid).order_by(OutboxPush.id)
        ).all()
    # the requeue saw the push settled and opened another, due now: the Lead gets it
    assert states == ["sent", "pending"], (states, pulled)

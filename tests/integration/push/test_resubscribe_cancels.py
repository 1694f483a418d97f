"""A re-subscribe cancels the person's open push, whatever state it is in (issue 12.1).

Each test unsubscribes, re-subscribes before the push is sent, lets the worker run, and
checks that Salesforce never got the field and that the next sync leaves the person
subscribed (no ``reopted_out``). On the code before this fix the worker still set the
field and the sync opted the person out again.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select, text
from sqlalchemy.exc import IntegrityError

from optsync.domain.optout import Source
from optsync.services import optouts
from optsync.services.persons import PersonInput, upsert_person
from optsync.services.sync_run import run_sync
from optsync.services.sync_settings import update_settings
from optsync.store.models import OutboxPush, Person
from optsync.store.outbox import Settlement, claim_due, settle, still_wanted
from tests.integration.push.conftest import link_and_unsubscribe, record

LEASE = timedelta(seconds=60)


def resubscribe(db, clock, person_id: int) -> None:
    with db.transaction() as s:
        email = s.get(Person, person_id).email
        optouts.resubscribe_email(
            s, email, source=Source.ADMIN, actor="admin", now=clock(), reason="asked to"
        )


def push_states(db, person_id: int) -> list[str]:
    with db.transaction() as s:
        return list(
            s.scalars(
                select(OutboxPush.state)
                .where(OutboxPush.person_id == person_id)
                .order_by(OutboxPush.id)
            )
        )


def assert_never_reopted(db, clock, gateway, person_id: int) -> None:
    with db.transaction() as s:
        update_settings(s, {"sync_enabled": True}, actor="t", now=clock())
    report = run_sync(db, gateway, clock=clock)
    assert report["status"] == "succeeded", report["error"]
    assert report["reopted_out"] == [] and report["pulled"] == 0
    with db.transaction() as s:
        assert s.get(Person, person_id).unsubscribed is False


def test_pending_push_is_cancelled(emu, db, clock, pusher, gateway):
    sf_id = emu.seed(contacts=1)["contact_ids"][0]
    [pid] = link_and_unsubscribe(db, clock, [sf_id])
    resubscribe(db, clock, pid)
    assert push_states(db, pid) == ["cancelled"]
    assert pusher.drain().sent == 0
    assert record(emu, sf_id)["HasOptedOutOfEmail"] is False
    assert_never_reopted(db, clock, gateway, pid)


def test_push_waiting_for_a_retry_is_cancelled(emu, db, clock, pusher, gateway):
    sf_id = emu.seed(contacts=1)["contact_ids"][0]
    [pid] = link_and_unsubscribe(db, clock, [sf_id])
    gateway.connect()
    emu.settings(fault_rate=1.0)
    report = pusher.drain()
    emu.settings(fault_rate=0.0)
    assert report.retried == 1 and push_states(db, pid) == ["pending"]
    resubscribe(db, clock, pid)
    clock.advance(seconds=60)
    assert pusher.drain().sent == 0
    assert push_states(db, pid) == ["cancelled"]
    assert record(emu, sf_id)["HasOptedOutOfEmail"] is False
    assert_never_reopted(db, clock, gateway, pid)


def test_push_in_flight_is_not_sent_nor_settled_after_a_resubscribe(emu, db, clock):
    sf_id = emu.seed(contacts=1)["contact_ids"][0]
    [pid] = link_and_unsubscribe(db, clock, [sf_id])
    with db.transaction() as s:
        [claimed] = claim_due(s, worker="w", now=clock(), limit=10, lease=LEASE)
    resubscribe(db, clock, pid)
    with db.transaction() as s:
        # the worker's re-check just before the send drops it ...
        assert still_wanted(s, [claimed.push_id]) == set()
        # ... and a late settlement cannot turn the cancelled push into "sent"
        sent = Settlement(claimed.push_id, "sent", field="HasOptedOutOfEmail", target_id=sf_id)
        assert settle(s, "w", [sent], clock()) == 0
    assert push_states(db, pid) == ["cancelled"]


def test_not_linked_push_is_cancelled_and_linking_later_sends_nothing(
    emu, db, clock, pusher, gateway
):
    sf_id = emu.seed(contacts=1)["contact_ids"][0]
    with db.transaction() as s:
        result = optouts.unsubscribe_email(
            s, "later@example.com", source=Source.API, actor="t", now=clock()
        )
        pid = result.person.id
    # pending until a worker has looked the address up: no record has it (Not in Salesforce)
    assert push_states(db, pid) == ["pending"]
    assert pusher.drain().not_linked == 1
    assert push_states(db, pid) == ["not_linked"]
    resubscribe(db, clock, pid)
    with db.transaction() as s:
        upsert_person(s, PersonInput(1, "later@example.com", sf_id, "Contact"), clock())
    assert push_states(db, pid) == ["cancelled"]
    assert pusher.drain().sent == 0
    assert record(emu, sf_id)["HasOptedOutOfEmail"] is False
    assert_never_reopted(db, clock, gateway, pid)


def test_unsubscribing_again_after_a_resubscribe_queues_a_new_push(emu, db, clock, pusher):
    sf_id = emu.seed(contacts=1)["contact_ids"][0]
    [pid] = link_and_unsubscribe(db, clock, [sf_id])
    resubscribe(db, clock, pid)
    with db.transaction() as s:
        optouts.unsubscribe_by_id(s, pid, source=Source.API, actor="t", now=clock())
    assert push_states(db, pid) == ["cancelled", "pending"]
    assert pusher.drain().sent == 1
    assert record(emu, sf_id)["HasOptedOutOfEmail"] is True


def test_the_database_allows_one_open_push_per_person(db, clock):
    with db.transaction() as s:
        pid = optouts.unsubscribe_email(
            s, "one@example.com", source=Source.API, actor="t", now=clock()
        ).person.id
    with pytest.raises(IntegrityError), db.transaction() as s:
        s.add(
            OutboxPush(
                person_id=pid,
                state="pending",
                attempts=0,
                next_attempt_at=clock(),
                created_at=clock(),
            )
        )
        s.flush()
    # a stray open push of a subscribed person (written around the write path) is
    # cancelled by the next claim, never sent
    resubscribe(db, clock, pid)
    with db.transaction() as s:
        s.execute(
            text(
                "INSERT INTO outbox (person_id, state, attempts, next_attempt_at, created_at) "
                "VALUES (:p, 'pending', 0, :t, :t)"
            ),
            {"p": pid, "t": clock().replace(tzinfo=None) if db.dialect == "sqlite" else clock()},
        )
    with db.transaction() as s:
        assert claim_due(s, worker="w", now=clock(), limit=10, lease=LEASE) == []
    assert push_states(db, pid) == ["cancelled", "cancelled"]

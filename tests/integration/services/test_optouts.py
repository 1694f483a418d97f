"""Unsubscribes write state, ledger and outbox in one transaction."""

import pytest
from sqlalchemy import func, select

from optsync.domain.ids import make_id
from optsync.domain.optout import Source
from optsync.errors import NotFoundError, UsageError
from optsync.services import optouts
from optsync.services.persons import PersonInput, upsert_person
from optsync.store.models import LedgerEntry, OutboxPush, Person


def counts(db):
    with db.transaction() as s:
        return (
            s.scalar(select(func.count()).select_from(Person).where(Person.unsubscribed)),
            s.scalar(select(func.count()).select_from(LedgerEntry)),
            s.scalar(select(func.count()).select_from(OutboxPush)),
        )


def test_unsubscribe_writes_state_ledger_and_push_together(db, clock):
    sf_id = make_id("003", 7)
    with db.transaction() as s:
        upsert_person(s, PersonInput(1, "ann@example.com", sf_id, "Contact"), clock())
    with db.transaction() as s:
        r = optouts.unsubscribe_email(
            s,
            "Ann@Example.com",
            source=Source.API,
            actor="token:t",
            now=clock(),
            evidence={"ip": "198.51.100.4"},
        )
        assert r.changed
    assert counts(db) == (1, 1, 1)
    with db.transaction() as s:
        push = s.scalars(select(OutboxPush)).one()
        entry = s.scalars(select(LedgerEntry)).one()
        person = s.scalars(select(Person)).one()
    assert push.state == "pending" and push.next_attempt_at == clock()
    assert entry.kind == "unsubscribe" and entry.source == "api"
    assert entry.evidence == {"ip": "198.51.100.4"}
    assert person.unsubscribed_at == clock() and person.unsubscribe_source == "api"


def test_second_unsubscribe_changes_nothing(db, clock):
    for _ in range(3):
        with db.transaction() as s:
            optouts.unsubscribe_email(
                s, "bob@example.com", source=Source.CLI, actor="x", now=clock()
            )
        clock.advance(seconds=5)
    assert counts(db) == (1, 1, 1)


def test_a_failure_later_in_the_transaction_stores_none_of_it(db, clock):
    with pytest.raises(RuntimeError), db.transaction() as s:
        optouts.unsubscribe_email(s, "cat@example.com", source=Source.API, actor="x", now=clock())
        raise RuntimeError("crash after the unsubscribe, before commit")
    assert counts(db) == (0, 0, 0)


def test_unknown_address_is_kept_suppressed_and_waits_as_not_linked(db, clock):
    with db.transaction() as s:
        optouts.unsubscribe_email(s, "new@example.com", source=Source.CLI, actor="x", now=clock())
    with db.transaction() as s:
        # pending: a worker looks the address up before calling it Not in Salesforce
        push = s.scalars(select(OutboxPush)).one()
        assert push.state == "pending"
        push.state = "not_linked"  # what the worker settles when no record has it
    # linking the person releases the push
    clock.advance(minutes=1)
    with db.transaction() as s:
        _, outcome = upsert_person(
            s, PersonInput(1, "new@example.com", make_id("00Q", 3), "Lead"), clock()
        )
        assert outcome == "updated"
    with db.transaction() as s:
        push = s.scalars(select(OutboxPush)).one()
    assert push.state == "pending" and push.next_attempt_at == clock()


def test_resubscribe_needs_reason_and_keeps_history(db, clock):
    with db.transaction() as s:
        optouts.unsubscribe_email(
            s, "dan@example.com", source=Source.PAGE, actor="person", now=clock()
        )
    with pytest.raises(UsageError, match="reason"), db.transaction() as s:
        optouts.resubscribe_email(
            s, "dan@example.com", source=Source.ADMIN, actor="admin", now=clock(), reason=" "
        )
    clock.advance(hours=1)
    with db.transaction() as s:
        r = optouts.resubscribe_email(
            s,
            "dan@example.com",
            source=Source.ADMIN,
            actor="admin",
            now=clock(),
            reason="asked by phone",
        )
        assert r.changed and not r.person.unsubscribed
    with db.transaction() as s:
        kinds = s.scalars(select(LedgerEntry.kind).order_by(LedgerEntry.id)).all()
        person = s.scalars(select(Person)).one()
    assert kinds == ["unsubscribe", "resubscribe"]
    assert person.resubscribed_at == clock() and person.unsubscribed_at is None


def test_resubscribe_unknown_person(db, clock):
    with pytest.raises(NotFoundError), db.transaction() as s:
        optouts.resubscribe_email(
            s, "zed@example.com", source=Source.ADMIN, actor="a", now=clock(), reason="r"
        )


def test_bad_email_changes_nothing(db, clock):
    with pytest.raises(UsageError, match="email"), db.transaction() as s:
        optouts.unsubscribe_email(s, "not-an-email", source=Source.API, actor="x", now=clock())
    assert counts(db) == (0, 0, 0)


def test_unsubscribe_again_after_resubscribe_queues_a_new_push(db, clock):
    with db.transaction() as s:
        upsert_person(s, PersonInput(1, "eve@example.com", make_id("003", 9), "Contact"), clock())
        optouts.unsubscribe_email(s, "eve@example.com", source=Source.API, actor="x", now=clock())
    with db.transaction() as s:
        s.scalars(select(OutboxPush)).one().state = "sent"
    with db.transaction() as s:
        optouts.resubscribe_email(
            s, "eve@example.com", source=Source.ADMIN, actor="a", now=clock(), reason="mistake"
        )
        optouts.unsubscribe_email(s, "eve@example.com", source=Source.PAGE, actor="p", now=clock())
    with db.transaction() as s:
        states = sorted(s.scalars(select(OutboxPush.state)).all())
    assert states == ["pending", "sent"]

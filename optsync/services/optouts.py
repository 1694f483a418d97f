"""Record unsubscribes and re-subscribes.

Each change writes, in the caller's single transaction: the person's new state, one
ledger entry and (for an unsubscribe) the outbox push. If any of the three fails, none
is stored, so a push can never be missed and the ledger never disagrees with the state.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from optsync.domain import optout
from optsync.domain.emails import InvalidEmail, normalise_email
from optsync.domain.optout import Decision, OptOutState, Source
from optsync.errors import NotFoundError, UsageError
from optsync.store.models import LedgerEntry, Person
from optsync.store.outbox import enqueue_push


@dataclass(frozen=True)
class ChangeResult:
    person: Person
    changed: bool


def state_of(person: Person) -> OptOutState:
    return OptOutState(
        unsubscribed=person.unsubscribed,
        unsubscribed_at=person.unsubscribed_at,
        source=Source(person.unsubscribe_source) if person.unsubscribe_source else None,
    )


def _apply(session: Session, person: Person, decision: Decision, now: datetime) -> None:
    event = decision.event
    if event is None:
        return
    person.unsubscribed = decision.state.unsubscribed
    person.unsubscribed_at = decision.state.unsubscribed_at
    person.unsubscribe_source = decision.state.source.value if decision.state.source else None
    if event.kind is optout.EventKind.RESUBSCRIBE:
        person.resubscribed_at = now
    person.updated_at = now
    session.add(
        LedgerEntry(
            person_id=person.id,
            kind=event.kind.value,
            source=event.source.value,
            actor=event.actor,
            reason=event.reason,
            evidence=event.evidence,
            created_at=event.at,
        )
    )
    session.flush()


def parse_email(value: str, field: str = "email") -> str:
    try:
        return normalise_email(value)
    except InvalidEmail as exc:
        raise UsageError(f"{field}: {exc}", field=field) from None


def get_or_create_person(session: Session, email: str, now: datetime) -> tuple[Person, bool]:
    person = session.scalars(select(Person).where(Person.email == email)).first()
    if person is not None:
        return person, False
    person = Person(email=email, unsubscribed=False, created_at=now, updated_at=now)
    session.add(person)
    session.flush()
    return person, True


def lock_person(session: Session, person_id: int) -> Person | None:
    """Load a person for update: ``FOR UPDATE`` on PostgreSQL; on SQLite, which has no
    row locks, ``BEGIN IMMEDIATE`` takes the database's write lock before the read (unless
    this transaction already writes, and so holds it)."""
    if session.get_bind().dialect.name == "sqlite":
        connection = session.connection()
        if not connection.connection.dbapi_connection.in_transaction:  # type: ignore[union-attr]
            connection.exec_driver_sql("BEGIN IMMEDIATE")
    # populate_existing: a person read earlier in this transaction must be re-read under
    # the lock, or a concurrent unsubscribe that committed meanwhile would be missed
    return session.scalars(
        select(Person)
        .where(Person.id == person_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    ).first()


def unsubscribe_person(
    session: Session,
    person: Person,
    *,
    source: Source,
    actor: str,
    now: datetime,
    reason: str | None = None,
    evidence: dict[str, Any] | None = None,
) -> ChangeResult:
    """Unsubscribe ``person``: state, ledger and push in this transaction. Idempotent."""
    try:
        decision = optout.unsubscribe(
            state_of(person),
            source=source,
            actor=actor,
            now=now,
            reason=reason,
            evidence=evidence,
        )
    except ValueError as exc:
        raise UsageError(f"reason: {exc}", field="reason") from None
    _apply(session, person, decision, now)
    if decision.changed:
        enqueue_push(session, person, now)
    return ChangeResult(person, decision.changed)


def unsubscribe_by_id(
    session: Session,
    person_id: int,
    *,
    source: Source,
    actor: str,
    now: datetime,
    reason: str | None = None,
    evidence: dict[str, Any] | None = None,
) -> ChangeResult:
    """Unsubscribe a known person; ``NotFoundError`` if there is no such person."""
    person = lock_person(session, person_id)
    if person is None:
        raise NotFoundError(f"person_id: no person {person_id}.", field="person_id")
    return unsubscribe_person(
        session, person, source=source, actor=actor, now=now, reason=reason, evidence=evidence
    )


def unsubscribe_email(
    session: Session,
    email: str,
    *,
    source: Source,
    actor: str,
    now: datetime,
    reason: str | None = None,
    evidence: dict[str, Any] | None = None,
) -> ChangeResult:
    """Unsubscribe an address; an unknown address becomes a (not linked) person first,
    because a suppression must hold even for someone we have never emailed."""
    found, _ = get_or_create_person(session, parse_email(email), now)
    person = lock_person(session, found.id)
    assert person is not None, "the person was just read or created in this transaction"
    return unsubscribe_person(
        session, person, source=source, actor=actor, now=now, reason=reason, evidence=evidence
    )


def resubscribe_email(
    session: Session,
    email: str,
    *,
    source: Source,
    actor: str,
    now: datetime,
    reason: str | None,
    evidence: dict[str, Any] | None = None,
) -> ChangeResult:
    """Remove an unsubscribe (a reason is required). Nothing is sent to Salesforce:
    re-subscribes never sync, the admin must also clear the field there."""
    normal = parse_email(email)
    person = session.scalars(select(Person).where(Person.email == normal)).first()
    if person is None:
        raise NotFoundError(f"email: no person with the address {normal}.", field="email")
    try:
        decision = optout.resubscribe(
            state_of(person),
            source=source,
            actor=actor,
            now=now,
            reason=reason,
            evidence=evidence,
        )
    except ValueError as exc:
        raise UsageError(f"reason: {exc}", field="reason") from None
    _apply(session, person, decision, now)
    return ChangeResult(person, decision.changed)

"""Unsubscribe one person from a request: a link, a one-click POST, an API call.

These wrap ``services.optouts.unsubscribe_person`` (state + ledger + outbox in the
caller's transaction) with a row lock taken *before* the state is read, so that two
simultaneous requests for the same person (a mailbox provider retrying a one-click POST,
a double click) record one unsubscribe, not two ledger entries.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from optsync.domain.optout import Source
from optsync.errors import NotFoundError
from optsync.services.optouts import ChangeResult, get_or_create_person, unsubscribe_person
from optsync.store.models import Person


def lock_person(session: Session, person_id: int) -> Person | None:
    """Load a person for update: ``FOR UPDATE`` on PostgreSQL; on SQLite, which has no
    row locks, ``BEGIN IMMEDIATE`` takes the database's write lock before the read (unless
    this transaction already writes, and so holds it)."""
    if session.get_bind().dialect.name == "sqlite":
        connection = session.connection()
        if not connection.connection.dbapi_connection.in_transaction:  # type: ignore[union-attr]
            connection.exec_driver_sql("BEGIN IMMEDIATE")
    return session.scalars(select(Person).where(Person.id == person_id).with_for_update()).first()


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


def unsubscribe_by_email(
    session: Session,
    email: str,
    *,
    source: Source,
    actor: str,
    now: datetime,
    reason: str | None = None,
    evidence: dict[str, Any] | None = None,
) -> ChangeResult:
    """Unsubscribe a normalised address, adding the person if new (the suppression must
    hold even for someone never emailed)."""
    person, _ = get_or_create_person(session, email, now)
    return unsubscribe_by_id(
        session, person.id, source=source, actor=actor, now=now, reason=reason, evidence=evidence
    )

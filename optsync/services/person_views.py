"""A person as the API shows them: identity, opt-out state, and where their push is.

The push state is read from the person's latest outbox row, because that row is the
truth of what the worker did: ``pending`` (queued or being sent), ``pushed``, ``failed``
(with the Salesforce code, message and the fix) or ``not_linked`` (waits for a Salesforce
id). A person who was never unsubscribed has no push.

A sync run that sets the field records each record it set as a sent push
(:mod:`optsync.services.sync.push_phase`), so ``push`` and ``pushes`` show it too:
``pushes`` lists the person's pushes newest first (at most :data:`MAX_PUSHES`), each with
the record it reached (``target_id``), for the person page.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from optsync.services.sync.push_phase import SENT_BY_RUN
from optsync.store.models import OutboxPush, Person

PUSH_STATES = {
    "pending": "pending",
    "in_flight": "pending",
    "sent": "pushed",
    "failed": "failed",
    "not_linked": "not_linked",
    "cancelled": "cancelled",
}


MAX_PUSHES = 50


@dataclass(frozen=True)
class PushView:
    state: str
    attempts: int
    queued_at: datetime
    sent_at: datetime | None
    field: str | None
    code: str | None
    message: str | None
    fix: str | None
    target_id: str | None = None
    id: int | None = None
    claimed_by: str | None = None
    """Who sent it: a worker, or ``sync run #N`` for a push a sync run made."""

    @property
    def run_id(self) -> int | None:
        """The sync run that made this push, if one did."""
        by = self.claimed_by or ""
        tail = by.removeprefix(SENT_BY_RUN)
        return int(tail) if by.startswith(SENT_BY_RUN) and tail.isdigit() else None


@dataclass(frozen=True)
class PersonView:
    id: int
    email: str
    salesforce_id: str | None
    salesforce_object: str | None
    first_name: str | None
    last_name: str | None
    unsubscribed: bool
    unsubscribed_at: datetime | None
    unsubscribe_source: str | None
    resubscribed_at: datetime | None
    created_at: datetime
    updated_at: datetime
    push: PushView | None
    pushes: tuple[PushView, ...] = ()


def _push_view(row: OutboxPush) -> PushView:
    failed = row.state == "failed"
    return PushView(
        state=PUSH_STATES[row.state],
        attempts=row.attempts,
        queued_at=row.created_at,
        sent_at=row.sent_at,
        field=row.field,
        code=row.last_error_code if failed else None,
        message=row.last_error_message if failed else None,
        fix=row.fix if failed else None,
        target_id=row.target_id,
        id=row.id,
        claimed_by=row.claimed_by,
    )


def pushes_of(session: Session, person_id: int, limit: int | None = MAX_PUSHES) -> list[PushView]:
    """The person's pushes, newest first: the worker's and those a sync run made
    (``limit=None``: every one, for the person page)."""
    query = (
        select(OutboxPush).where(OutboxPush.person_id == person_id).order_by(OutboxPush.id.desc())
    )
    if limit is not None:
        query = query.limit(limit)
    rows = session.scalars(query)
    return [_push_view(row) for row in rows]


def latest_push(session: Session, person_id: int) -> PushView | None:
    latest = pushes_of(session, person_id, limit=1)
    return latest[0] if latest else None


def view_of(session: Session, person: Person) -> PersonView:
    pushes = pushes_of(session, person.id)
    return PersonView(
        id=person.id,
        email=person.email,
        salesforce_id=person.salesforce_id,
        salesforce_object=person.salesforce_object,
        first_name=person.first_name,
        last_name=person.last_name,
        unsubscribed=person.unsubscribed,
        unsubscribed_at=person.unsubscribed_at,
        unsubscribe_source=person.unsubscribe_source,
        resubscribed_at=person.resubscribed_at,
        created_at=person.created_at,
        updated_at=person.updated_at,
        push=pushes[0] if pushes else None,
        pushes=tuple(pushes),
    )


def find_by_id(session: Session, person_id: int) -> PersonView | None:
    person = session.get(Person, person_id)
    return None if person is None else view_of(session, person)


def find_by_email(session: Session, email: str) -> PersonView | None:
    """``email`` must be normalised already."""
    person = session.scalars(select(Person).where(Person.email == email)).first()
    return None if person is None else view_of(session, person)

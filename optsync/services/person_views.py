"""A person as the API shows them: identity, opt-out state, and where their push is.

The push state is read from the person's latest outbox row, because that row is the
truth of what the worker did: ``pending`` (queued or being sent), ``pushed``, ``failed``
(with the Salesforce code, message and the fix) or ``not_linked`` (waits for a Salesforce
id). A person who was never unsubscribed has no push.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from optsync.store.models import OutboxPush, Person

PUSH_STATES = {
    "pending": "pending",
    "in_flight": "pending",
    "sent": "pushed",
    "failed": "failed",
    "not_linked": "not_linked",
    "cancelled": "cancelled",
}


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


def latest_push(session: Session, person_id: int) -> PushView | None:
    row = session.scalars(
        select(OutboxPush)
        .where(OutboxPush.person_id == person_id)
        .order_by(OutboxPush.id.desc())
        .limit(1)
    ).first()
    if row is None:
        return None
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
    )


def view_of(session: Session, person: Person) -> PersonView:
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
        push=latest_push(session, person.id),
    )


def find_by_id(session: Session, person_id: int) -> PersonView | None:
    person = session.get(Person, person_id)
    return None if person is None else view_of(session, person)


def find_by_email(session: Session, email: str) -> PersonView | None:
    """``email`` must be normalised already."""
    person = session.scalars(select(Person).where(Person.email == email)).first()
    return None if person is None else view_of(session, person)

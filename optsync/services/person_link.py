"""Link one person to a Salesforce Contact or Lead by its id (the Failures view's
"Link…" action for a *Not in Salesforce* unsubscribe).

It goes through the one person upsert (:func:`optsync.services.persons.upsert_person`),
which also re-opens the person's waiting ``not_linked`` push, so the worker sends the
opt-out to the record right away. An id already linked to another person is refused
(naming ``salesforce_id``), as ``POST /api/v1/persons`` answers 409.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from optsync.errors import NotFoundError, UsageError
from optsync.services.persons import RowError, upsert_person, validate_person
from optsync.store.models import Person


def link_person(session: Session, person_id: int, salesforce_id: str, now: datetime) -> Person:
    person = session.get(Person, person_id)
    if person is None:
        raise NotFoundError(f"person_id: no person {person_id}.", field="person_id")
    if not salesforce_id.strip():
        raise UsageError(
            "salesforce_id: paste the 15- or 18-character id of the Contact (003…) or "
            "Lead (00Q…) from its Salesforce page.",
            field="salesforce_id",
        )
    checked = validate_person(0, person.email, salesforce_id)
    if isinstance(checked, RowError):
        raise UsageError(checked.reason, field=checked.reason.split(":")[0])
    owner = session.scalar(
        select(Person.email).where(
            Person.salesforce_id == checked.salesforce_id, Person.id != person_id
        )
    )
    if owner is not None:
        raise UsageError(
            f"salesforce_id: {checked.salesforce_id} is already linked to {owner}; one "
            "record belongs to one address.",
            field="salesforce_id",
        )
    linked, _outcome = upsert_person(session, checked, now)
    return linked

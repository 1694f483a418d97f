"""SQL about persons that more than one use case needs."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from optsync.store.models import Person


def relink(session: Session, relinks: dict[int, str], now: datetime) -> int:
    """Point persons at the record their Lead became (or was merged into), unless another
    person already holds that record; returns how many were relinked."""
    if not relinks:
        return 0
    taken = set(
        session.scalars(
            select(Person.salesforce_id).where(Person.salesforce_id.in_(list(relinks.values())))
        )
    )
    done = 0
    for person_id, new_id in relinks.items():
        if new_id in taken:
            continue
        obj = "Contact" if new_id.startswith("003") else "Lead"
        session.execute(
            update(Person)
            .where(Person.id == person_id)
            .values(salesforce_id=new_id, salesforce_object=obj, updated_at=now)
        )
        taken.add(new_id)
        done += 1
    return done

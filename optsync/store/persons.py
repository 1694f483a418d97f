"""SQL about persons that more than one use case needs."""

from __future__ import annotations

from datetime import datetime
from typing import cast

from sqlalchemy import Table, bindparam, select, update
from sqlalchemy.orm import Session

from optsync.domain.ids import RECORD_PREFIXES
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
    rows = []
    for person_id, new_id in relinks.items():
        if new_id in taken:
            continue
        obj = RECORD_PREFIXES.get(new_id[:3], "Lead")
        rows.append({"b_id": person_id, "b_sf": new_id, "b_obj": obj, "b_now": now})
        taken.add(new_id)
    if rows:
        table = cast(Table, Person.__table__)
        session.connection().execute(
            update(table)
            .where(table.c.id == bindparam("b_id"))
            .values(
                salesforce_id=bindparam("b_sf"),
                salesforce_object=bindparam("b_obj"),
                updated_at=bindparam("b_now", type_=table.c.updated_at.type),
            ),
            rows,
        )
    return len(rows)

"""SQL about persons that more than one use case needs."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Table, bindparam, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from optsync.domain.ids import RECORD_PREFIXES
from optsync.domain.records import LinkRule, primary_record
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


def add_unknown(session: Session, emails: Iterable[str], now: datetime) -> dict[str, int]:
    """Persons for addresses optsync has never seen (a Salesforce opt-out of an unknown
    address: issue 16's "suppressed persons"); returns ``email -> person id`` of every
    given address, new or already there. The opt-out itself is written by the caller
    through the one write path."""
    wanted = sorted(set(emails))
    out: dict[str, int] = {}
    table = cast(Table, Person.__table__)
    dialect = session.get_bind().dialect.name
    for start in range(0, len(wanted), 1_000):
        chunk = wanted[start : start + 1_000]
        rows = [{"email": e, "created_at": now, "updated_at": now} for e in chunk]
        stmt: Any = (postgresql.insert if dialect == "postgresql" else sqlite.insert)(table)
        session.execute(stmt.on_conflict_do_nothing(index_elements=[table.c.email]), rows)
        out.update(
            {
                str(e): int(pid)
                for pid, e in session.execute(
                    select(table.c.id, table.c.email).where(table.c.email.in_(chunk))
                )
            }
        )
    return out


def auto_link(
    session: Session,
    person_ids: Iterable[int],
    rule: LinkRule,
    field: str,
    now: datetime,
) -> list[int]:
    """Link each of these persons that has no record yet to its address's primary record
    by the linking rule (:func:`optsync.domain.records.primary_record`), unless another
    person holds that record; returns the persons linked. ``off`` links nothing."""
    from optsync.store.records import field_column, records_by_email

    if rule == "off":
        return []
    ids = sorted(set(person_ids))
    table = cast(Table, Person.__table__)
    linked: list[int] = []
    for start in range(0, len(ids), 1_000):
        chunk = ids[start : start + 1_000]
        unlinked = {
            str(email): int(pid)
            for pid, email in session.execute(
                select(table.c.id, table.c.email).where(
                    table.c.id.in_(chunk), table.c.salesforce_id.is_(None)
                )
            )
        }
        if not unlinked:
            continue
        records = records_by_email(session, unlinked, field_column(field))
        choice: dict[int, tuple[str, str]] = {}
        for email, views in records.items():
            best = primary_record(views, rule)
            if best is not None:
                choice[unlinked[email]] = (best.record_id, best.object)
        if not choice:
            continue
        taken = set(
            session.scalars(
                select(table.c.salesforce_id).where(
                    table.c.salesforce_id.in_([rid for rid, _ in choice.values()])
                )
            )
        )
        rows: list[dict[str, Any]] = [
            {"b_id": pid, "b_sf": rid, "b_obj": obj, "b_now": now}
            for pid, (rid, obj) in sorted(choice.items())
            if rid not in taken
        ]
        if rows:
            session.connection().execute(
                update(table)
                .where(table.c.id == bindparam("b_id"), table.c.salesforce_id.is_(None))
                .values(
                    salesforce_id=bindparam("b_sf"),
                    salesforce_object=bindparam("b_obj"),
                    updated_at=bindparam("b_now", type_=table.c.updated_at.type),
                ),
                rows,
            )
            linked += [int(r["b_id"]) for r in rows]
    return linked

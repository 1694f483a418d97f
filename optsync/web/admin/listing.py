"""The Unsubscribes tab's data: unsubscribed persons, searched and paged, each with the
state of their latest push, in two queries per page (not one per person)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from optsync.services.person_views import PUSH_STATES
from optsync.store.models import OutboxPush, Person

PAGE_SIZE = 50
MAX_QUERY = 254


@dataclass(frozen=True)
class Row:
    id: int
    email: str
    salesforce_id: str | None
    salesforce_object: str | None
    source: str | None
    unsubscribed_at: datetime | None
    push_state: str | None
    push_code: str | None
    push_fix: str | None


@dataclass(frozen=True)
class ListPage:
    rows: list[Row]
    total: int
    page: int
    pages: int
    query: str


def _like_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def unsubscribed_page(session: Session, query: str, page: int) -> ListPage:
    """Persons who are unsubscribed, newest first; ``query`` matches part of the address."""
    query = query.strip().lower()[:MAX_QUERY]
    where = [Person.unsubscribed.is_(True)]
    if query:
        where.append(Person.email.like(f"%{_like_escape(query)}%", escape="\\"))
    total = int(session.scalar(select(func.count(Person.id)).where(*where)) or 0)
    pages = max(1, -(-total // PAGE_SIZE))
    page = min(max(1, page), pages)
    persons = list(
        session.scalars(
            select(Person)
            .where(*where)
            .order_by(Person.unsubscribed_at.desc(), Person.id.desc())
            .limit(PAGE_SIZE)
            .offset((page - 1) * PAGE_SIZE)
        )
    )
    pushes = latest_pushes(session, [p.id for p in persons])
    rows = []
    for p in persons:
        push = pushes.get(p.id)
        failed = push is not None and push.state == "failed"
        rows.append(
            Row(
                id=p.id,
                email=p.email,
                salesforce_id=p.salesforce_id,
                salesforce_object=p.salesforce_object,
                source=p.unsubscribe_source,
                unsubscribed_at=p.unsubscribed_at,
                push_state=PUSH_STATES[push.state] if push is not None else None,
                push_code=push.last_error_code if failed and push else None,
                push_fix=push.fix if failed and push else None,
            )
        )
    return ListPage(rows=rows, total=total, page=page, pages=pages, query=query)


def latest_pushes(session: Session, person_ids: list[int]) -> dict[int, OutboxPush]:
    if not person_ids:
        return {}
    newest = (
        select(func.max(OutboxPush.id))
        .where(OutboxPush.person_id.in_(person_ids))
        .group_by(OutboxPush.person_id)
    )
    return {
        row.person_id: row
        for row in session.scalars(select(OutboxPush).where(OutboxPush.id.in_(newest)))
    }

"""The push outbox: rows written in the same transaction as the unsubscribe they push.

A worker claims due rows (``FOR UPDATE SKIP LOCKED`` on PostgreSQL), sends them and
records the outcome. This module owns the SQL; the decisions (retry, give up, follow a
conversion) live in ``optsync.domain``.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from sqlalchemy import select, text, update
from sqlalchemy.orm import Session

from optsync.store.models import OutboxPush, Person

OPEN_STATES = ("pending", "in_flight", "not_linked")
NOTIFY_CHANNEL = "optsync_outbox"


def enqueue_push(session: Session, person: Person, now: datetime) -> OutboxPush:
    """Queue a push of ``person``'s opt-out unless one is already open."""
    existing = session.scalars(
        select(OutboxPush).where(
            OutboxPush.person_id == person.id, OutboxPush.state.in_(OPEN_STATES)
        )
    ).first()
    if existing is not None:
        return existing
    push = OutboxPush(
        person_id=person.id,
        state="pending" if person.salesforce_id else "not_linked",
        attempts=0,
        next_attempt_at=now,
        created_at=now,
    )
    session.add(push)
    session.flush()
    notify(session)
    return push


def release_not_linked(session: Session, person_ids: Iterable[int], now: datetime) -> int:
    """Persons just linked to Salesforce: their waiting pushes become due now."""
    ids = list(person_ids)
    if not ids:
        return 0
    result = session.execute(
        update(OutboxPush)
        .where(OutboxPush.state == "not_linked", OutboxPush.person_id.in_(ids))
        .values(state="pending", next_attempt_at=now)
        .execution_options(synchronize_session=False)
    )
    if result.rowcount:  # type: ignore[attr-defined]
        notify(session)
    return int(result.rowcount)  # type: ignore[attr-defined]


def notify(session: Session) -> None:
    """Wake listening workers when this transaction commits (PostgreSQL only)."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text(f"NOTIFY {NOTIFY_CHANNEL}"))

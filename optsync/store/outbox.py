"""The push outbox: rows written in the same transaction as the unsubscribe they push.

A worker claims due rows (``FOR UPDATE SKIP LOCKED`` on PostgreSQL), sends them and
records the outcome. This module owns the SQL; the decisions (retry, give up, follow a
conversion) live in ``optsync.domain``.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import and_, event, func, or_, select, text, update
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


# Set when a transaction that queued a push commits in this process: a worker sharing the
# process (``optsync up``, the demo) wakes at once without polling.
LOCAL_WAKEUP = threading.Event()


def _after_commit(session: Session) -> None:
    if session.info.pop("optsync_wakeup", False):
        LOCAL_WAKEUP.set()


def _after_rollback(session: Session) -> None:
    session.info.pop("optsync_wakeup", None)


def notify(session: Session) -> None:
    """Wake workers when this transaction commits: PostgreSQL ``NOTIFY`` reaches workers
    on every machine; the in-process event reaches a worker in this process. Once per
    transaction is enough (PostgreSQL folds identical notifications anyway)."""
    if session.info.get("optsync_wakeup"):
        return
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text(f"NOTIFY {NOTIFY_CHANNEL}"))
    session.info["optsync_wakeup"] = True
    if not event.contains(session, "after_commit", _after_commit):
        event.listen(session, "after_commit", _after_commit)
    if not event.contains(session, "after_rollback", _after_rollback):
        event.listen(session, "after_rollback", _after_rollback)


# -- claiming and settling (the push worker) ----------------------------------------


@dataclass(frozen=True)
class ClaimedPush:
    """A claimed outbox row with what a push needs to know about its person."""

    push_id: int
    person_id: int
    attempts: int
    salesforce_id: str | None
    salesforce_object: str | None


def claim_due(
    session: Session, *, worker: str, now: datetime, limit: int, lease: timedelta
) -> list[ClaimedPush]:
    """Claim up to ``limit`` due pushes for ``worker`` until ``now + lease``.

    Due means pending with ``next_attempt_at <= now``, or in flight under an expired claim
    (its worker died). One UPDATE ... WHERE id IN (SELECT ... FOR UPDATE SKIP LOCKED)
    statement: on PostgreSQL concurrent workers skip each other's rows; SQLite serialises
    writers, so the statement is atomic there too.
    """
    due = (
        select(OutboxPush.id)
        .where(
            or_(
                and_(OutboxPush.state == "pending", OutboxPush.next_attempt_at <= now),
                and_(OutboxPush.state == "in_flight", OutboxPush.claimed_until < now),
            )
        )
        .order_by(OutboxPush.next_attempt_at, OutboxPush.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    claimed = session.execute(
        update(OutboxPush)
        .where(OutboxPush.id.in_(due.scalar_subquery()))
        .values(
            state="in_flight",
            claimed_by=worker,
            claimed_until=now + lease,
            attempts=OutboxPush.attempts + 1,
        )
        .returning(OutboxPush.id, OutboxPush.person_id, OutboxPush.attempts)
        .execution_options(synchronize_session=False)
    ).all()
    if not claimed:
        return []
    people = {
        pid: (sid, obj)
        for pid, sid, obj in session.execute(
            select(Person.id, Person.salesforce_id, Person.salesforce_object).where(
                Person.id.in_([c.person_id for c in claimed])
            )
        )
    }
    out = [
        ClaimedPush(c.id, c.person_id, c.attempts, *people.get(c.person_id, (None, None)))
        for c in claimed
    ]
    out.sort(key=lambda c: c.push_id)
    return out


@dataclass(frozen=True)
class Settlement:
    """What became of one claimed push."""

    push_id: int
    state: str  # sent | pending | failed | not_linked
    next_attempt_at: datetime | None = None
    field: str | None = None
    target_id: str | None = None
    code: str | None = None
    message: str | None = None
    fix: str | None = None


def settle(session: Session, worker: str, settlements: list[Settlement], now: datetime) -> int:
    """Record outcomes; only rows still claimed by ``worker`` are touched (a row whose
    claim expired and was taken over belongs to its new worker). Returns rows updated."""
    done = 0
    for s in settlements:
        values: dict[str, object] = {
            "state": s.state,
            "claimed_by": None,
            "claimed_until": None,
            "field": s.field,
            "target_id": s.target_id,
            "last_error_code": s.code,
            "last_error_message": s.message,
            "fix": s.fix,
        }
        if s.state == "sent":
            values["sent_at"] = now
        if s.next_attempt_at is not None:
            values["next_attempt_at"] = s.next_attempt_at
        result = session.execute(
            update(OutboxPush)
            .where(
                OutboxPush.id == s.push_id,
                OutboxPush.state == "in_flight",
                OutboxPush.claimed_by == worker,
            )
            .values(**values)
            .execution_options(synchronize_session=False)
        )
        done += int(result.rowcount)  # type: ignore[attr-defined]
    return done


def next_due_at(session: Session) -> datetime | None:
    """When the earliest pending push becomes due (None if nothing is pending)."""
    return session.scalar(
        select(func.min(OutboxPush.next_attempt_at)).where(OutboxPush.state == "pending")
    )


def queue_stats(session: Session, now: datetime) -> dict[str, float]:
    """Counts per state and the age in seconds of the oldest open push."""
    counts: dict[str, int] = {
        state: n
        for state, n in session.execute(
            select(OutboxPush.state, func.count()).group_by(OutboxPush.state)
        )
    }
    oldest = session.scalar(
        select(func.min(OutboxPush.created_at)).where(OutboxPush.state.in_(OPEN_STATES))
    )
    stats: dict[str, float] = {
        state: float(counts.get(state, 0))
        for state in ("pending", "in_flight", "sent", "failed", "not_linked")
    }
    stats["oldest_open_age_s"] = (now - oldest).total_seconds() if oldest else 0.0
    return stats

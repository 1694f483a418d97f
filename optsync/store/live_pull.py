"""The live pull's stored state: the subscriber lease and, per object, the replay id,
the last commit time, the poll cursor and the status the Integrations tab shows.

**The lease** (``live_pull_lease``, one row): exactly one worker of the installation
subscribes. :func:`acquire` is one conditional UPDATE on the database's clock
(:func:`~optsync.store.db.database_now`): it succeeds when the row names this worker
already (a renewal) or its lease has run out (a take-over). Of two workers racing for an
expired lease, the UPDATE's row lock lets exactly one win. A worker that cannot renew
stops subscribing before its lease runs out (``optsync.worker.live_pull``), so a
take-over never overlaps a live holder.

**The replay id** is written by :func:`save_progress` in the caller's transaction, the
one that wrote the opt-outs of the events it follows: it is never ahead of what was
applied (at-least-once delivery; the handler is idempotent).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import case, insert, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from optsync.domain.live_pull import POLL_OVERLAP
from optsync.store import records as records_store
from optsync.store.db import database_now
from optsync.store.models import LivePullLease, LivePullState

LEASE_ID = 1


def acquire(session: Session, holder: str, ttl: timedelta) -> datetime | None:
    """Take or renew the lease for ``holder``; returns its new expiry (database clock),
    or None when another worker holds a live lease."""
    now = database_now(session)
    if session.get(LivePullLease, LEASE_ID) is None:
        try:
            with session.begin_nested():
                session.execute(insert(LivePullLease).values(id=LEASE_ID))
        except IntegrityError:
            pass  # another worker inserted it first
    expires = now + ttl
    row = session.execute(
        update(LivePullLease)
        .where(
            LivePullLease.id == LEASE_ID,
            or_(
                LivePullLease.holder == holder,
                LivePullLease.holder.is_(None),
                LivePullLease.expires_at.is_(None),
                LivePullLease.expires_at < now,
            ),
        )
        .values(
            holder=holder,
            expires_at=expires,
            acquired_at=case(
                (LivePullLease.holder == holder, LivePullLease.acquired_at), else_=now
            ),
        )
        .returning(LivePullLease.id)
    ).first()
    return None if row is None else expires


def release(session: Session, holder: str) -> None:
    """Give the lease up now (a clean stop), so another worker takes over at once."""
    session.execute(
        update(LivePullLease)
        .where(LivePullLease.id == LEASE_ID, LivePullLease.holder == holder)
        .values(holder=None, expires_at=None, acquired_at=None)
    )


def holder(session: Session) -> tuple[str | None, datetime | None]:
    """Who holds the lease and until when (for the tab and the tests)."""
    row = session.get(LivePullLease, LEASE_ID)
    if row is None:
        return None, None
    return row.holder, row.expires_at


@dataclass(frozen=True)
class ObjectState:
    object: str
    replay_id: bytes | None
    last_commit_at: datetime | None
    poll_cursor: datetime | None
    mode: str
    status: str
    detail: str | None
    last_event_at: datetime | None
    updated_at: datetime


def _view(row: LivePullState) -> ObjectState:
    return ObjectState(
        row.object,
        row.replay_id,
        row.last_commit_at,
        row.poll_cursor,
        row.mode,
        row.status,
        row.detail,
        row.last_event_at,
        row.updated_at,
    )


def get_state(session: Session, obj: str, now: datetime) -> ObjectState:
    """The object's state; the first call creates it (cursor and commit time = now, the
    point from which nothing may be missed) and notes in the record mirror that the
    live pull's chain for the object begins there (:func:`_chain_begins`)."""
    row = session.get(LivePullState, obj)
    if row is None:
        created = False
        try:
            with session.begin_nested():
                session.execute(
                    insert(LivePullState).values(
                        object=obj,
                        mode="cdc",
                        status="starting",
                        last_commit_at=now,
                        poll_cursor=now,
                        updated_at=now,
                    )
                )
            created = True
        except IntegrityError:
            pass
        if created:
            _chain_begins(session, obj, now)
        row = session.get(LivePullState, obj, populate_existing=True)
        assert row is not None
    return _view(row)


def _chain_begins(session: Session, obj: str, now: datetime) -> None:
    """The live pull follows ``obj`` from ``now`` on (its first poll reads from
    ``POLL_OVERLAP`` before). From then on the stored replay id and poll cursor carry
    the chain without a break (a break is a gap, and marks the mirror untrusted), so
    the live pull may keep the mirror's watermark moving. Its start must meet the
    mirror's coverage: a trusted mirror whose watermark is older than that leaves
    changes nobody read, so it is marked untrusted; an untrusted one is marked again,
    so a full read running at this moment (which might have missed what changed before
    the chain began) does not end trusted."""
    state = records_store.mirror_state(session)
    reason: str | None
    if state is not None and state.trusted:
        if state.through is not None and state.through >= now - POLL_OVERLAP:
            return
        reason = f"the live pull began following {obj} after the last full read"
    else:
        reason = state.reason if state is not None else None
    records_store.save_mirror_state(session, now, trusted=False, reason=reason)


def all_states(session: Session) -> list[ObjectState]:
    rows = session.scalars(select(LivePullState).order_by(LivePullState.object))
    return [_view(r) for r in rows]


def save_progress(
    session: Session,
    obj: str,
    now: datetime,
    *,
    replay_id: bytes | None = None,
    last_commit_at: datetime | None = None,
    poll_cursor: datetime | None = None,
    event_seen: bool = False,
) -> None:
    """Record how far the object's pull got, in the caller's transaction. The commit
    time and the poll cursor only move forward (a re-delivered old event never moves a
    catch-up's start back)."""
    values: dict[str, Any] = {"updated_at": now}
    if replay_id is not None:
        values["replay_id"] = replay_id
    if event_seen:
        values["last_event_at"] = now
    session.execute(update(LivePullState).where(LivePullState.object == obj).values(**values))
    for column, value in (
        (LivePullState.last_commit_at, last_commit_at),
        (LivePullState.poll_cursor, poll_cursor),
    ):
        if value is not None:
            session.execute(
                update(LivePullState)
                .where(LivePullState.object == obj, or_(column.is_(None), column < value))
                .values({column.key: value})
            )


def set_status(
    session: Session, obj: str, now: datetime, *, mode: str, status: str, detail: str | None
) -> None:
    session.execute(
        update(LivePullState)
        .where(LivePullState.object == obj)
        .values(mode=mode, status=status, detail=detail[:255] if detail else None, updated_at=now)
    )


def forget_replay(session: Session, obj: str, now: datetime) -> None:
    """Drop a replay id Salesforce no longer accepts (the catch-up covers its window)."""
    session.execute(
        update(LivePullState)
        .where(LivePullState.object == obj)
        .values(replay_id=None, updated_at=now)
    )

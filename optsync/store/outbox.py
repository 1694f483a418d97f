"""The push outbox: rows written in the same transaction as the unsubscribe they push.

A worker claims due rows (``FOR UPDATE SKIP LOCKED`` on PostgreSQL), sends them and
records the outcome. This module owns the SQL; the decisions (retry, give up, follow a
conversion) live in ``optsync.domain``.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import cast

from sqlalchemy import Table, and_, bindparam, event, func, insert, or_, select, text, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from optsync.domain.records import records_to_set
from optsync.store.db import database_now
from optsync.store.models import OutboxPush, Person, PushRecord
from optsync.store.records import field_column, records_by_email

OPEN_STATES = ("pending", "in_flight", "not_linked")
STATES = (*OPEN_STATES, "sent", "failed", "cancelled")
NOTIFY_CHANNEL = "optsync_outbox"


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
    email: str = ""


def claim_due(
    session: Session, *, worker: str, now: datetime, limit: int, lease: timedelta
) -> list[ClaimedPush]:
    """Claim up to ``limit`` due pushes for ``worker`` for ``lease``.

    Due means pending with ``next_attempt_at <= now`` (the retry time the worker's policy
    chose), or in flight under an expired claim (its worker died). Claims are leases on
    the *database's* clock (:func:`~optsync.store.db.database_now`): a worker whose own
    clock runs minutes ahead cannot take over live claims, nor one running behind keep
    dead ones. One UPDATE ... WHERE id IN (SELECT ... FOR UPDATE SKIP LOCKED) statement:
    on PostgreSQL concurrent workers skip each other's rows; SQLite serialises writers, so
    the statement is atomic there too.

    Only pushes of persons who are still unsubscribed are claimed. A re-subscribe cancels
    the person's open push in its own transaction (``store.optouts``); should a push ever
    be open for a subscribed person anyway, it is cancelled here instead of sent.
    """
    clock = database_now(session)
    _cancel_orphans(session, clock)
    person_unsubscribed = (
        select(Person.id)
        .where(Person.id == OutboxPush.person_id, Person.unsubscribed.is_(True))
        .exists()
    )
    due = (
        select(OutboxPush.id)
        .where(
            or_(
                and_(OutboxPush.state == "pending", OutboxPush.next_attempt_at <= now),
                and_(OutboxPush.state == "in_flight", OutboxPush.claimed_until < clock),
            ),
            person_unsubscribed,
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
            claimed_until=clock + lease,
            attempts=OutboxPush.attempts + 1,
        )
        .returning(OutboxPush.id, OutboxPush.person_id, OutboxPush.attempts)
        .execution_options(synchronize_session=False)
    ).all()
    if not claimed:
        return []
    people = {
        pid: (sid, obj, email)
        for pid, sid, obj, email in session.execute(
            select(Person.id, Person.salesforce_id, Person.salesforce_object, Person.email).where(
                Person.id.in_([c.person_id for c in claimed])
            )
        )
    }
    out = [
        ClaimedPush(c.id, c.person_id, c.attempts, *people.get(c.person_id, (None, None, "")))
        for c in claimed
    ]
    out.sort(key=lambda c: c.push_id)
    return out


def _cancel_orphans(session: Session, now: datetime) -> None:
    """The safety net under the re-subscribe's cancellation: an open push of a person who
    is not unsubscribed is cancelled, never sent."""
    session.execute(
        update(OutboxPush)
        .where(
            OutboxPush.state.in_(("pending", "not_linked")),
            select(Person.id)
            .where(Person.id == OutboxPush.person_id, Person.unsubscribed.is_(False))
            .exists(),
        )
        .values(state="cancelled", settled_at=now)
        .execution_options(synchronize_session=False)
    )


def still_wanted(session: Session, push_ids: Iterable[int]) -> set[int]:
    """Of these claimed pushes, the ones still in flight for an unsubscribed person: the
    re-check a worker makes just before it sends (a re-subscribe may have cancelled a
    push between its claim and its send)."""
    ids = list(push_ids)
    if not ids:
        return set()
    return set(
        session.scalars(
            select(OutboxPush.id)
            .join(Person, Person.id == OutboxPush.person_id)
            .where(
                OutboxPush.id.in_(ids),
                OutboxPush.state == "in_flight",
                Person.unsubscribed.is_(True),
            )
        )
    )


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


def rerun_for_new_records(
    session: Session,
    worker: str,
    settlements: list[Settlement],
    now: datetime,
    *,
    field: str,
    tried: Mapping[int, Iterable[str]],
) -> list[Settlement]:
    """The settlements to write, with every push about to settle ``sent`` or
    ``not_linked`` while its address has a record still to set that it did not try
    (``tried``: the records this push sent or tried, this cycle and before, with
    ``field``) turned into another round due now: a record that gained the address while
    the push was in flight (a new Lead, an email changed onto it), mirrored by a pull
    after the push took its view of the address's records. The pull re-queued the
    address, but the person has an open push (one per person), so nothing else would
    send it.

    First the pushes' rows are locked (``FOR UPDATE``; SQLite's writer lock does the
    same), then the mirror is read: ``store.optouts.requeue`` takes the same lock before
    it decides that a person's open push will do, so of a pull and a settle racing for
    one person, either the settle sees the pull's record, or the requeue sees the push
    settled and opens another. Call it in the settle's transaction, right before
    :func:`settle`."""
    candidates = [s.push_id for s in settlements if s.state in ("sent", "not_linked")]
    if not candidates:
        return settlements
    emails: dict[int, str] = {}
    for start in range(0, len(candidates), 1_000):
        chunk = candidates[start : start + 1_000]
        locked = list(
            session.scalars(
                select(OutboxPush.id)
                .where(
                    OutboxPush.id.in_(chunk),
                    OutboxPush.state == "in_flight",
                    OutboxPush.claimed_by == worker,
                )
                .with_for_update()
            )
        )
        emails.update(
            (int(push_id), str(email))
            for push_id, email in session.execute(
                select(OutboxPush.id, Person.email)
                .join(Person, Person.id == OutboxPush.person_id)
                .where(OutboxPush.id.in_(locked))
            )
        )
    records = records_by_email(session, set(emails.values()), field_column(field))
    again = {
        push_id
        for push_id, email in emails.items()
        if {v.record_id for v in records_to_set(records.get(email, []))}
        - set(tried.get(push_id, ()))
    }
    if not again:
        return settlements
    notify(session)
    return [
        Settlement(s.push_id, "pending", next_attempt_at=now) if s.push_id in again else s
        for s in settlements
    ]


def settle(
    session: Session,
    worker: str,
    settlements: list[Settlement],
    now: datetime,
    *,
    claimed_links: dict[int, str | None] | None = None,
) -> int:
    """Record outcomes, one executemany for the batch; only rows still claimed by
    ``worker`` are touched (a row whose claim expired and was taken over belongs to its
    new worker, one a re-subscribe cancelled stays cancelled). Returns rows updated.

    ``claimed_links``: the record each push's person was linked to when it was claimed.
    A person relinked to another record while the push was in flight (import, API, pull,
    admin) gets a new push to the current record (``store.optouts.requeue``).
    """
    if not settlements:
        return 0
    table = cast(Table, OutboxPush.__table__)
    statement = (
        update(table)
        .where(
            table.c.id == bindparam("b_id"),
            table.c.state == "in_flight",
            table.c.claimed_by == worker,
        )
        .values(
            state=bindparam("b_state"),
            claimed_by=None,
            claimed_until=None,
            field=bindparam("b_field"),
            target_id=bindparam("b_target"),
            last_error_code=bindparam("b_code"),
            last_error_message=bindparam("b_message"),
            fix=bindparam("b_fix"),
            next_attempt_at=func.coalesce(
                bindparam("b_next", type_=table.c.next_attempt_at.type), table.c.next_attempt_at
            ),
            sent_at=bindparam("b_sent", type_=table.c.sent_at.type),
            settled_at=bindparam("b_settled", type_=table.c.settled_at.type),
        )
    )
    result = session.connection().execute(
        statement,
        [
            {
                "b_id": s.push_id,
                "b_state": s.state,
                "b_field": s.field,
                "b_target": s.target_id,
                "b_code": s.code,
                "b_message": s.message,
                "b_fix": s.fix,
                "b_next": s.next_attempt_at,
                "b_sent": now if s.state == "sent" else None,
                "b_settled": now if s.state in ("sent", "failed") else None,
            }
            for s in settlements
        ],
    )
    done = int(result.rowcount)
    sent = {s.push_id: s for s in settlements if s.state == "sent"}
    if sent and claimed_links is not None:
        rows = session.execute(
            select(OutboxPush.id, OutboxPush.person_id, Person.salesforce_id)
            .join(Person, Person.id == OutboxPush.person_id)
            .where(OutboxPush.id.in_(list(sent)), OutboxPush.state == "sent")
        ).all()
        moved = [
            person_id
            for push_id, person_id, current in rows
            if current not in (claimed_links.get(push_id), sent[push_id].target_id)
        ]
        if moved:
            from optsync.store.optouts import requeue

            requeue(session, moved, now)
    return done


def retry_failed(
    session: Session,
    *,
    now: datetime,
    codes: Iterable[str] = (),
    person_ids: Iterable[int] = (),
    all_failed: bool = False,
) -> int:
    """Re-open failed pushes after their fix: those with one of ``codes``, of one of
    ``person_ids``, or every one (``all_failed``); at least one filter is required.
    Only a person's latest push counts, and only while they are unsubscribed. Returns the
    pushes re-opened (due now)."""
    from optsync.store.optouts import requeue

    code_list, id_list = list(codes), list(person_ids)
    if not (all_failed or code_list or id_list):
        raise ValueError("retry_failed needs a code, a person or all_failed")
    latest = select(func.max(OutboxPush.id)).group_by(OutboxPush.person_id).scalar_subquery()
    query = select(OutboxPush.person_id).where(
        OutboxPush.state == "failed", OutboxPush.id.in_(latest)
    )
    if code_list:
        query = query.where(OutboxPush.last_error_code.in_(code_list))
    if id_list:
        query = query.where(OutboxPush.person_id.in_(id_list))
    return requeue(session, list(session.scalars(query)), now)


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
    stats: dict[str, float] = {state: float(counts.get(state, 0)) for state in STATES}
    stats["oldest_open_age_s"] = (now - oldest).total_seconds() if oldest else 0.0
    return stats


_PG_RECORD_SENT = text(
    "INSERT INTO outbox (person_id, state, attempts, next_attempt_at, field, target_id, "
    "claimed_by, created_at, sent_at, settled_at) "
    "SELECT t.p, 'sent', 1, :now, :field, t.t, :by, :now, :now, :now "
    "FROM unnest(CAST(:pids AS BIGINT[]), CAST(:targets AS VARCHAR[])) AS t(p, t)"
)
"""One statement per chunk with two array parameters (as the sync's staging does): an
executemany of 75,000 rows costs seconds on PostgreSQL, this a fraction of that."""

RECORD_CHUNK = 5_000


def record_sent(
    session: Session,
    sent: Sequence[tuple[int, str]],
    *,
    field: str,
    sent_by: str,
    now: datetime,
) -> None:
    """Write ``(person_id, record)`` pairs another path already set in Salesforce (a sync
    run) as sent pushes, so the person's pushes show them. Never open: the worker, retries
    and the one-open-push rule do not see them; retention prunes them like any sent push."""
    postgres = session.get_bind().dialect.name == "postgresql"
    for start in range(0, len(sent), RECORD_CHUNK):
        chunk = sent[start : start + RECORD_CHUNK]
        if postgres:
            session.execute(
                _PG_RECORD_SENT,
                {
                    "pids": [p for p, _ in chunk],
                    "targets": [t for _, t in chunk],
                    "now": now,
                    "field": field,
                    "by": sent_by,
                },
            )
            continue
        session.execute(
            insert(cast(Table, OutboxPush.__table__)),
            [
                {
                    "person_id": pid,
                    "state": "sent",
                    "attempts": 1,
                    "next_attempt_at": now,
                    "field": field,
                    "target_id": target,
                    "claimed_by": sent_by,
                    "created_at": now,
                    "sent_at": now,
                    "settled_at": now,
                }
                for pid, target in chunk
            ],
        )


# -- the records a push reached ----------------------------------------------------------


@dataclass(frozen=True)
class RecordOutcome:
    """One record a push set (``sent``) or failed to set (``failed``, with the fix)."""

    push_id: int
    record_id: str
    object: str
    state: str  # sent | failed
    code: str | None = None
    message: str | None = None
    fix: str | None = None
    field: str | None = None  # the field's API name (set, or tried)


def record_outcomes(session: Session, outcomes: Sequence[RecordOutcome], now: datetime) -> None:
    """Write each record's outcome in ``push_records``; a record tried again by the same
    push (a retry) keeps its latest outcome. Only pushes that still exist are written (a
    retention prune may not race a settle, but a push deleted meanwhile is skipped)."""
    if not outcomes:
        return
    table = cast(Table, PushRecord.__table__)
    dialect = session.get_bind().dialect.name
    insert_fn = postgresql.insert if dialect == "postgresql" else sqlite.insert
    rows = {
        (o.push_id, o.record_id): {
            "push_id": o.push_id,
            "record_id": o.record_id,
            "object": o.object,
            "state": o.state,
            "error_code": o.code,
            "message": (o.message or None) and o.message[:2000],
            "fix": o.fix,
            "at": now,
            "field": o.field,
        }
        for o in outcomes
    }
    values = list(rows.values())
    for start in range(0, len(values), 500):
        stmt = insert_fn(table)
        stmt = stmt.on_conflict_do_update(
            index_elements=[table.c.push_id, table.c.record_id],
            set_={
                "state": stmt.excluded.state,
                "error_code": stmt.excluded.error_code,
                "message": stmt.excluded.message,
                "fix": stmt.excluded.fix,
                "at": stmt.excluded.at,
                "field": stmt.excluded.field,
            },
        )
        session.execute(stmt, values[start : start + 500])


def records_sent(session: Session, push_ids: Iterable[int], field: str) -> dict[int, set[str]]:
    """The records each of these pushes already set with ``field``: a retry sends only
    the others (after a switch of the synced field, every record again)."""
    ids = list(push_ids)
    out: dict[int, set[str]] = {}
    for start in range(0, len(ids), 1_000):
        for push_id, record_id in session.execute(
            select(PushRecord.push_id, PushRecord.record_id).where(
                PushRecord.push_id.in_(ids[start : start + 1_000]),
                PushRecord.state == "sent",
                PushRecord.field == field,
            )
        ):
            out.setdefault(int(push_id), set()).add(str(record_id))
    return out


def push_records_of(session: Session, push_ids: Iterable[int]) -> dict[int, list[PushRecord]]:
    """Every record outcome of these pushes, by push (for the person page and the API)."""
    ids = list(push_ids)
    out: dict[int, list[PushRecord]] = {}
    for start in range(0, len(ids), 1_000):
        for row in session.scalars(
            select(PushRecord)
            .where(PushRecord.push_id.in_(ids[start : start + 1_000]))
            .order_by(PushRecord.push_id, PushRecord.object, PushRecord.record_id)
        ):
            out.setdefault(row.push_id, []).append(row)
    return out

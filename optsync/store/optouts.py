"""The one write path for opt-out state: person, ledger and pushes change together.

Every change of a person's opt-out state goes through this module, whatever asked for
it: a single unsubscribe (page, API, CLI, admin), a suppression list, the public
endpoints' group commit, a sync's pull, and every re-subscribe. The rules of a single
change (a reason is cleaned, a re-subscribe needs one, a sync never re-subscribes) are
``optsync.domain.optout``'s; callers hand in the :class:`~optsync.domain.optout.LedgerEvent`
those rules produced for each person, and this module writes it set-based, in the
caller's transaction:

1. one ``UPDATE persons ... WHERE id IN (...) AND <not yet in the new state> RETURNING``
   per source. The statement is the lock: PostgreSQL re-checks the condition on a row a
   concurrent transaction just changed, and SQLite admits one writer at a time, so of two
   racing requests exactly one changes a person, and only that one writes a ledger entry;
2. one multi-row INSERT of the ledger entries of exactly the persons that changed;
3. pushes: an unsubscribe queues one (unless the person already has an open one; the
   partial unique index ``uq_outbox_one_open`` makes that a database rule, and the INSERT
   skips conflicts); a re-subscribe cancels every open push of the person.

:func:`requeue` is the one way a push is (re-)opened after the fact: a person linked to
a record for the first time or to another one, a failed push retried after its fix, a
push that reached an old record after a relink.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any, cast

from sqlalchemy import ColumnElement, Table, and_, func, insert, select, text, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from optsync.domain.optout import EventKind, LedgerEvent, Source
from optsync.store.models import LedgerEntry, OutboxPush, Person
from optsync.store.outbox import OPEN_STATES, notify

PERSONS = cast(Table, Person.__table__)
LEDGER = cast(Table, LedgerEntry.__table__)
OUTBOX = cast(Table, OutboxPush.__table__)

OPEN_WHERE = "state IN ('pending', 'in_flight', 'not_linked')"
"""The predicate of ``uq_outbox_one_open`` (an INSERT's conflict target must repeat it)."""

CHUNK = 1_000
"""Persons per statement: keeps every IN list inside SQLite's bound-parameter limit."""


@dataclass(frozen=True)
class Change:
    """One person's requested change, as ``domain.optout`` decided it."""

    person_id: int
    event: LedgerEvent


@dataclass(frozen=True)
class Changed:
    """A person this call changed."""

    person_id: int
    email: str
    salesforce_id: str | None
    ledger_id: int = 0
    """The ledger entry this call wrote for the person (the undo on the public page is
    bound to it)."""


def begin_write(session: Session) -> None:
    """Take SQLite's write lock before a transaction's first read (``BEGIN IMMEDIATE``),
    unless this transaction already writes. A read-then-write transaction that started
    deferred could otherwise fail at its first write when another writer got there
    first. PostgreSQL needs nothing: its row locks are taken by the writes themselves."""
    if session.get_bind().dialect.name != "sqlite":
        return
    connection = session.connection()
    if not connection.connection.dbapi_connection.in_transaction:  # type: ignore[union-attr]
        connection.exec_driver_sql("BEGIN IMMEDIATE")


def unsubscribe(
    session: Session,
    changes: Sequence[Change],
    now: datetime,
    *,
    push: bool = True,
    guard: ColumnElement[bool] | None = None,
) -> list[Changed]:
    """Unsubscribe the persons named in ``changes`` who are not unsubscribed yet.

    ``push=False`` for a pull from Salesforce (the record already has the field).
    ``guard``: a further condition on ``persons`` the caller's decision rests on (a sync
    pull: "nothing changed here since the run looked at Salesforce"); persons failing it
    are left alone. A person named twice is changed by the first change only.
    """
    changed = _flip(session, changes, now, unsubscribed=True, guard=guard)
    if changed and push:
        _open_pushes(session, [c.person_id for c in changed], now)
    return changed


def resubscribe(session: Session, changes: Sequence[Change], now: datetime) -> list[Changed]:
    """Re-subscribe the persons in ``changes`` who are unsubscribed, and cancel every open
    push of theirs (pending, retrying, in flight, waiting for a link), so that no worker
    sets the field in Salesforce for someone who may be emailed again."""
    for change in changes:
        if change.event.kind is not EventKind.RESUBSCRIBE or change.event.source is (
            Source.SALESFORCE
        ):
            raise ValueError("resubscribe() takes re-subscribe events, never from a sync")
    changed = _flip(session, changes, now, unsubscribed=False, guard=None)
    ids = [c.person_id for c in changed]
    for chunk in _chunks(ids):
        session.execute(
            update(OUTBOX)
            .where(OUTBOX.c.person_id.in_(chunk), OUTBOX.c.state.in_(OPEN_STATES))
            .values(state="cancelled", claimed_by=None, claimed_until=None, settled_at=now)
        )
    return changed


def requeue(
    session: Session, person_ids: Iterable[int], now: datetime, *, any_record: bool = False
) -> int:
    """(Re-)open the push of every unsubscribed person among ``person_ids``; returns how
    many pushes became due or waiting.

    * first the persons' open pushes are locked: one in flight may be settling, and its
      settle re-reads the mirror under that lock
      (``store.outbox.rerun_for_new_records``), so a requeue racing it waits and then
      sees it settled (and opens another push) or still open (and the settle, seeing
      the caller's records, runs it again);
    * an open ``not_linked`` push of a person who now has a record becomes due now (with
      ``any_record``, whether linked or not: a record with the address appeared);
    * a person without an open push gets one: their latest push is re-opened if it had
      failed (a retry after the fix: attempts start again, the last error stays visible
      until the push settles), otherwise a new one is queued (linked to another record,
      or never pushed because the opt-out came from Salesforce).
    Persons who are not unsubscribed are left alone: nothing is ever pushed for them.
    """
    ids = sorted(set(person_ids))
    opened = 0
    for chunk in _chunks(ids):
        # a push in flight settles under this lock (``store.outbox.rerun_for_new_records``):
        # wait for it, so "an open push will do" is decided on its settled state
        session.execute(
            select(OUTBOX.c.id)
            .where(OUTBOX.c.person_id.in_(chunk), OUTBOX.c.state.in_(OPEN_STATES))
            .with_for_update()
        ).all()
        who = select(PERSONS.c.id).where(PERSONS.c.id.in_(chunk), PERSONS.c.unsubscribed.is_(True))
        if not any_record:
            who = who.where(PERSONS.c.salesforce_id.is_not(None))
        released = session.execute(
            update(OUTBOX)
            .where(OUTBOX.c.state == "not_linked", OUTBOX.c.person_id.in_(who))
            .values(state="pending", next_attempt_at=now)
        )
        opened += int(released.rowcount)  # type: ignore[attr-defined]
        opened += _open_pushes(session, chunk, now)
    if opened:
        notify(session)
    return opened


def requeue_for_addresses(session: Session, emails: Iterable[str], now: datetime) -> int:
    """A record with one of these (normalised) addresses appeared or changed in Salesforce
    (a pull, the live pull, the nightly run put it in the mirror first): every
    unsubscribed person with the address gets a push due now, whatever record they are
    linked to. A push waiting as ``not_linked`` ("Not in Salesforce") is released; a
    person without an open push gets one (:func:`requeue`'s rules), which sets the
    address's records the mirror does not know as set. Returns pushes opened."""
    wanted = sorted(set(emails))
    ids: list[int] = []
    for start in range(0, len(wanted), CHUNK):
        ids += [
            int(pid)
            for pid in session.scalars(
                select(PERSONS.c.id).where(
                    PERSONS.c.email.in_(wanted[start : start + CHUNK]),
                    PERSONS.c.unsubscribed.is_(True),
                )
            )
        ]
    return requeue(session, ids, now, any_record=True)


def _open_pushes(session: Session, person_ids: Sequence[int], now: datetime) -> int:
    """Open a push for each unsubscribed person without one: re-open the latest if it
    failed, else insert. Returns pushes opened."""
    opened = 0
    for chunk in _chunks(person_ids):
        eligible = list(
            session.execute(
                select(PERSONS.c.id, PERSONS.c.salesforce_id).where(
                    PERSONS.c.id.in_(chunk),
                    PERSONS.c.unsubscribed.is_(True),
                    ~select(OUTBOX.c.id)
                    .where(OUTBOX.c.person_id == PERSONS.c.id, text(OPEN_WHERE))
                    .exists(),
                )
            )
        )
        if not eligible:
            continue
        linked = {int(pid): sf is not None for pid, sf in eligible}
        latest = session.execute(
            select(OUTBOX.c.person_id, func.max(OUTBOX.c.id))
            .where(OUTBOX.c.person_id.in_(list(linked)))
            .group_by(OUTBOX.c.person_id)
        ).all()
        latest_ids = [int(push_id) for _pid, push_id in latest]
        reopened: set[int] = set()
        if latest_ids:
            rows = session.execute(
                update(OUTBOX)
                .where(OUTBOX.c.id.in_(latest_ids), OUTBOX.c.state == "failed")
                .values(
                    state="pending",
                    attempts=0,
                    next_attempt_at=now,
                    claimed_by=None,
                    claimed_until=None,
                    settled_at=None,
                )
                .returning(OUTBOX.c.person_id)
            )
            reopened = {int(pid) for (pid,) in rows}
        # pending even without a linked record: the worker looks the address up and
        # settles it not_linked ("Not in Salesforce") only when no record carries it
        fresh = [
            {
                "person_id": pid,
                "state": "pending",
                "attempts": 0,
                "next_attempt_at": now,
                "created_at": now,
            }
            for pid in linked
            if pid not in reopened
        ]
        if fresh:
            session.execute(_insert_skipping_open(session), fresh)
        opened += len(linked)
    if opened:
        notify(session)
    return opened


def _insert_skipping_open(session: Session) -> Any:
    """An outbox INSERT that skips a person who meanwhile got an open push (a concurrent
    transaction): the conflict target is the partial unique index."""
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        return postgresql.insert(OUTBOX).on_conflict_do_nothing(
            index_elements=[OUTBOX.c.person_id], index_where=text(OPEN_WHERE)
        )
    return sqlite.insert(OUTBOX).on_conflict_do_nothing(
        index_elements=[OUTBOX.c.person_id], index_where=text(OPEN_WHERE)
    )


def _flip(
    session: Session,
    changes: Sequence[Change],
    now: datetime,
    *,
    unsubscribed: bool,
    guard: ColumnElement[bool] | None,
) -> list[Changed]:
    first: dict[int, Change] = {}
    for change in changes:
        first.setdefault(change.person_id, change)
    by_source: dict[Source, list[int]] = {}
    for change in first.values():
        by_source.setdefault(change.event.source, []).append(change.person_id)
    changed: list[Changed] = []
    for source, ids in by_source.items():
        values: dict[str, Any] = {"unsubscribed": unsubscribed, "updated_at": now}
        if unsubscribed:
            values.update(unsubscribed_at=now, unsubscribe_source=source.value)
        else:
            values.update(unsubscribed_at=None, unsubscribe_source=None, resubscribed_at=now)
        for chunk in _chunks(ids):
            condition = and_(PERSONS.c.id.in_(chunk), PERSONS.c.unsubscribed.is_(not unsubscribed))
            if guard is not None:
                condition = and_(condition, guard)
            rows = session.execute(
                update(PERSONS)
                .where(condition)
                .values(**values)
                .returning(PERSONS.c.id, PERSONS.c.email, PERSONS.c.salesforce_id)
            )
            changed.extend(Changed(int(pid), str(email), sf) for pid, email, sf in rows)
    if not changed:
        return changed
    # each person changes once per call, so the entries are told apart by person
    written = _insert_ledger(
        session, [_ledger_row(c.person_id, first[c.person_id].event) for c in changed]
    )
    ledger_ids = {int(pid): int(entry_id) for pid, entry_id in written}
    return [replace(c, ledger_id=ledger_ids[c.person_id]) for c in changed]


_LEDGER_COLUMNS = ("person_id", "kind", "source", "actor", "reason", "evidence", "created_at")
_PG_LEDGER = text(
    f"INSERT INTO ledger ({', '.join(_LEDGER_COLUMNS)}) "
    f"SELECT {', '.join(_LEDGER_COLUMNS)} FROM json_to_recordset(CAST(:rows AS JSON)) AS r("
    "person_id BIGINT, kind VARCHAR, source VARCHAR, actor VARCHAR, reason TEXT, "
    "evidence JSON, created_at TIMESTAMPTZ) "
    "RETURNING person_id, id"
)
"""The ledger rows of one change as one statement with one JSON parameter on PostgreSQL:
a multi-row VALUES binds seven parameters a row (a sync's pull writes 80,000 entries at
1,000,000 records, and binding them cost ten times the INSERT), and seven array
parameters cost psycopg a regex escape of every JSON evidence string (59-65 µs a row;
one JSON document, encoded by ``json.dumps`` and parsed by PostgreSQL: 45 µs a row)."""


def _insert_ledger(session: Session, rows: list[dict[str, Any]]) -> Iterable[Any]:
    """Insert ledger rows; returns ``(person_id, id)`` of each."""
    if session.get_bind().dialect.name != "postgresql":
        return session.execute(insert(LEDGER).returning(LEDGER.c.person_id, LEDGER.c.id), rows)
    document = json.dumps(
        [{**r, "created_at": _utc_text(r["created_at"])} for r in rows], separators=(",", ":")
    )
    return session.execute(_PG_LEDGER, {"rows": document})


def _utc_text(at: datetime) -> str:
    """An aware time as ISO text for PostgreSQL (naive times are refused, as
    ``models.UTCDateTime`` refuses them)."""
    if at.tzinfo is None:
        raise ValueError("naive datetime given to the database; pass an aware UTC value")
    return at.astimezone(UTC).isoformat()


def _ledger_row(person_id: int, event: LedgerEvent) -> dict[str, Any]:
    return {
        "person_id": person_id,
        "kind": event.kind.value,
        "source": event.source.value,
        "actor": event.actor,
        "reason": event.reason,
        "evidence": event.evidence,
        "created_at": event.at,
    }


def _chunks(values: Sequence[int]) -> Iterable[list[int]]:
    for start in range(0, len(values), CHUNK):
        yield list(values[start : start + CHUNK])

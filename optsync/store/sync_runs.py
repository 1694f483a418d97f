"""The SQL of a sync run's data: the staging table, the set-based diff and the pull.

(The run rows themselves — create, heartbeat, reap, finish — are in
:mod:`optsync.store.runs`.)

The diff of a nightly sync is done here, in the database, and never in Python sets:
the remote opted-out ids are streamed into ``sync_remote_optouts`` and every question
the planner (:func:`optsync.domain.planner.plan_sync`, the specification) answers
becomes one query over ``persons`` and that table; a property test
(``tests/integration/sync/test_sql_diff.py``) proves these queries return exactly the
planner's lists. Because ``persons.salesforce_id`` is unique, a record is linked to at
most one person, so the planner's rule for records shared by several persons never
arises here, which keeps the rules simple in SQL:

* **pull**: linked, not unsubscribed, id in the staging set;
* **push**: linked, unsubscribed, id not in the staging set;
* **not linked**: unsubscribed without an id;
* **reopted out**: pulled persons re-subscribed after the last completed run started;
* **unknown remote**: staged ids no person is linked to.

Ids are compared exactly: both sides hold the canonical 18-character form (persons are
normalised with ``to_18`` on the way in, staged ids too), and for canonical ids exact
equality is the same as the planner's case-insensitive comparison.

Applying the pull is done in chunks of persons, each one transaction that changes the
state and writes the ledger together, so a run killed half-way leaves every person
consistent with the ledger and the next run simply finds less to do.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import (
    Select,
    and_,
    delete,
    exists,
    func,
    insert,
    literal,
    select,
    text,
)
from sqlalchemy.dialects import sqlite
from sqlalchemy.orm import Session

from optsync.store.models import (
    LedgerEntry,
    Person,
    SyncRemoteOptOut,
    SyncRun,
    SyncRunPreview,
)

STAGE_CHUNK = 5_000
"""Staged ids per INSERT: big enough to be fast, small enough to stay inside SQLite's
bound-parameter limit (3 per row)."""

SYNC_ACTOR = "sync"


# -- staging ----------------------------------------------------------------------------


_PG_STAGE = text(
    "INSERT INTO sync_remote_optouts (run_id, salesforce_id, object) "
    "SELECT :run_id, t.i, t.o FROM unnest(CAST(:ids AS VARCHAR[]), CAST(:objs AS VARCHAR[])) "
    "AS t(i, o) ON CONFLICT DO NOTHING"
)
"""One statement per chunk with two array parameters: psycopg's executemany sends one
statement per row, which is ten times slower for a 150,000-id set."""


def _stage_chunk(session: Session, run_id: int, batch: list[tuple[str, str]]) -> None:
    """Insert one chunk, skipping ids already staged (a REST cursor restarted, a re-fetched
    result set)."""
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        session.execute(
            _PG_STAGE,
            {"run_id": run_id, "ids": [b[0] for b in batch], "objs": [b[1] for b in batch]},
        )
    elif dialect == "sqlite":
        session.execute(
            sqlite.insert(SyncRemoteOptOut).on_conflict_do_nothing(),
            [{"run_id": run_id, "salesforce_id": sf, "object": obj} for sf, obj in batch],
        )
    else:  # pragma: no cover
        raise RuntimeError(f"unsupported database {dialect}")


def stage_remote(
    session: Session, run_id: int, rows: Iterable[tuple[str, str]], chunk: int = STAGE_CHUNK
) -> int:
    """Stream ``(salesforce_id, object)`` rows into the staging table; returns rows read.

    The caller normalises ids to 18 characters; this only batches the inserts.
    """
    batch: list[tuple[str, str]] = []
    count = 0
    for row in rows:
        batch.append(row)
        if len(batch) >= chunk:
            _stage_chunk(session, run_id, batch)
            count += len(batch)
            batch = []
    if batch:
        _stage_chunk(session, run_id, batch)
        count += len(batch)
    return count


def analyze_staging(session: Session) -> None:
    """Fresh statistics for the planner on PostgreSQL: the table went from empty to the
    whole remote set in seconds, long before autovacuum would notice."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("ANALYZE sync_remote_optouts"))


def clear_staging(session: Session, run_id: int) -> None:
    session.execute(delete(SyncRemoteOptOut).where(SyncRemoteOptOut.run_id == run_id))


def clear_orphan_staging(session: Session) -> None:
    """Staged rows of runs that are no longer running (a crash between phases)."""
    session.execute(
        delete(SyncRemoteOptOut).where(
            SyncRemoteOptOut.run_id.in_(select(SyncRun.id).where(SyncRun.status != "running"))
        )
    )


# -- the diff ---------------------------------------------------------------------------


def _staged(run_id: int) -> Any:
    return exists().where(
        SyncRemoteOptOut.run_id == run_id, SyncRemoteOptOut.salesforce_id == Person.salesforce_id
    )


def _pull_where(run_id: int) -> Any:
    return and_(Person.salesforce_id.is_not(None), Person.unsubscribed.is_(False), _staged(run_id))


def _push_where(run_id: int) -> Any:
    return and_(Person.salesforce_id.is_not(None), Person.unsubscribed.is_(True), ~_staged(run_id))


def _reopted_where(run_id: int, since: datetime | None) -> Any:
    resubscribed = (
        Person.resubscribed_at.is_not(None) if since is None else Person.resubscribed_at > since
    )
    return and_(_pull_where(run_id), resubscribed)


@dataclass(frozen=True)
class DiffCounts:
    """The sizes of the diff (what a dry run reports, and the progress-bar totals)."""

    remote_opted_out: int
    local_unsubscribed: int
    to_pull: int
    to_push: int
    not_linked: int
    unknown_remote: int


def diff_counts(session: Session, run_id: int) -> DiffCounts:
    remote = (
        session.scalar(
            select(func.count())
            .select_from(SyncRemoteOptOut)
            .where(SyncRemoteOptOut.run_id == run_id)
        )
        or 0
    )
    local = (
        session.scalar(
            select(func.count()).select_from(Person).where(Person.unsubscribed.is_(True))
        )
        or 0
    )
    to_pull = session.scalar(select(func.count()).select_from(Person).where(_pull_where(run_id)))
    to_push = session.scalar(select(func.count()).select_from(Person).where(_push_where(run_id)))
    not_linked = session.scalar(
        select(func.count())
        .select_from(Person)
        .where(Person.unsubscribed.is_(True), Person.salesforce_id.is_(None))
    )
    matched = (
        session.scalar(
            select(func.count())
            .select_from(SyncRemoteOptOut)
            .join(Person, Person.salesforce_id == SyncRemoteOptOut.salesforce_id)
            .where(SyncRemoteOptOut.run_id == run_id)
        )
        or 0
    )
    return DiffCounts(
        remote_opted_out=remote,
        local_unsubscribed=local,
        to_pull=to_pull or 0,
        to_push=to_push or 0,
        not_linked=not_linked or 0,
        unknown_remote=remote - matched,
    )


def reopted_out(
    session: Session, run_id: int, since: datetime | None, limit: int | None = None
) -> list[tuple[int, str]]:
    """``(person_id, email)`` of persons the pull will opt out again although they were
    re-subscribed here since the last completed run (Salesforce still has the field)."""
    query = select(Person.id, Person.email).where(_reopted_where(run_id, since)).order_by(Person.id)
    if limit is not None:
        query = query.limit(limit)
    return [(int(pid), str(email)) for pid, email in session.execute(query)]


def pull_ids(session: Session, run_id: int, *, after: int, limit: int) -> list[int]:
    """The next ``limit`` person ids to pull (keyset over ``persons.id``)."""
    return list(
        session.scalars(
            select(Person.id)
            .where(_pull_where(run_id), Person.id > after)
            .order_by(Person.id)
            .limit(limit)
        )
    )


def push_query(run_id: int) -> Select[int, str | None, str | None]:
    """The persons to push as a query (the caller pages through it)."""
    return (
        select(Person.id, Person.salesforce_id, Person.salesforce_object)
        .where(_push_where(run_id))
        .order_by(Person.id)
    )


def push_rows(
    session: Session, run_id: int, *, after: int, limit: int, object: str | None = None
) -> list[tuple[int, str, str]]:
    """The next ``limit`` ``(person_id, salesforce_id, object)`` to push (keyset),
    optionally of one object only (a Bulk ingest job holds one object)."""
    query = push_query(run_id).where(Person.id > after)
    if object is not None:
        query = query.where(Person.salesforce_object == object)
    rows = session.execute(query.limit(limit))
    return [(int(pid), str(sf), str(obj)) for pid, sf, obj in rows]


def apply_pull_chunk(
    session: Session,
    run_id: int,
    person_ids: Sequence[int],
    *,
    field: str,
    now: datetime,
) -> int:
    """Unsubscribe these persons (source ``salesforce``) with one ledger entry each,
    through the one write path (``store.optouts``; no push: Salesforce has the field).

    The write re-checks the pull condition, so a person unsubscribed meanwhile by someone
    else is skipped and gets no second ledger entry; and it skips a person whose ledger
    changed after the run started (less a margin for clock skew): the run read
    Salesforce before that change, so its value may be stale (an admin who cleared the
    field and then re-subscribed while the run was between fetch and pull). The next run
    reads Salesforce afresh and decides for them.
    """
    if not person_ids:
        return 0
    from optsync.domain import optout
    from optsync.store import optouts as optout_store

    watermark = session.scalar(select(SyncRun.ledger_watermark).where(SyncRun.id == run_id))
    event = optout.unsubscribe(
        optout.OptOutState(),
        source=optout.Source.SALESFORCE,
        actor=SYNC_ACTOR,
        now=now,
        reason=f"Salesforce has {field} set",
        evidence={"sync_run": run_id, "field": field},
    ).event
    assert event is not None
    guard = _pull_where(run_id)
    if watermark is not None:  # runs started before schema 0004 have none
        guard = and_(
            guard,
            ~exists().where(LedgerEntry.person_id == Person.id, LedgerEntry.id > watermark),
        )
    changed = optout_store.unsubscribe(
        session,
        [optout_store.Change(pid, event) for pid in person_ids],
        now,
        push=False,
        guard=guard,
    )
    return len(changed)


def persons_by_salesforce_id(session: Session, ids: Sequence[str]) -> dict[str, int]:
    """``salesforce_id -> person_id`` for these ids (bulk failure rows carry only ids)."""
    out: dict[str, int] = {}
    for start in range(0, len(ids), 2_000):
        chunk = list(ids[start : start + 2_000])
        for pid, sf in session.execute(
            select(Person.id, Person.salesforce_id).where(Person.salesforce_id.in_(chunk))
        ):
            out[str(sf)] = int(pid)
    return out


# -- a dry run's records ----------------------------------------------------------------


def store_preview(session: Session, run_id: int) -> None:
    """Write every person the run would pull and push into ``sync_run_preview`` (two
    INSERT … SELECTs over the same conditions as the real run's pull and push)."""
    for direction, where in (("pull", _pull_where(run_id)), ("push", _push_where(run_id))):
        rows = select(
            literal(run_id),
            literal(direction),
            Person.id,
            Person.email,
            Person.salesforce_id,
            Person.salesforce_object,
        ).where(where)
        session.execute(
            insert(SyncRunPreview).from_select(
                ["run_id", "direction", "person_id", "email", "salesforce_id", "object"], rows
            )
        )


def preview_rows(
    session: Session, run_id: int, direction: str | None = None, limit: int | None = None
) -> list[dict[str, Any]]:
    """The stored records of a dry run, by direction then person id."""
    query = (
        select(SyncRunPreview)
        .where(SyncRunPreview.run_id == run_id)
        .order_by(SyncRunPreview.direction, SyncRunPreview.person_id)
    )
    if direction is not None:
        query = query.where(SyncRunPreview.direction == direction)
    if limit is not None:
        query = query.limit(limit)
    return [
        {
            "direction": r.direction,
            "person_id": r.person_id,
            "email": r.email,
            "salesforce_id": r.salesforce_id,
            "object": r.object,
        }
        for r in session.scalars(query)
    ]

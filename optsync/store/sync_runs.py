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

An incremental diff (:mod:`optsync.store.sync_scope`) asks the same queries about a
scope of persons only, chunk by chunk (``scope=``), with staging restricted to what the
scope can need; without a scope they cover everyone.

Applying the pull is done in chunks of persons, each one transaction that changes the
state and writes the ledger together, so a run killed half-way leaves every person
consistent with the ledger and the next run simply finds less to do.
"""

from __future__ import annotations

from array import array
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import IO, Any

from sqlalchemy import (
    and_,
    case,
    delete,
    exists,
    func,
    insert,
    literal,
    literal_column,
    null,
    or_,
    select,
    text,
    true,
    tuple_,
    union,
    union_all,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session, aliased

from optsync.domain.records import RECORD_OBJECTS
from optsync.store.models import (
    LedgerEntry,
    Person,
    SalesforceAddress,
    SalesforceRecord,
    SyncRemoteOptOut,
    SyncRun,
    SyncRunPreview,
)
from optsync.store.records import field_column
from optsync.store.sync_scope import Scope, among, changed_record, plan_lookups

PUSHED_OBJECTS = RECORD_OBJECTS
"""Objects the push phase writes: Contacts, Leads and Person Accounts (the mirror holds
Accounts only in an org with Person Accounts)."""

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


def _opted_out(field: str) -> Any:
    """A mirrored record with ``field`` set that counts: not deleted, not a converted Lead."""
    column = getattr(SalesforceRecord, field_column(field))
    return and_(
        column.is_(True),
        SalesforceRecord.deleted.is_(False),
        SalesforceRecord.converted.is_(False),
    )


def _stage_select(session: Session, source: Any) -> None:
    """Stage the ``(run_id, salesforce_id, object)`` rows ``source`` selects, skipping any
    staged already (the primary key decides, row by row: an anti-join on the staging
    table would be planned on its statistics from before the run)."""
    dialect = session.get_bind().dialect.name
    insert_: Any = postgresql.insert if dialect == "postgresql" else sqlite.insert
    session.execute(
        insert_(SyncRemoteOptOut)
        .from_select(["run_id", "salesforce_id", "object"], source)
        .on_conflict_do_nothing()
    )


def staged_count(session: Session, run_id: int) -> int:
    """Rows staged for the run (psycopg reports no row count for INSERT … SELECT)."""
    return int(
        session.scalar(
            select(func.count())
            .select_from(SyncRemoteOptOut)
            .where(SyncRemoteOptOut.run_id == run_id)
        )
        or 0
    )


def stage_from_mirror(session: Session, run_id: int, field: str, scope: Scope | None = None) -> int:
    """Stage the mirror's records with ``field`` set (not deleted, not converted Leads):
    after the fetch brought the mirror up to date, this is the remote opted-out set, in
    one INSERT … SELECT. With a ``scope`` (an incremental diff), only the part of it the
    diff can need: the changed records, and the records of the scope's addresses and
    links, chunk by chunk. Returns the rows staged."""
    run: Any = literal_column(str(int(run_id)))
    if scope is None:
        _stage_select(
            session,
            select(run, SalesforceRecord.record_id, SalesforceRecord.object).where(
                _opted_out(field)
            ),
        )
        return staged_count(session, run_id)
    _stage_select(
        session,
        select(run, SalesforceRecord.record_id, SalesforceRecord.object).where(
            _opted_out(field), changed_record(scope.records_after)
        ),
    )
    plan_lookups(session)
    for chunk in scope.chunks():
        by_address = (
            select(run, SalesforceRecord.record_id, SalesforceRecord.object)
            .select_from(Person)
            .join(SalesforceRecord, SalesforceRecord.email == Person.email)
            .where(among(Person.id, chunk), _opted_out(field))
        )
        by_link = (
            select(run, SalesforceRecord.record_id, SalesforceRecord.object)
            .select_from(Person)
            .join(SalesforceRecord, SalesforceRecord.record_id == Person.salesforce_id)
            .where(among(Person.id, chunk), _opted_out(field))
        )
        _stage_select(session, union(by_address, by_link))
    return staged_count(session, run_id)


def count_opted_out(session: Session, field: str) -> int:
    """The mirror's records with ``field`` set that count (the remote opted-out set)."""
    return int(
        session.scalar(select(func.count()).select_from(SalesforceRecord).where(_opted_out(field)))
        or 0
    )


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


def _staged_address(run_id: int) -> Any:
    """A staged (opted-out) record carries the person's address."""
    return exists().where(
        SyncRemoteOptOut.run_id == run_id,
        SyncRemoteOptOut.salesforce_id == SalesforceRecord.record_id,
        SalesforceRecord.email == Person.email,
    )


def _pull_where(run_id: int) -> Any:
    """Subscribed here, and opted out there: the linked record (as before issue 16) or
    any record with the address (opt-outs follow the address). Correlated EXISTS: a few
    index lookups per person (an uncorrelated ``IN`` set larger than ``work_mem`` is not
    hashed by PostgreSQL and would be scanned per person)."""
    return and_(
        Person.unsubscribed.is_(False),
        or_(and_(Person.salesforce_id.is_not(None), _staged(run_id)), _staged_address(run_id)),
    )


def _pulled(run_id: int, chunk: Sequence[int] | None) -> Any:
    """The pull set (:func:`_pull_where`) among one chunk of persons, or (``chunk`` None) of
    everyone, then looked for from the staging side: the persons linked to a staged record
    and those with its address, found by the database's joins of the staged records
    (150,000 at 1,000,000 records) rather than by two lookups for each of a million
    persons (an OR of two EXISTS that PostgreSQL cannot turn into joins)."""
    if chunk is not None:
        return and_(_pull_where(run_id), among(Person.id, chunk))
    holder = aliased(Person)
    linked = select(holder.id).join(
        SyncRemoteOptOut,
        and_(
            SyncRemoteOptOut.run_id == run_id,
            SyncRemoteOptOut.salesforce_id == holder.salesforce_id,
        ),
    )
    by_address = (
        select(holder.id)
        .select_from(SyncRemoteOptOut)
        .join(SalesforceRecord, SalesforceRecord.record_id == SyncRemoteOptOut.salesforce_id)
        .join(holder, holder.email == SalesforceRecord.email)
        .where(SyncRemoteOptOut.run_id == run_id)
    )
    return and_(Person.unsubscribed.is_(False), Person.id.in_(union(linked, by_address)))


def _push_where(run_id: int) -> Any:
    return and_(Person.salesforce_id.is_not(None), Person.unsubscribed.is_(True), ~_staged(run_id))


def _fanned_where(run_id: int) -> Any:
    """Mirrored records of an unsubscribed address, other than the person's own linked
    record, that can be set and are not staged (the field is not set there)."""
    return and_(
        SalesforceRecord.email == Person.email, Person.unsubscribed.is_(True), _to_fan_out(run_id)
    )


def _to_fan_out(run_id: int) -> Any:
    """A mirrored record the push sets besides the person's linked one (``Person`` may be
    an outer join's empty side: an address no person has yet): live, not converted, of
    an object the push writes, not staged."""
    return and_(
        SalesforceRecord.deleted.is_(False),
        SalesforceRecord.converted.is_(False),
        SalesforceRecord.object.in_(PUSHED_OBJECTS),
        or_(Person.salesforce_id.is_(None), SalesforceRecord.record_id != Person.salesforce_id),
        ~exists().where(
            SyncRemoteOptOut.run_id == run_id,
            SyncRemoteOptOut.salesforce_id == SalesforceRecord.record_id,
        ),
    )


def _unknown_where(run_id: int) -> Any:
    """A staged record no person is linked to, whose address no person has."""
    record = aliased(SalesforceRecord)
    holder = aliased(Person)
    return and_(
        SyncRemoteOptOut.run_id == run_id,
        ~exists().where(holder.salesforce_id == SyncRemoteOptOut.salesforce_id),
        ~exists().where(
            record.record_id == SyncRemoteOptOut.salesforce_id,
            record.email.is_not(None),
            exists().where(holder.email == record.email),
        ),
    )


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
    """0 when not asked for (``pushes=False``)."""
    not_linked: int
    unknown_remote: int
    unknown_addresses: int = 0
    """Distinct addresses of the unknown remote records (the persons a pull adds when
    ``suppress_unknown`` is on)."""
    fanned_out: int = 0
    """Unsubscribed addresses with a record to set besides the linked one."""


def _chunks(session: Session, scope: Scope | None) -> Iterator[list[int] | None]:
    """The scope's chunks of persons (planned as lookups), or once None: every person (a
    full diff)."""
    if scope is None:
        yield None
    else:
        plan_lookups(session)
        yield from scope.chunks()


def _within(chunk: Sequence[int] | None) -> Any:
    """The persons of one chunk of the scope (``True``: all of them)."""
    return true() if chunk is None else among(Person.id, chunk)


def diff_counts(
    session: Session,
    run_id: int,
    *,
    pushes: bool = True,
    scope: Scope | None = None,
    field: str | None = None,
) -> DiffCounts:
    """The diff's sizes. ``pushes=False`` leaves the push counts at 0 (a real run counts
    its push set after the pull, which adds to it). With a ``scope`` the pull, push and
    unknown counts are the scope's (what changed); the remote opted-out set is then
    counted in the mirror (``field`` names it), since staging holds only a part."""
    if scope is not None and field is not None:
        remote = count_opted_out(session, field)
    else:
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
    to_pull = sum(
        session.scalar(select(func.count()).select_from(Person).where(_pulled(run_id, chunk))) or 0
        for chunk in _chunks(session, scope)
    )
    to_push = push_count(session, run_id, scope) if pushes else 0
    not_linked = session.scalar(
        select(func.count())
        .select_from(Person)
        .where(Person.unsubscribed.is_(True), Person.salesforce_id.is_(None))
    )
    unknown = (
        session.scalar(
            select(func.count()).select_from(SyncRemoteOptOut).where(_unknown_where(run_id))
        )
        or 0
    )
    unknown_addresses = (
        session.scalar(
            select(func.count(func.distinct(SalesforceRecord.email)))
            .select_from(SyncRemoteOptOut)
            .join(SalesforceRecord, SalesforceRecord.record_id == SyncRemoteOptOut.salesforce_id)
            .where(_unknown_where(run_id), SalesforceRecord.email.is_not(None))
        )
        or 0
    )
    fanned_out = fanned_out_count(session, run_id, scope) if pushes else 0
    return DiffCounts(
        remote_opted_out=remote,
        local_unsubscribed=local,
        to_pull=to_pull or 0,
        to_push=to_push or 0,
        not_linked=not_linked or 0,
        unknown_remote=unknown,
        unknown_addresses=unknown_addresses,
        fanned_out=fanned_out,
    )


def reopted_out(
    session: Session,
    run_id: int,
    since: datetime | None,
    limit: int | None = None,
    scope: Scope | None = None,
) -> list[tuple[int, str]]:
    """``(person_id, email)`` of persons the pull will opt out again although they were
    re-subscribed here since the last completed run (Salesforce still has the field)."""
    out: list[tuple[int, str]] = []
    for chunk in _chunks(session, scope):
        query = (
            select(Person.id, Person.email)
            .where(_reopted_where(run_id, since), _within(chunk))
            .order_by(Person.id)
        )
        if limit is not None:
            query = query.limit(limit - len(out))
        out += [(int(pid), str(email)) for pid, email in session.execute(query)]
        if limit is not None and len(out) >= limit:
            break
    return out


def all_pull_ids(session: Session, run_id: int, scope: Scope | None = None) -> array[int]:
    """Every person id to pull, in one pass over the persons (8 bytes an id: 6 MB for
    750,000 pulls), so the run does not scan the persons once per chunk; with a ``scope``,
    one query per chunk of its persons."""
    out: array[int] = array("q")
    for chunk in _chunks(session, scope):
        rows = session.scalars(
            select(Person.id)
            .where(_pulled(run_id, chunk))
            .order_by(Person.id)
            .execution_options(yield_per=10_000)
        )
        out.extend(int(pid) for pid in rows)
    return out


def pull_ids(session: Session, run_id: int, *, after: int, limit: int) -> list[int]:
    """The next ``limit`` person ids to pull (keyset over ``persons.id``; a run reads them
    all at once with :func:`all_pull_ids`)."""
    query = select(Person.id).where(_pull_where(run_id), Person.id > after)
    return list(session.scalars(query.order_by(Person.id).limit(limit)))


def push_query(run_id: int, persons: Sequence[int] | None = None) -> Any:
    """The records to push as ``(person_id, record_id, object)`` rows: each unsubscribed
    person's linked record, and every other settable record of the address (fan-out),
    unless staged (already set); of ``persons`` only, when given (a chunk of an
    incremental diff's scope). The caller pages through it by ``(person_id,
    record_id)``."""
    linked = select(
        Person.id.label("person_id"),
        Person.salesforce_id.label("record_id"),
        Person.salesforce_object.label("object"),
    ).where(_push_where(run_id), _within(persons))
    fanned = (
        select(
            Person.id.label("person_id"),
            SalesforceRecord.record_id.label("record_id"),
            SalesforceRecord.object.label("object"),
        )
        .select_from(Person)
        .join(SalesforceRecord, SalesforceRecord.email == Person.email)
        .where(_fanned_where(run_id), _within(persons))
    )
    return union_all(linked, fanned).subquery("to_push")


PushKey = int | tuple[int, str]


def fanned_out_count(session: Session, run_id: int, scope: Scope | None = None) -> int:
    """Unsubscribed addresses with a record to set besides the person's linked one."""
    return sum(
        int(
            session.scalar(
                select(func.count(func.distinct(Person.id)))
                .select_from(Person)
                .join(SalesforceRecord, SalesforceRecord.email == Person.email)
                .where(_fanned_where(run_id), _within(chunk))
            )
            or 0
        )
        for chunk in _chunks(session, scope)
    )


def push_count(session: Session, run_id: int, scope: Scope | None = None) -> int:
    """How many records the push phase has to set now."""
    total = 0
    for chunk in _chunks(session, scope):
        q = push_query(run_id, chunk)
        total += int(session.scalar(select(func.count()).select_from(q)) or 0)
    return total


def push_rows(
    session: Session,
    run_id: int,
    *,
    after: PushKey,
    limit: int,
    object: str | None = None,
) -> list[tuple[int, str, str]]:
    """The next ``limit`` ``(person_id, salesforce_id, object)`` to push (keyset on
    ``(person_id, record_id)``; an int ``after`` starts after that person), optionally
    of one object only (a run reads them all at once with :func:`spool_push_rows`)."""
    q = push_query(run_id)
    query = select(q.c.person_id, q.c.record_id, q.c.object)
    if isinstance(after, tuple):
        query = query.where(tuple_(q.c.person_id, q.c.record_id) > tuple_(*after))
    else:
        query = query.where(q.c.person_id > after)
    if object is not None:
        query = query.where(q.c.object == object)
    rows = session.execute(query.order_by(q.c.person_id, q.c.record_id).limit(limit))
    return [(int(pid), str(sf), str(obj)) for pid, sf, obj in rows]


def spool_push_rows(
    session: Session, run_id: int, object: str, spool: IO[str], scope: Scope | None = None
) -> int:
    """Write the push set's rows of ``object`` (``person_id,record_id`` lines, in key
    order) to ``spool`` in one pass (one per chunk of a ``scope``, in ascending order);
    returns how many. The push then reads the file, so no transaction stays open across
    its Salesforce calls and no size is held in memory."""
    count = 0
    for chunk in _chunks(session, scope):
        q = push_query(run_id, chunk)
        rows = session.execute(
            select(q.c.person_id, q.c.record_id)
            .where(q.c.object == object)
            .order_by(q.c.person_id, q.c.record_id)
            .execution_options(yield_per=10_000)
        )
        for pid, rid in rows:
            spool.write(f"{int(pid)},{rid}\n")
            count += 1
    spool.flush()
    return count


def spooled_pages(spool: IO[str], size: int) -> Iterator[list[tuple[int, str]]]:
    """The spooled rows back, ``size`` at a time."""
    spool.seek(0)
    page: list[tuple[int, str]] = []
    for line in spool:
        pid, _, rid = line.rstrip("\n").partition(",")
        page.append((int(pid), rid))
        if len(page) >= size:
            yield page
            page = []
    if page:
        yield page


def unknown_addresses(
    session: Session, run_id: int, *, after: str, limit: int
) -> list[tuple[str, str]]:
    """The next ``limit`` ``(address, record_id)`` of staged records no person has
    (keyset on the address; the record is the lowest id with it)."""
    rows = session.execute(
        select(SalesforceRecord.email, func.min(SalesforceRecord.record_id))
        .select_from(SyncRemoteOptOut)
        .join(SalesforceRecord, SalesforceRecord.record_id == SyncRemoteOptOut.salesforce_id)
        .where(
            _unknown_where(run_id),
            SalesforceRecord.email.is_not(None),
            SalesforceRecord.email > after,
        )
        .group_by(SalesforceRecord.email)
        .order_by(SalesforceRecord.email)
        .limit(limit)
    )
    return [(str(email), str(rid)) for email, rid in rows]


def unlinked_with_records(
    session: Session,
    *,
    after: int,
    limit: int,
    objects: Sequence[str],
    persons: Sequence[int] | None = None,
) -> list[int]:
    """The next ``limit`` persons without a record whose address has a settable mirrored
    record of one of ``objects`` (the candidates of auto-linking), keyset on the id; of
    ``persons`` only, when given (a chunk of an incremental diff's scope)."""
    if not objects:
        return []
    if persons is not None:
        plan_lookups(session)
    return list(
        session.scalars(
            select(Person.id)
            .where(
                _within(persons),
                Person.id > after,
                Person.salesforce_id.is_(None),
                exists().where(
                    SalesforceRecord.email == Person.email,
                    SalesforceRecord.deleted.is_(False),
                    SalesforceRecord.converted.is_(False),
                    SalesforceRecord.object.in_(list(objects)),
                ),
            )
            .order_by(Person.id)
            .limit(limit)
        )
    )


@dataclass(frozen=True)
class AddressCounts:
    duplicates: int
    """Addresses carried by more than one live (not deleted) mirrored record."""
    not_in_salesforce: int
    """Unsubscribed persons whose address no live mirrored record carries."""


def address_counts(session: Session) -> AddressCounts:
    """The report's address totals. The duplicates come from the per-address counts the
    database keeps (``salesforce_addresses``, migration 0012) through the partial index of
    the shared ones: the cost follows the org's duplicates, not its records (a ``GROUP BY``
    of the mirror took 14.9 s at 10,000,000 records)."""
    duplicates = (
        session.scalar(
            select(func.count()).select_from(SalesforceAddress).where(SalesforceAddress.records > 1)
        )
        or 0
    )
    missing = (
        session.scalar(
            select(func.count())
            .select_from(Person)
            .where(
                Person.unsubscribed.is_(True),
                Person.salesforce_id.is_(None),
                ~exists().where(
                    SalesforceRecord.email == Person.email, SalesforceRecord.deleted.is_(False)
                ),
            )
        )
        or 0
    )
    return AddressCounts(int(duplicates), int(missing))


def _pulled_records(session: Session, run_id: int, person_ids: Sequence[int]) -> dict[int, str]:
    """For each person, the opted-out record that pulls them (ledger evidence): the linked
    record when staged, else the lowest staged record id with the address."""
    out: dict[int, str] = {}
    for pid, rid in session.execute(
        select(Person.id, func.min(SalesforceRecord.record_id))
        .join(SalesforceRecord, SalesforceRecord.email == Person.email)
        .join(
            SyncRemoteOptOut,
            and_(
                SyncRemoteOptOut.run_id == run_id,
                SyncRemoteOptOut.salesforce_id == SalesforceRecord.record_id,
            ),
        )
        .where(among(Person.id, person_ids))
        .group_by(Person.id)
    ):
        out[int(pid)] = str(rid)
    for linked_pid, linked_rid in session.execute(
        select(Person.id, Person.salesforce_id).where(
            among(Person.id, person_ids), Person.salesforce_id.is_not(None), _staged(run_id)
        )
    ):
        out[int(linked_pid)] = str(linked_rid)
    return out


def apply_pull_chunk(
    session: Session,
    run_id: int,
    person_ids: Sequence[int],
    *,
    field: str,
    now: datetime,
) -> int:
    """Unsubscribe these persons (source ``salesforce``) with one ledger entry each,
    naming the opted-out record, through the one write path (``store.optouts``; no push:
    Salesforce has the field on that record; other records of the address are set by the
    run's push phase).

    The write re-checks the pull condition, so a person unsubscribed meanwhile by someone
    else is skipped and gets no second ledger entry; and it skips a person whose ledger
    changed after the run started (less a margin for clock skew): the run read
    Salesforce before that change, so its value may be stale (an admin who cleared the
    field and then re-subscribed while the run was between fetch and pull). The next run
    reads Salesforce afresh and decides for them. Persons the run itself just added for
    unknown addresses pass the guard: they have no ledger yet.
    """
    if not person_ids:
        return 0
    from optsync.domain import optout
    from optsync.store import optouts as optout_store

    plan_lookups(session)  # a chunk of persons, checked one by one (not the whole staging)
    watermark = session.scalar(select(SyncRun.ledger_watermark).where(SyncRun.id == run_id))
    records = _pulled_records(session, run_id, person_ids)
    changes = []
    for pid in person_ids:
        event = optout.unsubscribe(
            optout.OptOutState(),
            source=optout.Source.SALESFORCE,
            actor=SYNC_ACTOR,
            now=now,
            reason=f"Salesforce has {field} set",
            evidence={"sync_run": run_id, "field": field, "record_id": records.get(pid)},
        ).event
        assert event is not None
        changes.append(optout_store.Change(pid, event))
    guard = _pull_where(run_id)
    if watermark is not None:  # runs started before schema 0004 have none
        guard = and_(
            guard,
            ~exists().where(LedgerEntry.person_id == Person.id, LedgerEntry.id > watermark),
        )
    changed = optout_store.unsubscribe(session, changes, now, push=False, guard=guard)
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


def store_preview(
    session: Session, run_id: int, scope: Scope | None = None, *, suppress_unknown: bool
) -> None:
    """Write every record the run would pull and push into ``sync_run_preview``, by the
    real run's own conditions (INSERT … SELECTs, per chunk of a ``scope``):

    * a pull row per person :func:`_pulled` finds, naming the record that pulls them
      (the linked record when staged, else the lowest staged record with the address:
      the ledger evidence :func:`_pulled_records` gives the real pull);
    * with ``suppress_unknown``, a pull row per address :func:`unknown_addresses` finds
      (no person yet);
    * a push row per record :func:`push_query` finds: the linked record and every
      duplicate of the address; then those the push would set after the pull, of the
      addresses it unsubscribes or adds (:func:`_store_pushes_after_pull`).

    So the stored rows are what the real run would pull and push; the dry run's
    ``pulled`` and ``pushed`` are their counts.
    """
    columns = ["run_id", "direction", "person_id", "email", "salesforce_id", "object"]
    by_address = (
        select(func.min(SalesforceRecord.record_id))
        .join(
            SyncRemoteOptOut,
            and_(
                SyncRemoteOptOut.run_id == run_id,
                SyncRemoteOptOut.salesforce_id == SalesforceRecord.record_id,
            ),
        )
        .where(SalesforceRecord.email == Person.email)
        .scalar_subquery()
    )
    pulling = case(
        (and_(Person.salesforce_id.is_not(None), _staged(run_id)), Person.salesforce_id),
        else_=by_address,
    )
    for chunk in _chunks(session, scope):
        pulls = select(
            literal(run_id), literal("pull"), Person.id, Person.email, pulling, null()
        ).where(_pulled(run_id, chunk))
        session.execute(insert(SyncRunPreview).from_select(columns, pulls))
    if suppress_unknown:
        unknown = (
            select(
                literal(run_id),
                literal("pull"),
                null(),
                SalesforceRecord.email,
                func.min(SalesforceRecord.record_id),
                null(),
            )
            .select_from(SyncRemoteOptOut)
            .join(SalesforceRecord, SalesforceRecord.record_id == SyncRemoteOptOut.salesforce_id)
            .where(_unknown_where(run_id), SalesforceRecord.email.is_not(None))
            .group_by(SalesforceRecord.email)
        )
        session.execute(insert(SyncRunPreview).from_select(columns, unknown))
    session.execute(
        update(SyncRunPreview)
        .where(SyncRunPreview.run_id == run_id, SyncRunPreview.direction == "pull")
        .values(
            object=select(SalesforceRecord.object)
            .where(SalesforceRecord.record_id == SyncRunPreview.salesforce_id)
            .scalar_subquery()
        )
    )
    for chunk in _chunks(session, scope):
        q = push_query(run_id, chunk)
        pushes = select(
            literal(run_id), literal("push"), q.c.person_id, Person.email, q.c.record_id, q.c.object
        ).join(Person, Person.id == q.c.person_id)
        session.execute(insert(SyncRunPreview).from_select(columns, pushes))
    _store_pushes_after_pull(session, run_id, columns)


def _store_pushes_after_pull(session: Session, run_id: int, columns: list[str]) -> None:
    """The records the real run's push phase would set because of its pull (it pushes
    after it pulls): of each address the pull unsubscribes or adds (the preview's pull
    rows), the person's linked record and every other settable record, unless staged
    (the field is set there already), as :func:`push_query` finds them once they are
    unsubscribed."""
    pulled = aliased(SyncRunPreview)
    of_run = and_(pulled.run_id == run_id, pulled.direction == "pull")
    linked = (
        select(
            literal(run_id),
            literal("push"),
            Person.id,
            Person.email,
            Person.salesforce_id,
            Person.salesforce_object,
        )
        .select_from(pulled)
        .join(Person, Person.id == pulled.person_id)
        .where(of_run, Person.salesforce_id.is_not(None), ~_staged(run_id))
    )
    fanned = (
        select(
            literal(run_id),
            literal("push"),
            pulled.person_id,
            pulled.email,
            SalesforceRecord.record_id,
            SalesforceRecord.object,
        )
        .select_from(pulled)
        .join(SalesforceRecord, SalesforceRecord.email == pulled.email)
        .outerjoin(Person, Person.id == pulled.person_id)
        .where(of_run, _to_fan_out(run_id))
    )
    for rows in (linked, fanned):
        session.execute(insert(SyncRunPreview).from_select(columns, rows))


def preview_counts(session: Session, run_id: int) -> dict[str, int]:
    """How many records a dry run stored per direction (``pull``, ``push``)."""
    counts = dict.fromkeys(("pull", "push"), 0)
    for direction, n in session.execute(
        select(SyncRunPreview.direction, func.count())
        .where(SyncRunPreview.run_id == run_id)
        .group_by(SyncRunPreview.direction)
    ):
        counts[str(direction)] = int(n)
    return counts


def preview_rows(
    session: Session, run_id: int, direction: str | None = None, limit: int | None = None
) -> list[dict[str, Any]]:
    """The stored records of a dry run, by direction, person id (the addresses a pull
    would add last) and record id."""
    query = (
        select(SyncRunPreview)
        .where(SyncRunPreview.run_id == run_id)
        .order_by(
            SyncRunPreview.direction,
            SyncRunPreview.person_id.nulls_last(),
            SyncRunPreview.salesforce_id,
        )
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

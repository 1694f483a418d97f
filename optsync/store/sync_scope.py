"""The incremental diff's scope: which persons a nightly run has to look at.

A complete run (succeeded, not a dry run) of a field leaves every person and record it
diffed settled: each person with an opted-out record of the address (or linked) is
unsubscribed here, every record of an unsubscribed address has the field set or is listed
as a failure. Whatever a later run of the same field finds to pull or push therefore
involves something that changed since that run, its **baseline**:

* a mirrored record stamped after the baseline's watermark less the overlap (the fetch
  reads exactly those again; the live pull and push-time lookups write them with their
  stamps), or not stamped at all (a reader that does not see stamps);
* a person whose ledger moved past the baseline's watermark (unsubscribed, re-subscribed,
  or skipped by the baseline's own pull guard), or whose row changed since the baseline
  started, less a margin for clocks (a new person, a changed address or link);
* a record the baseline failed to set (listed again until an admin fixes it).

The scope is those persons: the ones changed, and the ones whose address or linked record
changed. Staging then holds the opted-out records of the changed records and of the
scope's addresses and links, and every diff query is asked about the scope's persons only,
so a run's local work follows what changed, not the size of the store.

A run diffs everything instead (``scope`` None) when it has no such baseline, or when the
baseline cannot vouch for what is unchanged: the mirror was read in full since (all or one
object: values may have changed under old stamps), or the sync settings changed since
(the linking rule or ``suppress_unknown`` may now decide otherwise for unchanged persons).
"""

from __future__ import annotations

from array import array
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, or_, select, text, union
from sqlalchemy.orm import Session

from optsync.store.models import LedgerEntry, Person, SalesforceRecord, SyncRun, SyncRunFailure

SCOPE_CHUNK = 2_000
"""Persons per diff query of an incremental run (their ids are written into the SQL): few
enough for PostgreSQL to plan index lookups (:func:`plan_lookups`)."""


@dataclass(frozen=True)
class Baseline:
    """The last complete run of a field, as far as a later diff relies on it."""

    run_id: int
    started_at: datetime
    finished_at: datetime
    ledger_watermark: int
    through: datetime
    """The mirror's watermark after its read: it diffed every record stamped up to it."""


@dataclass
class Scope:
    """The persons an incremental diff looks at: sorted, distinct ids (8 bytes each:
    100,000 persons take 800 kB), and the record cutoff it was computed with."""

    baseline: Baseline
    records_after: datetime
    ids: array[int] = field(default_factory=lambda: array("q"))

    def __len__(self) -> int:
        return len(self.ids)

    def chunks(self, size: int = SCOPE_CHUNK) -> Iterator[list[int]]:
        """The ids, ``size`` at a time, in ascending order."""
        for start in range(0, len(self.ids), size):
            yield self.ids[start : start + size].tolist()

    def add(self, ids: Iterable[int]) -> None:
        """Widen the scope (persons the run itself added: their records are set too)."""
        merged = sorted(set(self.ids).union(int(i) for i in ids))
        self.ids = array("q", merged)


def among(column: Any, ids: Sequence[int]) -> Any:
    """``column IN (ids)`` with the integers written into the statement: one parameter
    per id would cost more to bind than the query takes on PostgreSQL."""
    return column.in_(bindparam(None, list(ids), expanding=True, literal_execute=True))


def plan_lookups(session: Session) -> None:
    """Have PostgreSQL plan the rest of the transaction's queries as index lookups where
    they are: ``random_page_cost`` 1.1 (persons and the mirror are read from cache, as on
    an SSD) instead of the default 4, which plans even a chunk of 1,000 persons as a scan
    of the whole mirror and hash joins, once per chunk, so that a scoped diff of a large
    store would cost more than a full one."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SET LOCAL random_page_cost = 1.1"))


def changed_record(records_after: datetime) -> Any:
    """A mirrored record written since ``records_after`` could have diffed it."""
    return or_(
        SalesforceRecord.system_modstamp > records_after,
        SalesforceRecord.system_modstamp.is_(None),
    )


def last_baseline(session: Session, *, before_run: int, field: str) -> Baseline | None:
    """The last succeeded real run of ``field`` before ``before_run``, if it recorded what
    a later diff needs (its ledger watermark and the mirror's watermark after its read)."""
    row = session.scalars(
        select(SyncRun)
        .where(
            SyncRun.id < before_run,
            SyncRun.status == "succeeded",
            SyncRun.dry_run.is_(False),
            SyncRun.field == field,
        )
        .order_by(SyncRun.id.desc())
        .limit(1)
    ).first()
    if row is None or row.ledger_watermark is None or row.finished_at is None:
        return None
    through = ((row.report or {}).get("mirror") or {}).get("through")
    if not through:
        return None
    return Baseline(
        int(row.id),
        row.started_at,
        row.finished_at,
        int(row.ledger_watermark),
        datetime.fromisoformat(str(through)),
    )


def scope_since(
    session: Session, baseline: Baseline, *, records_after: datetime, persons_after: datetime
) -> Scope:
    """The persons changed since ``baseline`` (ledger, row, its failures) and those whose
    address or linked record changed (mirrored records written after ``records_after``),
    read in one statement of index lookups (and one pass over ``persons.updated_at``)."""
    changed = changed_record(records_after)
    queries = union(
        select(LedgerEntry.person_id.label("id")).where(LedgerEntry.id > baseline.ledger_watermark),
        select(Person.id).where(Person.updated_at > persons_after),
        select(Person.id)
        .join(SalesforceRecord, SalesforceRecord.email == Person.email)
        .where(changed),
        select(Person.id)
        .join(SalesforceRecord, SalesforceRecord.record_id == Person.salesforce_id)
        .where(changed),
        select(SyncRunFailure.person_id).where(
            SyncRunFailure.run_id == baseline.run_id, SyncRunFailure.person_id.is_not(None)
        ),
    ).subquery()
    ids: array[int] = array("q")
    rows = session.scalars(
        select(queries.c.id).order_by(queries.c.id).execution_options(yield_per=50_000)
    )
    ids.extend(int(pid) for pid in rows)
    return Scope(baseline, records_after, ids)

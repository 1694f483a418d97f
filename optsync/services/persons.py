"""Create, update and link persons; import them from CSV in chunks.

Imports are chunked (one transaction per chunk of rows) and set-based (one SELECT per
chunk for existing emails and ids, one bulk INSERT, one bulk UPDATE), which keeps a
100,000-row file to seconds on SQLite and PostgreSQL. A row is never half-applied: it is
imported whole or reported with its line number and the reason.
"""

from __future__ import annotations

import csv
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from sqlalchemy import bindparam, insert, select, text, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from optsync.domain.emails import InvalidEmail, normalise_email
from optsync.domain.ids import InvalidSalesforceId, parse_person_id
from optsync.errors import UsageError
from optsync.store.db import Database
from optsync.store.models import Person
from optsync.store.optouts import requeue

PERSON_COLUMNS = ("email", "salesforce_id", "first_name", "last_name")
MAX_NAME_LENGTH = 200
CHUNK_SIZE = 1000
# A big import into a young table outruns PostgreSQL's autovacuum: with stale statistics
# the planner seq-scans for the per-chunk lookups and the import turns quadratic.
ANALYZE_AFTER_CHUNKS = frozenset({1, 4, 16, 64, 256, 1024})


@dataclass(frozen=True)
class PersonInput:
    """One validated person row."""

    line: int
    email: str
    salesforce_id: str | None = None
    salesforce_object: str | None = None
    first_name: str | None = None
    last_name: str | None = None


@dataclass(frozen=True)
class RowError:
    line: int
    reason: str
    value: str | None = None


@dataclass
class ImportReport:
    rows: int = 0
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    linked: int = 0
    rejected: list[RowError] = field(default_factory=list)

    def merge(self, other: ImportReport) -> None:
        self.rows += other.rows
        self.created += other.created
        self.updated += other.updated
        self.unchanged += other.unchanged
        self.linked += other.linked
        self.rejected.extend(other.rejected)


def validate_person(
    line: int,
    email: str | None,
    salesforce_id: str | None = None,
    first_name: str | None = None,
    last_name: str | None = None,
) -> PersonInput | RowError:
    """Check one row; the error names the column and what is wrong with it."""
    try:
        normal = normalise_email(email or "")
    except InvalidEmail as exc:
        return RowError(line, f"email: {exc}", email)
    sf_id = sf_object = None
    if salesforce_id and salesforce_id.strip():
        try:
            sf_id, kind = parse_person_id(salesforce_id)
        except InvalidSalesforceId as exc:
            return RowError(line, f"salesforce_id: {exc}", salesforce_id)
        sf_object = kind.value
    names: list[str | None] = []
    for column, value in (("first_name", first_name), ("last_name", last_name)):
        cleaned = " ".join(value.split()) if value else None
        if cleaned and len(cleaned) > MAX_NAME_LENGTH:
            return RowError(line, f"{column}: longer than {MAX_NAME_LENGTH} characters", value)
        names.append(cleaned or None)
    return PersonInput(line, normal, sf_id, sf_object, names[0], names[1])


def read_csv(
    path: Path, required: tuple[str, ...] = ("email",)
) -> Iterator[tuple[int, dict[str, str]]]:
    """Yield (line number, row) from a CSV file; header names are case-insensitive."""
    try:
        fh = path.open(newline="", encoding="utf-8-sig")
    except OSError as exc:
        raise UsageError(f"FILE: cannot open {path}: {exc.strerror}.", field="FILE") from None
    with fh:
        reader = csv.reader(fh)
        try:
            header = next(reader)
        except StopIteration:
            raise UsageError(
                f"FILE: {path} is empty; it needs a header row.", field="FILE"
            ) from None
        except UnicodeDecodeError:
            raise UsageError(f"FILE: {path} is not UTF-8 text.", field="FILE") from None
        names = [h.strip().lower() for h in header]
        missing = [c for c in required if c not in names]
        if missing:
            raise UsageError(
                f"FILE: the header row has no {', '.join(missing)} column "
                f"(found: {', '.join(names) or 'nothing'}).",
                field="FILE",
                fix="Name the columns email, salesforce_id, first_name, last_name.",
            )
        try:
            for row in reader:
                if not any(cell.strip() for cell in row):
                    continue
                yield reader.line_num, dict(zip(names, row, strict=False))
        except UnicodeDecodeError:
            raise UsageError(f"FILE: {path} is not UTF-8 text.", field="FILE") from None
        except csv.Error as exc:
            raise UsageError(f"FILE: line {reader.line_num}: {exc}.", field="FILE") from None


class _Deduper:
    """Rejects repeated emails and Salesforce ids within one import."""

    def __init__(self) -> None:
        self.emails: dict[str, int] = {}
        self.ids: dict[str, int] = {}

    def check(self, row: PersonInput) -> RowError | None:
        first = self.emails.get(row.email)
        if first is not None:
            return RowError(row.line, f"email: duplicate of line {first}", row.email)
        if row.salesforce_id:
            first = self.ids.get(row.salesforce_id.upper())
            if first is not None:
                return RowError(
                    row.line, f"salesforce_id: already used on line {first}", row.salesforce_id
                )
            self.ids[row.salesforce_id.upper()] = row.line
        self.emails[row.email] = row.line
        return None


def import_persons(
    db: Database,
    rows: Iterable[tuple[int, dict[str, str]]],
    *,
    now: datetime,
    chunk_size: int = CHUNK_SIZE,
    progress: Callable[[int], None] | None = None,
) -> ImportReport:
    """Upsert persons from raw rows; good rows are stored, bad ones reported."""
    report = ImportReport()
    dedupe = _Deduper()
    chunk: list[PersonInput] = []

    chunks = 0

    def flush() -> None:
        nonlocal chunks
        if chunk:
            report.merge(upsert_chunk(db, chunk, now=now))
            if progress:
                progress(len(chunk))
            chunk.clear()
            chunks += 1
            if chunks in ANALYZE_AFTER_CHUNKS:
                refresh_statistics(db)

    for line, raw in rows:
        report.rows += 1
        checked = validate_person(
            line,
            raw.get("email"),
            raw.get("salesforce_id"),
            raw.get("first_name"),
            raw.get("last_name"),
        )
        if isinstance(checked, PersonInput):
            dup = dedupe.check(checked)
            if dup is None:
                chunk.append(checked)
                if len(chunk) >= chunk_size:
                    flush()
                continue
            checked = dup
        report.rejected.append(checked)
        if progress:
            progress(1)
    flush()
    report.rejected.sort(key=lambda e: e.line)
    return report


def refresh_statistics(db: Database) -> None:
    """Refresh the planner's statistics of ``persons`` (PostgreSQL; SQLite needs none)."""
    if db.dialect == "postgresql":
        with db.engine.begin() as conn:
            conn.execute(text("ANALYZE persons"))


def upsert_chunk(
    db: Database, rows: list[PersonInput], *, now: datetime, keep_existing_links: bool = False
) -> ImportReport:
    """Apply one chunk in one transaction; on a conflict, retry it row by row.

    ``keep_existing_links``: a person already linked keeps its record, and takes names
    only from that record (``persons pull``, where a Contact and a Lead may share an
    address: the Lead must not rename the Contact's person, or every pull would flip the
    names back and forth); a CSV import relinks instead.
    """
    try:
        with db.transaction() as session:
            return _upsert_rows(session, rows, now, keep_existing_links)
    except IntegrityError:
        report = ImportReport()
        for row in rows:
            try:
                with db.transaction() as session:
                    report.merge(_upsert_rows(session, [row], now, keep_existing_links))
            except IntegrityError:
                report.rejected.append(
                    RowError(
                        row.line,
                        "salesforce_id: already linked to another person",
                        row.salesforce_id,
                    )
                )
        return report


def _upsert_rows(
    session: Session, rows: list[PersonInput], now: datetime, keep_existing_links: bool = False
) -> ImportReport:
    report = ImportReport()
    emails = [r.email for r in rows]
    existing = {
        p.email: p
        for p in session.execute(
            select(
                Person.id, Person.email, Person.salesforce_id, Person.first_name, Person.last_name
            ).where(Person.email.in_(emails))
        )
    }
    ids = [r.salesforce_id for r in rows if r.salesforce_id]
    owners: dict[str, tuple[int, str]] = {}
    if ids:
        owners = {
            str(sid): (pid, email)
            for pid, email, sid in session.execute(
                select(Person.id, Person.email, Person.salesforce_id).where(
                    Person.salesforce_id.in_(ids)
                )
            )
        }
    inserts: list[dict[str, object]] = []
    updates: list[dict[str, object]] = []
    newly_linked: list[int] = []
    relinked: list[int] = []
    for row in rows:
        if row.salesforce_id and row.salesforce_id in owners:
            _owner_id, owner_email = owners[row.salesforce_id]
            if owner_email != row.email:
                report.rejected.append(
                    RowError(
                        row.line,
                        f"salesforce_id: already linked to person {owner_email}",
                        row.salesforce_id,
                    )
                )
                continue
        current = existing.get(row.email)
        if current is None:
            inserts.append(
                {
                    "email": row.email,
                    "salesforce_id": row.salesforce_id,
                    "salesforce_object": row.salesforce_object,
                    "first_name": row.first_name,
                    "last_name": row.last_name,
                    "unsubscribed": False,
                    "created_at": now,
                    "updated_at": now,
                }
            )
            continue
        change: dict[str, object] = {}
        linked_elsewhere = bool(
            current.salesforce_id
            and row.salesforce_id
            and row.salesforce_id != current.salesforce_id
        )
        if keep_existing_links and linked_elsewhere:
            report.unchanged += 1
            continue
        if row.salesforce_id and row.salesforce_id != current.salesforce_id:
            change["salesforce_id"] = row.salesforce_id
            change["salesforce_object"] = row.salesforce_object
            if current.salesforce_id is None:
                newly_linked.append(current.id)
            else:
                relinked.append(current.id)
        if row.first_name and row.first_name != current.first_name:
            change["first_name"] = row.first_name
        if row.last_name and row.last_name != current.last_name:
            change["last_name"] = row.last_name
        if change:
            change.update(id=current.id, updated_at=now)
            updates.append(change)
        else:
            report.unchanged += 1
    if inserts:
        # Core executemany (batched "insertmanyvalues"); the ORM bulk path would split
        # rows by which columns are NULL and send one statement each.
        session.execute(insert(Person.__table__), inserts)  # type: ignore[arg-type]
    _update_rows(session, updates)
    # a person who gains a record, or moves to another one, has their opt-out pushed there
    requeue(session, newly_linked + relinked, now)
    report.created += len(inserts)
    report.updated += len(updates)
    report.linked += len(newly_linked) + sum(1 for r in inserts if r["salesforce_id"])
    return report


def _update_rows(session: Session, updates: list[dict[str, object]]) -> None:
    """One executemany per set of changed columns (rows change different columns)."""
    groups: dict[tuple[str, ...], list[dict[str, object]]] = {}
    for change in updates:
        columns = tuple(sorted(k for k in change if k != "id"))
        groups.setdefault(columns, []).append(change)
    for columns, group in groups.items():
        statement = (
            update(Person.__table__)  # type: ignore[arg-type]
            .where(Person.__table__.c.id == bindparam("b_id"))
            .values({c: bindparam(f"b_{c}") for c in columns})
        )
        session.connection().execute(
            statement, [{f"b_{k}": v for k, v in row.items()} for row in group]
        )


def upsert_person(session: Session, row: PersonInput, now: datetime) -> tuple[Person, str]:
    """Upsert one person; returns the person and ``created``, ``updated`` or ``unchanged``."""
    report = _upsert_rows(session, [row], now)
    if report.rejected:
        raise UsageError(report.rejected[0].reason, field=report.rejected[0].reason.split(":")[0])
    person = session.scalars(select(Person).where(Person.email == row.email)).one()
    outcome = "created" if report.created else "updated" if report.updated else "unchanged"
    return person, outcome

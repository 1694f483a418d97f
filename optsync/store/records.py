"""The Salesforce record mirror: every Contact, Lead and Person Account optsync has seen,
by address (``salesforce_records``), and how far it can be trusted (``salesforce_mirror``).

Writers (pulls, the nightly run, the live pull, push-time lookups) hand over what they
read as :class:`MirroredRecord` rows; :func:`upsert_records` keeps the newest version of
each record by SystemModstamp, so a slow reader cannot overwrite a newer one.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from typing import Any, Literal, NamedTuple

from sqlalchemy import delete, func, or_, select, text, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from optsync.domain.emails import InvalidEmail, normalise_email
from optsync.domain.records import RecordObject, RecordView
from optsync.services.addresses import fast_normalise  # pure: no store, no I/O
from optsync.store.models import SalesforceMirror, SalesforceRecord

Field = Literal["email_opt_out", "sales_opt_out"]
CHUNK = 500
PG_CHUNK = 5_000
"""Rows per upsert on PostgreSQL (array parameters: no bound-parameter limit)."""


class MirroredRecord(NamedTuple):
    """A record as read from Salesforce. ``email`` is the raw value; the opt-out values are
    None when the read did not include that field (the stored value is then kept).

    A tuple rather than a dataclass: a full read makes one per record of the org (a
    frozen dataclass takes four times as long to build)."""

    record_id: str
    object: RecordObject
    email: str | None
    email_opt_out: bool | None = None
    sales_opt_out: bool | None = None
    converted: bool = False
    deleted: bool = False
    system_modstamp: datetime | None = None
    email_known: bool = True
    """False when the read did not include Email (a change event that did not change
    it): the stored address is kept."""


def field_column(field: str) -> Field:
    """The mirror column of a synced field's API name: Email Opt Out, or the custom one."""
    return "email_opt_out" if field == "HasOptedOutOfEmail" else "sales_opt_out"


def field_values(field: str, value: bool | None) -> tuple[bool | None, bool | None]:
    """``(email_opt_out, sales_opt_out)`` of a read that saw ``field`` as ``value``: the
    other column was not read (None keeps the value stored)."""
    return (value, None) if field_column(field) == "email_opt_out" else (None, value)


def record_of(
    record_id: str,
    object: RecordObject,
    field: str,
    values: dict[str, Any],
    *,
    stamp: datetime | None,
) -> MirroredRecord:
    """A :class:`MirroredRecord` from a Salesforce row (REST JSON or Bulk CSV strings)
    holding ``Email`` and the synced ``field`` (and optionally ``IsConverted``); a key
    absent from ``values`` was not read."""
    value = _bool(values[field]) if field in values else None
    return MirroredRecord(
        record_id,
        object,
        values.get("Email") or None,
        *field_values(field, value),
        "IsConverted" in values and _bool(values["IsConverted"]) is True,
        False,
        stamp,
        "Email" in values,
    )


def _bool(value: Any) -> bool | None:
    if value is None or value is True or value is False:
        return value
    if value == "false":  # Bulk CSV, the usual case first
        return False
    if value == "":
        return None
    if isinstance(value, str):
        return value == "true" or value.strip().lower() == "true"
    return bool(value)


def mirror_email(raw: str | None) -> str | None:
    """The address a record carries, normalised as persons' addresses are, or None when
    the record has none that optsync could use."""
    if not raw:
        return None
    # plain ASCII addresses (nearly all) skip the full validator: a full re-mirror reads
    # every record of the org (the fast path gives the same answer, see its tests)
    fast = fast_normalise(raw)
    if fast is not None:
        return fast
    try:
        return normalise_email(raw)
    except InvalidEmail:
        return None


_COLUMNS = (
    "record_id, object, email, email_opt_out, sales_opt_out, converted, deleted, "
    "system_modstamp, seen_at"
)
_NAMES = tuple(_COLUMNS.split(", "))


def _pg_upsert(email_known: bool) -> str:
    """The PostgreSQL upsert of one chunk from the session's temporary load table."""
    email = "excluded.email" if email_known else "r.email"
    converted = "excluded.converted" if email_known else "(excluded.converted OR r.converted)"
    return (
        f"INSERT INTO salesforce_records AS r ({_COLUMNS}) SELECT {_COLUMNS} FROM mirror_load "
        "ON CONFLICT (record_id) DO UPDATE SET object = excluded.object, "
        f"email = {email}, "
        "email_opt_out = COALESCE(excluded.email_opt_out, r.email_opt_out), "
        "sales_opt_out = COALESCE(excluded.sales_opt_out, r.sales_opt_out), "
        f"converted = {converted}, deleted = excluded.deleted, "
        "system_modstamp = COALESCE(excluded.system_modstamp, r.system_modstamp), "
        "seen_at = excluded.seen_at "
        "WHERE r.system_modstamp IS NULL OR excluded.system_modstamp IS NULL "
        "OR excluded.system_modstamp >= r.system_modstamp"
    )


Row = tuple[str, str, str | None, bool | None, bool | None, bool, bool, datetime | None, datetime]
"""A mirror row as written: the columns of ``_COLUMNS``, in that order."""

_NULL = "\\N"
_COPY_BOOL = {True: "t", False: "f", None: _NULL}
_COPY_SPECIAL = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})


def _copy_text(value: str | None) -> str:
    """A text value in COPY's text format (``\\N`` for NULL, the four specials escaped)."""
    if value is None:
        return _NULL
    if "\\" in value or "\t" in value or "\n" in value or "\r" in value:
        return value.translate(_COPY_SPECIAL)
    return value


def _copy_lines(rows: Iterable[Row]) -> str:
    """Rows as the lines of a ``COPY … FROM STDIN`` in text format, built in Python at a
    fraction of the cost of psycopg's per-row ``write_row``."""
    b, t = _COPY_BOOL, _copy_text
    seen_at: dict[datetime, str] = {}  # a batch is written at one time
    return "".join(
        # ids and object names are checked words: no special to escape
        f"{rid}\t{obj}\t{t(email)}\t{b[eo]}\t{b[so]}\t{b[conv]}\t{b[dele]}\t"
        f"{stamp.isoformat() if stamp is not None else _NULL}\t"
        f"{seen_at.get(seen) or seen_at.setdefault(seen, seen.isoformat())}\n"
        for rid, obj, email, eo, so, conv, dele, stamp, seen in rows
    )


def _pg_flush(session: Session, rows: list[Row], email_known: bool) -> None:
    """One chunk on PostgreSQL: COPY into a temporary table, then one INSERT … ON CONFLICT
    (a full re-mirror writes every record of the org: parameters per row are several
    times slower)."""
    dbapi: Any = session.connection().connection.driver_connection
    with dbapi.cursor() as cur:
        cur.execute(
            "CREATE TEMP TABLE IF NOT EXISTS mirror_load "
            "(LIKE salesforce_records INCLUDING DEFAULTS) ON COMMIT DELETE ROWS"
        )
        with cur.copy(f"COPY mirror_load ({_COLUMNS}) FROM STDIN") as copy:
            copy.write(_copy_lines(rows))
        cur.execute(_pg_upsert(email_known))
        cur.execute("TRUNCATE mirror_load")


def upsert_records(session: Session, records: Iterable[MirroredRecord], now: datetime) -> int:
    """Insert or refresh mirrored records; an older read (by SystemModstamp) than the one
    stored changes nothing. Returns how many rows were given."""
    table = SalesforceRecord.__table__
    postgres = session.get_bind().dialect.name == "postgresql"
    insert: Any = postgresql.insert if postgres else sqlite.insert
    given = 0
    batches: dict[bool, dict[str, Row]] = {True: {}, False: {}}

    def flush(email_known: bool) -> None:
        batch = batches[email_known]
        if not batch:
            return
        if postgres:
            _pg_flush(session, list(batch.values()), email_known)
            batch.clear()
            return
        stmt = insert(table)
        excluded = stmt.excluded
        newer = or_(
            table.c.system_modstamp.is_(None),
            excluded.system_modstamp.is_(None),
            excluded.system_modstamp >= table.c.system_modstamp,
        )
        stmt = stmt.on_conflict_do_update(
            index_elements=[table.c.record_id],
            set_={
                "object": excluded.object,
                # a read without Email (a change event of another field) keeps the address
                "email": excluded.email if email_known else table.c.email,
                # a read without the field keeps the value known before
                "email_opt_out": _coalesce(excluded.email_opt_out, table.c.email_opt_out),
                "sales_opt_out": _coalesce(excluded.sales_opt_out, table.c.sales_opt_out),
                # a conversion is one-way: a partial read cannot undo one
                "converted": excluded.converted
                if email_known
                else or_(excluded.converted, table.c.converted),
                "deleted": excluded.deleted,
                "system_modstamp": _coalesce(excluded.system_modstamp, table.c.system_modstamp),
                "seen_at": excluded.seen_at,
            },
            where=newer,
        )
        session.execute(stmt, [dict(zip(_NAMES, row, strict=True)) for row in batch.values()])
        batch.clear()

    limit = PG_CHUNK if postgres else CHUNK
    for r in records:
        given += 1
        # one row per record and statement (PostgreSQL refuses a row twice in one upsert);
        # the later read of a record within a batch wins
        batch = batches[r.email_known]
        batch[r.record_id] = (
            r.record_id,
            r.object,
            mirror_email(r.email),
            r.email_opt_out,
            r.sales_opt_out,
            r.converted,
            r.deleted,
            r.system_modstamp,
            now,
        )
        if len(batch) >= limit:
            flush(r.email_known)
    flush(True)
    flush(False)
    return given


def _coalesce(first: Any, second: Any) -> Any:
    return func.coalesce(first, second)


def mark_deleted(session: Session, record_ids: Sequence[str], now: datetime) -> int:
    """Records Salesforce deleted (or merged away): kept for the history, never set."""
    done = 0
    for start in range(0, len(record_ids), CHUNK):
        chunk = list(record_ids[start : start + CHUNK])
        result = session.execute(
            update(SalesforceRecord)
            .where(SalesforceRecord.record_id.in_(chunk))
            .values(deleted=True, seen_at=now)
        )
        done += int(getattr(result, "rowcount", 0) or 0)
    return done


def analyze_mirror(session: Session) -> None:
    """Fresh planner statistics for the mirror on PostgreSQL, after a read that wrote many
    rows (a full read takes it from empty to the whole org in a minute, long before
    autovacuum would notice; a diff planned on the old statistics scans the whole mirror
    once per chunk of persons)."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("ANALYZE salesforce_records"))


def drop_records(session: Session, record_ids: Sequence[str]) -> int:
    """Remove records that are no record of their own from the mirror: the hidden
    PersonContacts of Person Accounts, which a reader that did not know the org's Person
    Accounts mirrored as Contacts (the Account carries the address and the field)."""
    done = 0
    for start in range(0, len(record_ids), CHUNK):
        chunk = list(record_ids[start : start + CHUNK])
        result = session.execute(
            delete(SalesforceRecord).where(SalesforceRecord.record_id.in_(chunk))
        )
        done += int(getattr(result, "rowcount", 0) or 0)
    return done


def _view(row: SalesforceRecord, field: Field) -> RecordView:
    return RecordView(
        record_id=row.record_id,
        object=row.object,  # type: ignore[arg-type]
        email=row.email,
        opted_out=getattr(row, field),
        converted=row.converted,
        deleted=row.deleted,
        system_modstamp=row.system_modstamp,
    )


def records_by_email(
    session: Session, emails: Iterable[str], field: Field
) -> dict[str, list[RecordView]]:
    """Every mirrored record of each (normalised) address, deleted ones included."""
    out: dict[str, list[RecordView]] = defaultdict(list)
    wanted = sorted(set(emails))
    for start in range(0, len(wanted), CHUNK):
        chunk = wanted[start : start + CHUNK]
        rows = session.scalars(
            select(SalesforceRecord)
            .where(SalesforceRecord.email.in_(chunk))
            .order_by(SalesforceRecord.email, SalesforceRecord.record_id)
        )
        for row in rows:
            assert row.email is not None
            out[row.email].append(_view(row, field))
    return dict(out)


def mirrored_ids(session: Session, record_ids: Iterable[str], *where: Any) -> set[str]:
    """Of these record ids, the ones the mirror holds (and that match ``where``, e.g.
    ``SalesforceRecord.object == "Contact"``)."""
    wanted = sorted(set(record_ids))
    found: set[str] = set()
    for start in range(0, len(wanted), CHUNK):
        found.update(
            session.scalars(
                select(SalesforceRecord.record_id).where(
                    SalesforceRecord.record_id.in_(wanted[start : start + CHUNK]), *where
                )
            )
        )
    return found


def mirror_state(session: Session) -> SalesforceMirror | None:
    return session.get(SalesforceMirror, 1)


def save_mirror_state(
    session: Session,
    now: datetime,
    *,
    through: datetime | None = None,
    complete: bool = False,
    trusted: bool | None = None,
    reason: str | None = None,
) -> SalesforceMirror:
    """Move the mirror's watermark forward (never back), record a full re-mirror, or mark
    it untrusted with the reason (the next nightly run then re-mirrors in full)."""
    state = session.get(SalesforceMirror, 1, with_for_update=True)
    if state is None:
        state = SalesforceMirror(id=1, trusted=False, updated_at=now)
        session.add(state)
    if through is not None and (state.through is None or through > state.through):
        state.through = through
    if complete:
        state.complete_at = now
    if trusted is not None:
        state.trusted = trusted
        state.reason = None if trusted else (reason or "")[:255]
    state.updated_at = now
    session.flush()
    return state


def advance_through(session: Session, at: datetime) -> bool:
    """The live pull's move of the watermark to ``at``: a *trusted* mirror's only (only a
    full read makes a mirror trusted), and only forward; one conditional UPDATE, so a gap
    noted by a concurrent transaction is never overwritten. ``updated_at`` is left alone:
    the nightly run reads it as "trust changed meanwhile". Returns whether it moved."""
    result = session.execute(
        update(SalesforceMirror)
        .where(
            SalesforceMirror.id == 1,
            SalesforceMirror.trusted.is_(True),
            or_(SalesforceMirror.through.is_(None), SalesforceMirror.through < at),
        )
        .values(through=at)
    )
    return bool(getattr(result, "rowcount", 0))


MIRROR_TRUST_WINDOW = timedelta(minutes=15)
"""How recent the mirror's watermark must be for a push to rely on it alone."""


def mirror_trusted(session: Session, now: datetime) -> bool:
    """Whether a push may take an address's records from the mirror without asking
    Salesforce: the mirror is marked trusted (a full re-mirror ran and no change was
    missed since: no Change Data Capture gap, no field change) and its watermark
    ``through`` is at most :data:`MIRROR_TRUST_WINDOW` old (the nightly run moves it,
    and the live pull while every object's changes reach the mirror:
    :func:`advance_through`). A record created within that window is not lost either
    way: the live pull that mirrors it re-queues the address
    (``store.optouts.requeue_for_addresses``)."""
    state = mirror_state(session)
    if state is None or not state.trusted or state.through is None:
        return False
    return state.through >= now - MIRROR_TRUST_WINDOW


def mark_opted_out(session: Session, record_ids: Sequence[str], field: Field, now: datetime) -> int:
    """Records a push just set: the mirror holds the field as set (a record the mirror
    does not hold yet is left to the next read, which brings its address)."""
    done = 0
    column = getattr(SalesforceRecord, field)
    for start in range(0, len(record_ids), CHUNK):
        chunk = list(record_ids[start : start + CHUNK])
        result = session.execute(
            update(SalesforceRecord)
            .where(SalesforceRecord.record_id.in_(chunk))
            .values({column: True, "seen_at": now})
        )
        done += int(getattr(result, "rowcount", 0) or 0)
    return done


def forget_missing(
    session: Session,
    emails: Sequence[str],
    found_ids: Iterable[str],
    before: datetime,
) -> int:
    """A lookup of ``emails`` (started at ``before``) did not return these mirrored
    records: they no longer carry the address (changed, deleted or merged away), so the
    mirror stops listing them under it (``email`` NULL; the record and its field values
    stay). A row written at or after ``before`` (a concurrent pull saw it newer) is kept."""
    found = set(found_ids)
    wanted = sorted(set(emails))
    done = 0
    for start in range(0, len(wanted), CHUNK):
        chunk = wanted[start : start + CHUNK]
        stale = [
            rid
            for rid in session.scalars(
                select(SalesforceRecord.record_id).where(
                    SalesforceRecord.email.in_(chunk), SalesforceRecord.seen_at < before
                )
            )
            if rid not in found
        ]
        for part in range(0, len(stale), CHUNK):
            result = session.execute(
                update(SalesforceRecord)
                .where(
                    SalesforceRecord.record_id.in_(stale[part : part + CHUNK]),
                    SalesforceRecord.seen_at < before,
                )
                .values(email=None)
            )
            done += int(getattr(result, "rowcount", 0) or 0)
    return done

"""The one query builder behind every list of unsubscribes: the Unsubscribes tab, its CSV
export, ``GET /api/v1/unsubscribes`` (JSON and ``text/csv``) and the Failures view's links.

The adapters are thin: they hand the raw query values to :func:`parse_query`, which
validates each one strictly (a full match; an error names the filter and says what is
allowed, as a :class:`~optsync.errors.UsageError`), and read pages with :func:`read_page`
or every row with :func:`iter_rows`.

**Filters** combine (all must hold): ``source`` (the unsubscribe in force came from there),
``state`` (of the person's latest push: ``pending``, ``pushed``, ``failed``,
``not_linked``, ``cancelled``, or ``none`` — never pushed, e.g. pulled from Salesforce),
``code`` (the latest push failed with this Salesforce error code), ``object`` (``Contact``
or ``Lead``), ``since``/``until`` (a day ``YYYY-MM-DD`` in the configured time zone, both
inclusive, or an ISO 8601 time with its offset: ``since`` inclusive, ``until``
exclusive), ``q`` (part of the address, or a 15/18-character Salesforce id),
``pulled_by_run`` / ``pushed_by_run`` (a sync run's id: the persons that run unsubscribed
here, by its ledger entries, or whose records it set in Salesforce, by the sent pushes it
recorded; what a run report's *Pulled* and *Pushed* counts link to).

**Sorts**: ``newest`` (the default) and ``oldest`` unsubscribe first, ``email`` (A to Z) and
``email_desc`` (Z to A).

**Keyset paging.** A page ends with a cursor naming the last row's sort key and id; the
next page starts strictly after it (``WHERE (key, id) < (:key, :id)`` for newest first),
so rows added between two pages neither repeat a row nor hide one, as an ``OFFSET``
would. The cursor is opaque: base64url JSON signed with an HMAC under a key derived
from the secret key for this purpose only, so a tampered or truncated cursor is refused
(field ``cursor``) instead of being read as some other position. A cursor also records
the sort it belongs to and which way it pages (``next`` / ``prev``).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, Literal
from zoneinfo import ZoneInfo

from sqlalchemy import Select, and_, func, or_, select
from sqlalchemy.orm import Session, aliased

from optsync.domain.ids import InvalidSalesforceId, to_18
from optsync.domain.optout import Source
from optsync.domain.spreadsheet import csv_lines
from optsync.errors import UsageError
from optsync.security import derive_key
from optsync.services.person_views import PUSH_STATES
from optsync.services.sync.push_phase import SENT_BY_RUN
from optsync.store.models import LedgerEntry, OutboxPush, Person, PushRecord, SyncRun
from optsync.store.sync_runs import SYNC_ACTOR

MAX_QUERY = 254
CODE_RE = re.compile(r"[A-Za-z0-9_]{1,80}")
DATE_RE = re.compile(r"\d{4}-\d{2}-\d{2}")
DATETIME_RE = re.compile(
    r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d{1,6})?)?(?:Z|[+-]\d{2}:\d{2})"
)
CONTROL_RE = re.compile(r"[\x00-\x1f\x7f]")
CURSOR_RE = re.compile(r"[A-Za-z0-9_-]{1,600}\.[A-Za-z0-9_-]{22}")
RUN_RE = re.compile(r"[1-9][0-9]{0,18}")
MAX_RUN_ID = 2**63 - 1
CURSOR_PURPOSE = "unsubscribe-list-cursor"

STATES: dict[str, tuple[str, ...]] = {
    "pending": ("pending", "in_flight"),
    "pushed": ("sent",),
    "failed": ("failed",),
    "not_linked": ("not_linked",),
    "cancelled": ("cancelled",),
    "none": (),
    "records_failed": ("failed", "pending", "sent"),
}
"""The push-state filter's values and the outbox states each one means.
``records_failed``: the latest push failed to set at least one record of the address
(``push_records``), whatever its state (failed, or waiting for a retry)."""
SORTS = ("newest", "oldest", "email", "email_desc")
Sort = Literal["newest", "oldest", "email", "email_desc"]
OBJECTS = ("Contact", "Lead", "Account")
"""The linked record's object; ``Account`` is a Person Account."""
SOURCES = tuple(s.value for s in Source)
FILTER_NAMES = (
    "source",
    "state",
    "code",
    "object",
    "since",
    "until",
    "q",
    "pulled_by_run",
    "pushed_by_run",
)
"""The filters, in the order the URL carries them."""
CSV_COLUMNS = (
    "person_id",
    "email",
    "salesforce_id",
    "salesforce_object",
    "source",
    "unsubscribed_at",
    "push_state",
    "push_code",
    "push_fix",
)


@dataclass(frozen=True)
class Cursor:
    sort: str
    key: str  # the last row's sort key: an ISO time (UTC) or an address
    id: int
    direction: Literal["next", "prev"] = "next"


@dataclass(frozen=True)
class ListQuery:
    """A validated list request; ``raw`` keeps the values as given, for links."""

    source: str | None = None
    state: str | None = None
    code: str | None = None
    object: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    q: str = ""
    pulled_by_run: int | None = None
    pushed_by_run: int | None = None
    sort: Sort = "newest"
    cursor: Cursor | None = None
    raw: tuple[tuple[str, str], ...] = ()

    def params(self, **changes: str) -> dict[str, str]:
        """The filters and sort as URL query values (without the cursor), with changes."""
        out = {k: v for k, v in self.raw if v and k in (*FILTER_NAMES, "sort")}
        out.update(changes)
        return {k: v for k, v in out.items() if v}

    @property
    def filtered(self) -> bool:
        return any(v for k, v in self.raw if k in FILTER_NAMES)


@dataclass(frozen=True)
class Row:
    id: int
    email: str
    salesforce_id: str | None
    salesforce_object: str | None
    source: str | None
    unsubscribed_at: datetime | None
    push_state: str | None
    push_code: str | None
    push_fix: str | None


@dataclass(frozen=True)
class Page:
    rows: list[Row]
    next_cursor: str | None
    prev_cursor: str | None
    first: bool


# -- parsing ----------------------------------------------------------------------------


def _choice(name: str, value: str, allowed: Sequence[str]) -> str:
    if value not in allowed:
        raise UsageError(f"{name}: {value[:40]!r} is not one of {', '.join(allowed)}.", field=name)
    return value


def _run_id(name: str, value: str) -> int:
    """A sync run's id: digits only, no sign, no leading zero, within the id range."""
    if not RUN_RE.fullmatch(value) or int(value) > MAX_RUN_ID:
        raise UsageError(
            f"{name}: {value[:40]!r} is not a sync run's number (digits only, such as 12).",
            field=name,
        )
    return int(value)


def _bound(name: str, value: str, tz: str) -> datetime:
    """A day in the configured zone (``since``: its start; ``until``: the next day's
    start, so the day is included) or a time with its offset, in UTC."""
    zone = ZoneInfo(tz)
    if DATE_RE.fullmatch(value):
        try:
            day = date.fromisoformat(value)
        except ValueError:
            raise UsageError(f"{name}: {value!r} is not a calendar date.", field=name) from None
        if name == "until":
            if day == date.max:
                raise UsageError(f"{name}: {value!r} is too far in the future.", field=name)
            day += timedelta(days=1)
        return datetime.combine(day, time(0), zone).astimezone(UTC)
    if DATETIME_RE.fullmatch(value):
        try:
            return datetime.fromisoformat(value.replace("Z", "+00:00")).astimezone(UTC)
        except (ValueError, OverflowError):
            pass
    raise UsageError(
        f"{name}: {value[:40]!r} is neither a date (YYYY-MM-DD, a day in {tz}) nor a time "
        "with its offset (2026-12-01T08:00:00Z).",
        field=name,
    )


def parse_query(
    raw: Mapping[str, str], *, tz: str, secret_key: str, default_sort: Sort = "newest"
) -> ListQuery:
    """Validate the list's query values (missing or empty means "any")."""
    values = {k: raw.get(k, "") for k in (*FILTER_NAMES, "sort", "cursor")}
    for name, value in values.items():
        if not isinstance(value, str):
            raise UsageError(f"{name}: give it once, as text.", field=name)
    source = _choice("source", values["source"], SOURCES) if values["source"] else None
    state = _choice("state", values["state"], tuple(STATES)) if values["state"] else None
    obj = _choice("object", values["object"], OBJECTS) if values["object"] else None
    code = values["code"] or None
    if code is not None and not CODE_RE.fullmatch(code):
        raise UsageError(
            "code: a Salesforce error code has letters, digits and _ only "
            "(such as INVALID_FIELD_FOR_INSERT_UPDATE).",
            field="code",
        )
    since = _bound("since", values["since"], tz) if values["since"] else None
    until = _bound("until", values["until"], tz) if values["until"] else None
    if since is not None and until is not None and until <= since:
        raise UsageError("until: it must come after since.", field="until")
    q = values["q"].strip()
    if len(q) > MAX_QUERY or CONTROL_RE.search(q):
        raise UsageError(f"q: search with up to {MAX_QUERY} characters of plain text.", field="q")
    pulled_by = values["pulled_by_run"]
    pushed_by = values["pushed_by_run"]
    sort = values["sort"] or default_sort
    _choice("sort", sort, SORTS)
    cursor = decode_cursor(values["cursor"], secret_key) if values["cursor"] else None
    if cursor is not None and cursor.sort != sort:
        raise UsageError(
            f"cursor: it belongs to the sort {cursor.sort!r}, not {sort!r}; start again "
            "from the first page.",
            field="cursor",
        )
    return ListQuery(
        source=source,
        state=state,
        code=code,
        object=obj,
        since=since,
        until=until,
        q=q,
        pulled_by_run=_run_id("pulled_by_run", pulled_by) if pulled_by else None,
        pushed_by_run=_run_id("pushed_by_run", pushed_by) if pushed_by else None,
        sort=sort,  # type: ignore[arg-type]
        cursor=cursor,
        raw=tuple((k, v) for k, v in values.items() if k != "cursor" and v),
    )


# -- cursors ----------------------------------------------------------------------------


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _mac(secret_key: str, payload: str) -> str:
    key = derive_key(secret_key, CURSOR_PURPOSE)
    return _b64(hmac.new(key, payload.encode(), hashlib.sha256).digest()[:16])


def encode_cursor(cursor: Cursor, secret_key: str) -> str:
    payload = _b64(
        json.dumps(
            [1, cursor.sort, cursor.key, cursor.id, cursor.direction], separators=(",", ":")
        ).encode()
    )
    return f"{payload}.{_mac(secret_key, payload)}"


def decode_cursor(text: str, secret_key: str) -> Cursor:
    bad = UsageError(
        "cursor: not a cursor this list gave out (changed or cut short); use the "
        "next_cursor of a response as it is, or start again without one.",
        field="cursor",
    )
    if not CURSOR_RE.fullmatch(text):
        raise bad
    payload, mac = text.split(".")
    if not hmac.compare_digest(mac, _mac(secret_key, payload)):
        raise bad
    try:
        version, sort, key, row_id, direction = json.loads(_unb64(payload))
    except (ValueError, TypeError):
        raise bad from None
    if (
        version != 1
        or sort not in SORTS
        or not isinstance(key, str)
        or type(row_id) is not int
        or direction not in ("next", "prev")
    ):
        raise bad
    if sort in ("newest", "oldest"):
        try:
            datetime.fromisoformat(key)
        except ValueError:
            raise bad from None
    return Cursor(sort, key, row_id, direction)


# -- the query --------------------------------------------------------------------------


def _is_latest(push: Any) -> Any:
    """``push`` is its person's latest outbox row: no newer one exists. Written as an
    anti-join rather than ``push.id = (SELECT max(id) …)`` so that PostgreSQL can drive a
    push-state filter from the outbox side (``ix_outbox_person_latest``)."""
    newer = aliased(OutboxPush)
    return ~(select(newer.id).where(newer.person_id == push.person_id, newer.id > push.id).exists())


_COLUMNS = (
    Person.id,
    Person.email,
    Person.salesforce_id,
    Person.salesforce_object,
    Person.unsubscribe_source,
    Person.unsubscribed_at,
)
"""What a row needs of the person: plain columns, not ORM objects (an export reads
every row)."""


def _run_started(run_id: int) -> Any:
    """The run's start: no entry or push of the run is older, so the lookups below seek
    their time index (``ix_ledger_kind_time``, ``ix_outbox_state_sent``) from there."""
    return select(SyncRun.started_at).where(SyncRun.id == run_id).scalar_subquery()


def _pulled_by(run_id: int) -> Any:
    """Persons the run unsubscribed here: their ledger has the run's pull entry (source
    ``salesforce``, actor ``sync``, evidence ``sync_run`` = the run; see
    ``store.sync_runs.apply_pull_chunk``), not any Salesforce unsubscribe of its minutes
    (the live pull's are ``salesforce live pull``'s)."""
    return Person.id.in_(
        select(LedgerEntry.person_id).where(
            LedgerEntry.kind == "unsubscribe",
            LedgerEntry.created_at >= _run_started(run_id),
            LedgerEntry.source == Source.SALESFORCE.value,
            LedgerEntry.actor == SYNC_ACTOR,
            LedgerEntry.evidence["sync_run"].as_integer() == run_id,
        )
    )


def _pushed_by(run_id: int) -> Any:
    """Persons with a record the run set: the sent pushes it recorded under its name
    (``claimed_by = "sync run #N"``, ``services.sync.push_phase``), one per record."""
    return Person.id.in_(
        select(OutboxPush.person_id).where(
            OutboxPush.state == "sent",
            OutboxPush.sent_at >= _run_started(run_id),
            OutboxPush.claimed_by == f"{SENT_BY_RUN}{run_id}",
        )
    )


def _filtered(query: ListQuery, push: Any, *, columns: bool = True) -> Select[Any]:
    """The filtered rows; ``columns=False``: their ids only, joined to the latest push
    only when a filter needs it (counting)."""
    joined = columns or query.state is not None or bool(query.code)
    stmt = (
        select(*_COLUMNS, push.state, push.last_error_code, push.fix)
        if columns
        else select(Person.id)
    )
    if joined:
        stmt = stmt.outerjoin(push, and_(push.person_id == Person.id, _is_latest(push)))
    stmt = stmt.where(Person.unsubscribed.is_(True))
    if query.source:
        stmt = stmt.where(Person.unsubscribe_source == query.source)
    if query.object:
        stmt = stmt.where(Person.salesforce_object == query.object)
    if query.state is not None:
        states = STATES[query.state]
        stmt = stmt.where(push.state.in_(states) if states else push.id.is_(None))
        if query.state == "records_failed":
            stmt = stmt.where(
                select(PushRecord.push_id)
                .where(PushRecord.push_id == push.id, PushRecord.state == "failed")
                .exists()
            )
    if query.code:
        stmt = stmt.where(push.state == "failed", push.last_error_code == query.code)
    if query.since is not None:
        stmt = stmt.where(Person.unsubscribed_at >= query.since)
    if query.until is not None:
        stmt = stmt.where(Person.unsubscribed_at < query.until)
    if query.q:
        text = query.q.lower()
        escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        match = Person.email.like(f"%{escaped}%", escape="\\")
        try:
            sf_id = to_18(query.q)
        except InvalidSalesforceId:
            sf_id = None
        stmt = stmt.where(or_(match, Person.salesforce_id == sf_id) if sf_id else match)
    if query.pulled_by_run is not None:
        stmt = stmt.where(_pulled_by(query.pulled_by_run))
    if query.pushed_by_run is not None:
        stmt = stmt.where(_pushed_by(query.pushed_by_run))
    return stmt


def _key_column(sort: str) -> Any:
    return Person.email if sort in ("email", "email_desc") else Person.unsubscribed_at


def _descending(sort: str) -> bool:
    return sort in ("newest", "email_desc")


def _key_of(row: Row, sort: str) -> str:
    if sort in ("email", "email_desc"):
        return row.email
    assert row.unsubscribed_at is not None
    return row.unsubscribed_at.astimezone(UTC).isoformat()


def _key_value(cursor: Cursor) -> Any:
    if cursor.sort in ("email", "email_desc"):
        return cursor.key
    return datetime.fromisoformat(cursor.key)


def _ordered(stmt: Select[Any], sort: str, cursor: Cursor | None, backwards: bool) -> Select[Any]:
    column = _key_column(sort)
    descending = _descending(sort) != backwards
    if cursor is not None:
        key = _key_value(cursor)
        # the plain range first (``key <= :key``) lets both databases seek the index
        # to the cursor; the OR alone made SQLite scan from the top on every page
        if descending:
            after = and_(
                column <= key, or_(column < key, and_(column == key, Person.id < cursor.id))
            )
        else:
            after = and_(
                column >= key, or_(column > key, and_(column == key, Person.id > cursor.id))
            )
        stmt = stmt.where(after)
    if descending:
        return stmt.order_by(column.desc(), Person.id.desc())
    return stmt.order_by(column.asc(), Person.id.asc())


def _row(values: Any) -> Row:
    person_id, email, sf_id, sf_object, source, at, state, code, fix = values
    failed = state == "failed"
    return Row(
        id=person_id,
        email=email,
        salesforce_id=sf_id,
        salesforce_object=sf_object,
        source=source,
        unsubscribed_at=at,
        push_state=PUSH_STATES[state] if state is not None else None,
        push_code=code if failed else None,
        push_fix=fix if failed else None,
    )


def _fetch(
    session: Session, query: ListQuery, cursor: Cursor | None, limit: int, backwards: bool
) -> list[Row]:
    push = aliased(OutboxPush)
    stmt = _ordered(_filtered(query, push), query.sort, cursor, backwards).limit(limit)
    return [_row(values) for values in session.execute(stmt)]


def read_page(session: Session, query: ListQuery, limit: int, *, secret_key: str) -> Page:
    """One page of ``limit`` rows at the query's cursor, with the cursors around it."""
    cursor = query.cursor
    backwards = cursor is not None and cursor.direction == "prev"
    rows = _fetch(session, query, cursor, limit + 1, backwards)
    more = len(rows) > limit
    rows = rows[:limit]
    if backwards:
        rows.reverse()
        if not more:  # reached the start: show the first page whole
            return read_page(session, replace(query, cursor=None), limit, secret_key=secret_key)
        has_before, has_after = True, True
    else:
        has_before, has_after = cursor is not None, more

    def at(row: Row, direction: Literal["next", "prev"]) -> str:
        mark = Cursor(query.sort, _key_of(row, query.sort), row.id, direction)
        return encode_cursor(mark, secret_key)

    return Page(
        rows=rows,
        next_cursor=at(rows[-1], "next") if rows and has_after else None,
        prev_cursor=at(rows[0], "prev") if rows and has_before else None,
        first=not has_before,
    )


def count(session: Session, query: ListQuery) -> int:
    """How many rows match the filters (whatever the cursor)."""
    push = aliased(OutboxPush)
    inner = _filtered(query, push, columns=False).subquery()
    return int(session.scalar(select(func.count()).select_from(inner)) or 0)


def iter_rows(db: Any, query: ListQuery, *, chunk: int = 1000) -> Iterator[Row]:
    """Every matching row in the query's order, read in keyset chunks of ``chunk`` rows,
    each in a short transaction of its own (none stays open while the caller streams)."""
    cursor: Cursor | None = None
    while True:
        with db.transaction() as session:
            rows = _fetch(session, replace(query, cursor=None), cursor, chunk, False)
        yield from rows
        if len(rows) < chunk:
            return
        last = rows[-1]
        cursor = Cursor(query.sort, _key_of(last, query.sort), last.id)


def csv_export(db: Any, query: ListQuery) -> Iterator[str]:
    """The whole filtered list as CSV lines (header first), formula-safe cells, times
    in UTC (ISO 8601)."""
    return csv_lines(
        CSV_COLUMNS,
        (
            (
                r.id,
                r.email,
                r.salesforce_id,
                r.salesforce_object,
                r.source,
                r.unsubscribed_at.isoformat() if r.unsubscribed_at else None,
                r.push_state or "none",
                r.push_code,
                r.push_fix,
            )
            for r in iter_rows(db, query)
        ),
    )

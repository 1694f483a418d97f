"""Record thousands of unsubscribes at once (a suppression list from another tool).

Set-based, one transaction per chunk: one UPDATE ... RETURNING flips the persons who
were not unsubscribed (and, being atomic, tells exactly which ones this request changed
even with concurrent writers), one INSERT adds the unknown addresses already
unsubscribed, then one INSERT each writes their ledger entries and outbox pushes. The
per-row rules (reason cleaning, the event's shape) come from ``domain.optout`` exactly as
for a single unsubscribe, so the ledger cannot tell the two paths apart. Re-running a
request changes nothing: everyone in it is then "existing".
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Table, insert, select, update
from sqlalchemy.orm import Session

from optsync.domain import optout
from optsync.domain.optout import LedgerEvent, OptOutState, Source
from optsync.errors import UsageError
from optsync.services.addresses import normalise_all
from optsync.services.transactions import in_transaction
from optsync.store.db import Database
from optsync.store.models import LedgerEntry, OutboxPush, Person
from optsync.store.outbox import OPEN_STATES, notify

CHUNK_SIZE = 1000

# Core tables: multi-row INSERTs through Core skip the ORM's per-row bookkeeping.
PERSONS = cast(Table, Person.__table__)
LEDGER = cast(Table, LedgerEntry.__table__)
OUTBOX = cast(Table, OutboxPush.__table__)


@dataclass(frozen=True)
class ItemError:
    index: int
    field: str
    message: str


@dataclass
class BulkReport:
    """``new``: unsubscribed by this request; ``existing``: already were (or repeated
    within the request); ``errors``: inputs that are not addresses."""

    new: int = 0
    existing: int = 0
    errors: list[ItemError] = field(default_factory=list)


def unsubscribe_many(
    db: Database,
    emails: Sequence[str],
    *,
    source: Source,
    actor: str,
    now: datetime,
    reason: str | None = None,
    evidence: dict[str, Any] | None = None,
    chunk_size: int = CHUNK_SIZE,
) -> BulkReport:
    """Unsubscribe every valid address in ``emails``; report per-item errors."""
    try:
        template = optout.unsubscribe(
            OptOutState(), source=source, actor=actor, now=now, reason=reason, evidence=evidence
        ).event
    except ValueError as exc:
        raise UsageError(f"reason: {exc}", field="reason") from None
    assert template is not None
    report = BulkReport()
    unique: list[str] = []
    seen: set[str] = set()
    for item in normalise_all(emails):
        if item.email is None:
            report.errors.append(
                ItemError(item.position, f"emails[{item.position}]", item.error or "")
            )
        elif item.email in seen:
            report.existing += 1
        else:
            seen.add(item.email)
            unique.append(item.email)
    for start in range(0, len(unique), chunk_size):
        chunk = unique[start : start + chunk_size]

        def apply(session: Session, emails: list[str] = chunk) -> int:
            return _apply_chunk(session, emails, template, now)

        changed = in_transaction(db, apply)
        report.new += changed
        report.existing += len(chunk) - changed
    return report


def _apply_chunk(session: Session, emails: list[str], event: LedgerEvent, now: datetime) -> int:
    state = {
        "unsubscribed": True,
        "unsubscribed_at": now,
        "unsubscribe_source": event.source.value,
        "updated_at": now,
    }
    flipped = session.execute(
        update(Person)
        .where(Person.email.in_(emails), Person.unsubscribed.is_(False))
        .values(**state)
        .returning(Person.id, Person.salesforce_id)
        .execution_options(synchronize_session=False)
    ).all()
    known = set(session.scalars(select(Person.email).where(Person.email.in_(emails))))
    new_rows = [{"email": e, "created_at": now, **state} for e in emails if e not in known]
    people: list[tuple[int, str | None]] = [(row[0], row[1]) for row in flipped]
    if new_rows:
        created = session.execute(
            insert(PERSONS).returning(PERSONS.c.id, PERSONS.c.salesforce_id), new_rows
        )
        people.extend((row[0], row[1]) for row in created)
    _record(session, [(pid, sf_id, event) for pid, sf_id in people], now)
    return len(people)


@dataclass(frozen=True)
class ByIdRequest:
    """One unsubscribe of a known person, as the public endpoints receive it."""

    person_id: int
    source: Source
    actor: str
    evidence: dict[str, Any] | None = None


@dataclass(frozen=True)
class ByIdOutcome:
    """``email`` is None when there is no such person; ``changed`` when this request
    unsubscribed them (False for a repeat, or for the second of two in one call)."""

    email: str | None
    changed: bool


def unsubscribe_ids(
    session: Session, requests: Sequence[ByIdRequest], *, now: datetime
) -> list[ByIdOutcome]:
    """Unsubscribe known persons by id, set-based, in the caller's transaction: the
    public endpoints' group commit (``web.batching``) hands in what arrived together.

    One ``UPDATE ... WHERE NOT unsubscribed RETURNING`` per source flips exactly the
    persons this call changes (atomic, so two processes never both record the same
    person); the ledger entries and pushes follow as in :func:`unsubscribe_many`. A person
    named twice is changed by the first request only, as if they had come one by one.
    """
    first: dict[int, ByIdRequest] = {}
    for request in requests:
        first.setdefault(request.person_id, request)
    by_source: dict[Source, list[int]] = {}
    for request in first.values():
        by_source.setdefault(request.source, []).append(request.person_id)
    changed: dict[int, str | None] = {}
    emails: dict[int, str] = {}
    for source, ids in by_source.items():
        flipped = session.execute(
            update(PERSONS)
            .where(PERSONS.c.id.in_(ids), PERSONS.c.unsubscribed.is_(False))
            .values(
                unsubscribed=True,
                unsubscribed_at=now,
                unsubscribe_source=source.value,
                updated_at=now,
            )
            .returning(PERSONS.c.id, PERSONS.c.salesforce_id, PERSONS.c.email)
        )
        for pid, sf_id, email in flipped:
            changed[pid] = sf_id
            emails[pid] = email
    unchanged = [pid for pid in first if pid not in changed]
    if unchanged:  # repeats, and ids of no one
        emails.update(
            (row[0], row[1])
            for row in session.execute(
                select(PERSONS.c.id, PERSONS.c.email).where(PERSONS.c.id.in_(unchanged))
            )
        )
    entries: list[tuple[int, str | None, LedgerEvent]] = []
    for pid, sf_id in changed.items():
        request = first[pid]
        event = optout.unsubscribe(
            OptOutState(),
            source=request.source,
            actor=request.actor,
            now=now,
            evidence=request.evidence,
        ).event
        assert event is not None, "unsubscribing a subscribed person is always a change"
        entries.append((pid, sf_id, event))
    _record(session, entries, now)
    outcomes: list[ByIdOutcome] = []
    for request in requests:
        is_first = first[request.person_id] is request
        outcomes.append(
            ByIdOutcome(emails.get(request.person_id), is_first and request.person_id in changed)
        )
    return outcomes


def _record(
    session: Session, entries: Sequence[tuple[int, str | None, LedgerEvent]], now: datetime
) -> None:
    """The ledger entry of each change and, unless one is already open, its push."""
    if not entries:
        return
    session.execute(
        insert(LEDGER),
        [
            {
                "person_id": pid,
                "kind": event.kind.value,
                "source": event.source.value,
                "actor": event.actor,
                "reason": event.reason,
                "evidence": event.evidence,
                "created_at": event.at,
            }
            for pid, _, event in entries
        ],
    )
    ids = [pid for pid, _, _ in entries]
    open_pushes = set(
        session.scalars(
            select(OutboxPush.person_id).where(
                OutboxPush.person_id.in_(ids), OutboxPush.state.in_(OPEN_STATES)
            )
        )
    )
    pushes = [
        {
            "person_id": pid,
            "state": "pending" if sf_id else "not_linked",
            "attempts": 0,
            "next_attempt_at": now,
            "created_at": now,
        }
        for pid, sf_id, _ in entries
        if pid not in open_pushes
    ]
    if pushes:
        session.execute(insert(OUTBOX), pushes)
        notify(session)

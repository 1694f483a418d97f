"""Record thousands of unsubscribes at once (a suppression list from another tool).

Set-based, one transaction per chunk: one INSERT adds the unknown addresses, then the
one write path (``store.optouts``) flips the persons who were not unsubscribed (atomic,
so it tells exactly which ones this request changed even with concurrent writers) and
writes their ledger entries and outbox pushes. The per-row rules (reason cleaning, the
event's shape) come from ``domain.optout`` exactly as for a single unsubscribe, so the
ledger cannot tell the paths apart. Re-running a request changes nothing: everyone in it
is then "existing".
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Table, insert, select
from sqlalchemy.orm import Session

from optsync.domain import optout
from optsync.domain.optout import LedgerEvent, OptOutState, Source
from optsync.errors import UsageError
from optsync.services.addresses import normalise_all
from optsync.services.transactions import in_transaction
from optsync.store import optouts as optout_store
from optsync.store.db import Database
from optsync.store.models import Person

CHUNK_SIZE = 1000

# Core table: multi-row INSERTs through Core skip the ORM's per-row bookkeeping.
PERSONS = cast(Table, Person.__table__)


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
    """Add the unknown addresses (subscribed, as every new person starts), then unsubscribe
    the whole chunk through the one write path."""
    known = set(session.scalars(select(Person.email).where(Person.email.in_(emails))))
    new_rows = [
        {"email": e, "unsubscribed": False, "created_at": now, "updated_at": now}
        for e in emails
        if e not in known
    ]
    if new_rows:
        session.execute(insert(PERSONS), new_rows)
    ids = list(session.scalars(select(Person.id).where(Person.email.in_(emails))))
    changed = optout_store.unsubscribe(
        session, [optout_store.Change(pid, event) for pid in ids], now
    )
    return len(changed)


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
    unsubscribed them (False for a repeat, or for the second of two in one call), and
    then ``ledger_id`` is the entry it wrote."""

    email: str | None
    changed: bool
    ledger_id: int | None = None


def unsubscribe_ids(
    session: Session, requests: Sequence[ByIdRequest], *, now: datetime
) -> list[ByIdOutcome]:
    """Unsubscribe known persons by id, set-based, in the caller's transaction: the
    public endpoints' group commit (``web.batching``) hands in what arrived together.

    The one write path (``store.optouts``) flips exactly the persons this call changes
    (atomic, so two processes never both record the same person) and writes their ledger
    entries and pushes. A person named twice is changed by the first request only, as if
    they had come one by one.
    """
    changes = []
    for request in requests:
        event = optout.unsubscribe(
            OptOutState(),
            source=request.source,
            actor=request.actor,
            now=now,
            evidence=request.evidence,
        ).event
        assert event is not None, "unsubscribing a subscribed person is always a change"
        changes.append(optout_store.Change(request.person_id, event))
    written = optout_store.unsubscribe(session, changes, now)
    changed = {c.person_id: c.ledger_id for c in written}
    emails = {c.person_id: c.email for c in written}
    unchanged = list({r.person_id for r in requests} - set(changed))
    if unchanged:  # repeats, and ids of no one
        emails.update(
            (row[0], row[1])
            for row in session.execute(
                select(PERSONS.c.id, PERSONS.c.email).where(PERSONS.c.id.in_(unchanged))
            )
        )
    outcomes: list[ByIdOutcome] = []
    seen: set[int] = set()
    for request in requests:
        is_first = request.person_id not in seen
        seen.add(request.person_id)
        mine = is_first and request.person_id in changed
        outcomes.append(
            ByIdOutcome(
                emails.get(request.person_id),
                mine,
                changed[request.person_id] if mine else None,
            )
        )
    return outcomes

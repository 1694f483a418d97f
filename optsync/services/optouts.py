"""Record unsubscribes and re-subscribes of one person.

Each change writes, in the caller's single transaction and through the one write path
(``optsync.store.optouts``): the person's new state, one ledger entry and, for an
unsubscribe, the outbox push; a re-subscribe cancels the person's open push. If any part
fails, none is stored, so a push can never be missed and the ledger never disagrees
with the state.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from optsync.domain import optout
from optsync.domain.emails import InvalidEmail, normalise_email
from optsync.domain.optout import LedgerEvent, OptOutState, Source
from optsync.errors import NotFoundError, UsageError
from optsync.store import optouts as optout_store
from optsync.store.models import LedgerEntry, OutboxPush, Person


@dataclass(frozen=True)
class ChangeResult:
    person: Person
    changed: bool


def state_of(person: Person) -> OptOutState:
    return OptOutState(
        unsubscribed=person.unsubscribed,
        unsubscribed_at=person.unsubscribed_at,
        source=Source(person.unsubscribe_source) if person.unsubscribe_source else None,
    )


def _reread(session: Session, person_id: int) -> Person:
    person = session.get(Person, person_id, populate_existing=True)
    assert person is not None, "the person was written in this transaction"
    return person


def parse_email(value: str, field: str = "email") -> str:
    try:
        return normalise_email(value)
    except InvalidEmail as exc:
        raise UsageError(f"{field}: {exc}", field=field) from None


def get_or_create_person(session: Session, email: str, now: datetime) -> tuple[Person, bool]:
    person = session.scalars(select(Person).where(Person.email == email)).first()
    if person is not None:
        return person, False
    person = Person(email=email, unsubscribed=False, created_at=now, updated_at=now)
    session.add(person)
    session.flush()
    return person, True


def lock_person(session: Session, person_id: int) -> Person | None:
    """Load a person for update (``FOR UPDATE`` on PostgreSQL; SQLite's write lock is
    taken first by :func:`optsync.store.optouts.begin_write`)."""
    optout_store.begin_write(session)
    # populate_existing: a person read earlier in this transaction must be re-read under
    # the lock, or a concurrent unsubscribe that committed meanwhile would be missed
    return session.scalars(
        select(Person)
        .where(Person.id == person_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    ).first()


def _event(rule: Callable[..., optout.Decision], state: OptOutState, **request: Any) -> LedgerEvent:
    """The ledger event ``rule`` makes of ``request`` for a person in ``state`` (the
    store's conditional write then decides whether this request is the one that changes
    the person); a rule's refusal is the caller's usage error."""
    try:
        event = rule(state, **request).event
    except ValueError as exc:
        raise UsageError(f"reason: {exc}", field="reason") from None
    assert event is not None, "the rule changes a person in the opposite state"
    return event


def _known_person(session: Session, person_id: int) -> Person:
    person = lock_person(session, person_id)
    if person is None:
        raise NotFoundError(f"person_id: no person {person_id}.", field="person_id")
    return person


def unsubscribe_person(
    session: Session,
    person: Person,
    *,
    source: Source,
    actor: str,
    now: datetime,
    reason: str | None = None,
    evidence: dict[str, Any] | None = None,
) -> ChangeResult:
    """Unsubscribe ``person``: state, ledger and push in this transaction. Idempotent.

    The write goes through ``store.optouts`` (the one write path): the rule's event is
    built for a subscribed person, and the store's conditional UPDATE decides, atomically,
    whether this request is the one that changes the person."""
    event = _event(
        optout.unsubscribe,
        OptOutState(),
        source=source,
        actor=actor,
        now=now,
        reason=reason,
        evidence=evidence,
    )
    changed = optout_store.unsubscribe(session, [optout_store.Change(person.id, event)], now)
    return ChangeResult(_reread(session, person.id), bool(changed))


def unsubscribe_by_id(
    session: Session,
    person_id: int,
    *,
    source: Source,
    actor: str,
    now: datetime,
    reason: str | None = None,
    evidence: dict[str, Any] | None = None,
) -> ChangeResult:
    """Unsubscribe a known person; ``NotFoundError`` if there is no such person."""
    return unsubscribe_person(
        session,
        _known_person(session, person_id),
        source=source,
        actor=actor,
        now=now,
        reason=reason,
        evidence=evidence,
    )


def unsubscribe_email(
    session: Session,
    email: str,
    *,
    source: Source,
    actor: str,
    now: datetime,
    reason: str | None = None,
    evidence: dict[str, Any] | None = None,
) -> ChangeResult:
    """Unsubscribe an address; an unknown address becomes a (not linked) person first,
    because a suppression must hold even for someone we have never emailed."""
    found, _ = get_or_create_person(session, parse_email(email), now)
    return unsubscribe_person(
        session,
        _known_person(session, found.id),
        source=source,
        actor=actor,
        now=now,
        reason=reason,
        evidence=evidence,
    )


def resubscribe_person(
    session: Session,
    person: Person,
    *,
    source: Source,
    actor: str,
    now: datetime,
    reason: str | None,
    evidence: dict[str, Any] | None = None,
) -> ChangeResult:
    """Remove an unsubscribe (a reason is required) and cancel the person's open push.

    Nothing is sent to Salesforce: re-subscribes never sync, the admin must also clear
    the field there."""
    event = _event(
        optout.resubscribe,
        OptOutState(unsubscribed=True),
        source=source,
        actor=actor,
        now=now,
        reason=reason,
        evidence=evidence,
    )
    changed = optout_store.resubscribe(session, [optout_store.Change(person.id, event)], now)
    return ChangeResult(_reread(session, person.id), bool(changed))


def resubscribe_by_id(
    session: Session,
    person_id: int,
    *,
    source: Source,
    actor: str,
    now: datetime,
    reason: str | None,
    evidence: dict[str, Any] | None = None,
) -> ChangeResult:
    """Re-subscribe a known person; ``NotFoundError`` if there is no such person."""
    return resubscribe_person(
        session,
        _known_person(session, person_id),
        source=source,
        actor=actor,
        now=now,
        reason=reason,
        evidence=evidence,
    )


def resubscribe_email(
    session: Session,
    email: str,
    *,
    source: Source,
    actor: str,
    now: datetime,
    reason: str | None,
    evidence: dict[str, Any] | None = None,
) -> ChangeResult:
    """Re-subscribe an address (see :func:`resubscribe_person`)."""
    normal = parse_email(email)
    optout_store.begin_write(session)
    person = session.scalars(
        select(Person).where(Person.email == normal).execution_options(populate_existing=True)
    ).first()
    if person is None:
        raise NotFoundError(f"email: no person with the address {normal}.", field="email")
    return resubscribe_person(
        session, person, source=source, actor=actor, now=now, reason=reason, evidence=evidence
    )


@dataclass(frozen=True)
class UndoResult:
    """``refusal`` is None when the undo re-subscribed the person; ``salesforce_had_it``
    when the unsubscribe's push had already been sent (a re-subscribe never clears the
    field there, so it stays set until someone clears it, and the next sync opts the
    person out here again)."""

    email: str
    refusal: optout.UndoRefusal | None
    salesforce_had_it: bool = False


def undo_unsubscribe(
    session: Session,
    person_id: int,
    ledger_id: int,
    *,
    now: datetime,
    evidence: dict[str, Any] | None = None,
    window: timedelta = optout.UNDO_WINDOW,
) -> UndoResult:
    """A recipient's undo of their own unsubscribe (ledger entry ``ledger_id``) from the
    public page: a re-subscribe through the one write path (open push cancelled, ledger
    entry with source ``page``, the recipient as actor and the request's evidence), if
    the entry is the person's latest and at most ``window`` old; otherwise nothing changes
    and the refusal says why. ``NotFoundError`` if there is no such person.

    The person is locked first, so a change racing the undo is either before it (and
    refuses it) or after it."""
    person = _known_person(session, person_id)
    latest = session.scalars(
        select(LedgerEntry)
        .where(LedgerEntry.person_id == person_id)
        .order_by(LedgerEntry.id.desc())
        .limit(1)
    ).first()
    if latest is None or latest.id != ledger_id:
        entry_is_latest, entry = False, session.get(LedgerEntry, ledger_id)
    else:
        entry_is_latest, entry = True, latest
    if entry is None or entry.person_id != person_id:
        return UndoResult(person.email, optout.UndoRefusal.CHANGED)
    refusal = optout.undo_refusal(
        entry_kind=optout.EventKind(entry.kind),
        entry_at=entry.created_at,
        entry_is_latest=entry_is_latest,
        now=now,
        window=window,
    )
    if refusal is not None:
        return UndoResult(person.email, refusal)
    sent = session.scalar(
        select(OutboxPush.id)
        .where(
            OutboxPush.person_id == person_id,
            OutboxPush.state == "sent",
            OutboxPush.settled_at >= entry.created_at,
        )
        .limit(1)
    )
    result = resubscribe_person(
        session,
        person,
        source=Source.PAGE,
        actor=f"person:{person_id}",
        now=now,
        reason=optout.undo_reason(window),
        evidence={**(evidence or {}), "undoes_ledger_id": ledger_id},
    )
    assert result.changed, "the latest entry is an unsubscribe, so the person is unsubscribed"
    return UndoResult(person.email, None, salesforce_had_it=sent is not None)


def undoable_entry(
    session: Session, person_id: int, *, now: datetime, window: timedelta = optout.UNDO_WINDOW
) -> int | None:
    """The ledger entry a recipient may still undo from the page: the person's latest
    entry if it is an unsubscribe made on the page within ``window``, else None. Lets a
    second click of the button, or the link opened again, offer the same Undo."""
    latest = session.execute(
        select(LedgerEntry.id, LedgerEntry.kind, LedgerEntry.source, LedgerEntry.created_at)
        .where(LedgerEntry.person_id == person_id)
        .order_by(LedgerEntry.id.desc())
        .limit(1)
    ).first()
    if latest is None or latest.source != Source.PAGE.value:
        return None
    refusal = optout.undo_refusal(
        entry_kind=optout.EventKind(latest.kind),
        entry_at=latest.created_at,
        entry_is_latest=True,
        now=now,
        window=window,
    )
    return None if refusal is not None else int(latest.id)

"""Unsubscribe one person from a request: a link, a one-click POST, an API call.

These wrap ``services.optouts.unsubscribe_person`` (state + ledger + outbox in the
caller's transaction) with a row lock taken *before* the state is read, so that two
simultaneous requests for the same person (a mailbox provider retrying a one-click POST,
a double click) record one unsubscribe, not two ledger entries.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from optsync.domain.optout import Source
from optsync.errors import NotFoundError
from optsync.services.optouts import (
    ChangeResult,
    lock_person,
    unsubscribe_email,
    unsubscribe_person,
)

__all__ = ["lock_person", "unsubscribe_by_email", "unsubscribe_by_id"]


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
    person = lock_person(session, person_id)
    if person is None:
        raise NotFoundError(f"person_id: no person {person_id}.", field="person_id")
    return unsubscribe_person(
        session, person, source=source, actor=actor, now=now, reason=reason, evidence=evidence
    )


def unsubscribe_by_email(
    session: Session,
    email: str,
    *,
    source: Source,
    actor: str,
    now: datetime,
    reason: str | None = None,
    evidence: dict[str, Any] | None = None,
) -> ChangeResult:
    """Unsubscribe a normalised address, adding the person if new (the suppression must
    hold even for someone never emailed)."""
    return unsubscribe_email(
        session, email, source=source, actor=actor, now=now, reason=reason, evidence=evidence
    )

"""The opt-out rules: what an unsubscribe or a re-subscribe does to a person's state.

The rules are tiny on purpose and total: every request yields a :class:`Decision` that
either changes the state (and then always carries exactly one ledger event) or changes
nothing (an idempotent repeat). Callers persist the new state, the event and, for an
unsubscribe, the push in one transaction.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any


class Source(StrEnum):
    """Where an opt-out change came from (kept in the ledger)."""

    PAGE = "page"  # the hosted unsubscribe page, confirmed by the person
    ONE_CLICK = "one_click"  # RFC 8058 POST from a mailbox provider
    API = "api"
    CLI = "cli"
    CSV = "csv"  # an imported suppression list
    ADMIN = "admin"  # an admin in the web app
    SALESFORCE = "salesforce"  # pulled from Salesforce by a sync


class EventKind(StrEnum):
    UNSUBSCRIBE = "unsubscribe"
    RESUBSCRIBE = "resubscribe"


@dataclass(frozen=True)
class OptOutState:
    """A person's opt-out state as the rules see it."""

    unsubscribed: bool = False
    unsubscribed_at: datetime | None = None
    source: Source | None = None


@dataclass(frozen=True)
class LedgerEvent:
    """One append-only ledger entry: who changed what, when, from where, with what evidence."""

    kind: EventKind
    source: Source
    actor: str
    at: datetime
    reason: str | None = None
    evidence: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Decision:
    """The outcome of a request: the new state and the event, or no change."""

    state: OptOutState
    event: LedgerEvent | None

    @property
    def changed(self) -> bool:
        return self.event is not None


class ReasonRequired(ValueError):
    """A re-subscribe was asked for without a reason."""


MAX_REASON_LENGTH = 1000


def _clean_reason(reason: str | None) -> str | None:
    if reason is None:
        return None
    cleaned = " ".join(reason.split())
    if len(cleaned) > MAX_REASON_LENGTH:
        raise ValueError(f"the reason is longer than {MAX_REASON_LENGTH} characters")
    return cleaned or None


def unsubscribe(
    state: OptOutState,
    *,
    source: Source,
    actor: str,
    now: datetime,
    reason: str | None = None,
    evidence: dict[str, Any] | None = None,
) -> Decision:
    """Unsubscribe. A second unsubscribe of the same person changes nothing."""
    if state.unsubscribed:
        return Decision(state=state, event=None)
    event = LedgerEvent(
        kind=EventKind.UNSUBSCRIBE,
        source=source,
        actor=actor,
        at=now,
        reason=_clean_reason(reason),
        evidence=dict(evidence or {}),
    )
    return Decision(OptOutState(unsubscribed=True, unsubscribed_at=now, source=source), event)


def resubscribe(
    state: OptOutState,
    *,
    source: Source,
    actor: str,
    now: datetime,
    reason: str | None,
    evidence: dict[str, Any] | None = None,
) -> Decision:
    """Remove an unsubscribe. Needs a reason; never comes from a sync.

    Re-subscribing someone who is not unsubscribed changes nothing.
    """
    if source is Source.SALESFORCE:
        raise ValueError("a sync never re-subscribes anyone")
    cleaned = _clean_reason(reason)
    if not cleaned:
        raise ReasonRequired("a re-subscribe needs a reason (why may we email this person again?)")
    if not state.unsubscribed:
        return Decision(state=state, event=None)
    event = LedgerEvent(
        kind=EventKind.RESUBSCRIBE,
        source=source,
        actor=actor,
        at=now,
        reason=cleaned,
        evidence=dict(evidence or {}),
    )
    return Decision(OptOutState(unsubscribed=False), event)


# -- the public page: reasons and the undo ----------------------------------------------

MAX_PAGE_REASON_TEXT = 500
"""Characters of free text a recipient may give with their reason on the public page."""

OTHER = "other"


class ReasonProblem(StrEnum):
    CHOICE = "choice"  # not one of the offered reasons (or text where no box is offered)
    LENGTH = "length"  # the text is longer than MAX_PAGE_REASON_TEXT


def page_reason(
    choice: str | None, text: str | None, offered: tuple[str, ...]
) -> tuple[dict[str, str], ReasonProblem | None]:
    """The evidence a recipient's optional answer on the page adds to their unsubscribe:
    ``{"reason_choice": ..., "reason_text": ...}`` (either may be absent), or nothing and
    the problem. The unsubscribe itself never depends on it: a bad answer is dropped,
    and the page says so.

    ``choice`` must be one of ``offered`` (full match). ``text`` (whitespace collapsed)
    is accepted only where ``other`` is offered (it comes with that box), with any
    choice; text alone means ``other``."""
    chosen = (choice or "").strip() or None
    words = " ".join((text or "").split()) or None
    if chosen is not None and chosen not in offered:
        return {}, ReasonProblem.CHOICE
    if words is not None:
        if OTHER not in offered:
            return {}, ReasonProblem.CHOICE
        if len(words) > MAX_PAGE_REASON_TEXT:
            return {}, ReasonProblem.LENGTH
        chosen = chosen or OTHER
    evidence: dict[str, str] = {}
    if chosen is not None:
        evidence["reason_choice"] = chosen
    if words is not None:
        evidence["reason_text"] = words
    return evidence, None


UNDO_WINDOW = timedelta(minutes=10)
"""How long a recipient may undo their unsubscribe from the confirmation page."""


class UndoRefusal(StrEnum):
    TOO_LATE = "too_late"  # the window has passed
    CHANGED = "changed"  # a later ledger entry exists: someone else changed the state since


def undo_refusal(
    *,
    entry_kind: EventKind,
    entry_at: datetime,
    entry_is_latest: bool,
    now: datetime,
    window: timedelta = UNDO_WINDOW,
) -> UndoRefusal | None:
    """Whether the undo of one unsubscribe (a ledger entry) may happen ``now``: only the
    person's latest entry, only an unsubscribe, only within ``window`` of it. ``None``
    means the undo goes ahead (as a re-subscribe)."""
    if entry_kind is not EventKind.UNSUBSCRIBE or not entry_is_latest:
        return UndoRefusal.CHANGED
    if now - entry_at > window:
        return UndoRefusal.TOO_LATE
    return None


def undo_reason(window: timedelta = UNDO_WINDOW) -> str:
    """The re-subscribe's ledger reason when a recipient undoes their own unsubscribe."""
    minutes = int(window.total_seconds() // 60)
    return (
        f"The recipient undid their own unsubscribe on the unsubscribe page, "
        f"within {minutes} minutes of it."
    )

"""The opt-out rules: what an unsubscribe or a re-subscribe does to a person's state.

The rules are tiny on purpose and total: every request yields a :class:`Decision` that
either changes the state (and then always carries exactly one ledger event) or changes
nothing (an idempotent repeat). Callers persist the new state, the event and, for an
unsubscribe, the push in one transaction.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
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

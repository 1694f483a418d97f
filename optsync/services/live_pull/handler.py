"""Apply Salesforce-side opt-outs found by the stream, a gap re-read, a poll or a catch-up:
one mechanism for all of them.

A :class:`Hit` is a record that has the synced field set, with the commit that set it.
:func:`apply_hits` mirrors every record the reader read and unsubscribes the addresses
of those records, and the persons linked to them (issue 16: opt-outs follow the address;
:mod:`optsync.services.records_pull`), through the one write path
(``store.optouts.unsubscribe(..., push=False)``: Salesforce has the field already),
source ``salesforce``, with the record id, replay id, commit user and commit time in the
ledger evidence, and records the object's progress (replay id, commit time, poll cursor)
**in the same transaction**: a crash before the commit loses both, so the stream resumes
before those events and applies them again (at-least-once); a crash after it keeps both.
Applying twice changes nothing: the store's conditional UPDATE changes only persons who
are not unsubscribed yet, and only those get a ledger entry.

A re-subscribe recorded in optsync *after* the Salesforce commit wins: that person is
left alone (the admin re-subscribed them knowingly; the nightly sync will see the field
cleared or report it). Re-subscribes never come from Salesforce.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from optsync.domain.ids import InvalidSalesforceId, to_18
from optsync.metrics import LIVE_APPLIED
from optsync.services.records_pull import OptedOut, absorb
from optsync.services.records_pull import policy as records_policy
from optsync.store import live_pull as state_store
from optsync.store.models import Person
from optsync.store.records import MirroredRecord

ACTOR = "salesforce live pull"


@dataclass(frozen=True)
class Hit:
    """A record with the synced field set, and the change that shows it."""

    record_id: str
    commit_at: datetime
    commit_user: str | None = None
    replay_id: bytes | None = None
    via: str = "cdc"
    """``cdc`` (a change event), ``gap`` (re-read after a gap event), ``poll``, ``catch_up``."""


@dataclass(frozen=True)
class Progress:
    """How far the object's pull got once these hits are applied."""

    replay_id: bytes | None = None
    last_commit_at: datetime | None = None
    poll_cursor: datetime | None = None
    event_seen: bool = False


def linked_subscribed(session: Session, record_ids: Sequence[str]) -> dict[str, int]:
    """``record id -> person id`` of the subscribed persons linked to these records
    (the only ones a hit can change: the poller reads Salesforce for nobody else)."""
    ids = sorted({i for i in (_id18(r) for r in record_ids) if i is not None})
    out: dict[str, int] = {}
    for start in range(0, len(ids), 1_000):
        rows = session.execute(
            select(Person.salesforce_id, Person.id).where(
                Person.salesforce_id.in_(ids[start : start + 1_000]),
                Person.unsubscribed.is_(False),
            )
        )
        out.update({str(sf): int(pid) for sf, pid in rows})
    return out


def _id18(value: str) -> str | None:
    try:
        return to_18(value)
    except (InvalidSalesforceId, ValueError):
        return None


def apply_hits(
    session: Session,
    obj: str,
    hits: Sequence[Hit],
    now: datetime,
    *,
    field: str,
    progress: Progress | None = None,
    records: Sequence[MirroredRecord] = (),
) -> int:
    """Mirror ``records`` (everything the reader read), opt out the addresses of
    ``hits`` (and the persons linked to them) and store ``progress``, in the caller's
    transaction (:func:`optsync.services.records_pull.absorb`); returns how many persons
    were unsubscribed."""
    opted: list[OptedOut] = []
    for hit in hits:
        id18 = _id18(hit.record_id)
        if id18 is None:
            continue
        opted.append(
            OptedOut(
                id18,
                hit.commit_at,
                {
                    "replay_id": hit.replay_id.hex() if hit.replay_id is not None else None,
                    "commit_user": hit.commit_user,
                    "commit_time": hit.commit_at.isoformat(),
                    "via": hit.via,
                },
            )
        )
    result = absorb(
        session, records, opted, now, policy=records_policy(session, field), actor=ACTOR
    )
    changed = result.opted_out
    if changed:
        LIVE_APPLIED.labels(object=obj).inc(changed)
    if progress is not None:
        state_store.save_progress(
            session,
            obj,
            now,
            replay_id=progress.replay_id,
            last_commit_at=progress.last_commit_at,
            poll_cursor=progress.poll_cursor,
            event_seen=progress.event_seen,
        )
    return changed

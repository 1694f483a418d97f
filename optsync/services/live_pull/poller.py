"""The poller: ``sobjects/{type}/updated`` windows, then a read of the changed records'
field, for orgs without Change Data Capture, while the stream is degraded, and as the
catch-up after lost events.

One poll of an object: read its cursor (short transaction); ask Salesforce for the ids
stamped in the window :func:`optsync.domain.live_pull.poll_window` gives (from five
minutes before the cursor to now, minute-aligned; the overlap catches a record committed
late with an older ``SystemModstamp``); read those records' address, field, conversion
and stamp (one SOQL call per 200 changed records: a new duplicate, an email changed onto
an unsubscribed address or a conversion is seen as well as an opt-out); mirror them, opt
out the addresses of the ones that have the field set, re-open the push of an
unsubscribed address that gained a record, and move the cursor to ``latestDateCovered``
(one transaction, :func:`optsync.services.live_pull.handler.apply_hits`). No transaction
is open during a Salesforce call. A repeated window changes nothing (the write is
idempotent) and costs one call per object, plus one read per 200 records changed in it.

A catch-up is the same poll: the stream keeps the cursor at the commit time of the last
event it delivered, so after an overflow, an expired replay id or an exhausted
allocation the next poll starts where the stream left off.

**The mirror's watermark.** Every change of the object stamped before
``latestDateCovered`` is mirrored once the poll commits; with ``watermark`` (the worker's
view of the other objects, :func:`optsync.domain.live_pull.watermark`) the poll moves
the mirror's ``through`` in the same transaction, as far as every object is covered. A
window the API's 30 days cut short skipped changes: the mirror is marked untrusted.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from optsync.domain.live_pull import POLL_OVERLAP, poll_window, window_cut
from optsync.metrics import LIVE_POLLS
from optsync.salesforce import replication
from optsync.salesforce.gateway import SalesforceGateway
from optsync.services.live_pull.handler import Hit, Progress, apply_hits
from optsync.store import live_pull as state_store
from optsync.store.db import Database
from optsync.store.records import advance_through, field_column, save_mirror_state


@dataclass(frozen=True)
class PollResult:
    window: tuple[datetime, datetime] | None
    changed_ids: int = 0
    applied: int = 0
    covered: datetime | None = None


def poll_object(
    db: Database,
    gateway: SalesforceGateway,
    obj: str,
    field: str,
    now: datetime,
    *,
    overlap: timedelta = POLL_OVERLAP,
    via: str = "poll",
    watermark: Callable[[datetime], datetime | None] | None = None,
) -> PollResult:
    """One poll of ``obj`` (see the module docstring). ``watermark``: given the end of
    this window, how far the mirror's watermark may move (None: not at all)."""
    with db.transaction() as session:
        cursor = state_store.get_state(session, obj, now).poll_cursor or now
    window = poll_window(cursor, now, overlap)
    if window is None:
        return PollResult(None)
    ids, covered = replication.updated_ids(gateway, obj, *window)
    LIVE_POLLS.labels(object=obj).inc()
    records = list(replication.read_records(gateway, obj, ids, field)) if ids else []
    column = field_column(field)
    hits = [
        Hit(r.record_id, r.system_modstamp or now, None, None, via)
        for r in records
        if getattr(r, column) is True and not r.converted
    ]
    with db.transaction() as session:
        applied = apply_hits(
            session,
            obj,
            hits,
            now,
            field=field,
            progress=Progress(poll_cursor=covered),
            records=records,
        )
        if window_cut(cursor, window, overlap):
            save_mirror_state(
                session,
                now,
                trusted=False,
                reason=f"the live pull of {obj} skipped changes older than 30 days",
            )
        elif watermark is not None and (through := watermark(covered)) is not None:
            advance_through(session, through)
    return PollResult(window, len(ids), applied, covered)

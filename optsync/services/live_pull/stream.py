"""Consume one object's Change Data Capture stream until it ends.

:func:`consume` reads a :class:`~optsync.salesforce.pubsub.Stream` answer by answer. For
each answer it decodes the events, asks :func:`optsync.domain.live_pull.decide_event`
what each means, re-reads the records of gap events (a Salesforce call made before the
transaction opens), and applies the opt-outs and the answer's replay id in **one**
transaction (:func:`~optsync.services.live_pull.handler.apply_hits`): the replay id is
stored only with the opt-outs it follows. A keepalive (no events) stores its
``latest_replay_id`` too. More events are requested whenever none are owed.

It returns an :class:`Ending` that names the state machine's signal: an overflow or a
rejected replay id (``REPLAY_LOST``: catch up by polling), the allocation used up, a
failed stream, or a stop asked for by the worker (the lease is lost, the mode changed,
the watchdog fired).

**Person Accounts.** Every object is read as ``salesforce.lookup.record_read`` says: an
``AccountChangeEvent`` carries a Person Account's address and opt-out in
``PersonEmail`` and the field's ``Person…``/``__pc`` form, and a business Account's events
are left out. In an org with Person Accounts the Contact stream also carries their
hidden PersonContacts, which optsync never mirrors (it writes the Account): a CREATE or
UNDELETE says which it is; an UPDATE of a Contact the mirror does not hold yet is
re-read (the read leaves PersonContacts out) instead of taken from the payload.

**The mirror's watermark.** Events come in commit order, so once an answer's events are
mirrored, the commit time of its last one is how far this object is mirrored; with
``watermark`` (the worker's view of the other objects,
:func:`optsync.domain.live_pull.watermark`) the same transaction moves the mirror's
``through`` as far as every object is covered. A stream opened at ``LATEST`` does not
carry the object's chain until a poll has covered the moment it opened (``chained``):
until then it leaves the poll cursor to the polls.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select

from optsync.domain.ids import InvalidSalesforceId, to_18
from optsync.domain.live_pull import Action, ChangeEvent, Signal, decide_event, decode_bitmap
from optsync.metrics import LIVE_EVENTS, LIVE_GAPS, LIVE_LAG_SECONDS, LIVE_SKIPPED_OWN
from optsync.salesforce import replication
from optsync.salesforce.gateway import SalesforceGateway
from optsync.salesforce.lookup import RecordRead, record_read
from optsync.salesforce.pubsub import Problem, PubSubError, Received, Stream
from optsync.services.live_pull.handler import Hit, Progress, apply_hits
from optsync.store import live_pull as state_store
from optsync.store.db import Database
from optsync.store.models import Person, SalesforceRecord
from optsync.store.records import (
    MirroredRecord,
    advance_through,
    field_column,
    mark_deleted,
    mirrored_ids,
    record_of,
    save_mirror_state,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Ending:
    signal: Signal
    detail: str
    allocation_exhausted: bool = False


def change_event(received: Received, field: str) -> ChangeEvent:
    """The decision's view of a decoded event."""
    payload = received.payload
    header: dict[str, Any] = payload.get("ChangeEventHeader") or {}
    names, nested = received.schema.names, received.schema.nested
    return ChangeEvent(
        entity=str(header.get("entityName") or ""),
        record_ids=tuple(str(i) for i in header.get("recordIds") or ()),
        change_type=str(header.get("changeType") or ""),
        change_origin=header.get("changeOrigin"),
        commit_timestamp_ms=int(header.get("commitTimestamp") or 0),
        commit_user=header.get("commitUser"),
        changed_fields=decode_bitmap(list(header.get("changedFields") or ()), names, nested),
        field_value=payload.get(field),
    )


def consume(
    db: Database,
    gateway: SalesforceGateway,
    stream: Stream,
    obj: str,
    field: str,
    *,
    clock: Callable[[], datetime],
    stop: threading.Event,
    lease_ok: Callable[[], bool],
    watermark: Callable[[datetime], datetime | None] | None = None,
    chained: Callable[[], bool] = lambda: True,
) -> Ending:
    """Apply the stream's events until it ends (see the module docstring).
    ``watermark``: given the commit time of the events just applied, how far the
    mirror's watermark may move (None: not at all); ``chained``: whether this stream
    carries the object's chain yet."""
    try:
        person_accounts = obj == "Account" or (obj == "Contact" and gateway.has_person_accounts())
        read = record_read(obj, field, person_accounts=person_accounts)
        for events, latest, pending in stream.responses():
            if stop.is_set() or not lease_ok():
                return Ending(Signal.STOP, "stopped")
            overflow = _handle(
                db, gateway, read, events, latest, clock(), watermark, chained(), person_accounts
            )
            if overflow:
                return Ending(Signal.REPLAY_LOST, "Change Data Capture overflowed")
            if pending == 0:
                stream.request_more()
    except PubSubError as exc:
        if stop.is_set():
            return Ending(Signal.STOP, "stopped")
        if exc.problem is Problem.REPLAY_INVALID:
            LIVE_GAPS.labels(object=obj, kind="replay_invalid").inc()
            with db.transaction() as session:
                state_store.forget_replay(session, obj, clock())
                save_mirror_state(
                    session, clock(), trusted=False, reason=f"{obj} replay id no longer retained"
                )
            return Ending(Signal.REPLAY_LOST, "the stored replay id is no longer retained")
        if exc.problem is Problem.ALLOCATION:
            LIVE_GAPS.labels(object=obj, kind="allocation").inc()
            with db.transaction() as session:
                save_mirror_state(
                    session, clock(), trusted=False, reason="event delivery allocation used up"
                )
            return Ending(
                Signal.REPLAY_LOST,
                "the daily event delivery allocation is used up",
                allocation_exhausted=True,
            )
        if exc.problem is Problem.TOPIC_UNAVAILABLE:
            return Ending(Signal.TOPIC_UNAVAILABLE, f"CDC not enabled for {obj}")
        if exc.problem is Problem.AUTH:
            gateway.renew()
        return Ending(Signal.STREAM_FAILED, str(exc)[:200])
    if stop.is_set():
        return Ending(Signal.STOP, "stopped")
    return Ending(Signal.STREAM_FAILED, "the stream was closed")


MIRRORED_TYPES = ("CREATE", "UPDATE", "UNDELETE")


def _event_records(
    received: Received, event: ChangeEvent, read: RecordRead, commit_at: datetime
) -> list[MirroredRecord]:
    """What a change event tells the mirror: a CREATE or UNDELETE carries the whole
    record, an UPDATE only its changed fields (the others keep their mirrored value).
    A whole record that does not count (a business Account, a hidden PersonContact:
    ``IsPersonAccount`` says) tells nothing."""
    if event.change_type not in MIRRORED_TYPES:
        return []
    payload = received.payload
    whole = event.change_type != "UPDATE"
    # Account, or Contact in an org with Person Accounts: does this record count?
    person = payload.get("IsPersonAccount") is True
    if whole and read.where and person != (read.object == "Account"):
        return []
    names = (read.email_field, read.opt_out_field, "IsConverted")
    values = {name: payload.get(name) for name in names if whole or name in event.changed_fields}
    if read.object != "Lead":
        values.pop("IsConverted", None)
    if not whole and not values:
        return []
    common = read.canonical(values)
    out = []
    for rid in event.record_ids:
        try:
            id18 = to_18(rid)
        except (InvalidSalesforceId, ValueError):
            continue
        out.append(record_of(id18, read.object, read.field, common, stamp=commit_at))  # type: ignore[arg-type]
    return out


def _mirrored_as(db: Database, ids: set[str], obj: str) -> set[str]:
    """Of these records, the ones the mirror holds as ``obj``."""
    if not ids:
        return set()
    with db.transaction() as session:
        return mirrored_ids(session, ids, SalesforceRecord.object == obj)


def _addresses_unknown(db: Database, ids: set[str]) -> set[str]:
    """Of these records, the ones neither mirrored with an address nor linked to a person:
    an opt-out on them is re-read to learn its address."""
    if not ids:
        return set()
    wanted = sorted(ids)
    with db.transaction() as session:
        known = mirrored_ids(session, wanted, SalesforceRecord.email.is_not(None))
        for start in range(0, len(wanted), 500):
            chunk = wanted[start : start + 500]
            known.update(
                str(i)
                for i in session.scalars(
                    select(Person.salesforce_id).where(Person.salesforce_id.in_(chunk))
                )
            )
    return ids - known


def _handle(
    db: Database,
    gateway: SalesforceGateway,
    read: RecordRead,
    events: list[Received],
    latest: bytes,
    now: datetime,
    watermark: Callable[[datetime], datetime | None] | None = None,
    chained: bool = True,
    person_accounts: bool = False,
) -> bool:
    """Apply one answer; returns whether it held an overflow (catch up next)."""
    obj, field = read.object, read.field
    hits: list[Hit] = []
    records: list[MirroredRecord] = []
    deleted: list[str] = []
    # record -> (commit, user, replay id, the hit's ``via`` or None: mirror it only)
    reread: dict[str, tuple[datetime, str | None, bytes, str | None]] = {}
    # Contact UPDATEs in an org with Person Accounts: a hidden PersonContact's or not?
    uncertain: dict[str, tuple[datetime, str | None, bytes, str | None]] = {}
    last_commit: datetime | None = None
    overflow = False
    gap: str | None = None
    for received in events:
        LIVE_EVENTS.labels(object=obj).inc()
        event = change_event(received, read.opt_out_field)
        commit_at = datetime.fromtimestamp(event.commit_timestamp_ms / 1000, UTC)
        if event.commit_timestamp_ms:
            last_commit = commit_at if last_commit is None else max(last_commit, commit_at)
            LIVE_LAG_SECONDS.observe(max(0.0, (now - commit_at).total_seconds()))
        action = decide_event(event, read.opt_out_field)
        # every change is mirrored, optsync's own writes too (they keep the mirror true)
        told = _event_records(received, event, read, commit_at)
        if told and obj == "Contact" and person_accounts and event.change_type == "UPDATE":
            via = "cdc" if action is Action.APPLY else None
            for r in told:
                uncertain[r.record_id] = (commit_at, event.commit_user, received.replay_id, via)
        records += told
        if event.change_type == "DELETE":
            deleted += [i for i in event.record_ids if len(i) in (15, 18)]
        if action is Action.APPLY:
            hits.extend(
                Hit(rid, commit_at, event.commit_user, received.replay_id, "cdc")
                for rid in event.record_ids
            )
        elif action is Action.SKIP_OWN:
            LIVE_SKIPPED_OWN.labels(object=obj).inc()
        elif action is Action.REREAD:
            LIVE_GAPS.labels(object=obj, kind="gap").inc()
            gap = f"Change Data Capture sent {event.change_type} for {obj}"
            for rid in event.record_ids:
                reread[rid] = (commit_at, event.commit_user, received.replay_id, "gap")
        elif action is Action.CATCH_UP:
            LIVE_GAPS.labels(object=obj, kind="overflow").inc()
            gap = f"Change Data Capture overflowed for {obj}"
            overflow = True
    if uncertain:
        for rid in set(uncertain) - _mirrored_as(db, set(uncertain), obj):
            # the read decides (it leaves PersonContacts out), not the payload
            reread.setdefault(rid, uncertain[rid])
            records = [r for r in records if r.record_id != rid]
            hits = [h for h in hits if h.record_id != rid]
    carried = {r.record_id for r in records if r.email_known}
    for rid in _addresses_unknown(db, {h.record_id for h in hits} - carried):
        if rid not in reread:
            hit = next(h for h in hits if h.record_id == rid)
            reread[rid] = (hit.commit_at, hit.commit_user, hit.replay_id or b"", "gap")
    if reread:
        column = field_column(field)
        for value in replication.read_records(gateway, obj, sorted(reread), field):
            records.append(value)
            commit_at, user, replay, via = reread.get(
                value.record_id, (value.system_modstamp or now, None, b"", "gap")
            )
            if via is not None and getattr(value, column) is True and not value.converted:
                hits.append(Hit(value.record_id, commit_at, user, replay, via))
    replay_id = events[-1].replay_id if events else (latest or None)
    with db.transaction() as session:
        if deleted:
            mark_deleted(session, [to_18(i) for i in deleted], now)
        if gap is not None:
            save_mirror_state(session, now, trusted=False, reason=gap)
        applied = apply_hits(
            session,
            obj,
            hits,
            now,
            field=field,
            progress=Progress(
                replay_id=replay_id,
                last_commit_at=last_commit,
                poll_cursor=last_commit if chained else None,
                event_seen=bool(events),
            ),
            records=records,
        )
        # after a gap noted above this moves nothing: the mirror is untrusted now
        if last_commit is not None and watermark is not None:
            through = watermark(last_commit)
            if through is not None:
                advance_through(session, through)
    if applied:
        log.info("applied Salesforce-side opt-outs", extra={"object": obj, "applied": applied})
    return overflow

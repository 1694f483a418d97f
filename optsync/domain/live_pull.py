"""The live pull's decisions: which change events unsubscribe someone, how the field
bitmaps of an event read, the subscriber's state machine, when to reconnect, and which
window a poll or a catch-up covers.

Pure: no I/O, every decision that depends on time takes ``now``. The adapters are
``optsync.salesforce.pubsub`` (the gRPC stream), ``optsync.services.live_pull`` (the
handler, poller and catch-up) and ``optsync.worker.live_pull`` (the thread).
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from optsync.domain.retry import Jitter, RetryPolicy, backoff_delay

OWN_CLIENT = "optsync"
"""The ``client`` call option every optsync write carries (``Sforce-Call-Options``)."""
OBJECTS = ("Contact", "Lead")
PERSON_ACCOUNTS = "Account"
"""Followed too when the org has Person Accounts (their address is on the Account)."""
TOPICS = {
    "Contact": "/data/ContactChangeEvent",
    "Lead": "/data/LeadChangeEvent",
    "Account": "/data/AccountChangeEvent",
}

WATCHDOG_S = 300.0
"""No response (event or keepalive) for this long: the stream is rebuilt."""
POLL_OVERLAP = timedelta(minutes=5)
"""Each poll window starts this far before the last one's end: a record committed late
with an older ``SystemModstamp`` is still inside the next window."""
REPLICATION_MAX_AGE = timedelta(days=30)
"""``sobjects/{type}/updated`` answers only for the last 30 days."""
CDC_RECHECK = timedelta(minutes=10)
"""Mode ``auto`` while polling because CDC is off: how often to look whether it is on."""


class Mode(StrEnum):
    AUTO = "auto"
    """Change Data Capture where the object's topic is available, polling otherwise."""
    CDC = "cdc"
    POLL = "poll"
    OFF = "off"


def effective_mode(mode: Mode | str, sync_enabled: bool) -> Mode:
    """The live pull runs only while Sync to Salesforce is on."""
    return Mode(mode) if sync_enabled else Mode.OFF


# -- events ------------------------------------------------------------------------------


def call_option_client(change_origin: str | None) -> str | None:
    """The ``client=`` value of a ``changeOrigin`` such as
    ``com/salesforce/api/rest/59.0;client=optsync``, or None."""
    if not change_origin:
        return None
    for part in change_origin.split(";")[1:]:
        key, _, value = part.partition("=")
        if key.strip() == "client":
            return value.strip()
    return None


def decode_bitmap(
    bitmaps: Sequence[str],
    names: Sequence[str],
    nested: Mapping[int, Sequence[str]] | None = None,
) -> frozenset[str]:
    """The field names a Pub/Sub ``changedFields``/``nulledFields``/``diffFields`` list
    names: the first element ``0x…`` is a bitmap over ``names`` (the schema's top-level
    fields, least significant bit = field 0); ``<pos>-0x…`` elements are bitmaps over
    the sub-fields of the compound field at ``pos``, read as ``Parent.Sub``."""
    out: set[str] = set()
    for item in bitmaps:
        prefix, sep, hexpart = item.partition("-")
        if not sep:
            bits, targets, parent = int(item, 16), names, None
        else:
            pos = int(prefix)
            bits = int(hexpart, 16)
            targets = (nested or {}).get(pos, ())
            parent = names[pos] if pos < len(names) else None
        index = 0
        while bits:
            if bits & 1:
                if index >= len(targets):
                    raise ValueError(f"bitmap {item!r} names field {index}, beyond the schema")
                out.add(targets[index] if parent is None else f"{parent}.{targets[index]}")
            bits >>= 1
            index += 1
    return frozenset(out)


class Action(StrEnum):
    APPLY = "apply"
    """Unsubscribe the persons linked to the record ids."""
    IGNORE = "ignore"
    """Nothing to do (another field changed, the field was cleared, a delete)."""
    SKIP_OWN = "skip_own"
    """optsync's own write coming back."""
    REREAD = "reread"
    """A gap event: the change was not captured; read the records' field."""
    CATCH_UP = "catch_up"
    """An overflow: changes were dropped; poll the window since the last commit."""


@dataclass(frozen=True)
class ChangeEvent:
    """A decoded change event, reduced to what the decision needs."""

    entity: str
    record_ids: tuple[str, ...]
    change_type: str
    change_origin: str | None
    commit_timestamp_ms: int
    commit_user: str | None
    changed_fields: frozenset[str]
    field_value: object
    """The synced field's value in the payload (None when the event does not carry it)."""


def decide_event(event: ChangeEvent, field: str) -> Action:
    """What a change event means for the opt-out in ``field``.

    Gaps come first (a gap may hide anyone's change, ours included). Then optsync's own
    writes are skipped. A CREATE or UNDELETE applies when the field is set; an UPDATE
    when the field is among the changed fields and now true. Clearing the field never
    re-subscribes anyone, so it is ignored like any other change.
    """
    kind = event.change_type
    if kind == "GAP_OVERFLOW":
        return Action.CATCH_UP
    if kind.startswith("GAP_"):
        return Action.IGNORE if kind == "GAP_DELETE" else Action.REREAD
    if call_option_client(event.change_origin) == OWN_CLIENT:
        return Action.SKIP_OWN
    if event.field_value is not True:
        return Action.IGNORE
    if kind in ("CREATE", "UNDELETE"):
        return Action.APPLY
    if kind == "UPDATE" and field in event.changed_fields:
        return Action.APPLY
    return Action.IGNORE


# -- the state machine --------------------------------------------------------------------


class Status(StrEnum):
    OFF = "off"
    STARTING = "starting"
    LIVE = "live"
    POLLING = "polling"
    CATCHING_UP = "catching_up"
    RECONNECTING = "reconnecting"


class Signal(StrEnum):
    START = "start"
    SUBSCRIBED = "subscribed"
    TOPIC_UNAVAILABLE = "topic_unavailable"
    STREAM_FAILED = "stream_failed"
    STALLED = "stalled"
    REPLAY_LOST = "replay_lost"
    """Overflow, an expired replay id, the allocation used up, an outage past retention."""
    CAUGHT_UP = "caught_up"
    STOP = "stop"


def transition(status: Status, signal: Signal, mode: Mode) -> Status:
    """The next status of one object's live pull (drawn in docs/sync.md "Live pull")."""
    if signal is Signal.STOP or mode is Mode.OFF:
        return Status.OFF
    if mode is Mode.POLL:
        return Status.POLLING
    if signal is Signal.START:
        return Status.STARTING
    if signal is Signal.SUBSCRIBED:
        return Status.LIVE
    if signal is Signal.TOPIC_UNAVAILABLE:
        return Status.POLLING if mode is Mode.AUTO else Status.RECONNECTING
    if signal in (Signal.STREAM_FAILED, Signal.STALLED):
        return Status.RECONNECTING
    if signal is Signal.REPLAY_LOST:
        return Status.CATCHING_UP
    if signal is Signal.CAUGHT_UP:
        return Status.STARTING if status is Status.CATCHING_UP else status
    raise ValueError(f"unknown signal {signal!r}")  # pragma: no cover - enums are closed


def polls(status: Status) -> bool:
    """Whether the poller runs for an object in ``status``: whenever the stream is not
    live (polling, or degraded and waiting to reconnect), so no opt-out waits for CDC."""
    return status in (Status.POLLING, Status.RECONNECTING)


# -- reconnects and the watchdog ------------------------------------------------------------

RECONNECT_POLICY = RetryPolicy(base_s=1.0, factor=2.0, cap_s=60.0, jitter=Jitter.EQUAL)
ALLOCATION_PAUSE = timedelta(minutes=15)
"""The delivery allocation is a rolling 24 hours: wait this long before asking again."""


def reconnect_at(
    now: datetime,
    failures: int,
    rng: Callable[[], float],
    *,
    allocation_exhausted: bool = False,
    policy: RetryPolicy = RECONNECT_POLICY,
) -> datetime:
    """When to open the next stream after ``failures`` consecutive failed ones (>= 1)."""
    if allocation_exhausted:
        return now + ALLOCATION_PAUSE
    return now + timedelta(seconds=backoff_delay(policy, max(failures, 1), rng))


def stalled(last_response_at: datetime, now: datetime, timeout_s: float = WATCHDOG_S) -> bool:
    """No event or keepalive for ``timeout_s``: the stream is silently dead."""
    return (now - last_response_at).total_seconds() >= timeout_s


# -- windows -----------------------------------------------------------------------------


def floor_minute(at: datetime) -> datetime:
    return at.replace(second=0, microsecond=0)


def poll_window(
    cursor: datetime, now: datetime, overlap: timedelta = POLL_OVERLAP
) -> tuple[datetime, datetime] | None:
    """The ``[start, end)`` of the next ``sobjects/{type}/updated`` call, minute-aligned
    as Salesforce reads it: from ``overlap`` before the last ``latestDateCovered``
    (``cursor``) to now; None when that is not yet a whole minute further on. A window
    never reaches back beyond the API's 30 days."""
    start = floor_minute(max(cursor - overlap, now - REPLICATION_MAX_AGE + timedelta(minutes=1)))
    end = floor_minute(now)
    if end <= start:
        return None
    return start, end


# -- the mirror's watermark ---------------------------------------------------------------


@dataclass(frozen=True)
class Cover:
    """How one object's changes reach the record mirror at this moment."""

    live: bool = False
    """A connected stream on the object's stored replay chain (resumed after the stored
    replay id, or opened at ``LATEST`` and a poll has covered that moment since): every
    change it has not delivered yet is still coming, in commit order."""
    polled_through: datetime | None = None
    """Otherwise, the end of the last poll window (``latestDateCovered``): every change
    stamped before it is mirrored; None when nothing has covered the object yet."""


def watermark(
    candidate: datetime, covers: Mapping[str, Cover], mirrored: Collection[str]
) -> datetime | None:
    """How far the mirror's watermark may move once a reader mirrored ``candidate``: the
    commit time of the events a stream just applied, or the end of the window a poll
    just covered. ``covers``: every object the live pull follows; ``mirrored``: the
    objects a full read of the mirror reads.

    A live stream holds nothing back; a polled object holds it to the end of its last
    window; an object nothing covers (its stream down and not polled yet) holds it where
    it is (None), as does an object the full read does not read (the mirror cannot
    vouch for its older records). The caller moves a *trusted* mirror only, and only
    forward: a gap, an overflow or a lost replay id has marked it untrusted already."""
    if not covers or any(obj not in mirrored for obj in covers):
        return None
    at = candidate
    for cover in covers.values():
        if cover.live:
            continue
        if cover.polled_through is None:
            return None
        at = min(at, cover.polled_through)
    return at


def window_cut(
    cursor: datetime, window: tuple[datetime, datetime], overlap: timedelta = POLL_OVERLAP
) -> bool:
    """Whether :func:`poll_window` started ``window`` later than the cursor asked for
    (the API's 30 days cut it): changes stamped before it are lost to the live pull."""
    return window[0] > floor_minute(cursor - overlap)


def catch_up_cursor(last_commit_at: datetime | None, since: datetime) -> datetime:
    """Where a catch-up after lost events starts: the commit time of the last change the
    stream delivered, or, before any, when the stream was first opened (``since``)."""
    return last_commit_at if last_commit_at is not None else since

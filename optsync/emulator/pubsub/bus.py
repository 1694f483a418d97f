"""The org's event bus: change events built from commits, retained, replayed, metered.

Every commit of the store becomes change events here (:meth:`EventBus.publish_commit`)
in commit order, for entities selected for Change Data Capture only. Events get opaque,
increasing 8-byte replay ids, are retained for ``retention_s`` (72 h) and are read by the
gRPC streams with :meth:`EventBus.after`. Deliveries are counted against a rolling 24-hour
allocation shared by every subscriber (two subscribers count twice), as on Salesforce.

One condition variable wakes every waiting stream on a new event, a new request, a
setting change or a control action; streams are few, so waking all is simpler than
bookkeeping per topic.
"""

from __future__ import annotations

import bisect
import threading
import time
import uuid
from collections import deque
from dataclasses import dataclass, field, fields, replace
from typing import Any

from optsync.emulator.pubsub.capture import ChangeCapture, RowChange, Writer
from optsync.emulator.pubsub.schemas import EntitySchema, epoch_ms
from optsync.emulator.schema import CDC_DEFAULT, CDC_OBJECTS

ALL_CHANGES = "/data/ChangeEvents"
DAY_S = 24 * 3600.0
MAX_RETAINED = 1_000_000  # beyond this the oldest events expire early (memory bound)


def entity_topic(entity: str) -> str:
    return f"/data/{entity}ChangeEvent"


def encode_replay(replay: int) -> bytes:
    return replay.to_bytes(8, "big")


@dataclass(frozen=True)
class BusSettings:
    """What tests may change (``PUT /__emulator__/pubsub/settings``); real values by default."""

    retention_s: float = 72 * 3600.0
    keepalive_s: float = 270.0
    idle_timeout_s: float = 60.0
    daily_delivery_limit: int = 50_000
    overflow_threshold: int = 100_000

    def updated(self, changes: dict[str, Any]) -> BusSettings:
        known = {f.name for f in fields(self)}
        unknown = sorted(set(changes) - known)
        if unknown:
            raise ValueError(f"unknown pubsub settings: {', '.join(unknown)}")
        values: dict[str, Any] = {}
        for name, value in changes.items():
            if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
                raise ValueError(f"{name} must be a positive number")
            whole = name in ("daily_delivery_limit", "overflow_threshold")
            if whole and not isinstance(value, int):
                raise ValueError(f"{name} must be a whole number")
            values[name] = value
        return replace(self, **values)

    def to_json(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


@dataclass(frozen=True)
class Event:
    """One retained change event, encoded once at commit."""

    replay: int
    entity: str
    schema_id: str
    payload: bytes
    event_id: str
    committed: float  # time.time() at publication


@dataclass
class Stream:
    """An open Subscribe stream as the control endpoints see it."""

    id: int
    topic: str = ""
    pending: int = 0
    stalled: bool = False
    dropped: bool = False
    delivered: int = 0
    inbox: list[Any] = field(default_factory=list)
    client_done: bool = False

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "topic": self.topic,
            "pending_num_requested": self.pending,
            "stalled": self.stalled,
            "delivered": self.delivered,
        }


class EventBus:
    """Change events of one org; thread-safe (store writers, gRPC streams, control)."""

    def __init__(self, store: Any, *, cdc: bool = True, settings: BusSettings | None = None):
        self.store = store
        self.cond = threading.Condition()
        self._startup_settings = settings or BusSettings()
        self.settings = self._startup_settings
        self._default_selected = frozenset(CDC_DEFAULT if cdc else ())
        self.selected: set[str] = set(self._default_selected)
        self._events: list[Event] = []
        self._replays: list[int] = []
        # Opaque and increasing across restarts and resets: older ids are never reused.
        self._last_replay = int(time.time() * 1000) << 12
        self._horizon = self._last_replay  # newest replay id no longer retained
        self._commit_number = 0
        self._deliveries: deque[tuple[float, int]] = deque()
        self._schemas: dict[str, EntitySchema] = {}
        self._by_fields: dict[tuple[str, tuple[str, ...]], EntitySchema] = {}
        self.streams: dict[int, Stream] = {}
        self._stream_ids = 0
        self.closed = False
        self.capture = ChangeCapture(store, self.publish_commit, lambda obj: obj in self.selected)

    # ------------------------------------------------------------- topics, schemas
    def topic_entities(self, topic: str) -> list[str] | None:
        """The selected entities a topic carries, or None if it is not available."""
        with self.cond:
            if topic == ALL_CHANGES:
                chosen = [o for o in CDC_OBJECTS if o in self.selected]
                return chosen or None
            for obj in CDC_OBJECTS:
                if topic == entity_topic(obj):
                    return [obj] if obj in self.selected else None
        return None

    def schema_for(self, entity: str) -> EntitySchema:
        fields_now = self.store.all_fields(entity)
        key = (entity, tuple(fields_now))
        with self.cond:
            schema = self._by_fields.get(key)
            if schema is None:
                schema = EntitySchema(entity, dict(fields_now))
                self._by_fields[key] = schema
                self._schemas[schema.id] = schema
            return schema

    def schema(self, schema_id: str) -> EntitySchema | None:
        with self.cond:
            return self._schemas.get(schema_id)

    def select(self, entities: list[str]) -> None:
        unknown = [e for e in entities if e not in CDC_OBJECTS]
        if unknown:
            raise ValueError(f"not an entity of this org: {', '.join(unknown)}")
        with self.cond:
            self.selected = set(entities)
            self.cond.notify_all()
        self.capture.refresh()  # outside the condition: the store's lock comes first

    def set_settings(self, changes: dict[str, Any]) -> BusSettings:
        with self.cond:
            self.settings = self.settings.updated(changes)
            self.cond.notify_all()
            return self.settings

    # ------------------------------------------------------------- publishing
    def publish_commit(self, changes: list[RowChange], writer: Writer) -> None:
        """Turn one transaction's row changes into events (the store's commit hook)."""
        with self.cond:
            selected = set(self.selected)
            threshold = self.settings.overflow_threshold
        changes = [c for c in changes if c.obj in selected]
        if not changes:
            return
        tx = {
            "transactionKey": str(uuid.uuid4()),
            "commitUser": writer.user_id,
            "changeOrigin": writer.origin,
            "commitTimestamp": max(epoch_ms(c.new.get("SystemModstamp")) for c in changes),
        }
        # The same change to several records of one entity in one transaction is one
        # event listing every record id (e.g. a collection setting one checkbox).
        groups: dict[tuple[Any, ...], list[Any]] = {}
        counted: dict[str, int] = {}
        overflowed: list[str] = []
        for change in changes:
            if counted.get(change.obj, 0) >= threshold:
                if change.obj not in overflowed:
                    overflowed.append(change.obj)
                continue
            described = _describe(change)
            if described is None:
                continue
            counted[change.obj] = counted.get(change.obj, 0) + 1
            change_type, values, changed, nulled = described
            key = (
                change.obj,
                change_type,
                tuple(sorted((k, repr(v)) for k, v in values.items())),
                tuple(changed),
            )
            group = groups.setdefault(key, [change.obj, change_type, [], values, changed, nulled])
            group[2].append(change.new["Id"])
        built = [tuple(g) for g in groups.values()]
        built += [(obj, "GAP_OVERFLOW", [], {}, [], []) for obj in overflowed]
        if built:
            self._append(built, tx)

    def inject(self, entity: str, change_type: str, record_ids: list[str]) -> int:
        """A gap or overflow event (control endpoint); returns its replay id."""
        with self.cond:
            if entity not in self.selected:
                raise ValueError(f"{entity} is not selected for Change Data Capture")
        tx = {
            "transactionKey": str(uuid.uuid4()),
            "commitUser": "",
            "changeOrigin": "",
            "commitTimestamp": int(time.time() * 1000),
        }
        return self._append([(entity, change_type, record_ids, {}, [], [])], tx)

    def _append(self, built: list[tuple[Any, ...]], tx: dict[str, Any]) -> int:
        """Encode and retain one transaction's events (under the lock: commit order)."""
        with self.cond:
            self._commit_number += 1
            tx = {**tx, "commitNumber": self._commit_number}
            now = time.time()
            for sequence, (obj, change_type, ids, values, changed, nulled) in enumerate(built, 1):
                schema = self.schema_for(obj)
                header = {
                    "entityName": obj,
                    "recordIds": list(ids),
                    "changeType": change_type,
                    "sequenceNumber": sequence,
                    "nulledFields": schema.bitmap(nulled),
                    "diffFields": [],
                    "changedFields": schema.bitmap(changed),
                    **tx,
                }
                payload = schema.encode({"ChangeEventHeader": header, **schema.body(values)})
                self._last_replay += 1 + self._last_replay % 3  # increasing, not contiguous
                event = Event(self._last_replay, obj, schema.id, payload, str(uuid.uuid4()), now)
                self._events.append(event)
                self._replays.append(event.replay)
            self._expire(now)
            self.cond.notify_all()
            return self._last_replay

    # ------------------------------------------------------------- reading
    def _expire(self, now: float) -> None:
        cutoff = now - self.settings.retention_s
        k = 0
        while k < len(self._events) and self._events[k].committed < cutoff:
            k += 1
        k = max(k, len(self._events) - MAX_RETAINED)
        if k:
            self._horizon = self._events[k - 1].replay
            del self._events[:k]
            del self._replays[:k]

    @property
    def latest(self) -> int:
        return self._last_replay

    @property
    def horizon(self) -> int:
        """The newest replay id that is no longer retained (older ids are expired)."""
        return self._horizon

    def after(self, entities: list[str], cursor: int, limit: int) -> list[Event]:
        """Up to ``limit`` retained events of ``entities`` after ``cursor`` (call with cond)."""
        self._expire(time.time())
        start = bisect.bisect_right(self._replays, cursor)
        out: list[Event] = []
        wanted = set(entities)
        for event in self._events[start:]:
            if event.entity in wanted:
                out.append(event)
                if len(out) >= limit:
                    break
        return out

    def take_allocation(self, wanted: int) -> int:
        """Count up to ``wanted`` deliveries against the rolling 24-hour allocation."""
        now = time.time()
        while self._deliveries and self._deliveries[0][0] <= now - DAY_S:
            self._deliveries.popleft()
        used = sum(n for _, n in self._deliveries)
        granted = max(0, min(wanted, self.settings.daily_delivery_limit - used))
        if granted:
            self._deliveries.append((now, granted))
        return granted

    def deliveries_today(self) -> int:
        now = time.time()
        return sum(n for t, n in self._deliveries if t > now - DAY_S)

    # ------------------------------------------------------------- streams
    def open_stream(self) -> Stream:
        with self.cond:
            self._stream_ids += 1
            stream = Stream(self._stream_ids)
            self.streams[stream.id] = stream
            return stream

    def close_stream(self, stream: Stream) -> None:
        with self.cond:
            self.streams.pop(stream.id, None)
            self.cond.notify_all()

    def drop_streams(self) -> int:
        with self.cond:
            for s in self.streams.values():
                s.dropped = True
            self.cond.notify_all()
            return len(self.streams)

    def stall_streams(self) -> int:
        with self.cond:
            for s in self.streams.values():
                s.stalled = True
            self.cond.notify_all()
            return len(self.streams)

    def state(self) -> dict[str, Any]:
        with self.cond:
            return {
                "selected": [o for o in CDC_OBJECTS if o in self.selected],
                "settings": self.settings.to_json(),
                "retained": len(self._events),
                "latest_replay_id": encode_replay(self._last_replay).hex(),
                "deliveries_today": self.deliveries_today(),
                "streams": [s.to_json() for s in self.streams.values()],
            }

    def reset(self) -> None:
        """Forget retained events, allocation and settings; restore the default selection."""
        with self.cond:
            self._events.clear()
            self._replays.clear()
            self._horizon = self._last_replay
            self._deliveries.clear()
            self.settings = self._startup_settings
            self.selected = set(self._default_selected)
            self.cond.notify_all()
        self.capture.refresh()

    def close(self) -> None:
        with self.cond:
            self.closed = True
            self.cond.notify_all()


def _describe(
    change: RowChange,
) -> tuple[str, dict[str, Any], list[str], list[str]] | None:
    """(changeType, values carried, changed columns, nulled columns), or None to skip."""
    old, new = change.old, change.new
    if old is None:
        return "CREATE", {k: v for k, v in new.items() if v is not None}, [], []
    if old.get("IsDeleted") and new.get("IsDeleted"):
        return None  # bookkeeping on a record in the recycle bin (a merge's MasterRecordId)
    if new.get("IsDeleted"):
        return "DELETE", {}, [], []
    if old.get("IsDeleted"):
        return "UNDELETE", {k: v for k, v in new.items() if v is not None}, [], []
    changed = [k for k, v in new.items() if old.get(k) != v]
    if "LastModifiedDate" not in changed:
        changed.append("LastModifiedDate")
    values = {k: new[k] for k in changed}
    nulled = [k for k in changed if new.get(k) is None]
    return "UPDATE", values, changed, nulled

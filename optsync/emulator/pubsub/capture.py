"""Capturing every committed row change of the org store, with who made it.

Why triggers: the store has many write paths (REST, collections, Bulk, conversion,
merge, control endpoints) and another emulator module owns them. Temporary SQLite
triggers on the object tables record each inserted or updated row, old and new values as
JSON, into a temporary log *inside the writer's transaction*, so a rolled-back
transaction (``allOrNone``) leaves nothing and the log is in commit order. The store calls
its change listeners once after each commit (its one hook); :meth:`ChangeCapture.drain`
then reads and empties the log under the store's lock.

Only the tables of entities selected for Change Data Capture carry the triggers
(:meth:`ChangeCapture.refresh` follows the selection): a trigger that reads every column
of a wide row costs a few microseconds per written row even when it logs nothing, which
made a Bulk update of an org without CDC pay for capture it never used.

Who wrote: a context variable holds the :class:`Writer` (the user and the
``changeOrigin``); the REST gateway sets it for every API call from the
``Sforce-Call-Options`` header, Bulk jobs remember the one of the request that created
them, and anything else (control endpoints, the in-process API) writes as the org's admin
user from the UI. Seeding runs with capture paused: it stands for data already there.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from optsync.emulator.auth import USER_ID
from optsync.emulator.ids import new_id
from optsync.emulator.schema import CDC_OBJECTS, USER_PREFIX

ADMIN_USER_ID = new_id(USER_PREFIX, 2, pod="5g")


@dataclass(frozen=True)
class Writer:
    """Who commits a change: ``commitUser`` and ``changeOrigin`` of its events."""

    user_id: str
    origin: str = ""  # empty for changes made in the UI (Salesforce sets it for API calls)


ADMIN = Writer(ADMIN_USER_ID)
_writer: ContextVar[Writer] = ContextVar("emulator_writer", default=ADMIN)
_capturing: ContextVar[bool] = ContextVar("emulator_capturing", default=True)


def current_writer() -> Writer:
    return _writer.get()


@contextmanager
def writing_as(writer: Writer) -> Iterator[None]:
    token = _writer.set(writer)
    try:
        yield
    finally:
        _writer.reset(token)


@contextmanager
def capture_paused() -> Iterator[None]:
    """Writes inside the block emit no change events (seeding)."""
    token = _capturing.set(False)
    try:
        yield
    finally:
        _capturing.reset(token)


def call_options(header: str | None) -> dict[str, str]:
    """``Sforce-Call-Options: client=optsync, defaultNamespace=x`` → its options."""
    out: dict[str, str] = {}
    for part in (header or "").split(","):
        key, sep, value = part.partition("=")
        if sep and key.strip():
            out[key.strip()] = value.strip()
    return out


def api_writer(path: str, version: str, header: str | None) -> Writer:
    """The integration user calling REST or Bulk API ``version`` with these call options."""
    kind = "bulkapi" if "/jobs/ingest" in path else "rest"
    origin = f"com/salesforce/api/{kind}/{version}"
    client = call_options(header).get("client")
    if client:
        origin += f";client={client}"
    return Writer(USER_ID, origin)


@contextmanager
def api_call(path: str, version: str, header: str | None) -> Iterator[None]:
    with writing_as(api_writer(path, version, header)):
        yield


@dataclass(frozen=True)
class RowChange:
    """One row as a committed statement left it (``old`` is None for an insert)."""

    obj: str
    old: dict[str, Any] | None
    new: dict[str, Any]


class ChangeCapture:
    """Installs the triggers on a store's connection and hands committed changes on."""

    def __init__(
        self,
        store: Any,
        on_commit: Callable[[list[RowChange], Writer], None],
        selected: Callable[[str], bool] = lambda obj: True,
    ):
        """``selected(obj)``: whether ``obj`` is selected for Change Data Capture; as in
        Salesforce, writes to an entity that is not selected generate no change events."""
        self.store = store
        self.on_commit = on_commit
        self.selected = selected
        self._installed: set[str] = set()
        with store.lock:
            conn = store.conn
            conn.create_function("emulator_capturing", 0, lambda: int(_capturing.get()))
            conn.execute(
                "CREATE TEMP TABLE IF NOT EXISTS cdc_log "
                "(seq INTEGER PRIMARY KEY, obj TEXT, old TEXT, new TEXT)"
            )
            for obj in CDC_OBJECTS:
                for event in ("INSERT", "UPDATE"):
                    conn.execute(f'DROP TRIGGER IF EXISTS temp."cdc_{obj}_{event}"')
            self.refresh()
        store.change_listeners.append(self.drain)

    def refresh(self) -> None:
        """Give the tables of selected entities their triggers and take them from the rest.

        Call it after the selection changes. It reads the selection under the store's
        lock, so concurrent refreshes end with the triggers of the latest selection, and
        never runs inside a transaction (the lock is held across every transaction).
        """
        conn = self.store.conn
        with self.store.lock:
            for obj in CDC_OBJECTS:
                wanted = bool(self.selected(obj))
                if wanted == (obj in self._installed):
                    continue
                if wanted:
                    self._install(conn, obj)
                    self._installed.add(obj)
                else:
                    for event in ("INSERT", "UPDATE"):
                        conn.execute(f'DROP TRIGGER IF EXISTS temp."cdc_{obj}_{event}"')
                    self._installed.discard(obj)

    @staticmethod
    def _install(conn: sqlite3.Connection, obj: str) -> None:
        cols = [r[1] for r in conn.execute(f'PRAGMA main.table_info("{obj}")')]

        def row(ref: str) -> str:
            # SQLite functions take at most 127 arguments: 60 columns per call
            head, rest = cols[:60], cols[60:]
            sql = "json_object(" + ", ".join(f"'{c}', {ref}.\"{c}\"" for c in head) + ")"
            for start in range(0, len(rest), 60):
                pairs = ", ".join(f'\'$."{c}"\', {ref}."{c}"' for c in rest[start : start + 60])
                sql = f"json_insert({sql}, {pairs})"
            return sql

        for event, old in (("INSERT", "NULL"), ("UPDATE", row("OLD"))):
            conn.execute(
                f'CREATE TEMP TRIGGER "cdc_{obj}_{event}" AFTER {event} ON main."{obj}" '
                f"WHEN emulator_capturing() BEGIN INSERT INTO cdc_log (obj, old, new) "
                f"VALUES ('{obj}', {old}, {row('NEW')}); END"
            )

    def drain(self) -> None:
        """Called by the store after each commit, under its lock: pass the log on."""
        conn = self.store.conn
        rows = conn.execute("SELECT obj, old, new FROM temp.cdc_log ORDER BY seq").fetchall()
        if not rows:
            return
        conn.execute("DELETE FROM temp.cdc_log")
        changes = [
            RowChange(obj, json.loads(old) if old is not None else None, json.loads(new))
            for obj, old, new in rows
        ]
        self.on_commit(changes, current_writer())

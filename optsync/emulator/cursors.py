"""Server-side query cursors behind ``nextRecordsUrl`` (``/query/<cursorId>-<offset>``).

A cursor remembers only the ordered rowids of its result (8 bytes a row), not the rows,
so paging through a million-row result costs little memory and each page reads the
current values. As on Salesforce a user holds at most ``MAX_OPEN`` cursors (the oldest is
freed) and an idle cursor expires; a freed or unknown locator is
``INVALID_QUERY_LOCATOR``.
"""

from __future__ import annotations

import itertools
import threading
import time
from array import array
from collections import OrderedDict
from dataclasses import dataclass, field

from optsync.emulator.errors import SalesforceError
from optsync.emulator.ids import new_id

MAX_OPEN = 10
IDLE_EXPIRY_S = 15 * 60


@dataclass
class Cursor:
    obj: str
    fields: list[str]
    rowids: array[int]
    batch_size: int
    include_deleted: bool
    last_used: float = field(default_factory=time.monotonic)
    relations: dict[str, str] = field(default_factory=dict)


def invalid_locator() -> SalesforceError:
    return SalesforceError(400, "INVALID_QUERY_LOCATOR", "invalid query locator")


class CursorRegistry:
    """Open cursors by id, oldest first."""

    def __init__(self, *, max_open: int = MAX_OPEN, idle_expiry_s: float = IDLE_EXPIRY_S):
        self.max_open = max_open
        self.idle_expiry_s = idle_expiry_s
        self._cursors: OrderedDict[str, Cursor] = OrderedDict()
        self._numbers = itertools.count(1)
        self._lock = threading.Lock()

    def open(self, cursor: Cursor) -> str:
        cursor_id = new_id("01g", next(self._numbers))[:15]
        with self._lock:
            self._cursors[cursor_id] = cursor
            while len(self._cursors) > self.max_open:
                self._cursors.popitem(last=False)
        return cursor_id

    def get(self, locator: str) -> tuple[str, Cursor, int]:
        """Resolve ``<cursorId>-<offset>``; unknown, freed or expired → INVALID_QUERY_LOCATOR."""
        cursor_id, sep, offset_text = locator.rpartition("-")
        if not sep or not offset_text.isdigit():
            raise invalid_locator()
        now = time.monotonic()
        with self._lock:
            cursor = self._cursors.get(cursor_id)
            if cursor is None:
                raise invalid_locator()
            if now - cursor.last_used > self.idle_expiry_s:
                del self._cursors[cursor_id]
                raise invalid_locator()
            cursor.last_used = now
        offset = int(offset_text)
        if offset >= len(cursor.rowids):
            raise invalid_locator()
        return cursor_id, cursor, offset

    def includes_deleted(self, locator: str) -> bool:
        """Whether ``locator`` continues a queryAll (for counting; no side effects)."""
        cursor = self._cursors.get(locator.rpartition("-")[0])
        return cursor is not None and cursor.include_deleted

    def close(self, cursor_id: str) -> None:
        with self._lock:
            self._cursors.pop(cursor_id, None)

    def clear(self) -> None:
        with self._lock:
            self._cursors.clear()

"""Run one unit of work in one transaction, the way concurrent requests need it.

* **Unique-key races.** Two requests that create the same person at once both see "no
  such email" and both INSERT; the database keeps one and refuses the other with an
  ``IntegrityError``. Running the loser's transaction again finds the winner's row and
  proceeds, which is what the caller meant. Still conflicting after a few tries is a
  real conflict, and the error propagates.
* **SQLite writers queue in-process.** SQLite admits one writer at a time; the others
  wait in its busy handler, which sleeps 1, 2, 5, 10 … 100 ms between retries, so under
  concurrent requests a write can idle for tens of milliseconds after the lock is free.
  Queuing this process's writers on a lock instead hands the database over at once.
  (PostgreSQL needs no such thing: it locks rows.)
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from typing import TypeVar

from sqlalchemy import Engine
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from optsync.store.db import Database

T = TypeVar("T")
ATTEMPTS = 3

_gates: weakref.WeakKeyDictionary[Engine, threading.Lock] = weakref.WeakKeyDictionary()
_gates_lock = threading.Lock()


def writer_gate(db: Database) -> AbstractContextManager[object]:
    """The lock this process's writers to ``db`` queue on (a no-op on PostgreSQL)."""
    if db.dialect != "sqlite":
        return nullcontext()
    with _gates_lock:
        gate = _gates.get(db.engine)
        if gate is None:
            gate = _gates[db.engine] = threading.Lock()
    return gate


def in_transaction(
    db: Database,
    work: Callable[[Session], T],
    attempts: int = ATTEMPTS,
    *,
    timeout_s: float | None = None,
) -> T:
    """``work(session)`` in one transaction, retried on a unique-key race; ``timeout_s``
    as for :meth:`Database.transaction`."""
    for attempt in range(1, attempts + 1):
        try:
            with writer_gate(db), db.transaction(timeout_s=timeout_s) as session:
                return work(session)
        except IntegrityError:
            if attempt == attempts:
                raise
    raise AssertionError("unreachable")  # pragma: no cover

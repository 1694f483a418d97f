"""Login throttling that holds across processes and under concurrency.

Five sign-in attempts for one address from one client IP within 15 minutes lock that
pair out until the oldest of them leaves the window; a successful sign-in forgets the
pair's attempts.

**Reserve, then verify.** An attempt is counted *before* its password is verified: one
conditional ``INSERT … SELECT … WHERE (attempts in the window) < limit`` either reserves
a slot or refuses, so N concurrent attempts verify at most ``limit`` passwords, whatever
the number of web processes or machines on the database. PostgreSQL first takes a
transaction-scoped advisory lock on the pair (``pg_advisory_xact_lock``), so two
statements cannot both count the same free slot; SQLite runs one writer at a time and the
statement takes the write lock before it counts. A reserved attempt that is never
verified (the process was too busy, see :class:`VerificationGate`) is released again.

**A few verifications at a time.** argon2id holds 64 MiB per verification; 120 at once
grew a server to 1.1 GB. :class:`VerificationGate` lets each process verify at most
``MAX_CONCURRENT_VERIFICATIONS`` passwords at once; the others wait (without holding a
thread) up to ``GATE_WAIT`` and then answer 503 with ``Retry-After``.

The key is an HMAC of address and IP under a key derived from ``OPTSYNC_SECRET_KEY``:
the table never holds an address or an IP in clear.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import threading
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime, timedelta

from sqlalchemy import delete, func, insert, literal, select, text
from sqlalchemy.orm import Session

from optsync.clock import Clock
from optsync.security import derive_key
from optsync.store.db import Database
from optsync.store.models import LoginAttempt, UTCDateTime

MAX_FAILURES = 5
WINDOW = timedelta(minutes=15)
MAX_CONCURRENT_VERIFICATIONS = 4
GATE_WAIT = 3.0
BUSY_RETRY_AFTER = 2


class LoginThrottle:
    def __init__(
        self,
        db: Database,
        secret_key: str,
        clock: Clock,
        *,
        max_failures: int = MAX_FAILURES,
        window: timedelta = WINDOW,
    ) -> None:
        self.db = db
        self.clock = clock
        self.max_failures = max_failures
        self.window = window
        self._key = derive_key(secret_key, "login-throttle")

    def key(self, email: str, ip: str | None) -> str:
        material = f"{email.strip().lower()}\x00{ip or '-'}".encode()
        return hmac.new(self._key, material, hashlib.sha256).hexdigest()

    def retry_at(self, key: str) -> datetime | None:
        """When this key may try again, or ``None`` if it may now."""
        with self.db.transaction() as session:
            return self._retry_at(session, key, self.clock())

    def _retry_at(self, session: Session, key: str, now: datetime) -> datetime | None:
        recent = list(
            session.scalars(
                select(LoginAttempt.created_at)
                .where(LoginAttempt.key_hash == key, LoginAttempt.created_at > now - self.window)
                .order_by(LoginAttempt.created_at.desc())
                .limit(self.max_failures)
            )
        )
        if len(recent) < self.max_failures:
            return None
        return min(recent) + self.window

    def reserve(self, key: str) -> int | datetime:
        """Count one attempt before it is verified: its row id, or when the key may try
        again if the window is full. Rows that left the window (any key) are deleted."""
        now = self.clock()
        since = now - self.window
        with self.db.transaction() as session:
            if session.get_bind().dialect.name == "postgresql":
                lock_id = int.from_bytes(bytes.fromhex(key[:16]), "big", signed=True)
                session.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": lock_id})
            in_window = (
                select(func.count())
                .select_from(LoginAttempt)
                .where(LoginAttempt.key_hash == key, LoginAttempt.created_at > since)
                .scalar_subquery()
            )
            reserved = session.execute(
                insert(LoginAttempt)
                .from_select(
                    ["key_hash", "created_at"],
                    select(literal(key), literal(now, UTCDateTime())).where(
                        in_window < self.max_failures
                    ),
                )
                .returning(LoginAttempt.id)
            ).scalar()
            session.execute(delete(LoginAttempt).where(LoginAttempt.created_at <= since))
            if reserved is not None:
                return int(reserved)
            retry_at = self._retry_at(session, key, now)
        return retry_at if retry_at is not None else now + self.window

    def release(self, attempt_id: int) -> None:
        """Give back a reserved attempt whose password was never verified."""
        with self.db.transaction() as session:
            session.execute(delete(LoginAttempt).where(LoginAttempt.id == attempt_id))

    def clear(self, key: str) -> None:
        """A successful sign-in forgets this key's attempts."""
        with self.db.transaction() as session:
            session.execute(delete(LoginAttempt).where(LoginAttempt.key_hash == key))


class GateBusy(Exception):
    """Too many password verifications are running in this process; try again shortly."""


class VerificationGate:
    """At most ``limit`` password verifications at once in this process.

    A threading semaphore (the verifications run in worker threads), acquired without
    blocking and polled from the event loop, so that waiting requests hold no thread
    and no event loop is tied to it (every test client runs its own loop)."""

    def __init__(self, limit: int = MAX_CONCURRENT_VERIFICATIONS, wait: float = GATE_WAIT):
        self.limit = limit
        self.wait = wait
        self._slots = threading.BoundedSemaphore(limit)

    @asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        deadline = time.monotonic() + self.wait
        delay = 0.005
        while not self._slots.acquire(blocking=False):
            if time.monotonic() >= deadline:
                raise GateBusy
            await asyncio.sleep(delay)
            delay = min(delay * 2, 0.05)
        try:
            yield
        finally:
            self._slots.release()

"""Login throttling that holds across processes: failed attempts live in the database.

Five failed sign-ins for one address from one client IP within 15 minutes lock that
pair out until the oldest of those five leaves the window. Keeping the count in the
database (not in memory) means it holds with several web processes behind a load
balancer and across restarts. The key is an HMAC of address and IP under a key derived
from ``OPTSYNC_SECRET_KEY``: the table never holds an address or an IP in clear.
"""

from __future__ import annotations

import hashlib
import hmac
from datetime import datetime, timedelta

from sqlalchemy import delete, select

from optsync.clock import Clock
from optsync.security import derive_key
from optsync.store.db import Database
from optsync.store.models import LoginAttempt

MAX_FAILURES = 5
WINDOW = timedelta(minutes=15)


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
        now = self.clock()
        with self.db.transaction() as session:
            recent = list(
                session.scalars(
                    select(LoginAttempt.created_at)
                    .where(
                        LoginAttempt.key_hash == key,
                        LoginAttempt.created_at > now - self.window,
                    )
                    .order_by(LoginAttempt.created_at.desc())
                    .limit(self.max_failures)
                )
            )
        if len(recent) < self.max_failures:
            return None
        return min(recent) + self.window

    def record_failure(self, key: str) -> None:
        """Count one failure, and forget failures that left the window (any key)."""
        now = self.clock()
        with self.db.transaction() as session:
            session.execute(
                delete(LoginAttempt).where(LoginAttempt.created_at <= now - self.window)
            )
            session.add(LoginAttempt(key_hash=key, created_at=now))

    def clear(self, key: str) -> None:
        """A successful sign-in forgets this key's failures."""
        with self.db.transaction() as session:
            session.execute(delete(LoginAttempt).where(LoginAttempt.key_hash == key))

"""What the admin pages ask Salesforce directly: the setup checks, a connection test,
and whether one record still has the opt-out field set (before a re-subscribe).

Thin names over the shared services, which call Salesforce with the ``page`` profile
(short timeouts, no retries: a request waits) and with no database transaction open;
a failure is turned into a sentence on the page, never into an error page.

The setup checks cost about three API calls, so the Integrations tab shows a cached
answer (:class:`CheckCache`, one per app) with its age and a "Re-check" button. The
cache is keyed on what the checks depend on (the field pushes write, the sync switch,
the live-pull mode and the stored connection's save time): saving any of them, here or
from the command line, makes the next view check again.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from optsync.bootstrap import Context
from optsync.errors import OptsyncError
from optsync.salesforce.config import ConnectionConfig
from optsync.salesforce.gateway import connection_in_force
from optsync.services.salesforce_connection import try_connection as _try_connection
from optsync.services.salesforce_field import FieldState
from optsync.services.salesforce_field import opt_out_field_state as field_state
from optsync.services.salesforce_setup import Check
from optsync.services.salesforce_setup import setup_checks as _setup_checks

__all__ = [
    "CheckCache",
    "CheckedAt",
    "FieldState",
    "connection_config",
    "field_state",
    "record_base",
    "record_url",
    "setup_checks",
    "try_connection",
]

MAX_AGE = timedelta(minutes=15)
"""How long a page shows the same checks before asking Salesforce again by itself."""


def connection_config(ctx: Context) -> tuple[ConnectionConfig | None, str | None]:
    """The connection in force, or why there is none usable."""
    try:
        return connection_in_force(ctx), None
    except OptsyncError as exc:
        return None, str(exc)


GENERIC_LOGIN_HOSTS = ("login.salesforce.com", "test.salesforce.com")


def record_base(ctx: Context) -> str | None:
    """The org's own address, for links to its records: the connection's login URL when
    it is the org's (My Domain, an instance, the emulator). The generic login hosts
    serve every org, so no record link can be built from them: None."""
    config, _problem = connection_config(ctx)
    if config is None:
        return None
    base = config.login_url.rstrip("/")
    host = base.split("://", 1)[-1].split("/", 1)[0].lower()
    return None if host in GENERIC_LOGIN_HOSTS else base


def record_url(base: str | None, obj: str, record_id: str) -> str | None:
    """A record's Lightning URL: ``{instance}/lightning/r/{Object}/{Id}/view`` (a Person
    Account is an Account)."""
    return f"{base}/lightning/r/{obj}/{record_id}/view" if base else None


def setup_checks(ctx: Context) -> list[Check]:
    return _setup_checks(ctx)


@dataclass(frozen=True)
class CheckedAt:
    checks: list[Check]
    at: datetime
    key: Any


class CheckCache:
    """The last setup checks of this app, reused while fresh and for the same key."""

    def __init__(self, max_age: timedelta = MAX_AGE) -> None:
        self.max_age = max_age
        self._lock = threading.Lock()
        self._last: CheckedAt | None = None

    def get(self, ctx: Context, key: Any, *, fresh: bool = False) -> CheckedAt:
        now = ctx.clock()
        with self._lock:
            last = self._last
        if (
            not fresh
            and last is not None
            and last.key == key
            and timedelta(0) <= now - last.at < self.max_age
        ):
            return last
        # asked outside the lock: two first views may both ask, neither waits on the other
        result = CheckedAt(setup_checks(ctx), now, key)
        with self._lock:
            self._last = result
        return result

    def clear(self) -> None:
        with self._lock:
            self._last = None


def try_connection(config: ConnectionConfig) -> tuple[bool, str]:
    """Mint a token and make one cheap call; the sentence names the org or the fix."""
    result = _try_connection(config)
    return result.ok, result.message

"""What the admin pages ask Salesforce directly: the setup checks, a connection test,
and whether one record still has the opt-out field set (before a re-subscribe).

Thin names over the shared services, which call Salesforce with the ``page`` profile
(short timeouts, no retries: a request waits) and with no database transaction open;
a failure is turned into a sentence on the page, never into an error page.
"""

from __future__ import annotations

from optsync.bootstrap import Context
from optsync.errors import OptsyncError
from optsync.salesforce.config import ConnectionConfig
from optsync.salesforce.gateway import connection_in_force
from optsync.services.salesforce_connection import try_connection as _try_connection
from optsync.services.salesforce_field import FieldState
from optsync.services.salesforce_field import opt_out_field_state as field_state
from optsync.services.salesforce_setup import Check
from optsync.services.salesforce_setup import setup_checks as _setup_checks

__all__ = ["FieldState", "connection_config", "field_state", "setup_checks", "try_connection"]


def connection_config(ctx: Context) -> tuple[ConnectionConfig | None, str | None]:
    """The connection in force, or why there is none usable."""
    try:
        return connection_in_force(ctx), None
    except OptsyncError as exc:
        return None, str(exc)


def setup_checks(ctx: Context) -> list[Check]:
    return _setup_checks(ctx)


def try_connection(config: ConnectionConfig) -> tuple[bool, str]:
    """Mint a token and make one cheap call; the sentence names the org or the fix."""
    result = _try_connection(config)
    return result.ok, result.message

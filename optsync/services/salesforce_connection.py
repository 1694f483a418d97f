"""The Salesforce connection as a use case: test it, save it, test the one in force.

One service for ``optsync salesforce connect`` and the admin Integrations form, so both
mean the same by "save" and "test":

* **test** mints a token and makes one cheap call (``GET /limits``) with the ``page``
  profile (short timeouts, no retries: a person is waiting), and stores nothing;
* **save** validates, tests first and stores only a connection that works (a failing
  one raises :class:`ConnectionTestFailed` and the stored connection is unchanged);
  ``test=False`` (the CLI's ``--no-test``) stores without calling Salesforce.

No database transaction is open while Salesforce is called: the test runs before the
short transaction that stores the row.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from optsync.errors import OptsyncError, UsageError
from optsync.salesforce.config import ConnectionConfig
from optsync.salesforce.connection import env_overrides, save_connection
from optsync.salesforce.gateway import Profile, build_gateway, connection_in_force

if TYPE_CHECKING:
    from optsync.bootstrap import Context


@dataclass(frozen=True)
class ConnectionTest:
    """``message`` names the org when ``ok``, else what is wrong and the fix."""

    ok: bool
    message: str
    instance_url: str | None = None


@dataclass(frozen=True)
class Saved:
    config: ConnectionConfig
    test: ConnectionTest | None
    """``None`` when saved without a test."""
    overridden: list[str]
    """Connection fields that ``OPTSYNC_SF_*`` variables set, winning over the stored."""


class ConnectionTestFailed(UsageError):
    """The connection was not stored because its test failed."""


def try_connection(config: ConnectionConfig) -> ConnectionTest:
    """A token and ``GET /limits``; never raises for a Salesforce problem."""
    with build_gateway(config, Profile.PAGE) as gateway:
        try:
            gateway.connect()
            gateway.limits()
        except OptsyncError as exc:
            return ConnectionTest(False, f"The connection does not work: {exc}")
        return ConnectionTest(
            True, f"Connected to {gateway.instance_url} ({config.auth} auth).", gateway.instance_url
        )


def save_tested(ctx: Context, config: ConnectionConfig, *, test: bool = True) -> Saved:
    """Validate, test (unless ``test`` is false) and store ``config`` as the connection."""
    config = config.validated()
    result = try_connection(config) if test else None
    if result is not None and not result.ok:
        raise ConnectionTestFailed(
            f"The connection test failed; nothing was stored. {result.message}"
        )
    with ctx.db.transaction() as session:
        save_connection(session, config, ctx.settings.resolved_secret_key, now=ctx.clock())
    try:
        overridden = sorted(env_overrides(ctx.settings))
    except OptsyncError:
        overridden = []
    return Saved(config, result, overridden)


def try_in_force(ctx: Context) -> ConnectionTest:
    """Test the connection in force (stored, with ``OPTSYNC_SF_*`` on top)."""
    try:
        config = connection_in_force(ctx)
    except OptsyncError as exc:
        return ConnectionTest(False, str(exc))
    if config is None:
        return ConnectionTest(False, "No Salesforce connection is configured.")
    return try_connection(config)

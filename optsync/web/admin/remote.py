"""What the admin pages ask Salesforce directly: the setup checks, a connection test,
and whether one record still has the opt-out field set (before a re-subscribe).

Requests wait on these calls, so the gateway gets short timeouts here; a failure is
turned into a sentence on the page, never into an error page.
"""

from __future__ import annotations

from dataclasses import dataclass

from optsync.bootstrap import Context
from optsync.errors import OptsyncError
from optsync.salesforce.connection import ConnectionConfig, resolve_connection
from optsync.salesforce.gateway import SalesforceGateway
from optsync.services.salesforce_setup import Check, run_checks

PAGE_TIMEOUT = (5.0, 20.0)


@dataclass(frozen=True)
class FieldState:
    """``still_set`` is ``None`` when Salesforce could not be asked; ``note`` says why."""

    still_set: bool | None
    note: str | None = None


def connection_config(ctx: Context) -> tuple[ConnectionConfig | None, str | None]:
    """The connection in force, or why there is none usable."""
    try:
        with ctx.db.transaction() as session:
            return resolve_connection(ctx.settings, session), None
    except OptsyncError as exc:
        return None, str(exc)


def setup_checks(ctx: Context) -> list[Check]:
    config, problem = connection_config(ctx)
    gateway = SalesforceGateway(config, timeout=PAGE_TIMEOUT) if config else None
    try:
        with ctx.db.transaction() as session:
            checks = run_checks(gateway, session)
    finally:
        if gateway is not None:
            gateway.close()
    if problem and checks and not checks[0].ok:
        first = checks[0]
        checks[0] = Check(first.name, False, problem, first.fix)
    return checks


def try_connection(config: ConnectionConfig) -> tuple[bool, str]:
    """Mint a token and make one cheap call; the sentence names the org or the fix."""
    with SalesforceGateway(config, timeout=PAGE_TIMEOUT) as gateway:
        try:
            gateway.connect()
            gateway.limits()
        except OptsyncError as exc:
            return False, f"The connection does not work: {exc}"
        return True, f"Connected to {gateway.instance_url} ({config.auth} auth)."


def field_state(
    ctx: Context, salesforce_id: str | None, salesforce_object: str | None, field: str
) -> FieldState:
    """Does Salesforce still show ``field`` set on this one record? (One API call.)"""
    if not salesforce_id or not salesforce_object:
        return FieldState(
            None, "This person has no Salesforce id, so there is nothing to check in Salesforce."
        )
    config, problem = connection_config(ctx)
    if config is None:
        return FieldState(
            None,
            problem
            or "No Salesforce connection is configured, so Salesforce could not be checked.",
        )
    try:
        with SalesforceGateway(config, timeout=PAGE_TIMEOUT) as gateway:
            record = gateway.get_record(salesforce_object, salesforce_id, [field])
    except OptsyncError as exc:
        return FieldState(None, f"Salesforce could not be checked: {exc}")
    if record is None:
        return FieldState(
            None,
            f"{salesforce_object} {salesforce_id} no longer exists in "
            "Salesforce (deleted or merged).",
        )
    return FieldState(bool(record.get(field)))

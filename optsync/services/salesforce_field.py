"""Does Salesforce still have the opt-out field set on a person's record?

Asked after a re-subscribe: re-subscribes never sync, so while the field stays set in
Salesforce the next nightly sync opts the person out again, and the admin must be told.
The answer is ``True``/``False`` when Salesforce answered, or ``None`` with a note saying
why it could not be asked (no connection configured, no Salesforce id, the call failed)
so the admin knows to look for themselves. One REST read of one record; kept behind one
function so that the web layer's tests can replace it.
"""

from __future__ import annotations

from dataclasses import dataclass

from optsync.bootstrap import Context
from optsync.errors import OptsyncError
from optsync.salesforce.connection import resolve_connection
from optsync.salesforce.gateway import SalesforceGateway


@dataclass(frozen=True)
class FieldState:
    still_set: bool | None
    note: str | None = None


def opt_out_field_state(
    ctx: Context, salesforce_id: str | None, salesforce_object: str | None, field: str
) -> FieldState:
    """The state of ``field`` on the record, or why it is unknown."""
    if not salesforce_id or not salesforce_object:
        return FieldState(None, "The person has no Salesforce id; nothing to check there.")
    try:
        with ctx.db.transaction() as session:
            config = resolve_connection(ctx.settings, session)
    except OptsyncError as exc:
        return FieldState(None, f"The Salesforce connection is unusable: {exc}")
    if config is None:
        return FieldState(None, "No Salesforce connection is configured.")
    try:
        with SalesforceGateway(config) as gateway:
            record = gateway.get_record(salesforce_object, salesforce_id, [field])
    except OptsyncError as exc:
        return FieldState(
            None,
            f"Salesforce could not be asked ({exc}); check {field} on {salesforce_object} "
            f"{salesforce_id} there.",
        )
    if record is None:
        return FieldState(False, f"The {salesforce_object} no longer exists in Salesforce.")
    values = {key.lower(): value for key, value in record.items()}
    if field.lower() not in values:
        return FieldState(
            None,
            f"Salesforce did not return {field} (field-level security?); check it on "
            f"{salesforce_object} {salesforce_id} there.",
        )
    return FieldState(bool(values[field.lower()]))

"""Does Salesforce still have the opt-out field set on a person's record?

Asked after a re-subscribe (the API's answer, the admin remove page): re-subscribes
never sync, so while the field stays set in Salesforce the next nightly sync opts the
person out again, and the admin must be told. This is the one check both use.

The answer is ``True``/``False`` when Salesforce answered (a deleted or merged record
counts as not set, with a note saying so), or ``None`` with a note saying why it could
not be told: no Salesforce id, no connection, the call failed, or the field is hidden
from the integration user by field-level security. The last is told apart with the
object's describe (as the integration user sees it) whenever the record read does not
show the field, so a hidden field never reads as "cleared".
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from optsync.domain.failures import FIX_INVALID_FIELD
from optsync.errors import OptsyncError
from optsync.salesforce.errors import SalesforceCallError
from optsync.salesforce.fields import check_describe
from optsync.salesforce.gateway import (
    Profile,
    SalesforceGateway,
    build_gateway,
    connection_in_force,
)

if TYPE_CHECKING:
    from optsync.bootstrap import Context


@dataclass(frozen=True)
class FieldState:
    """``still_set`` is ``None`` when Salesforce could not tell; ``note`` says why."""

    still_set: bool | None
    note: str | None = None


def opt_out_field_state(
    ctx: Context, salesforce_id: str | None, salesforce_object: str | None, field: str
) -> FieldState:
    """The state of ``field`` on the record, or why it is unknown (``page`` profile:
    a request waits on it)."""
    if not salesforce_id or not salesforce_object:
        return FieldState(None, "The person has no Salesforce id; nothing to check there.")
    try:
        config = connection_in_force(ctx)
    except OptsyncError as exc:
        return FieldState(None, f"The Salesforce connection is unusable: {exc}")
    if config is None:
        return FieldState(None, "No Salesforce connection is configured.")
    try:
        with build_gateway(config, Profile.PAGE) as gateway:
            return read_field_state(gateway, salesforce_id, salesforce_object, field)
    except OptsyncError as exc:
        return FieldState(
            None,
            f"Salesforce could not be asked ({exc}); check {field} on {salesforce_object} "
            f"{salesforce_id} there.",
        )


def read_field_state(
    gateway: SalesforceGateway, salesforce_id: str, salesforce_object: str, field: str
) -> FieldState:
    """One record read (plus one describe when the field does not come back)."""
    try:
        record = gateway.get_record(salesforce_object, salesforce_id, [field])
    except SalesforceCallError as exc:
        if exc.code != "INVALID_FIELD":  # "No such column": hidden, or not there at all
            raise
        return _not_shown(gateway, salesforce_id, salesforce_object, field)
    if record is None:
        return FieldState(
            False,
            f"The {salesforce_object} {salesforce_id} no longer exists in Salesforce "
            "(deleted or merged).",
        )
    values = {key.lower(): value for key, value in record.items()}
    if field.lower() not in values:
        return _not_shown(gateway, salesforce_id, salesforce_object, field)
    return FieldState(bool(values[field.lower()]))


def _not_shown(
    gateway: SalesforceGateway, salesforce_id: str, salesforce_object: str, field: str
) -> FieldState:
    check = check_describe(salesforce_object, field, gateway.describe(salesforce_object))
    where = f"{salesforce_object} {salesforce_id}"
    if not check.exists:
        return FieldState(
            None,
            f"{field} is hidden by field-level security from the integration user (or does "
            f"not exist on {salesforce_object}), so its value on {where} is unknown; check "
            f"it there. {FIX_INVALID_FIELD}",
        )
    return FieldState(None, f"Salesforce did not return {field} of {where}; check it there.")

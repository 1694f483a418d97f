"""The one field-state check (``services.salesforce_field.opt_out_field_state``) over the
emulator: set, cleared, deleted, hidden by field-level security, and no connection.

The admin remove page and the re-subscribe API both show its answer."""

from __future__ import annotations

import pytest

from optsync.bootstrap import Context
from optsync.emulator import Emulator
from optsync.salesforce.connection import save_connection
from optsync.services.salesforce_field import opt_out_field_state

from .conftest import config_for

pytestmark = pytest.mark.emulator
FIELD = "HasOptedOutOfEmail"


def _connect(ctx: Context, emu: Emulator) -> None:
    with ctx.db.transaction() as s:
        save_connection(s, config_for(emu), ctx.settings.resolved_secret_key, now=ctx.clock())


def test_set_cleared_and_deleted(ctx: Context, emu: Emulator) -> None:
    _connect(ctx, emu)
    set_id, clear_id, gone_id = emu.seed(contacts=3)["contact_ids"]
    for sid in (set_id, gone_id):
        emu.control("PATCH", f"records/{sid}", {FIELD: True})
    emu.control("DELETE", f"records/{gone_id}")
    assert opt_out_field_state(ctx, set_id, "Contact", FIELD).still_set is True
    # API names are case-insensitive in Salesforce: so is the answer
    assert opt_out_field_state(ctx, set_id, "Contact", FIELD.lower()).still_set is True
    assert opt_out_field_state(ctx, clear_id, "Contact", FIELD).still_set is False
    gone = opt_out_field_state(ctx, gone_id, "Contact", FIELD)
    assert gone.still_set is False and gone.note and "no longer exists" in gone.note


def test_hidden_field_says_field_level_security(ctx: Context, emu: Emulator) -> None:
    _connect(ctx, emu)
    [sid] = emu.seed(contacts=1, opted_out_fraction=1.0)["contact_ids"]
    emu.control("PUT", f"fields/Contact/{FIELD}", {"visible": False, "updateable": False})
    state = opt_out_field_state(ctx, sid, "Contact", FIELD)
    assert state.still_set is None
    assert state.note and "hidden by field-level security" in state.note


def test_without_a_connection_or_an_id(ctx: Context) -> None:
    assert opt_out_field_state(ctx, None, None, FIELD).still_set is None
    state = opt_out_field_state(ctx, "003000000000001AAA", "Contact", FIELD)
    assert state.still_set is None and state.note and "No Salesforce connection" in state.note

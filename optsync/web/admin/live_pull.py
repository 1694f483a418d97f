"""The Integrations tab's live-pull control and state lines."""

from __future__ import annotations

from datetime import datetime

from optsync.bootstrap import Context
from optsync.services.live_pull.status import describe
from optsync.services.sync_settings import get_settings
from optsync.store import live_pull as state_store

LIVE_PULL_LABELS = (
    ("auto", "Automatic: Change Data Capture where enabled, polling otherwise"),
    ("cdc", "Change Data Capture only"),
    ("poll", "Polling only"),
    ("off", "Off: only the nightly sync"),
)
LINK_RULE_LABELS = (
    ("contact_then_lead", "Contact first, then Lead"),
    ("lead_then_contact", "Lead first, then Contact"),
    ("contact_only", "Contacts only"),
    ("lead_only", "Leads only"),
    ("off", "Off: never link automatically"),
)
"""The linking rule's choices (``optsync.domain.records.LINK_RULES``), for the
Integrations tab."""


def live_state_lines(ctx: Context, now: datetime) -> list[str]:
    with ctx.db.transaction() as session:
        settings = get_settings(session)
        states = state_store.all_states(session)
        _holder, expires = state_store.holder(session)
    return describe(settings, states, expires, now)

"""The live pull's state in sentences, for the Integrations tab and the CLI."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from optsync.domain.live_pull import OBJECTS, Mode, Status, effective_mode
from optsync.services.sync_settings import SyncSettingsView
from optsync.store.live_pull import ObjectState

STALE_S = 120.0
"""A state not updated for this long (while on) means no worker runs the live pull."""


def ago(then: datetime, now: datetime) -> str:
    seconds = max(0, int((now - then).total_seconds()))
    if seconds < 120:
        return f"{seconds} s ago"
    if seconds < 7200:
        return f"{seconds // 60} min ago"
    return f"{seconds // 3600} h ago"


def describe(
    settings: SyncSettingsView,
    states: Sequence[ObjectState],
    lease_expires: datetime | None,
    now: datetime,
) -> list[str]:
    """One sentence per object, e.g. "Contact: Live via Change Data Capture — last event
    3 s ago", "Lead: Polling every 60 s — CDC not enabled for Lead"."""
    mode = effective_mode(settings.live_pull, settings.sync_enabled)
    if mode is Mode.OFF:
        if not settings.sync_enabled:
            return ["Live pull runs while Sync to Salesforce is on."]
        return ["Live pull is off: Salesforce-side opt-outs arrive with the nightly sync."]
    if lease_expires is None or lease_expires < now:
        return ["Live pull is waiting for a worker: start `optsync worker`."]
    by_object = {s.object: s for s in states}
    lines = []
    every = f"Polling every {settings.poll_interval_s} s"
    for obj in (*OBJECTS, *sorted(set(by_object) - set(OBJECTS))):  # Person Accounts too
        state = by_object.get(obj)
        if state is None:
            lines.append(f"{obj}: starting")
            continue
        status = Status(state.status) if state.status in set(Status) else Status.STARTING
        if status is Status.LIVE:
            last = (
                f"last event {ago(state.last_event_at, now)}"
                if state.last_event_at
                else "no event yet"
            )
            text = f"Live via Change Data Capture — {last}"
        elif status is Status.POLLING:
            text = every + (f" — {state.detail}" if state.detail else "")
        elif status is Status.CATCHING_UP:
            text = "Catching up after a gap" + (f" ({state.detail})" if state.detail else "")
        elif status is Status.RECONNECTING:
            text = f"Reconnecting to Change Data Capture, {every.lower()} meanwhile" + (
                f" — {state.detail}" if state.detail else ""
            )
        elif status is Status.OFF:
            text = "off"
        else:
            text = "starting"
        lines.append(f"{obj}: {text}")
    return lines

"""The sync-health banner on both tabs of the Unsubscribes area: the same
:func:`optsync.services.health.sync_health` as ``GET /api/v1/health/sync``, read in one
short transaction, no Salesforce call."""

from __future__ import annotations

from datetime import datetime

from optsync.bootstrap import Context
from optsync.services.health import SyncHealth, sync_health


def health_banner(ctx: Context) -> SyncHealth:
    with ctx.db.transaction() as session:
        return sync_health(session, ctx.clock())


def age_text(then: datetime | None, now: datetime) -> str:
    """ "4 min", "2 h 5 min", "3 days" — how long ago, in words."""
    if then is None:
        return "—"
    seconds = max(0, int((now - then).total_seconds()))
    if seconds < 60:
        return f"{seconds} s"
    minutes = seconds // 60
    if minutes < 60:
        return f"{minutes} min"
    hours = minutes // 60
    if hours < 48:
        return f"{hours} h {minutes % 60} min" if minutes % 60 else f"{hours} h"
    return f"{hours // 24} days"

"""A sync run's knobs, phases and errors."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from optsync.errors import OptsyncError, UsageError
from optsync.salesforce.volume import BULK_THRESHOLD

STALE_AFTER = timedelta(minutes=5)
MIRROR_OVERLAP = timedelta(minutes=10)
"""An incremental mirror read starts this far before the watermark: a record committed
late with an older ``SystemModstamp`` is still read."""
SCOPE_MARGIN = timedelta(minutes=10)
"""Persons changed this long before the last complete run started are looked at again by
an incremental diff: clocks of the processes writing persons may be that far apart."""
ANALYZE_AFTER = 10_000
"""A fetch that read at least this many records refreshes the mirror's planner statistics
(PostgreSQL): the diff that follows is planned on them."""
PULL_CHUNK = 2_000
PUSH_PAGE = 2_000
STAGE_CHUNK = 5_000
MAX_LISTED = 1_000
"""Failures and re-opted-out persons listed in the report; all failures are stored in
``sync_run_failures``."""
PREVIEW_LISTED = 100
"""Records a dry run's report lists per direction (``would_pull``, ``would_push``); every
one is stored in ``sync_run_preview`` for "all as CSV"."""
RETRIES = 2
"""Resends of a record whose push failed transiently within one run (the next run
retries it again); follows of conversions and merges are bounded by
:data:`optsync.services.follow.MAX_FOLLOWS`."""

PHASES = ("check", "fetch", "diff", "pull", "push")

Progress = Callable[[str, int, int | None], None]
"""``progress(phase, done, total)``; ``total`` is None while unknown."""

CONNECT_FIX = (
    "Run `optsync salesforce connect` (or set the OPTSYNC_SF_* variables) and check the "
    "connected app and integration user."
)


class RunInProgress(UsageError):
    """Another run is running; ``run_id`` names it."""

    def __init__(self, run_id: int | None):
        which = f" (#{run_id})" if run_id is not None else ""
        super().__init__(
            f"a run is already in progress{which}.",
            field="sync",
            fix="Wait for it to finish (`optsync sync history` shows it).",
        )
        self.run_id = run_id


class SlotTaken(UsageError):
    """Another scheduler already started the run for this scheduled instant."""

    def __init__(self, scheduled_for: datetime):
        super().__init__(f"the run scheduled for {scheduled_for.isoformat()} already exists.")
        self.scheduled_for = scheduled_for


class RunFailed(OptsyncError):
    """Raised inside a run to end it as failed with ``message`` (which carries the fix)."""


class RunLost(OptsyncError):
    """This runner no longer owns its run (the reaper marked it failed): stop at once."""


@dataclass(frozen=True)
class SyncOptions:
    """Tuning knobs; the defaults suit production, tests lower the thresholds."""

    bulk_threshold: int = BULK_THRESHOLD
    stale_after: timedelta = STALE_AFTER
    heartbeat_every: float = 30.0
    pull_chunk: int = PULL_CHUNK
    push_page: int = PUSH_PAGE
    stage_chunk: int = STAGE_CHUNK
    bulk_poll_initial: float = 0.2
    bulk_poll_max: float = 5.0
    mirror_overlap: timedelta = MIRROR_OVERLAP
    """How far before the mirror's watermark an incremental read starts (and how far
    before the last complete run's watermark an incremental diff looks at records)."""
    analyze_after: int = ANALYZE_AFTER
    """Records a fetch must have read for the mirror's statistics to be refreshed."""
    scope_margin: timedelta = SCOPE_MARGIN
    """How far before the last complete run started an incremental diff looks at changed
    persons (``persons.updated_at`` is written by the clock of whichever process changed
    the person)."""

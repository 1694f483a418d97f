"""The nightly unsubscribe sync's public names (the code is in :mod:`optsync.services.sync`).

Kept so that ``from optsync.services.sync_run import ...`` in the CLI, the web app, the
worker and the benches goes on working.
"""

from __future__ import annotations

from optsync.salesforce.volume import BULK_THRESHOLD
from optsync.services.sync.options import (
    PHASES,
    RunFailed,
    RunInProgress,
    RunLost,
    SlotTaken,
    SyncOptions,
)
from optsync.services.sync.report import get_report, history, report_of
from optsync.services.sync.runner import SyncRunner, run_sync
from optsync.services.sync.start import start_run

__all__ = [
    "BULK_THRESHOLD",
    "PHASES",
    "RunFailed",
    "RunInProgress",
    "RunLost",
    "SlotTaken",
    "SyncOptions",
    "SyncRunner",
    "get_report",
    "history",
    "report_of",
    "run_sync",
    "start_run",
]

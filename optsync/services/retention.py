"""Prune working data by the retention settings (see ``optsync.store.retention``)."""

from __future__ import annotations

from datetime import datetime, timedelta

from optsync.settings import Settings
from optsync.store.db import Database
from optsync.store.retention import Pruned, prune


def prune_now(db: Database, settings: Settings, now: datetime) -> Pruned:
    with db.transaction() as session:
        return prune(
            session,
            now=now,
            keep_pushes=timedelta(days=settings.keep_pushes_days),
            keep_run_failures=timedelta(days=settings.keep_run_failures_days),
        )

"""What optsync deletes, and when: the outbox and run failures are working data, the
ledger is evidence and is kept forever.

* **Sent and cancelled pushes** older than ``keep_pushes_days`` (default 30, the activity
  chart's window) are deleted, except each person's latest push, which the person's
  page, the listing and retries read.
* **A sync run's per-record failures**, and a dry run's full list of records it would
  pull and push (``sync_run_preview``, "all as CSV"), are deleted once the run finished
  more than ``keep_run_failures_days`` ago (default 90); the run and its report (with the
  first 100 records each way) stay.
* **Failed, pending, in-flight and not-linked pushes are never deleted**: they are work
  still to do or a failure an admin has to see.

Deletes go in batches of ``batch`` rows, each its own statement, so a first prune of a
large outbox never holds long locks. The worker's scheduler prunes once an hour
(``worker/scheduler.py``); ``optsync db prune`` does it now.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, delete, func, select
from sqlalchemy.orm import Session

from optsync.store.models import OutboxPush, SyncRun, SyncRunFailure, SyncRunPreview

BATCH = 5_000
PRUNABLE = ("sent", "cancelled")


@dataclass(frozen=True)
class Pruned:
    pushes: int
    run_failures: int
    previews: int = 0


def _delete_batched(session: Session, id_column: Any, where: Any, batch: int) -> int:
    """Delete the rows of ``id_column``'s table matching ``where``, ``batch`` ids at a time
    (short statements, bounded parameter lists); returns how many."""
    deleted = 0
    while True:
        ids = list(session.scalars(select(id_column).where(where).limit(batch)))
        if not ids:
            return deleted
        session.execute(delete(id_column.table).where(id_column.in_(ids)))
        deleted += len(ids)


def prune(
    session: Session,
    *,
    now: datetime,
    keep_pushes: timedelta,
    keep_run_failures: timedelta,
    batch: int = BATCH,
) -> Pruned:
    """Delete what the retention rules above allow; returns the rows deleted."""
    latest = select(func.max(OutboxPush.id)).group_by(OutboxPush.person_id)
    pushes = _delete_batched(
        session,
        OutboxPush.id,
        and_(
            OutboxPush.state.in_(PRUNABLE),
            func.coalesce(OutboxPush.settled_at, OutboxPush.sent_at, OutboxPush.created_at)
            < now - keep_pushes,
            OutboxPush.id.not_in(latest.scalar_subquery()),
        ),
        batch,
    )
    old_runs = (
        select(SyncRun.id)
        .where(SyncRun.finished_at.is_not(None), SyncRun.finished_at < now - keep_run_failures)
        .scalar_subquery()
    )
    failures = _delete_batched(
        session, SyncRunFailure.id, SyncRunFailure.run_id.in_(old_runs), batch
    )
    previews = _delete_batched(
        session, SyncRunPreview.id, SyncRunPreview.run_id.in_(old_runs), batch
    )
    return Pruned(pushes, failures, previews)

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

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from optsync.store.models import OutboxPush, SyncRun, SyncRunFailure, SyncRunPreview

BATCH = 5_000
PRUNABLE = ("sent", "cancelled")


@dataclass(frozen=True)
class Pruned:
    pushes: int
    run_failures: int
    previews: int = 0


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
    push_cutoff = now - keep_pushes
    pushes = 0
    while True:
        ids = list(
            session.scalars(
                select(OutboxPush.id)
                .where(
                    OutboxPush.state.in_(PRUNABLE),
                    func.coalesce(OutboxPush.settled_at, OutboxPush.sent_at, OutboxPush.created_at)
                    < push_cutoff,
                    OutboxPush.id.not_in(latest.scalar_subquery()),
                )
                .limit(batch)
            )
        )
        if not ids:
            break
        session.execute(delete(OutboxPush).where(OutboxPush.id.in_(ids)))
        pushes += len(ids)
    finished_before = now - keep_run_failures
    old_runs = select(SyncRun.id).where(
        SyncRun.finished_at.is_not(None), SyncRun.finished_at < finished_before
    )
    failures = 0
    while True:
        ids = list(
            session.scalars(
                select(SyncRunFailure.id)
                .where(SyncRunFailure.run_id.in_(old_runs.scalar_subquery()))
                .limit(batch)
            )
        )
        if not ids:
            break
        session.execute(delete(SyncRunFailure).where(SyncRunFailure.id.in_(ids)))
        failures += len(ids)
    previews = 0
    while True:
        ids = list(
            session.scalars(
                select(SyncRunPreview.id)
                .where(SyncRunPreview.run_id.in_(old_runs.scalar_subquery()))
                .limit(batch)
            )
        )
        if not ids:
            break
        session.execute(delete(SyncRunPreview).where(SyncRunPreview.id.in_(ids)))
        previews += len(ids)
    return Pruned(pushes, failures, previews)

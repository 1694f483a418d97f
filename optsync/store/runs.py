"""The rows of sync runs: create, own, heartbeat, reap, finish, list; and their failures.

A run is *owned* by the runner that started it: ``sync_runs.worker`` holds an owner
token unique per run attempt (:func:`new_owner`, ``host:pid:random``), and every write a
runner makes to its row — heartbeat, partial report, finish — is an UPDATE conditional
on ``status = 'running' AND worker = <token>`` that returns the number of rows it
changed. Zero means the run is no longer this runner's (the reaper marked it failed):
the runner must stop at once, without writing anything more.

Times that different workers compare — heartbeats and the reaper's cutoff — are read
from the database's clock (:func:`optsync.store.db.database_now`), so two workers whose
clocks are minutes apart cannot reap each other's live runs. ``started_at`` and
``finished_at`` stay on the application's clock: the report shows them, and the
re-opted-out rule compares ``started_at`` with re-subscribe times written by that clock.
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.engine import CursorResult
from sqlalchemy.orm import Session

from optsync.store.db import database_now
from optsync.store.models import LedgerEntry, SyncRemoteOptOut, SyncRun, SyncRunFailure


def new_owner() -> str:
    """An owner token for one run attempt: unique even for two runners in one process."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:12]}"


def create_run(
    session: Session,
    *,
    trigger: str,
    dry_run: bool,
    field: str | None,
    now: datetime,
    worker: str,
    scheduled_for: datetime | None = None,
) -> SyncRun:
    """Insert a ``running`` run owned by ``worker``. Raises ``IntegrityError`` when another
    run is running (partial unique index) or this scheduled instant already has a run."""
    run = SyncRun(
        trigger=trigger,
        dry_run=dry_run,
        status="running",
        field=field,
        scheduled_for=scheduled_for,
        started_at=now,
        heartbeat_at=database_now(session),
        worker=worker,
        ledger_watermark=session.scalar(select(func.coalesce(func.max(LedgerEntry.id), 0))),
        report={},
    )
    session.add(run)
    session.flush()
    return run


def running_run(session: Session) -> SyncRun | None:
    return session.scalars(select(SyncRun).where(SyncRun.status == "running")).first()


def _owned(run_id: int, worker: str) -> Any:
    return (SyncRun.id == run_id, SyncRun.status == "running", SyncRun.worker == worker)


def _rowcount(result: Any) -> int:
    assert isinstance(result, CursorResult)
    return int(result.rowcount)


def reap_stale_runs(session: Session, *, now: datetime, stale_after: timedelta) -> list[int]:
    """Mark ``running`` runs without a heartbeat for ``stale_after`` (by the database's
    clock) as failed, delete their staging rows, and return their ids.

    A worker that died (killed, machine lost) cannot finish its run; without this the
    one-running-run index would block every later run forever. The rows are locked
    (``FOR UPDATE`` on PostgreSQL) and the staleness re-checked under the lock, so a
    runner heartbeating at this very moment either commits first (and is not reaped) or
    finds its run gone. ``now`` (the caller's clock) is recorded as ``finished_at``.
    """
    cutoff = database_now(session) - stale_after
    stale = list(
        session.scalars(
            select(SyncRun)
            .where(
                SyncRun.status == "running",
                func.coalesce(SyncRun.heartbeat_at, SyncRun.started_at) < cutoff,
            )
            .with_for_update()
        )
    )
    for run in stale:
        last = run.heartbeat_at or run.started_at
        error = (
            f"worker died: no heartbeat since {last:%Y-%m-%d %H:%M:%S} UTC. Nothing is "
            "lost: the next run redoes whatever this one did not finish."
        )
        run.status = "failed"
        run.error = error
        run.finished_at = now
        run.report = {**(run.report or {}), "status": "failed", "error": error}
        session.execute(delete(SyncRemoteOptOut).where(SyncRemoteOptOut.run_id == run.id))
    session.flush()
    return [int(run.id) for run in stale]


def heartbeat(session: Session, run_id: int, worker: str) -> int:
    """Refresh the heartbeat (database clock) of a run this worker still owns; returns
    the rows changed (0: the run was reaped or is not this worker's)."""
    return _rowcount(
        session.execute(
            update(SyncRun)
            .where(*_owned(run_id, worker))
            .values(heartbeat_at=database_now(session))
            .execution_options(synchronize_session=False)
        )
    )


def save_report(session: Session, run_id: int, worker: str, report: dict[str, Any]) -> int:
    """Keep the partial report on the row while running (the UI shows progress); returns
    the rows changed (0: the run is no longer this worker's)."""
    return _rowcount(
        session.execute(
            update(SyncRun)
            .where(*_owned(run_id, worker))
            .values(report=report)
            .execution_options(synchronize_session=False)
        )
    )


def finish_run(
    session: Session,
    run_id: int,
    worker: str,
    *,
    status: str,
    error: str | None,
    report: dict[str, Any],
    now: datetime,
) -> int:
    """End a run this worker still owns; returns the rows changed (0: it was reaped, and
    its ``failed`` stays)."""
    return _rowcount(
        session.execute(
            update(SyncRun)
            .where(*_owned(run_id, worker))
            .values(
                status=status,
                error=error,
                report=report,
                finished_at=now,
                heartbeat_at=database_now(session),
            )
            .execution_options(synchronize_session=False)
        )
    )


def last_completed_start(
    session: Session, *, before_run: int, field: str | None = None
) -> datetime | None:
    """When the last succeeded, real (not dry) run of ``field`` started: re-subscribes
    after it are "since the last sync" (its snapshot of Salesforce may predate them). A run
    of the other field says nothing about this one, so it does not count."""
    query = select(func.max(SyncRun.started_at)).where(
        SyncRun.status == "succeeded", SyncRun.dry_run.is_(False), SyncRun.id != before_run
    )
    if field is not None:
        query = query.where(SyncRun.field == field)
    return session.scalar(query)


def last_read_objects(session: Session, *, before_run: int | None = None) -> set[str] | None:
    """The objects the mirror's last read covered: the ``fetch_via`` of the latest run
    (before ``before_run``, when given) whose fetch finished (dry runs read the mirror
    too); None when no run's did."""
    query = select(SyncRun.id)
    if before_run is not None:
        query = query.where(SyncRun.id < before_run)
    ids = session.scalars(query.order_by(SyncRun.id.desc()).limit(50)).all()
    for run_id in ids:
        report = session.scalar(select(SyncRun.report).where(SyncRun.id == run_id)) or {}
        via = report.get("fetch_via") if isinstance(report, dict) else None
        if via:
            return set(via)
    return None


def last_scheduled_for(session: Session) -> datetime | None:
    return session.scalar(select(func.max(SyncRun.scheduled_for)))


def list_runs(session: Session, limit: int = 20) -> list[SyncRun]:
    return list(session.scalars(select(SyncRun).order_by(SyncRun.id.desc()).limit(limit)))


def get_run(session: Session, run_id: int) -> SyncRun | None:
    return session.get(SyncRun, run_id)


def add_failures(session: Session, run_id: int, failures: Sequence[dict[str, Any]]) -> None:
    """Store per-record failures (``person_id``, ``salesforce_id``, ``code``, ``message``,
    ``fix``)."""
    if failures:
        session.execute(insert(SyncRunFailure), [{"run_id": run_id, **f} for f in failures])

"""A run's report: the initial shape, the stored one, history."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from sqlalchemy.orm import Session

from optsync.domain.spreadsheet import csv_lines
from optsync.errors import NotFoundError
from optsync.store import runs, sync_runs
from optsync.store.db import Database
from optsync.store.models import SyncRun


def initial_report(row: SyncRun) -> dict[str, Any]:
    return {
        "id": row.id,
        "trigger": row.trigger,
        "dry_run": row.dry_run,
        "status": row.status,
        "error": None,
        "field": row.field,
        "scheduled_for": row.scheduled_for.isoformat() if row.scheduled_for else None,
        "started_at": row.started_at.isoformat(),
        "finished_at": None,
        "duration_s": None,
        "remote_opted_out": 0,
        "local_unsubscribed": 0,
        "pulled": 0,
        "pushed": 0,
        "failed": {},
        "failures": [],
        "not_linked": 0,
        "reopted_out": [],
        "api_calls": 0,
        "phases": {},
    }


def report_of(row: SyncRun) -> dict[str, Any]:
    """The stored report of a run, with the row's own fields winning (a reaped run's
    report may predate its failure)."""
    report = initial_report(row)
    report.update(row.report or {})
    report.update(
        id=row.id,
        trigger=row.trigger,
        dry_run=row.dry_run,
        status=row.status,
        error=row.error,
        field=row.field,
        finished_at=row.finished_at.isoformat() if row.finished_at else None,
    )
    return report


def history(db: Database, limit: int = 20) -> list[dict[str, Any]]:
    with db.transaction() as session:
        return [report_of(row) for row in runs.list_runs(session, limit)]


def get_report(db: Database, run_id: int) -> dict[str, Any]:
    with db.transaction() as session:
        row = runs.get_run(session, run_id)
        if row is None:
            raise NotFoundError(f"no sync run #{run_id}.", field="run_id")
        return report_of(row)


PREVIEW_COLUMNS = ("direction", "person_id", "email", "salesforce_id", "object", "field")
"""The columns of a dry run's "all as CSV" (the admin page's and ``--csv FILE``'s)."""


PREVIEW_CSV_PATH = "/settings/admin/unsubscribes/runs/{run_id}/preview.csv"
"""Where the admin app serves a dry run's records as CSV (its "All as CSV")."""


def preview_csv(session: Session, run_id: int, field: str | None) -> Iterator[str]:
    """Every record a dry run would pull and push, stored at the run (not recomputed), as
    CSV lines (header first, formula-safe cells); ``field``: the run's field."""
    rows = sync_runs.preview_rows(session, run_id)
    return csv_lines(
        PREVIEW_COLUMNS,
        (
            (r["direction"], r["person_id"], r["email"], r["salesforce_id"], r["object"], field)
            for r in rows
        ),
    )

"""The chart's numbers: per UTC day over the last 30 days, unsubscribes by source (from
the ledger), and pushes sent and failed — the worker's real-time pushes (outbox) plus
what finished sync runs pushed. Grouped in SQL so the cost does not grow with volume."""

from __future__ import annotations

from collections import defaultdict
from datetime import date, datetime, time, timedelta
from typing import Any

from sqlalchemy import Date, cast, func, select
from sqlalchemy.orm import Session

from optsync.store.models import LedgerEntry, OutboxPush, SyncRun
from optsync.web.admin.chart import DayCounts

DAYS = 30


def _day(session: Session, column: Any) -> Any:
    """The UTC calendar day of a timestamp column, on either database."""
    if session.get_bind().dialect.name == "postgresql":
        return cast(func.timezone("UTC", column), Date)
    return func.date(column)


def _as_date(value: Any) -> date:
    return value if isinstance(value, date) else date.fromisoformat(str(value)[:10])


def last_days(session: Session, now: datetime, days: int = DAYS) -> list[DayCounts]:
    today = now.date()
    first = today - timedelta(days=days - 1)
    since = datetime.combine(first, time.min, tzinfo=now.tzinfo)
    unsubs: dict[date, dict[str, int]] = defaultdict(dict)
    sent: dict[date, int] = defaultdict(int)
    failed: dict[date, int] = defaultdict(int)

    day = _day(session, LedgerEntry.created_at)
    for d, source, n in session.execute(
        select(day, LedgerEntry.source, func.count())
        .where(LedgerEntry.kind == "unsubscribe", LedgerEntry.created_at >= since)
        .group_by(day, LedgerEntry.source)
    ):
        unsubs[_as_date(d)][source] = int(n)

    day = _day(session, OutboxPush.sent_at)
    for d, n in session.execute(
        select(day, func.count())
        .where(OutboxPush.state == "sent", OutboxPush.sent_at >= since)
        .group_by(day)
    ):
        sent[_as_date(d)] += int(n)

    # A failed push has no failure time of its own; it counts on the day it was queued.
    day = _day(session, OutboxPush.created_at)
    for d, n in session.execute(
        select(day, func.count())
        .where(OutboxPush.state == "failed", OutboxPush.created_at >= since)
        .group_by(day)
    ):
        failed[_as_date(d)] += int(n)

    for run in session.scalars(
        select(SyncRun).where(
            SyncRun.dry_run.is_(False),
            SyncRun.status != "running",
            SyncRun.started_at >= since,
        )
    ):
        report = run.report or {}
        d = run.started_at.date()
        sent[d] += int(report.get("pushed") or 0)
        failed[d] += sum(int(v) for v in (report.get("failed") or {}).values())

    return [
        DayCounts(
            day=first + timedelta(days=i),
            unsubscribes=unsubs.get(first + timedelta(days=i), {}),
            pushes_sent=sent.get(first + timedelta(days=i), 0),
            pushes_failed=failed.get(first + timedelta(days=i), 0),
        )
        for i in range(days)
    ]

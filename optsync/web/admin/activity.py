"""The chart's numbers: per calendar day of the configured time zone over the last 30
days, unsubscribes by source (from the ledger), and pushes sent and failed — the
worker's real-time pushes (outbox) plus what finished sync runs pushed. Grouped in SQL
so the cost does not grow with volume: PostgreSQL groups by the zone's day itself;
SQLite, which knows no zones, groups by UTC quarter hour (every zone's offset is a
multiple of 15 minutes) and each quarter is put on its local day here."""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from typing import Any

from sqlalchemy import Date, Integer, cast, func, select
from sqlalchemy.orm import Session

from optsync.store.models import LedgerEntry, OutboxPush, SyncRun
from optsync.web.admin.chart import DayCounts

DAYS = 30


def _bucket(session: Session, column: Any, tz: tzinfo) -> Any:
    """What to group a timestamp column by: the zone's day (PostgreSQL) or the UTC
    quarter hour as text, ``YYYY-MM-DD HH:MM`` (SQLite)."""
    if session.get_bind().dialect.name == "postgresql":
        return cast(func.timezone(str(tz), column), Date)
    quarter = func.printf("%02d", (cast(func.strftime("%M", column), Integer) / 15) * 15)
    return func.strftime("%Y-%m-%d %H:", column).op("||")(quarter)


def _local_day(value: Any, tz: tzinfo) -> date:
    """The zone's day of a bucket: a date already, or a UTC quarter hour."""
    if isinstance(value, date) and not isinstance(value, datetime):
        return value
    text = str(value)
    if len(text) == 10:
        return date.fromisoformat(text)
    at = datetime.fromisoformat(text).replace(tzinfo=UTC)
    return at.astimezone(tz).date()


def last_days(
    session: Session, now: datetime, tz: tzinfo = UTC, days: int = DAYS
) -> list[DayCounts]:
    """The last ``days`` calendar days in ``tz``, today (in ``tz``) last."""
    today = now.astimezone(tz).date()
    first = today - timedelta(days=days - 1)
    since = datetime.combine(first, time.min, tzinfo=tz).astimezone(UTC)
    unsubs: dict[date, dict[str, int]] = defaultdict(dict)
    sent: dict[date, int] = defaultdict(int)
    failed: dict[date, int] = defaultdict(int)

    day = _bucket(session, LedgerEntry.created_at, tz)
    for d, source, n in session.execute(
        select(day, LedgerEntry.source, func.count())
        .where(LedgerEntry.kind == "unsubscribe", LedgerEntry.created_at >= since)
        .group_by(day, LedgerEntry.source)
    ):
        local = unsubs[_local_day(d, tz)]
        local[source] = local.get(source, 0) + int(n)

    day = _bucket(session, OutboxPush.sent_at, tz)
    for d, n in session.execute(
        select(day, func.count())
        .where(OutboxPush.state == "sent", OutboxPush.sent_at >= since)
        .group_by(day)
    ):
        sent[_local_day(d, tz)] += int(n)

    # A failed push has no failure time of its own; it counts on the day it was queued.
    day = _bucket(session, OutboxPush.created_at, tz)
    for d, n in session.execute(
        select(day, func.count())
        .where(OutboxPush.state == "failed", OutboxPush.created_at >= since)
        .group_by(day)
    ):
        failed[_local_day(d, tz)] += int(n)

    for run in session.scalars(
        select(SyncRun).where(
            SyncRun.dry_run.is_(False),
            SyncRun.status != "running",
            SyncRun.started_at >= since,
        )
    ):
        report = run.report or {}
        d = run.started_at.astimezone(tz).date()
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

"""Sync health at a glance: one function, :func:`sync_health`, behind the banner on the
Unsubscribes area, ``GET /api/v1/health/sync`` and the notifications.

It makes no Salesforce call: a handful of indexed queries (the last runs by id, counts of
the outbox by state over ``ix_outbox_state_created``, the live pull's stored state) in the
caller's short transaction, then the pure :func:`optsync.domain.health.problems`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import func, select
from sqlalchemy.orm import Session, aliased

from optsync.domain.health import (
    STUCK_AFTER_MIN,
    HealthFacts,
    Problem,
    RunFact,
    problems,
    status_of,
)
from optsync.domain.live_pull import Mode, Status, effective_mode
from optsync.domain.schedule import ScheduleError, next_run
from optsync.services.live_pull.status import describe
from optsync.services.sync_settings import get_settings
from optsync.store import live_pull as live_store
from optsync.store.models import NotificationSettings, OutboxPush, SyncRun

WAITING = ("pending", "in_flight")


@dataclass(frozen=True)
class SyncHealth:
    facts: HealthFacts
    problems: list[Problem]
    status: str
    next_run_at: datetime | None
    timezone: str
    live_pull_lines: list[str]

    def as_dict(self) -> dict[str, Any]:
        """The JSON of ``GET /api/v1/health/sync`` (times in UTC)."""
        f = self.facts

        def run(r: RunFact | None) -> dict[str, Any] | None:
            if r is None:
                return None
            return {
                "id": r.id,
                "status": r.status,
                "finished_at": r.finished_at.isoformat() if r.finished_at else None,
                "error": r.error,
            }

        oldest = f.oldest_waiting_at
        return {
            "status": self.status,
            "checked_at": f.now.isoformat(),
            "sync_enabled": f.sync_enabled,
            "last_success": run(f.last_success),
            "last_run": run(f.last_run),
            "running_run_id": f.running.id if f.running else None,
            "next_run_at": self.next_run_at.isoformat() if self.next_run_at else None,
            "timezone": self.timezone,
            "pushes_waiting": f.waiting,
            "oldest_waiting_at": oldest.isoformat() if oldest else None,
            "oldest_waiting_age_s": age_s(oldest, f.now),
            "failed_pushes": f.failed_pushes,
            "stuck_pushes": f.stuck,
            "stuck_after_min": f.stuck_after_min,
            "live_pull": f.live_pull,
            "live_pull_detail": self.live_pull_lines,
            "problems": [
                {"kind": p.kind, "text": p.text, "href": p.href, "count": p.count}
                for p in self.problems
            ],
        }


def age_s(then: datetime | None, now: datetime) -> int | None:
    return None if then is None else max(0, int((now - then).total_seconds()))


def stuck_after_min(session: Session) -> int:
    row = session.get(NotificationSettings, 1)
    return row.stuck_after_min if row is not None else STUCK_AFTER_MIN


def failed_push_count(session: Session) -> int:
    """Persons whose latest push failed (what the Failed pushes table lists): the failed
    rows (``ix_outbox_state_sent``), each checked against its person's newest push
    (``ix_outbox_person_latest``), so the cost follows the failures, not the outbox."""
    newer = aliased(OutboxPush)
    latest = (
        select(func.max(newer.id)).where(newer.person_id == OutboxPush.person_id).scalar_subquery()
    )
    return int(
        session.scalar(
            select(func.count())
            .select_from(OutboxPush)
            .where(OutboxPush.state == "failed", OutboxPush.id == latest)
        )
        or 0
    )


def stuck_pushes(
    session: Session, now: datetime, minutes: int
) -> tuple[int, int | None, datetime | None]:
    """``(count, oldest id, oldest queued at)`` of pushes waiting longer than ``minutes``."""
    cutoff = now - timedelta(minutes=minutes)
    where = (OutboxPush.state.in_(WAITING), OutboxPush.created_at < cutoff)
    count = int(session.scalar(select(func.count()).select_from(OutboxPush).where(*where)) or 0)
    if not count:
        return 0, None, None
    oldest = session.execute(
        select(OutboxPush.id, OutboxPush.created_at)
        .where(*where)
        .order_by(OutboxPush.created_at, OutboxPush.id)
        .limit(1)
    ).one()
    return count, int(oldest[0]), oldest[1]


def _run_fact(row: SyncRun | None) -> RunFact | None:
    if row is None:
        return None
    failed = sum((row.report or {}).get("failed", {}).values()) if row.report else 0
    return RunFact(row.id, row.status, row.finished_at, row.error, int(failed))


def _live_pull_state(
    sync_enabled: bool, mode: str, expires: datetime | None, statuses: set[str], now: datetime
) -> str:
    if effective_mode(mode, sync_enabled) is Mode.OFF:
        return "off"
    if expires is None or expires < now:
        return "waiting"
    for status in (Status.RECONNECTING, Status.CATCHING_UP, Status.STARTING, Status.POLLING):
        if status.value in statuses:
            return status.value
    return "live" if Status.LIVE.value in statuses else "starting"


def sync_health(session: Session, now: datetime) -> SyncHealth:
    """Everything the banner and the API show, read in the caller's transaction."""
    settings = get_settings(session)
    real = (SyncRun.dry_run.is_(False),)
    last_success = session.scalars(
        select(SyncRun).where(*real, SyncRun.status == "succeeded").order_by(SyncRun.id.desc())
    ).first()
    last_run = session.scalars(
        select(SyncRun).where(*real, SyncRun.status != "running").order_by(SyncRun.id.desc())
    ).first()
    running = session.scalars(select(SyncRun).where(SyncRun.status == "running")).first()
    waiting = int(
        session.scalar(
            select(func.count()).select_from(OutboxPush).where(OutboxPush.state.in_(WAITING))
        )
        or 0
    )
    oldest_waiting = session.scalar(
        select(func.min(OutboxPush.created_at)).where(OutboxPush.state.in_(WAITING))
    )
    _holder, expires = live_store.holder(session)
    states = live_store.all_states(session)
    statuses = {s.status for s in states}
    minutes = stuck_after_min(session)
    stuck, _oldest_id, _oldest_at = stuck_pushes(session, now, minutes)
    facts = HealthFacts(
        now=now,
        sync_enabled=settings.sync_enabled,
        last_success=_run_fact(last_success),
        last_run=_run_fact(last_run),
        running=_run_fact(running),
        waiting=waiting,
        oldest_waiting_at=oldest_waiting,
        failed_pushes=failed_push_count(session),
        stuck=stuck,
        stuck_after_min=minutes,
        live_pull=_live_pull_state(
            settings.sync_enabled, settings.live_pull, expires, statuses, now
        ),
    )
    next_at = None
    if settings.sync_enabled:
        try:
            next_at = next_run(settings.schedule, settings.timezone, now)
        except ScheduleError:
            next_at = None
    lines = describe(settings, states, expires, now)
    found = problems(facts)
    return SyncHealth(facts, found, status_of(found), next_at, settings.timezone, lines)


def local_time(value: datetime | None, zone: str) -> str:
    if value is None:
        return "—"
    return value.astimezone(ZoneInfo(zone)).strftime("%a %Y-%m-%d %H:%M %Z")
